//! The audit log as a reviewer uses it: `airlock audit verify` catches an edited, deleted,
//! reordered or truncated record in a log written by real runs, and `airlock audit` filters.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Receiver, Run, Scene};

/// Three chained WEBHOOK nodes `first`, `second`, `third`, each calling `base`.
fn three_calls(base: &str) -> String {
    let hook = |id: &str| json!({"identifier": id, "config": {"type": "WEBHOOK", "url": format!("{base}/{id}"), "method": "GET"}});
    json!({
        "identifier": "audited",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            hook("first"), hook("second"), hook("third")
        ],
        "connections": [
            {"sourceIdentifier": "start", "targetIdentifier": "first"},
            {"sourceIdentifier": "first", "targetIdentifier": "second"},
            {"sourceIdentifier": "second", "targetIdentifier": "third"}
        ]
    })
    .to_string()
}

/// One WEBHOOK node `blocked` aimed at the cloud metadata address: denied.
fn one_denied() -> String {
    json!({
        "identifier": "denied",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "blocked", "config": {"type": "WEBHOOK", "url": "http://169.254.169.254/latest", "method": "GET"}}
        ],
        "connections": [{"sourceIdentifier": "start", "targetIdentifier": "blocked"}]
    })
    .to_string()
}

/// A scene whose audit log holds 4 records: run `allowed` (3 allowed requests, seq 0-2) then
/// run `denied` (1 denied request, seq 3).
struct Audited {
    scene: Scene,
    allowed: String,
    denied: String,
    _receiver: Receiver,
}

impl Audited {
    fn new() -> Audited {
        let receiver = Receiver::start();
        let scene = Scene::new();
        let policy = scene.allow_policy(&receiver);
        let policy = policy.to_str().unwrap();
        let wf = scene.write("three.json", &three_calls(&receiver.url()));
        let out = scene.airlock(&["run", wf.to_str().unwrap(), "--policy", policy, "--json"]);
        out.expect_code(0);
        let allowed = out.json()["identifier"].as_str().unwrap().to_string();
        let wf = scene.write("denied.json", &one_denied());
        let out = scene.airlock(&["run", wf.to_str().unwrap(), "--policy", policy, "--json"]);
        out.expect_code(1);
        let denied = out.json()["identifier"].as_str().unwrap().to_string();
        assert_eq!(receiver.requests().len(), 3);
        Audited {
            scene,
            allowed,
            denied,
            _receiver: receiver,
        }
    }

    fn log(&self) -> PathBuf {
        self.scene.state_dir().join("audit.jsonl")
    }

    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// A copy of the state dir's audit log and head, with the log replaced by `log`.
    fn tampered_copy(&self, name: &str, log: &str) -> PathBuf {
        let dir = self.scene.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let head = self.scene.state_dir().join("audit.jsonl.head");
        std::fs::copy(head, dir.join("audit.jsonl.head")).unwrap();
        std::fs::write(dir.join("audit.jsonl"), log).unwrap();
        dir
    }

    fn verify(&self, state_dir: &Path) -> Run {
        self.scene.airlock(&[
            "audit",
            "verify",
            "--state-dir",
            state_dir.to_str().unwrap(),
        ])
    }

