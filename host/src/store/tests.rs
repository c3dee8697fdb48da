use serde_json::json;

use super::*;
use crate::engine::{ExpectedCallback, NodeRun, RunResult, RunStatus, new_run};
use crate::workflow::Workflow;

fn workflow() -> Workflow {
    let text = json!({
        "identifier": "deploy",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
            {"identifier": "call", "config": {"type": "WEBHOOK", "url": "https://example.com/"}}
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}]
    });
    Workflow::from_json(&text.to_string(), "test", &[]).unwrap()
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("runs.db")).unwrap()
}

/// Journals a run through every state change the engine makes, checking what a reader sees.
#[tokio::test]
async fn every_state_change_is_readable_at_once_and_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wf = workflow();
    let mut run = new_run(
        &wf,
        Some(3),
        wf.node("trigger").unwrap(),
        json!({"service": "api"}),
    );
    store.run_started(&run).await.unwrap();
    let mut node_run = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_1".into(),
        crate::time::now(),
    );
    store.node_started(&run, &node_run).await.unwrap();

    let seen = store.run(&run.identifier).unwrap().expect("stored");
    assert_eq!(seen.status, RunStatus::InProgress);
    assert_eq!(seen.workflow_version, Some(3));
    assert_eq!(seen.node_runs.len(), 2);
    assert_eq!(seen.node_runs[1].status, RunStatus::InProgress);
    assert_eq!(
        seen.outputs().to_map().get("trigger").unwrap()["service"],
        "api"
    );
    assert!(
        seen.outputs().to_map().get("call").is_none(),
        "no output before the node ends"
    );

    node_run.status = RunStatus::Completed;
    node_run.result = Some(RunResult::Success);
    node_run.output = json!({"response": {"status": 200}});
    node_run.logs = vec![json!({"logLevel": "INFO", "log": "sent"})];
    run.node_runs.push(node_run);
    store.node_finished(&run, &run.node_runs[1]).await.unwrap();
    run.status = RunStatus::Completed;
    run.result = Some(RunResult::Success);
    run.finished_at = Some(crate::time::now());
    store.run_finished(&run, None).await.unwrap();
    drop(store);

    let store = open(&dir);
    let back = store.run(&run.identifier).unwrap().expect("stored");
    assert_eq!(back.result, Some(RunResult::Success));
    assert_eq!(back.finished_at, run.finished_at);
    assert_eq!(back.node_runs[1].output["response"]["status"], 200);
    assert_eq!(back.node_runs[1].logs[0]["log"], "sent");
    assert_eq!(
        back.outputs().to_map().get("call").unwrap()["response"]["status"],
        200
    );
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&run).unwrap(),
        "the stored run reads back as the engine built it"
    );
}

/// The engine records the end of a run's last node run with the run's end, in one change.
#[tokio::test]
async fn a_run_end_records_its_last_node_run_in_the_same_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wf = workflow();
    let mut run = new_run(&wf, Some(1), wf.node("trigger").unwrap(), json!({}));
    store.run_started(&run).await.unwrap();
    let mut node_run = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_last".into(),
        crate::time::now(),
    );
    store.node_started(&run, &node_run).await.unwrap();
    node_run.status = RunStatus::Completed;
    node_run.result = Some(RunResult::Success);
    node_run.output = json!({"response": {"status": 204}});
    node_run.logs = vec![json!({"logLevel": "INFO", "log": "done"})];
    run.node_runs.push(node_run);
    run.status = RunStatus::Completed;
    run.result = Some(RunResult::Success);
    run.finished_at = Some(crate::time::now());
    store
        .run_finished(&run, run.node_runs.last())
        .await
        .unwrap();
    drop(store);

    let back = open(&dir).run(&run.identifier).unwrap().expect("stored");
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&run).unwrap(),
        "the run and its last node run read back ended, as the engine built them"
    );
}

