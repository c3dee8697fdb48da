//! The example nodes under `nodes/examples/` (one per language), built with `airlock node build`
//! and run by the example workflow `examples/release.json` against a real local server standing
//! in for the status page, GitHub and Slack.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, Run, Scene, node_run, repo_root};

const STATUS_CANARY: &str = "canary-status-Lq27";
const GITHUB_CANARY: &str = "canary-github-Vb81";
/// The secret part of a Slack webhook URL: its last path segment (the gate percent-encodes a
/// secret put into a URL path, so the team and channel IDs before it are not in the secret).
const SLACK_CANARY: &str = "canary-slack-Xk55";
const EXAMPLES: [&str; 4] = [
    "status-ping",
    "github-dispatch",
    "json-map",
    "slack-message",
];

/// Copies an example project into `to` as a user would have it (symbolic links to the SDK and
/// the WIT resolved, the Rust SDK path made absolute), so building it writes nothing in the repo.
fn copy_example(name: &str, to: &Path) {
    let from = repo_root().join("nodes/examples").join(name);
    copy_dir(&from, to);
    let cargo = to.join("Cargo.toml");
    if let Ok(text) = std::fs::read_to_string(&cargo) {
        let sdk = repo_root().join("guest-sdk");
        let text = text.replace("../../../guest-sdk", sdk.to_str().unwrap());
        std::fs::write(&cargo, text).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        // Follows links: the examples link to the SDK's helpers and the repo's WIT.
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every example, built under `scene/nodes/<name>`; returns `scene/nodes`.
fn build_examples(scene: &Scene, names: &[&str]) -> PathBuf {
    let nodes = scene.path("nodes");
    // In parallel: the toolchains take tens of seconds each.
    std::thread::scope(|threads| {
        for name in names {
            let dir = nodes.join(name);
            threads.spawn(move || {
                copy_example(name, &dir);
                scene
                    .airlock(&["node", "build", dir.to_str().unwrap()])
                    .expect_code(0);
            });
        }
    });
    nodes
}

fn receiver() -> Receiver {
    Receiver::with_routes(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/health") => Reply::json(200, json!({"status": "ok"})),
        ("POST", "/repos/acme/checkout/dispatches") => Reply {
            status: 204,
            headers: vec![],
            body: vec![],
        },
        ("GET", "/repos/acme/checkout/issues") => Reply::json(
            200,
            json!([
                {"number": 7, "title": "Payments time out", "state": "open", "user": {"login": "ada"}},
                {"number": 8, "title": "Old bug", "state": "closed", "user": {"login": "bob"}},
                {"number": 9, "title": "Migration missing", "state": "open", "user": {"login": "cy"}}
            ]),
        ),
        ("POST", p) if p.starts_with("/services/") => Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"ok".to_vec(),
        },
        _ => Reply::json(404, json!({"error": "no route"})),
    })
}

/// The example policy with the receiver in place of the real services.
fn policy(scene: &Scene, receiver: &Receiver) -> PathBuf {
    let url = receiver.url();
    scene.write(
        "release.toml",
        &format!(
            "[egress]\ndefault = \"deny\"\nallow = [\"{url}\"]\n\
             [secrets.status-token]\nhosts = [\"{url}\"]\n\
             [secrets.github-token]\nhosts = [\"{url}\"]\n\
             [secrets.slack-webhook]\nhosts = [\"{url}\"]\n"
        ),
    )
}

fn run_release(scene: &Scene, nodes: &Path, receiver: &Receiver) -> Run {
    let url = receiver.url();
    let inputs = json!({
        "service": "checkout",
        "version": "2.4.1",
        "status_url": format!("{url}/health"),
        "github_api": url,
        "slack_hook": format!("{url}/services/T000/B000"),
    });
    let secrets = scene.write(
        "secrets.json",
        &json!({"status-token": STATUS_CANARY, "github-token": GITHUB_CANARY,
                "slack-webhook": SLACK_CANARY})
        .to_string(),
    );
    let workflow = repo_root().join("examples/release.json");
    scene.airlock(&[
        "run",
        workflow.to_str().unwrap(),
        "--nodes",
        nodes.to_str().unwrap(),
        "--policy",
        policy(scene, receiver).to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
        "--inputs",
        &inputs.to_string(),
        "--json",
    ])
}

fn log_line(node: &Value) -> String {
    let logs = node["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{node:#}");
    logs[0]["log"].as_str().unwrap().to_string()
}

