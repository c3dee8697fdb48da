use super::*;
use std::sync::Arc;

fn record(run: &str, node: &str, decision: Decision) -> AuditRecord {
    AuditRecord {
        seq: 999,
        time: "2025-01-02T03:04:05.678Z".into(),
        run: run.into(),
        node_run: format!("{run}-{node}"),
        node: node.into(),
        component: "sha256:abcd".into(),
        method: "GET".into(),
        url: "https://api.example.com/items?key=[secret:api-token]".into(),
        normalized_url: Some("https://api.example.com/items?key=[secret:api-token]".into()),
        host: Some("api.example.com".into()),
        resolved_ip: Some("93.184.216.34".into()),
        decision,
        rule: Some("default public".into()),
        secrets: vec!["api-token".into()],
        status: (decision == Decision::Allow).then_some(200),
        bytes_sent: 10,
        bytes_received: 20,
        duration_ms: 30,
        error: None,
        prev: "bogus".into(),
        hash: "bogus".into(),
    }
}

/// A log with `n` records, alternating allow/deny over runs r0, r1.
fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sub").join("audit.jsonl");
    let log = AuditLog::open(&path).expect("open");
    for i in 0..n {
        let decision = if i % 2 == 0 {
            Decision::Allow
        } else {
            Decision::Deny
        };
        log.append_blocking(record(&format!("r{}", i % 2), &format!("n{i}"), decision))
            .expect("append");
    }
    (dir, path)
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("write");
}

fn failure(path: &Path) -> (usize, u64, String) {
    match verify(path) {
        Err(AuditError::VerifyFailed { line, seq, reason }) => (line, seq, reason),
        other => panic!("expected a verify failure, got {other:?}"),
    }
}

#[test]
fn chain_of_records_verifies() {
    let (_dir, path) = log_with(5);
    assert_eq!(verify(&path).expect("verify"), 5);
    let records = read(&path, &AuditFilter::default()).expect("read");
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(records[0].prev, GENESIS);
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev, pair[0].hash);
    }
    // The hash is over the compact JSON without `hash`, fields in struct order.
    let mut unhashed = serde_json::to_value(&records[2]).expect("value");
    let object = unhashed.as_object_mut().expect("object");
    object.shift_remove("hash");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys[..3], ["seq", "time", "run"]);
    assert_eq!(*keys.last().expect("keys"), "prev");
    let bytes = serde_json::to_vec(&unhashed).expect("bytes");
    assert_eq!(records[2].hash, hex::encode(Sha256::digest(bytes)));
}

#[test]
fn reopening_continues_the_chain() {
    let (_dir, path) = log_with(2);
    AuditLog::open(&path)
        .expect("reopen")
        .append_blocking(record("r9", "n9", Decision::Deny))
        .expect("append");
    assert_eq!(verify(&path).expect("verify"), 3);
}

#[test]
fn edited_field_fails_at_its_line() {
    let (_dir, path) = log_with(4);
    let mut lines = lines_of(&path);
    let edited = lines[2].replace("\"allow\"", "\"deny\"");
    assert_ne!(edited, lines[2]);
    lines[2] = edited;
    write_lines(&path, &lines);
    let (line, seq, reason) = failure(&path);
    assert_eq!((line, seq), (3, 2));
    assert!(reason.starts_with("edited"), "{reason}");
}

#[test]
fn deleted_middle_line_fails() {
    let (_dir, path) = log_with(5);
    let mut lines = lines_of(&path);
    lines.remove(2);
    write_lines(&path, &lines);
    let (line, seq, reason) = failure(&path);
    assert_eq!((line, seq), (3, 3));
    assert!(reason.starts_with("deleted"), "{reason}");
}

#[test]
fn deleted_last_line_fails_against_head() {
    let (_dir, path) = log_with(4);
    let mut lines = lines_of(&path);
    lines.pop();
    write_lines(&path, &lines);
    let (line, seq, reason) = failure(&path);
    assert_eq!((line, seq), (4, 3));
    assert!(reason.starts_with("truncated"), "{reason}");
}