#[tokio::test]
async fn runs_list_newest_first_with_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wf = workflow();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut run = new_run(&wf, None, wf.node("trigger").unwrap(), json!({"i": i}));
        run.created_at = format!("2026-01-0{}T00:00:00.000Z", i + 1);
        store.run_started(&run).await.unwrap();
        if i % 2 == 0 {
            run.status = RunStatus::Completed;
            run.result = Some(RunResult::Failed);
            store.run_finished(&run, None).await.unwrap();
        }
        ids.push(run.identifier);
    }
    let all = store
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    let listed: Vec<_> = all.iter().map(|r| r.identifier.clone()).collect();
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    let page = store
        .runs(&RunFilter {
            limit: 2,
            offset: 1,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].identifier, ids[3]);
    let running = store
        .runs(&RunFilter {
            status: Some(RunStatus::InProgress),
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(running.len(), 2);
    let other = store
        .runs(&RunFilter {
            workflow: Some("other".into()),
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert!(other.is_empty());
}

#[test]
fn workflows_keep_every_version_and_deleting_keeps_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let v1 = store
        .create_workflow("deploy", &json!({"title": "one"}))
        .unwrap();
    assert_eq!(v1.version, 1);
    // Looked up (and remembered) before each change: every change shows at once.
    assert_eq!(store.latest_version("deploy").unwrap(), Some(1));
    assert!(matches!(
        store.create_workflow("deploy", &json!({})),
        Err(StoreError::WorkflowExists(_))
    ));
    assert!(matches!(
        store.update_workflow("missing", &json!({})),
        Err(StoreError::NoWorkflow(_))
    ));
    let v2 = store
        .update_workflow("deploy", &json!({"title": "two"}))
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.created_at, v1.created_at);
    let latest = store.workflow("deploy", None).unwrap().unwrap();
    assert_eq!(latest.source["title"], "two");
    assert_eq!(store.latest_version("deploy").unwrap(), Some(2));
    assert_eq!(store.latest_version("missing").unwrap(), None);
    let first = store.workflow("deploy", Some(1)).unwrap().unwrap();
    assert_eq!(first.source["title"], "one");
    store.create_workflow("audit", &json!({})).unwrap();
    let names: Vec<_> = store
        .workflows()
        .unwrap()
        .into_iter()
        .map(|w| w.identifier)
        .collect();
    assert_eq!(names, ["audit", "deploy"]);

    assert!(store.delete_workflow("deploy").unwrap());
    assert!(!store.delete_workflow("deploy").unwrap());
    assert!(store.workflow("deploy", None).unwrap().is_none());
    assert_eq!(store.latest_version("deploy").unwrap(), None);
    assert_eq!(
        store.workflow("deploy", Some(2)).unwrap().unwrap().source["title"],
        "two",
        "a deleted workflow's versions explain its old runs"
    );
    let again = store
        .create_workflow("deploy", &json!({"title": "three"}))
        .unwrap();
    assert_eq!(again.version, 3, "versions are never reused");
    assert_eq!(store.latest_version("deploy").unwrap(), Some(3));
    drop(store);
    assert_eq!(open(&dir).latest_version("deploy").unwrap(), Some(3));
}

#[tokio::test]
async fn callback_tokens_are_kept_per_node_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wf = workflow();
    let run = new_run(&wf, None, wf.node("trigger").unwrap(), json!({}));
    store.run_started(&run).await.unwrap();
    let node_run = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_cb".into(),
        crate::time::now(),
    );
    store.node_started(&run, &node_run).await.unwrap();
    let expected = ExpectedCallback {
        token_sha256: "ab12".into(),
        deadline_ms: Some(1_700_000_000_000),
    };
    store
        .callback_expected(&run, &node_run, &expected)
        .await
        .unwrap();
    assert_eq!(
        store.callback_token("wfnr_cb").unwrap().as_deref(),
        Some("ab12")
    );
    assert!(store.callback_token("wfnr_other").unwrap().is_none());
    let mut unknown = node_run.clone();
    unknown.identifier = "wfnr_unknown".into();
    assert!(
        store
            .callback_expected(&run, &unknown, &expected)
            .await
            .is_err(),
        "a token belongs to an existing node run"
    );
    assert_eq!(
        store.node_run_owner("wfnr_cb").unwrap().as_deref(),
        Some(run.identifier.as_str())
    );

    // The request was accepted: the node run waits, with its logs so far.
    let mut waiting = node_run.clone();
    waiting.logs = vec![json!({"logLevel": "INFO", "log": "sent"})];
    assert!(store.node_waiting(&run, &waiting).await.unwrap().is_none());
    assert!(
        store
            .append_logs("wfnr_cb", &[json!({"logLevel": "INFO", "log": "working"})])
            .unwrap()
    );
    assert_eq!(
        store.waiting_callbacks().unwrap(),
        [WaitingCallback {
            run: run.identifier.clone(),
            node_run: "wfnr_cb".into(),
            deadline_ms: Some(1_700_000_000_000),
        }]
    );

    // The callback completes it; then the wait is over and the logs stay as they were.
    let mut done = waiting.clone();
    done.status = RunStatus::Completed;
    done.result = Some(RunResult::Success);
    done.output = json!({"built": true});
    done.logs = store.run(&run.identifier).unwrap().unwrap().node_runs[1]
        .logs
        .clone();
    assert_eq!(done.logs.len(), 2);
    store.node_finished(&run, &done).await.unwrap();
    assert!(matches!(
        store.node_finished(&run, &done).await,
        Err(StoreError::NotInProgress(_))
    ));
    let late = store
        .node_waiting(&run, &waiting)
        .await
        .unwrap()
        .expect("completed");
    assert_eq!(late.output, json!({"built": true}));
    assert!(store.waiting_callbacks().unwrap().is_empty());
    assert!(!store.append_logs("wfnr_cb", &[json!("late")]).unwrap());
}

