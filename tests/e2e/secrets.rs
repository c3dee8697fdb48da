//! Secret canaries reach the receiving server and appear nowhere else.

use serde_json::json;

use crate::support::{Receiver, Reply, Scene};

const CANARY: &str = "canary-Zq81xPm4";

fn workflow(url: &str) -> String {
    json!({
        "identifier": "secret-flow",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "call", "config": {"type": "WEBHOOK", "url": format!("{url}/hook?key={{{{ .secrets[\"api-token\"] }}}}"),
                "headers": {"Authorization": "Bearer {{ .secrets[\"api-token\"] }}"},
                "body": {"token": "{{ .secrets[\"api-token\"] }}", "handle_seen_by_node": "{{ .secrets | keys }}"}}}
        ],
        "connections": [{"sourceIdentifier": "start", "targetIdentifier": "call"}]
    })
    .to_string()
}

fn assert_nowhere(scene: &Scene, out: &crate::support::Run) {
    scene.assert_nowhere(out, &[CANARY]);
}

#[test]
fn secret_from_file_reaches_only_the_server() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let wf = scene.write("wf.json", &workflow(&receiver.url()));
    let policy = scene.allow_policy(&receiver);
    let secrets = scene.write("secrets.json", &json!({"api-token": CANARY}).to_string());
    let out = scene.airlock(&[
        "run",
        wf.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(0);
    let got = &receiver.requests()[0];
    assert_eq!(got.query.as_deref(), Some(&*format!("key={CANARY}")));
    assert_eq!(
        got.header("authorization"),
        Some(&*format!("Bearer {CANARY}"))
    );
    assert_eq!(got.json()["token"], CANARY);
    assert_nowhere(&scene, &out);
    let audit = scene.audit_records();
    assert!(
        audit[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/hook?key=[secret:api-token]"),
        "{}",
        audit[0]["url"]
    );
}

#[test]
fn secret_from_environment_and_echoed_back_is_redacted() {
    // The server echoes everything it got, in the body and a header.
    let receiver = Receiver::with_routes(|r| {
        let mut reply = Reply::json(
            200,
            json!({"echo": String::from_utf8_lossy(&r.body), "auth": r.header("authorization")}),
        );
        reply.headers.push((
            "x-echo".into(),
            r.header("authorization").unwrap_or_default().to_string(),
        ));
        reply
    });
    let mut scene = Scene::new();
    scene.env("AIRLOCK_SECRET_API_TOKEN", CANARY);
    let wf = scene.write("wf.json", &workflow(&receiver.url()));
    let policy = scene.allow_policy(&receiver);
    let out = scene.airlock(&[
        "run",
        wf.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(0);
    assert_eq!(receiver.requests()[0].json()["token"], CANARY);
    let output = &out.json()["outputs"]["call"];
    assert!(
        output["auth"]
            .as_str()
            .unwrap()
            .contains("[secret:api-token]"),
        "{output}"
    );
    assert_nowhere(&scene, &out);
}

#[test]
fn secret_outside_its_scope_is_refused_and_not_sent() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let wf = scene.write("wf.json", &workflow(&receiver.url()));
    let policy = scene.write(
        "airlock.toml",
        &format!(
            "[egress]\nallow = [\"{}\"]\n\n[secrets.api-token]\nhosts = [\"api.example.com\"]\n",
            receiver.url()
        ),
    );
    let secrets = scene.write("secrets.json", &json!({"api-token": CANARY}).to_string());
    let out = scene.airlock(&[
        "run",
        wf.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(1);
    assert_eq!(receiver.connections(), 0);
    let audit = scene.audit_records();
    assert_eq!(audit[0]["decision"], "deny");
    assert!(
        audit[0]["rule"]
            .as_str()
            .unwrap_or_default()
            .contains("api-token")
            || audit[0]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("api-token"),
        "{}",
        audit[0]
    );
    assert_nowhere(&scene, &out);
}
