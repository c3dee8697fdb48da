//! Why the engine costs what it costs: one audit append (written, flushed and fsynced with its
//! `.head` sidecar) on the state dir's disk vs on a tmpfs.

use std::path::Path;
use std::time::{Duration, Instant};

use airlock::audit::{AuditLog, AuditRecord, Decision};

/// Durations of `count` appends to a fresh log under `dir`.
pub fn append_times(dir: &Path, count: usize) -> anyhow::Result<Vec<Duration>> {
    let state = tempfile::tempdir_in(dir)?;
    let log = AuditLog::open(&state.path().join("audit.jsonl"))?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        log.append_blocking(record())?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// A record shaped like a WEBHOOK node's allowed request.
fn record() -> AuditRecord {
    AuditRecord {
        seq: 0,
        time: "2025-01-01T00:00:00.000Z".into(),
        run: "r_0123456789abcdef".into(),
        node_run: "r_0123456789abcdef_n1".into(),
        node: "hook1".into(),
        component: format!("sha256:{}", "0".repeat(64)),
        method: "POST".into(),
        url: "http://127.0.0.1:40000/echo".into(),
        normalized_url: Some("http://127.0.0.1:40000/echo".into()),
        host: Some("127.0.0.1".into()),
        resolved_ip: Some("127.0.0.1".into()),
        decision: Decision::Allow,
        rule: Some("allow[0] http://127.0.0.1:40000".into()),
        secrets: Vec::new(),
        status: Some(200),
        bytes_sent: 7,
        bytes_received: 22,
        duration_ms: 0,
        error: None,
        prev: String::new(),
        hash: String::new(),
    }
}