/// A state dir written by the first store (one JSON blob per run) is migrated in place.
#[test]
fn a_version_1_database_is_migrated_with_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let wf = workflow();
    let mut run = new_run(&wf, None, wf.node("trigger").unwrap(), json!({"x": 1}));
    run.status = RunStatus::Completed;
    run.result = Some(RunResult::Success);
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE workflow_runs (identifier TEXT PRIMARY KEY, workflow TEXT NOT NULL,
             status TEXT NOT NULL, result TEXT, created_at TEXT NOT NULL, run TEXT NOT NULL);",
        )
        .unwrap();
        db.execute(
            "INSERT INTO workflow_runs VALUES (?1, 'deploy', 'COMPLETED', 'SUCCESS', ?2, ?3)",
            rusqlite::params![
                run.identifier,
                run.created_at,
                serde_json::to_string(&run).unwrap()
            ],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let back = store.run(&run.identifier).unwrap().expect("migrated");
    assert_eq!(back.result, Some(RunResult::Success));
    assert_eq!(back.node_runs[0].output["x"], 1);
    drop(store);
    let db = rusqlite::Connection::open(&path).unwrap();
    let version: u32 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::CURRENT);
}

#[test]
fn a_newer_schema_is_refused_not_guessed_at() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = SqliteStore::open(&path).err().expect("refused");
    assert!(
        matches!(error, StoreError::TooNew { found: 99, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn cancelling_ends_the_run_and_its_open_node_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wf = workflow();
    let run = new_run(&wf, None, wf.node("trigger").unwrap(), json!({}));
    store.run_started(&run).await.unwrap();
    let node_run = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_c".into(),
        crate::time::now(),
    );
    store.node_started(&run, &node_run).await.unwrap();
    assert!(store.cancel_run(&run.identifier).unwrap());
    assert!(!store.cancel_run(&run.identifier).unwrap(), "already ended");
    let back = store.run(&run.identifier).unwrap().unwrap();
    assert_eq!(back.result, Some(RunResult::Cancelled));
    assert!(back.finished_at.is_some());
    assert_eq!(
        back.node_runs[0].result,
        Some(RunResult::Success),
        "finished nodes keep theirs"
    );
    assert_eq!(back.node_runs[1].result, Some(RunResult::Cancelled));

    // A task that was aborted mid-write cannot undo the cancellation.
    let mut late = node_run.clone();
    late.status = RunStatus::Completed;
    late.result = Some(RunResult::Success);
    assert!(matches!(
        store.node_finished(&run, &late).await,
        Err(StoreError::NotInProgress(_))
    ));
    let mut finished = run.clone();
    finished.status = RunStatus::Completed;
    finished.result = Some(RunResult::Success);
    assert!(matches!(
        store.run_finished(&finished, None).await,
        Err(StoreError::NotInProgress(_))
    ));
    assert!(matches!(
        store.run_finished(&finished, Some(&late)).await,
        Err(StoreError::NotInProgress(_))
    ));
    let next = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_d".into(),
        crate::time::now(),
    );
    assert!(matches!(
        store.node_started(&run, &next).await,
        Err(StoreError::NotInProgress(_))
    ));
    let back = store.run(&run.identifier).unwrap().unwrap();
    assert_eq!(back.result, Some(RunResult::Cancelled));
    assert_eq!(back.node_runs.len(), 2);
}

/// A node run cut off by a crash is started again in place: one more attempt, its old callback
/// token void; the run is listed as in progress until it ends.
#[tokio::test]
async fn a_restarted_node_run_keeps_its_identity_and_drops_its_old_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wf = workflow();
    let run = new_run(&wf, Some(1), wf.node("trigger").unwrap(), json!({}));
    store.run_started(&run).await.unwrap();
    let mut node_run = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_cut".into(),
        crate::time::now(),
    );
    store.node_started(&run, &node_run).await.unwrap();
    let expected = ExpectedCallback {
        token_sha256: "old".into(),
        deadline_ms: None,
    };
    store
        .callback_expected(&run, &node_run, &expected)
        .await
        .unwrap();
    assert!(
        store.waiting_callbacks().unwrap().is_empty(),
        "in flight, not waiting"
    );
    assert_eq!(
        store.runs_in_progress().unwrap(),
        vec![run.identifier.clone()]
    );

    node_run.attempts = 2;
    store.node_restarted(&run, &node_run).await.unwrap();
    assert!(store.callback_token("wfnr_cut").unwrap().is_none());
    assert!(store.node_run_of_token("old").unwrap().is_none());
    let stored = store.run(&run.identifier).unwrap().unwrap();
    assert_eq!(
        stored.node_runs.len(),
        2,
        "the same node run, not a second one"
    );
    assert_eq!(stored.node_runs[1].attempts, 2);

    store.cancel_run(&run.identifier).unwrap();
    assert!(store.runs_in_progress().unwrap().is_empty());
    assert!(matches!(
        store.node_restarted(&run, &node_run).await,
        Err(StoreError::NotInProgress(_))
    ));
}