#[test]
fn the_release_example_runs_every_example_node() {
    let receiver = receiver();
    let scene = Scene::new();
    let nodes = build_examples(&scene, &EXAMPLES);
    let out = run_release(&scene, &nodes, &receiver);
    out.expect_code(0);
    let run = out.json();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");

    // STATUS_PING (C): a GET with the status token, the value put in by the gate.
    let health = &requests[0];
    assert_eq!(
        (health.method.as_str(), health.path.as_str()),
        ("GET", "/health")
    );
    assert_eq!(
        health.header("authorization"),
        Some(&*format!("Bearer {STATUS_CANARY}"))
    );
    let node = node_run(&run, "health");
    assert_eq!(
        node["output"],
        json!({"name": "checkout", "up": true, "status": 200})
    );
    assert_eq!(log_line(node), "checkout: up (HTTP 200)");

    // GITHUB_DISPATCH (Rust): the dispatch event with the GitHub token.
    let dispatch = &requests[1];
    assert_eq!(dispatch.method, "POST");
    assert_eq!(dispatch.path, "/repos/acme/checkout/dispatches");
    assert_eq!(
        dispatch.header("authorization"),
        Some(&*format!("Bearer {GITHUB_CANARY}"))
    );
    assert_eq!(
        dispatch.json(),
        json!({"event_type": "deploy", "client_payload": {"service": "checkout", "version": "2.4.1"}})
    );
    let node = node_run(&run, "dispatch");
    assert_eq!(node["output"]["dispatched"], true);
    assert_eq!(
        log_line(node),
        "dispatched deploy to acme/checkout: HTTP 204"
    );

    // JSON_MAP (JavaScript, fetch()): the list, filtered and mapped; the token put in by the gate.
    let issues = &requests[2];
    assert_eq!(issues.path, "/repos/acme/checkout/issues");
    assert_eq!(issues.query.as_deref(), Some("labels=release-blocker"));
    assert_eq!(
        issues.header("authorization"),
        Some(&*format!("Bearer {GITHUB_CANARY}"))
    );
    let node = node_run(&run, "blockers");
    assert_eq!(
        node["output"],
        json!({"count": 2, "items": [
            {"number": 7, "title": "Payments time out", "author": "ada"},
            {"number": 9, "title": "Migration missing", "author": "cy"}
        ]})
    );
    assert!(
        log_line(node).ends_with("/repos/acme/checkout/issues?labels=release-blocker -> HTTP 200")
    );

    // SLACK_MESSAGE (Python): the formatted message, to the webhook path from the secret.
    let slack = &requests[3];
    assert_eq!(slack.path, format!("/services/T000/B000/{SLACK_CANARY}"));
    let message = slack.json();
    assert_eq!(
        message["text"],
        ":white_check_mark: checkout 2.4.1 is deploying"
    );
    assert_eq!(
        message["blocks"][1]["fields"][0]["text"],
        "*Health*\nup (HTTP 200)"
    );
    assert_eq!(
        message["blocks"][1]["fields"][1]["text"],
        "*Open blockers*\n2"
    );
    let node = node_run(&run, "notify");
    assert_eq!(node["output"]["sent"], true);
    assert_eq!(
        log_line(node),
        "posted \":white_check_mark: checkout 2.4.1 is deploying\" to Slack: HTTP 200"
    );

    // One audit record per request, each allowed, naming its node and its secret, values masked.
    let audit = scene.audit_records();
    let summary: Vec<(String, String, Value)> = audit
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_string(),
                r["decision"].as_str().unwrap().to_string(),
                r["secrets"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("health".into(), "allow".into(), json!(["status-token"])),
            ("dispatch".into(), "allow".into(), json!(["github-token"])),
            ("blockers".into(), "allow".into(), json!(["github-token"])),
            ("notify".into(), "allow".into(), json!(["slack-webhook"])),
        ]
    );
    assert!(
        audit[3]["url"]
            .as_str()
            .unwrap()
            .ends_with("/services/T000/B000/[secret:slack-webhook]")
    );
    scene.assert_nowhere(&out, &[STATUS_CANARY, GITHUB_CANARY, SLACK_CANARY]);
}

/// The JavaScript example's fetch() (wasi:http) and the built-in WEBHOOK (egress.send) meet one
/// gate: the same denial, the same audit record.
#[test]
fn fetch_is_denied_and_audited_exactly_like_egress_send() {
    let receiver = receiver();
    let scene = Scene::new();
    let nodes = build_examples(&scene, &["json-map"]);
    let denied = "http://127.0.0.1:9/repos/acme/checkout/issues";
    let workflow = json!({
        "identifier": "doors",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "hook", "config": {"type": "WEBHOOK", "method": "GET", "url": denied,
                "onFailure": "continue"}},
            {"identifier": "map", "config": {"type": "JSON_MAP", "url": denied, "pick": {}}}
        ],
        "connections": [
            {"sourceIdentifier": "start", "targetIdentifier": "hook"},
            {"sourceIdentifier": "hook", "targetIdentifier": "map"}
        ]
    });
    let wf = scene.write("doors.json", &workflow.to_string());
    let out = scene.airlock(&[
        "run",
        wf.to_str().unwrap(),
        "--nodes",
        nodes.to_str().unwrap(),
        "--policy",
        policy(&scene, &receiver).to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(1);
    let run = out.json();
    let error = node_run(&run, "map")["error"].to_string();
    assert!(!error.is_empty() && error != "null", "{run:#}");
    assert!(receiver.requests().is_empty());
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 2, "{audit:#?}");
    for field in ["decision", "method", "url", "rule", "status"] {
        assert_eq!(audit[0][field], audit[1][field], "{field}: {audit:#?}");
    }
    assert_eq!(audit[1]["node"], "map");
    assert_eq!(audit[1]["decision"], "deny");
}