#[test]
fn missing_head_fails_but_empty_log_is_fine() {
    let (_dir, path) = log_with(2);
    std::fs::remove_file(Head::path(&path)).expect("remove head");
    assert!(failure(&path).2.contains("head file"));

    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("audit.jsonl");
    AuditLog::open(&empty).expect("open");
    assert_eq!(verify(&empty).expect("verify"), 0);
}

#[test]
fn head_one_behind_is_a_crash_not_tampering() {
    let (_dir, path) = log_with(3);
    let lines = lines_of(&path);
    let second: AuditRecord = serde_json::from_str(&lines[1]).expect("record");
    std::fs::write(Head::path(&path), format!("{:020} {}\n", 1, second.hash)).expect("head");
    assert_eq!(verify(&path).expect("verify"), 3);
    std::fs::write(Head::path(&path), format!("{:020} {}\n", 0, second.hash)).expect("head");
    assert!(verify(&path).is_err());
}

#[test]
fn swapped_lines_fail_as_reordered() {
    let (_dir, path) = log_with(5);
    let mut lines = lines_of(&path);
    lines.swap(1, 2);
    write_lines(&path, &lines);
    let (line, seq, reason) = failure(&path);
    assert_eq!((line, seq), (2, 2));
    assert!(reason.starts_with("reordered"), "{reason}");
}

#[test]
fn truncated_mid_line_fails() {
    let (_dir, path) = log_with(3);
    let text = std::fs::read(&path).expect("read");
    std::fs::write(&path, &text[..text.len() - 15]).expect("truncate");
    let (line, seq, reason) = failure(&path);
    assert_eq!((line, seq), (3, 2));
    assert!(reason.starts_with("truncated"), "{reason}");
    // Appending onto a damaged tail is refused rather than burying the damage.
    let err = AuditLog::open(&path)
        .err()
        .expect("open refuses a cut tail");
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
}

#[test]
fn two_handles_on_one_file_keep_one_chain() {
    let (_dir, path) = log_with(1);
    let a = AuditLog::open(&path).expect("open a");
    let b = AuditLog::open(&path).expect("open b");
    for i in 0..6 {
        let log = if i % 2 == 0 { &a } else { &b };
        log.append_blocking(record("r", &format!("x{i}"), Decision::Allow))
            .expect("append");
    }
    assert_eq!(verify(&path).expect("verify"), 7);
}

#[test]
fn concurrent_appends_from_threads_keep_one_chain() {
    let (_dir, path) = log_with(0);
    let logs = [
        Arc::new(AuditLog::open(&path).expect("open")),
        Arc::new(AuditLog::open(&path).expect("open")),
    ];
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = logs[t % 2].clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    log.append_blocking(record("r", &format!("t{t}-{i}"), Decision::Deny))
                        .expect("append");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(verify(&path).expect("verify"), 20);
}