    fn audit_json(&self, filters: &[&str]) -> Vec<Value> {
        let mut args = vec!["audit", "--json"];
        args.extend_from_slice(filters);
        let out = self.scene.airlock(&args);
        out.expect_code(0);
        out.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `verify` exits 1 and names line `line` (seq `seq`) and the kind of damage.
fn assert_broken(out: &Run, line: usize, seq: u64, kind: &str) {
    out.expect_code(1);
    let stderr = out.stderr();
    assert!(
        stderr.contains(&format!("audit chain broken at line {line} (seq {seq})")),
        "{stderr}"
    );
    assert!(stderr.contains(kind), "{stderr}");
}

#[test]
fn an_intact_log_verifies() {
    let audited = Audited::new();
    let out = audited.verify(&audited.scene.state_dir());
    out.expect_code(0);
    assert!(
        out.stdout().contains("intact (4 records)"),
        "{}",
        out.stdout()
    );
    // The untouched copy verifies too, so the failures below come from the edits alone.
    let copy = audited.tampered_copy("copy", &joined(&audited.lines()));
    audited.verify(&copy).expect_code(0);
}

#[test]
fn an_edited_field_is_caught() {
    let audited = Audited::new();
    let mut lines = audited.lines();
    let mut record: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(record["status"], 200);
    record["status"] = json!(201);
    lines[1] = record.to_string();
    let copy = audited.tampered_copy("edited", &joined(&lines));
    assert_broken(&audited.verify(&copy), 2, 1, "edited");
}

#[test]
fn an_edited_decision_is_caught() {
    let audited = Audited::new();
    let mut lines = audited.lines();
    lines[3] = lines[3].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    let copy = audited.tampered_copy("allowed", &joined(&lines));
    assert_broken(&audited.verify(&copy), 4, 3, "edited");
}

#[test]
fn a_deleted_middle_record_is_caught() {
    let audited = Audited::new();
    let mut lines = audited.lines();
    lines.remove(1);
    let copy = audited.tampered_copy("deleted", &joined(&lines));
    assert_broken(&audited.verify(&copy), 2, 2, "deleted");
}

#[test]
fn swapped_records_are_caught() {
    let audited = Audited::new();
    let mut lines = audited.lines();
    lines.swap(1, 2);
    let copy = audited.tampered_copy("swapped", &joined(&lines));
    assert_broken(&audited.verify(&copy), 2, 2, "reordered");
}

#[test]
fn a_truncated_last_line_is_caught() {
    let audited = Audited::new();
    let text = joined(&audited.lines());
    let cut = &text[..text.len() - 20];
    let copy = audited.tampered_copy("truncated", cut);
    assert_broken(&audited.verify(&copy), 4, 3, "truncated");
}

#[test]
fn a_removed_last_record_is_caught_by_the_head() {
    let audited = Audited::new();
    let mut lines = audited.lines();
    lines.pop();
    let copy = audited.tampered_copy("dropped", &joined(&lines));
    assert_broken(&audited.verify(&copy), 4, 3, "truncated");
}

#[test]
fn audit_filters_by_run_node_and_decision() {
    let audited = Audited::new();
    let all = audited.audit_json(&[]);
    assert_eq!(all.len(), 4);

    let allowed = audited.audit_json(&["--run", &audited.allowed]);
    let nodes: Vec<&str> = allowed
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["first", "second", "third"]);
    assert!(
        allowed
            .iter()
            .all(|r| r["decision"] == "allow" && r["status"] == 200)
    );

    let second = audited.audit_json(&["--node", "second"]);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["run"], audited.allowed.as_str());
    assert!(second[0]["url"].as_str().unwrap().ends_with("/second"));

    let denied = audited.audit_json(&["--decision", "deny"]);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["run"], audited.denied.as_str());
    assert_eq!(denied[0]["node"], "blocked");
    assert!(
        denied[0]["rule"].as_str().unwrap().contains("link-local"),
        "{:#}",
        denied[0]
    );

    let none = audited.audit_json(&["--run", &audited.denied, "--decision", "allow"]);
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn audit_table_shows_the_records() {
    let audited = Audited::new();
    let out = audited.scene.airlock(&["audit", "--decision", "deny"]);
    out.expect_code(0);
    let table = out.stdout();
    assert!(table.starts_with("TIME"), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains("blocked") && table.contains("deny"),
        "{table}"
    );
    let bad = audited.scene.airlock(&["audit", "--decision", "maybe"]);
    bad.expect_code(2);
}

#[test]
fn a_missing_log_is_not_intact_and_read_commands_create_nothing() {
    let scene = Scene::new();
    let out = scene.airlock(&["audit", "verify"]);
    out.expect_code(1);
    assert!(
        out.stderr().contains("no audit log here"),
        "{}",
        out.stderr()
    );
    scene.airlock(&["runs"]).expect_code(0);
    assert!(
        !scene.state_dir().exists(),
        "read-only commands must not create the state dir"
    );
}