/// Changes queued while the writer is busy commit together; one that fails is undone alone and
/// the rest of its group stands, also after reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_together_and_a_failing_change_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir));
    let wf = workflow();
    let runs: Vec<_> = (0..20)
        .map(|_| new_run(&wf, None, wf.node("trigger").unwrap(), json!({})))
        .collect();
    let foreign = NodeRun::started(
        wf.node("call").unwrap(),
        "wfnr_nowhere".into(),
        crate::time::now(),
    );
    let expected = ExpectedCallback {
        token_sha256: "cd34".into(),
        deadline_ms: None,
    };
    let tasks = {
        // Holding the connection keeps the writer from committing, so the changes queue up.
        let _busy = store.db();
        let mut tasks = Vec::new();
        for run in runs.clone() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.run_started(&run).await.is_ok()
            }));
        }
        let (store_, run) = (store.clone(), runs[0].clone());
        tasks.push(tokio::spawn(async move {
            store_
                .callback_expected(&run, &foreign, &expected)
                .await
                .is_ok()
        }));
        std::thread::sleep(std::time::Duration::from_millis(100));
        tasks
    };
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_eq!(answers.pop(), Some(false), "a token for no node run fails");
    assert!(answers.iter().all(|ok| *ok), "every run is stored");
    drop(std::sync::Arc::try_unwrap(store).ok().expect("one owner"));
    let store = open(&dir);
    for run in &runs {
        assert!(store.run(&run.identifier).unwrap().is_some());
    }
    assert!(store.callback_token("wfnr_nowhere").unwrap().is_none());
}

/// A read never waits for the writer: while the writer holds its connection (as when it commits
/// a group), runs and workflows are read from the last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir));
    let wf = workflow();
    let source = json!({"identifier": "deploy", "nodes": [], "connections": []});
    store.create_workflow("deploy", &source).unwrap();
    let mut run = new_run(&wf, Some(1), wf.node("trigger").unwrap(), json!({}));
    crate::engine::start_first_node(&wf, &mut run);
    store.run_started(&run).await.unwrap();

    let busy = store.db();
    let (reads, answered) = std::sync::mpsc::channel();
    let reader = std::thread::spawn({
        let (store, wfr) = (store.clone(), run.identifier.clone());
        move || {
            let stored = store.run(&wfr).unwrap().expect("stored");
            let version = store.latest_version("deploy").unwrap();
            reads.send((stored, version)).unwrap();
        }
    });
    let (stored, version) = answered
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("read while the writer holds its connection");
    drop(busy);
    reader.join().unwrap();
    assert_eq!(version, Some(1));
    // The first node run was recorded started, with the run.
    assert_eq!(stored.node_runs.len(), 2);
    assert_eq!(stored.node_runs[1].node, "call");
    assert_eq!(stored.node_runs[1].status, RunStatus::InProgress);
}

/// A run's outputs are read from its node runs: the trigger's under its name and `trigger`,
/// each completed node run's under its node, a node's latest winning, nothing for one still
/// running; the run's JSON carries them in that order.
#[test]
fn outputs_are_the_completed_node_runs_latest_first_seen_order() {
    let wf = workflow();
    let mut run = new_run(&wf, None, wf.node("trigger").unwrap(), json!({"a": 1}));
    let call = wf.node("call").unwrap();
    let mut first = NodeRun::started(call, "wfnr_1".into(), crate::time::now());
    first.status = RunStatus::Completed;
    first.output = json!("first");
    let mut second = first.clone();
    second.identifier = "wfnr_2".into();
    second.output = json!("second");
    let running = NodeRun::started(call, "wfnr_3".into(), crate::time::now());
    run.node_runs.extend([first, second, running]);

    let outputs = run.outputs().to_map();
    assert_eq!(outputs.get("trigger"), Some(&json!({"a": 1})));
    assert_eq!(outputs.get("call"), Some(&json!("second")));
    assert_eq!(outputs.get("other"), None);
    // This workflow's trigger node is itself called `trigger`: one key.
    assert_eq!(
        serde_json::to_string(&serde_json::to_value(&run).unwrap()["outputs"]).unwrap(),
        r#"{"trigger":{"a":1},"call":"second"}"#
    );
}