#[test]
fn filters_select_records() {
    let (_dir, path) = log_with(6);
    let by = |filter: AuditFilter| -> Vec<u64> {
        read(&path, &filter)
            .expect("read")
            .iter()
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(by(AuditFilter::default()).len(), 6);
    let run = |r: &str| Some(r.to_owned());
    assert_eq!(
        by(AuditFilter {
            run: run("r1"),
            ..Default::default()
        }),
        [1, 3, 5]
    );
    assert_eq!(
        by(AuditFilter {
            node: run("n4"),
            ..Default::default()
        }),
        [4]
    );
    assert_eq!(
        by(AuditFilter {
            run: run("r0"),
            decision: Some(Decision::Deny),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        by(AuditFilter {
            decision: Some(Decision::Deny),
            ..Default::default()
        }),
        [1, 3, 5]
    );
    let missing = path.with_file_name("none.jsonl");
    assert!(
        read(&missing, &AuditFilter::default())
            .expect("read")
            .is_empty()
    );
}

#[test]
fn table_shows_one_aligned_row_per_record() {
    let mut denied = record("r", "fetch-user", Decision::Deny);
    denied.rule = Some("private address 169.254.169.254".into());
    let mut failed = record("r", "post", Decision::Allow);
    failed.error = Some("connection refused\nretry".into());
    failed.url = format!("https://example.com/{}", "x".repeat(100));
    let table = format_table(&[denied, failed]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert!(lines[1].contains("fetch-user") && lines[1].contains("deny"));
    assert!(
        lines[1].ends_with("private address 169.254.169.254"),
        "{table}"
    );
    assert!(
        lines[2].contains("error: connection refused\\u{a}retry"),
        "{table}"
    );
    assert!(lines[2].contains('…'), "long URL is cut: {table}");
    // Columns line up: the status column starts at the same character in every row.
    let col = lines[0].find("STATUS").expect("header");
    assert_eq!(lines[1].chars().nth(col), Some('-'), "{table}");
    assert_eq!(
        lines[2].chars().skip(col).take(3).collect::<String>(),
        "200",
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_appends_are_committed_in_groups_into_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = Arc::new(AuditLog::open(&path).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append(record("r", &format!("c{i}"), Decision::Allow))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Every append returned only after its record was written: all 200 are there, chained.
    assert_eq!(verify(&path).unwrap(), 200);
    let nodes: std::collections::HashSet<String> = read(&path, &AuditFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.node)
        .collect();
    assert_eq!(nodes.len(), 200);
}

#[test]
fn head_may_lag_by_one_batch_but_no_more() {
    let count = MAX_BATCH + 3;
    let (_dir, path) = log_with(count);
    let lines = lines_of(&path);
    let set_head = |seq: usize| {
        let record: AuditRecord = serde_json::from_str(&lines[seq]).expect("record");
        std::fs::write(Head::path(&path), format!("{:020} {}\n", seq, record.hash)).expect("head");
    };
    // A crash after syncing a full batch and before moving the head.
    set_head(count - 1 - MAX_BATCH);
    assert_eq!(verify(&path).expect("verify"), count);
    set_head(count - 2 - MAX_BATCH);
    assert!(failure(&path).2.contains("far behind"));
}

#[test]
fn detached_appends_are_on_disk_once_the_log_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for i in 0..50 {
        log.append_detached(record("r", &format!("d{i}"), Decision::Deny))
            .unwrap();
    }
    drop(log);
    assert_eq!(verify(&path).unwrap(), 50);
}

#[test]
fn table_escapes_bidi_and_separator_characters() {
    let mut spoofed = record("r", "n\u{202e}txt.exe", Decision::Deny);
    spoofed.url = "https://example.com/\u{2028}x\u{2029}".into();
    let table = format_table(&[spoofed]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("n\\u{202e}txt.exe"), "{table}");
    assert!(table.contains("/\\u{2028}x\\u{2029}"), "{table}");
    assert!(
        !table.contains(['\u{202e}', '\u{2028}', '\u{2029}']),
        "{table}"
    );
}

#[test]
fn huge_text_fields_are_cut_naming_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).expect("open");
    let mut huge = record("r", "n", Decision::Deny);
    huge.url = format!("https://example.com/{}", "é".repeat(1 << 20));
    huge.error = Some("e".repeat(5 << 20));
    log.append_blocking(huge).expect("append");
    drop(log);
    let size = std::fs::metadata(&path).expect("log").len();
    assert!(size < 16 * 1024, "{size} bytes");
    let stored = &read(&path, &AuditFilter::default()).expect("read")[0];
    assert!(stored.url.starts_with("https://example.com/éé"));
    assert!(
        stored.url.ends_with(&format!(
            "… [cut: {} bytes exceed the audit field limit of 2048 bytes]",
            20 + (2 << 20)
        )),
        "{}",
        stored.url
    );
    assert!(
        stored
            .error
            .as_deref()
            .unwrap()
            .contains("audit field limit")
    );
    assert_eq!(verify(&path).expect("verifies"), 1);
}

fn head_seq(path: &Path) -> Option<u64> {
    Head::read(path).expect("head").map(|(seq, _)| seq)
}

/// A writer on a new log, driven directly (no thread), for the head's bookkeeping.
fn new_writer() -> (tempfile::TempDir, PathBuf, Writer) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.jsonl");
    let writer = Writer::open(&path).expect("open");
    (dir, path, writer)
}

fn batch(n: usize) -> Vec<AuditRecord> {
    vec![record("r", "n", Decision::Allow); n]
}

#[test]
fn the_head_stays_at_most_a_batch_behind_and_never_goes_back() {
    let (_dir, path, mut first) = new_writer();
    // The first batch writes the head at once: a log without one reads as truncated.
    first.write_batch(batch(2)).expect("batch");
    assert_eq!(head_seq(&path), Some(1));
    // Later batches leave it behind (callers are answered first) until `move_head`.
    first.write_batch(batch(1)).expect("batch");
    assert_eq!(head_seq(&path), Some(1));
    assert_eq!(verify(&path).expect("a head one batch behind verifies"), 3);
    first.move_head().expect("head");
    assert_eq!(head_seq(&path), Some(2));

    // Under load (no `move_head`), it moves only when the log would run too far past it.
    let mut records = 3;
    for _ in 0..40 {
        first.write_batch(batch(50)).expect("batch");
        records += 50;
        let lag = records - 1 - head_seq(&path).expect("head") as usize;
        assert!(lag <= MAX_BATCH, "the head lags by {lag}");
        assert!(lag >= 50, "the head moved at every batch");
        assert_eq!(verify(&path).expect("verifies"), records);
    }

    // Another writer appends meanwhile, with its own head behind: a writer counts the lag
    // from the head file, so the two together do not take the log too far past it either.
    let mut second = Writer::open(&path).expect("open");
    for _ in 0..20 {
        second.write_batch(batch(50)).expect("batch");
        first.write_batch(batch(50)).expect("batch");
        records += 100;
        let lag = records - 1 - head_seq(&path).expect("head") as usize;
        assert!(lag <= MAX_BATCH, "the head lags by {lag}");
    }
    // Moving it names the log's last record, whoever wrote it; it never goes back.
    second.move_head().expect("head");
    assert_eq!(head_seq(&path), Some(records as u64 - 1));
    first.move_head().expect("head");
    assert_eq!(head_seq(&path), Some(records as u64 - 1));
    assert_eq!(verify(&path).expect("verifies"), records);
}

#[test]
fn an_idle_writer_moves_the_head_to_the_last_record() {
    let (_dir, path) = log_with(0);
    let log = AuditLog::open(&path).expect("open");
    for i in 0..5 {
        log.append_blocking(record("r", &format!("n{i}"), Decision::Allow))
            .expect("append");
        // The writer moves the head once no record has come for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while head_seq(&path) != Some(i) {
            assert!(
                std::time::Instant::now() < deadline,
                "head stuck at {:?}",
                head_seq(&path)
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[test]
fn a_log_cut_under_a_writer_keeps_its_head_so_verify_shows_the_cut() {
    let (_dir, path, mut writer) = new_writer();
    writer.write_batch(batch(3)).expect("batch");
    writer.write_batch(batch(2)).expect("batch");
    writer.move_head().expect("head");
    writer.write_batch(batch(2)).expect("batch");
    assert_eq!(head_seq(&path), Some(4));
    // The log is cut below the head while the writer has records past it: following the
    // shorter log would move the head back and hide the cut.
    let lines = lines_of(&path);
    write_lines(&path, &lines[..2]);
    writer
        .move_head()
        .expect_err("a shorter log is not followed");
    assert_eq!(head_seq(&path), Some(4));
    assert!(
        failure(&path).2.contains("truncated"),
        "{:?}",
        failure(&path)
    );

    // Emptied, log and head alike: the writer starts a new chain instead of failing.
    std::fs::write(&path, "").expect("empty log");
    std::fs::write(Head::path(&path), "").expect("empty head");
    writer
        .write_batch(batch(2))
        .expect("batch onto an empty log");
    writer.move_head().expect("head");
    assert_eq!(head_seq(&path), Some(1));
    assert_eq!(verify(&path).expect("verifies"), 2);
}
