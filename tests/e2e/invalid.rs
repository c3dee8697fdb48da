//! Invalid input of every kind exits 2, says what is wrong and where, and sends nothing.

use serde_json::{Value, json};

use crate::support::{Receiver, Scene};

/// A valid two-node workflow aimed at `url`, for the tests to break one way each.
fn valid(url: &str) -> Value {
    json!({
        "identifier": "wf",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER",
                "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]}}},
            {"identifier": "hook", "config": {"type": "WEBHOOK", "url": url, "body": {"n": "{{ .outputs.trigger.name }}"}}},
            {"identifier": "hook2", "config": {"type": "WEBHOOK", "url": url}}
        ],
        "connections": [
            {"sourceIdentifier": "start", "targetIdentifier": "hook"},
            {"sourceIdentifier": "hook", "targetIdentifier": "hook2"}
        ]
    })
}

/// Runs `airlock run` (and `validate`) on the broken workflow and checks the refusal.
fn refused(break_it: impl Fn(&mut Value), expect: &[&str]) {
    let receiver = Receiver::start();
    let mut wf = valid(&format!("{}/x", receiver.url()));
    break_it(&mut wf);
    let scene = Scene::new();
    let file = scene.write("broken.json", &wf.to_string());
    let policy = scene.allow_policy(&receiver);
    for command in ["run", "validate"] {
        let mut args = vec![
            command,
            file.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ];
        if command == "run" {
            args.extend(["--inputs", r#"{"name":"x"}"#]);
        }
        let out = scene.airlock(&args);
        out.expect_code(2);
        let stderr = out.stderr();
        assert!(stderr.contains("broken.json"), "names the file: {stderr}");
        for needle in expect {
            assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
        }
    }
    assert_eq!(receiver.connections(), 0, "nothing may be sent");
    assert!(!scene.state_dir().exists(), "nothing may be written");
}

#[test]
fn unknown_node_type() {
    refused(
        |wf| wf["nodes"][1]["config"]["type"] = json!("TELEPORT"),
        &["$.nodes[1].config.type", "\"hook\"", "TELEPORT"],
    );
}

#[test]
fn missing_required_url() {
    refused(
        |wf| {
            wf["nodes"][1]["config"]
                .as_object_mut()
                .unwrap()
                .remove("url");
        },
        &["$.nodes[1].config.url", "\"hook\""],
    );
}

#[test]
fn bad_method() {
    refused(
        |wf| wf["nodes"][1]["config"]["method"] = json!("FETCH"),
        &["$.nodes[1].config.method", "FETCH"],
    );
}

#[test]
fn duplicate_identifiers() {
    refused(
        |wf| wf["nodes"][2]["identifier"] = json!("hook"),
        &["$.nodes[2].identifier", "duplicate"],
    );
}

#[test]
fn dangling_connection() {
    refused(
        |wf| wf["connections"][1]["targetIdentifier"] = json!("ghost"),
        &["$.connections[1].targetIdentifier", "ghost"],
    );
}

#[test]
fn self_connection() {
    refused(
        |wf| wf["connections"][1]["targetIdentifier"] = json!("hook"),
        &["$.connections[1]", "itself"],
    );
}

#[test]
fn cycle() {
    refused(
        |wf| {
            wf["connections"]
                .as_array_mut()
                .unwrap()
                .push(json!({"sourceIdentifier": "hook2", "targetIdentifier": "hook"}))
        },
        &["cycle"],
    );
}

#[test]
fn connection_into_a_trigger() {
    refused(
        |wf| {
            wf["connections"]
                .as_array_mut()
                .unwrap()
                .push(json!({"sourceIdentifier": "hook2", "targetIdentifier": "start"}))
        },
        &["trigger"],
    );
}

#[test]
fn fan_out_outside_a_condition() {
    refused(
        |wf| wf["connections"][1]["sourceIdentifier"] = json!("start"),
        &["only a CONDITION may branch"],
    );
}

#[test]
fn template_syntax_error() {
    refused(
        |wf| wf["nodes"][1]["config"]["body"]["n"] = json!("{{ .outputs.trigger.name | }}"),
        &["$.nodes[1].config.body.n", "\"hook\""],
    );
}

#[test]
fn reference_to_a_node_that_runs_later() {
    refused(
        |wf| wf["nodes"][1]["config"]["body"]["n"] = json!("{{ .outputs.hook2.id }}"),
        &["$.nodes[1].config.body.n", "hook2"],
    );
}

#[test]
fn on_timeout_belongs_to_asynchronous_webhooks() {
    refused(
        |wf| wf["nodes"][1]["config"]["onTimeout"] = json!("continue"),
        &["onTimeout", "asynchronous webhooks (synchronized: false)"],
    );
}

#[test]
fn malformed_json_names_line_and_column() {
    let scene = Scene::new();
    let file = scene.write(
        "broken.json",
        "{\n  \"identifier\": \"wf\",\n  \"nodes\": [,]\n}",
    );
    let out = scene.airlock(&["run", file.to_str().unwrap()]);
    out.expect_code(2);
    assert!(out.stderr().contains("broken.json:3:"), "{}", out.stderr());
}

/// Input problems outside the workflow: each exits 2 before anything is sent.
fn refused_run(scene: &Scene, receiver: &Receiver, extra: &[&str], expect: &str) {
    let wf = scene.write(
        "wf.json",
        &valid(&format!("{}/x", receiver.url())).to_string(),
    );
    let mut args = vec!["run", wf.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = scene.airlock(&args);
    out.expect_code(2);
    assert!(
        out.stderr().contains(expect),
        "expected {expect:?} in: {}",
        out.stderr()
    );
    assert_eq!(receiver.connections(), 0);
}

#[test]
fn bad_policy_inputs_and_secrets_are_refused_before_sending() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let policy = scene.allow_policy(&receiver);
    let policy = policy.to_str().unwrap();
    let bad_policy = scene.write(
        "bad.toml",
        "[egress]\ndefault = \"public\"\nallow = [\"ftp://x\"]\n",
    );
    refused_run(
        &scene,
        &receiver,
        &[
            "--policy",
            bad_policy.to_str().unwrap(),
            "--inputs",
            r#"{"name":"x"}"#,
        ],
        "bad.toml",
    );
    refused_run(
        &scene,
        &receiver,
        &["--policy", policy],
        "\"name\" is required",
    );
    refused_run(
        &scene,
        &receiver,
        &["--policy", policy, "--inputs", r#"{"name": 5}"#],
        "must be of type string",
    );
    refused_run(
        &scene,
        &receiver,
        &["--policy", policy, "--inputs", "{oops"],
        "--inputs",
    );
    let bad_secrets = scene.write("secrets.json", r#"{"token": 5}"#);
    refused_run(
        &scene,
        &receiver,
        &[
            "--policy",
            policy,
            "--inputs",
            r#"{"name":"x"}"#,
            "--secrets",
            bad_secrets.to_str().unwrap(),
        ],
        "secrets.json",
    );
    assert!(!scene.state_dir().exists());
}

#[test]
fn an_undefined_secret_is_refused_before_sending() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let mut wf = valid(&format!("{}/x", receiver.url()));
    wf["nodes"][2]["config"]["headers"] =
        json!({"Authorization": "Bearer {{ .secrets[\"missing-token\"] }}"});
    let file = scene.write("wf.json", &wf.to_string());
    let policy = scene.allow_policy(&receiver);
    let out = scene.airlock(&[
        "run",
        file.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--inputs",
        r#"{"name":"x"}"#,
    ]);
    out.expect_code(2);
    assert!(
        out.stderr().contains("missing-token")
            && out.stderr().contains("AIRLOCK_SECRET_MISSING_TOKEN"),
        "{}",
        out.stderr()
    );
    assert_eq!(
        receiver.connections(),
        0,
        "not even the first node may send"
    );
}
