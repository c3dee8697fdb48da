//! `airlock serve` over HTTP only: workflows with versions, runs with and without wait,
//! listing, cancelling, the audit, metrics and the OpenAPI document.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::server::{ADMIN_TOKEN, Server, http};
use crate::support::{Receiver, Reply, Scene, chain_workflow};

fn workflow(id: &str, title: &str, hooks: &[(&str, String)]) -> Value {
    let mut nodes = vec![json!({"identifier": "trigger", "config": {
        "type": "SELF_SERVE_TRIGGER",
        "userInputs": {"properties": {"service": {"type": "string"}}, "required": ["service"]}}})];
    let mut connections = Vec::new();
    let mut previous = "trigger".to_string();
    for (hook, url) in hooks {
        nodes.push(json!({"identifier": hook, "config": {
            "type": "WEBHOOK", "url": url, "method": "POST",
            "body": {"service": "{{ .outputs.trigger.service }}"}}}));
        connections.push(json!({"sourceIdentifier": previous, "targetIdentifier": hook}));
        previous = hook.to_string();
    }
    json!({"identifier": id, "title": title, "nodes": nodes, "connections": connections})
}

fn start(scene: &Scene, receivers: &[&Receiver]) -> Server {
    Server::start(scene, &["--policy", &scene.policy_allowing(receivers)])
}

fn workflow_count(server: &Server) -> usize {
    let answer = server.admin("GET", "/v1/workflows", None);
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["workflows"].as_array().unwrap().len()
}

fn run_count(server: &Server) -> usize {
    let answer = server.admin("GET", "/v1/workflows/runs?limit=1000", None);
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["workflowRuns"].as_array().unwrap().len()
}

#[test]
fn admin_routes_need_the_token_and_errors_are_json() {
    let scene = Scene::new();
    let server = start(&scene, &[]);
    assert_eq!(server.request("GET", "/healthz", None, None).status, 200);
    for token in [None, Some("wrong")] {
        let answer = server.request("GET", "/v1/workflows", token, None);
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.body["ok"], false);
        assert_eq!(answer.body["error"], "unauthorized");
        assert!(answer.body["message"].is_string());
    }
    let answer = server.admin("GET", "/v1/nothing-here", None);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["ok"], false);
}

#[test]
fn one_server_per_state_dir() {
    let scene = Scene::new();
    let server = start(&scene, &[]);
    let second = scene.airlock(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.code(), 2, "{}", second.stderr());
    let lock = scene.state_dir().join("serve.lock");
    assert!(
        second
            .stderr()
            .contains("another `airlock serve` or an `airlock run` is using this state dir")
            && second.stderr().contains(lock.to_str().unwrap()),
        "{}",
        second.stderr()
    );
    assert_eq!(server.admin("GET", "/v1/workflows", None).status, 200);
    drop(server);
    let again = start(&scene, &[]);
    assert_eq!(again.admin("GET", "/v1/workflows", None).status, 200);
}

#[test]
fn a_one_shot_run_never_shares_a_state_dir_with_a_server() {
    let scene = Scene::new();
    let asked = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&asked);
    let receiver = Receiver::with_routes(move |_| {
        seen.store(true, Ordering::SeqCst);
        // Slow enough for a server to try to start while the run waits for this answer.
        std::thread::sleep(Duration::from_secs(2));
        Reply::json(200, json!({"ok": true}))
    });
    let hook = json!({"identifier": "hook", "config": {
        "type": "WEBHOOK", "url": format!("{}/hook", receiver.url()), "method": "POST"}});
    let workflow = scene.write("wf.json", &chain_workflow("one-shot", vec![hook]));
    let policy = scene.policy_allowing(&[&receiver]);
    let run_args = ["run", workflow.to_str().unwrap(), "--policy", &policy];
    let lock = scene.state_dir().join("serve.lock");
    let lock = lock.to_str().unwrap();

    let server = start(&scene, &[&receiver]);
    let refused = scene.airlock(&run_args);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("an `airlock serve` is using this state dir")
            && refused.stderr().contains(lock),
        "{}",
        refused.stderr()
    );
    assert!(
        !asked.load(Ordering::SeqCst),
        "the refused run sent nothing"
    );
    drop(server);

    let running = scene.airlock_child(&run_args);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !asked.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the run never sent its request");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = scene.airlock(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.code(), 2, "{}", second.stderr());
    assert!(second.stderr().contains(lock), "{}", second.stderr());
    let finished = running.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let server = start(&scene, &[&receiver]);
    assert_eq!(server.admin("GET", "/v1/workflows", None).status, 200);
}

#[test]
fn a_generated_admin_token_is_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let scene = Scene::new();
    let server = Server::start_with_env(&scene, &[], &[]);
    let path = scene.state_dir().join("api-token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap();
    let token = token.trim();
    assert!(token.len() >= 32);
    assert_eq!(
        server
            .request("GET", "/v1/workflows", Some(token), None)
            .status,
        200
    );
    assert_eq!(server.admin("GET", "/v1/workflows", None).status, 401);
    let log = std::fs::read_to_string(scene.path("serve.log")).unwrap();
    assert!(
        log.contains(path.to_str().unwrap()),
        "the log says where: {log}"
    );
    assert!(!log.contains(token), "the log never shows the token");
}

#[test]
fn workflows_are_validated_versioned_and_bad_bodies_change_nothing() {
    let scene = Scene::new();
    let receiver = Receiver::start();
    let server = start(&scene, &[&receiver]);
    let good = workflow(
        "deploy",
        "one",
        &[("notify", format!("{}/hook", receiver.url()))],
    );

    let mut broken = good.clone();
    broken["nodes"][1]["config"]
        .as_object_mut()
        .unwrap()
        .remove("url");
    let answer = server.admin("POST", "/v1/workflows", Some(&broken.to_string()));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["ok"], false);
    let details = answer.body["details"].as_array().unwrap();
    assert!(
        details
            .iter()
            .any(|d| d["path"] == "$.nodes[1].config.url" && d["node"] == "notify"),
        "{details:?}"
    );
    let answer = server.admin("POST", "/v1/workflows", Some("{not json"));
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(workflow_count(&server), 0, "nothing stored");

    let answer = server.admin("POST", "/v1/workflows", Some(&good.to_string()));
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.body["workflow"]["version"], 1);
    assert_eq!(answer.body["workflow"]["identifier"], "deploy");
    let again = server.admin("POST", "/v1/workflows", Some(&good.to_string()));
    assert_eq!(again.status, 409, "{again:?}");

    let mut second = good.clone();
    second["title"] = json!("two");
    let answer = server.admin("PUT", "/v1/workflows/deploy", Some(&second.to_string()));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["workflow"]["version"], 2);
    let mut renamed = second.clone();
    renamed["identifier"] = json!("other");
    let answer = server.admin("PUT", "/v1/workflows/deploy", Some(&renamed.to_string()));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["details"][0]["path"], "$.identifier");
    let mut absent = good.clone();
    absent["identifier"] = json!("missing");
    let answer = server.admin("PUT", "/v1/workflows/missing", Some(&absent.to_string()));
    assert_eq!(answer.status, 404, "{answer:?}");

    let current = server.admin("GET", "/v1/workflows/deploy", None);
    assert_eq!(current.body["workflow"]["version"], 2);
    assert_eq!(current.body["workflow"]["title"], "two");
    assert_eq!(workflow_count(&server), 1);

    // A run records its version; deleting the workflow keeps the run readable.
    let answer = server.admin(
        "POST",
        "/v1/workflows/deploy/runs?wait=true",
        Some(r#"{"inputs": {"service": "api"}}"#),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    let run = &answer.body["workflowRun"];
    assert_eq!(run["workflowVersion"], 2);
    let wfr = run["identifier"].as_str().unwrap().to_string();
    assert_eq!(
        server.admin("DELETE", "/v1/workflows/deploy", None).status,
        200
    );
    assert_eq!(
        server.admin("GET", "/v1/workflows/deploy", None).status,
        404
    );
    assert_eq!(
        server.admin("DELETE", "/v1/workflows/deploy", None).status,
        404
    );
    let answer = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["workflowRun"]["result"], "SUCCESS");
}

#[test]
fn runs_with_and_without_wait_read_like_airlock_run_json() {
    let scene = Scene::new();
    let receiver =
        Receiver::with_routes(|r| Reply::json(200, json!({"id": "res-1", "got": r.json()})));
    let server = start(&scene, &[&receiver]);
    let wf = workflow(
        "deploy",
        "d",
        &[("create", format!("{}/create", receiver.url()))],
    );
    assert_eq!(
        server
            .admin("POST", "/v1/workflows", Some(&wf.to_string()))
            .status,
        201
    );

    // Bad run requests are refused, naming the field, and start nothing.
    for (body, field) in [
        (r#"{"inputs": 5}"#, "$.inputs"),
        (r#"{"inputs": {}}"#, "$.inputs"),
        (r#"{"inputs": {"service": "a"}, "extra": 1}"#, "$.extra"),
        (r#"[1]"#, "$"),
    ] {
        let answer = server.admin("POST", "/v1/workflows/deploy/runs", Some(body));
        assert_eq!(answer.status, 422, "{body}: {answer:?}");
        assert_eq!(
            answer.body["details"][0]["path"], field,
            "{body}: {answer:?}"
        );
    }
    let answer = server.admin("POST", "/v1/workflows/deploy/runs", Some("{oops"));
    assert_eq!(answer.status, 400, "{answer:?}");
    let answer = server.admin("POST", "/v1/workflows/deploy/runs?wait=maybe", Some("{}"));
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        server
            .admin("POST", "/v1/workflows/nope/runs", Some("{}"))
            .status,
        404
    );
    assert_eq!(run_count(&server), 0);
    assert!(receiver.requests().is_empty());

    let body = r#"{"inputs": {"service": "checkout"}}"#;
    let waited = server.admin("POST", "/v1/workflows/deploy/runs?wait=true", Some(body));
    assert_eq!(waited.status, 201, "{waited:?}");
    let run = &waited.body["workflowRun"];
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["result"], "SUCCESS");
    let create = &run["nodeRuns"][1];
    assert_eq!(create["node"], "create");
    assert_eq!(create["output"]["response"]["status"], 200);
    assert_eq!(create["output"]["id"], "res-1");
    assert_eq!(receiver.requests()[0].json()["service"], "checkout");

    let started = server.admin("POST", "/v1/workflows/deploy/runs", Some(body));
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(started.body["workflowRun"]["status"], "IN_PROGRESS");
    let wfr = started.body["workflowRun"]["identifier"]
        .as_str()
        .unwrap()
        .to_string();
    // The run starts with its first node run already started (one change records both): the
    // answer names it, and that node run is the one that completes.
    let first = &started.body["workflowRun"]["nodeRuns"][1];
    assert_eq!(first["node"], "create", "{started:?}");
    assert_eq!(first["status"], "IN_PROGRESS", "{started:?}");
    let finished = server.wait_for_run(&wfr, |run| run["status"] == "COMPLETED");
    assert_eq!(finished["result"], "SUCCESS");
    assert_eq!(
        finished["nodeRuns"].as_array().unwrap().len(),
        2,
        "{finished:#}"
    );
    assert_eq!(finished["nodeRuns"][1]["identifier"], first["identifier"]);
    assert_eq!(finished["nodeRuns"][1]["status"], "COMPLETED");

    // The same shape as `airlock run --json` (on a state dir of its own: the server holds its).
    let file = scene.write("deploy.json", &wf.to_string());
    let cli = scene.airlock(&[
        "run",
        "--state-dir",
        scene.path("one-shot").to_str().unwrap(),
        file.to_str().unwrap(),
        "--policy",
        scene.path("airlock.toml").to_str().unwrap(),
        "--inputs",
        r#"{"service": "checkout"}"#,
        "--json",
    ]);
    let cli_run = cli.json();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.retain(|k| k != "workflowVersion");
        keys.sort();
        keys
    };
    assert_eq!(keys(&finished), keys(&cli_run));
    assert_eq!(
        keys(&finished["nodeRuns"][1]),
        keys(&cli_run["nodeRuns"][1])
    );

    let listed = server.admin(
        "GET",
        "/v1/workflows/runs?workflowIdentifier=deploy&limit=1",
        None,
    );
    assert_eq!(listed.status, 200, "{listed:?}");
    let runs = listed.body["workflowRuns"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let listed = server.admin(
        "GET",
        "/v1/workflows/runs?workflowIdentifier=deploy&status=COMPLETED",
        None,
    );
    // The server's two runs; the CLI run is in its own state dir.
    assert_eq!(listed.body["workflowRuns"].as_array().unwrap().len(), 2);
    for query in ["status=DONE", "limit=0", "limit=x", "offset=-1"] {
        let answer = server.admin("GET", &format!("/v1/workflows/runs?{query}"), None);
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
    }
    assert_eq!(
        server
            .admin("GET", "/v1/workflows/runs/wfr_missing", None)
            .status,
        404
    );

    // The audit, by run.
    let audit = server.admin("GET", &format!("/v1/audit?run={wfr}"), None);
    assert_eq!(audit.status, 200, "{audit:?}");
    let records = audit.body["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["run"], wfr.as_str());
    assert_eq!(records[0]["decision"], "allow");
    assert_eq!(
        server.admin("GET", "/v1/audit?decision=maybe", None).status,
        400
    );

    let metrics = server.admin("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains("airlock_runs_total{result=\"SUCCESS\"} 2"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("airlock_node_runs_total{type=\"WEBHOOK\",result=\"SUCCESS\"} 2"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("airlock_egress_decisions_total{decision=\"allow\"} 2"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("airlock_http_request_duration_seconds_count")
    );
    assert_eq!(scene.airlock(&["audit", "verify"]).code(), 0);
}

#[test]
fn cancel_stops_after_the_current_node_or_at_once_with_force() {
    let scene = Scene::new();
    let slow = Receiver::with_routes(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Reply::json(200, json!({"slow": true}))
    });
    let fast = Receiver::start();
    let server = start(&scene, &[&slow, &fast]);
    let wf = workflow(
        "slow",
        "s",
        &[
            ("slow", format!("{}/slow", slow.url())),
            ("after", format!("{}/after", fast.url())),
        ],
    );
    assert_eq!(
        server
            .admin("POST", "/v1/workflows", Some(&wf.to_string()))
            .status,
        201
    );
    let body = r#"{"inputs": {"service": "x"}}"#;
    let in_slow_node = |run: &Value| {
        run["nodeRuns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == "slow")
    };

    let gentle = server.admin("POST", "/v1/workflows/slow/runs", Some(body));
    let gentle = gentle.body["workflowRun"]["identifier"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for_run(&gentle, in_slow_node);
    let answer = server.admin("POST", &format!("/v1/workflows/runs/{gentle}/cancel"), None);
    assert_eq!(answer.status, 200, "{answer:?}");
    let run = server.wait_for_run(&gentle, |run| run["status"] == "COMPLETED");
    assert_eq!(run["result"], "CANCELLED");
    let nodes: Vec<&str> = run["nodeRuns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        nodes,
        ["trigger", "slow"],
        "the current node finished, the next never began"
    );
    assert_eq!(run["nodeRuns"][1]["result"], "SUCCESS");

    let forced = server.admin("POST", "/v1/workflows/slow/runs", Some(body));
    let forced = forced.body["workflowRun"]["identifier"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for_run(&forced, in_slow_node);
    let answer = server.admin(
        "POST",
        &format!("/v1/workflows/runs/{forced}/cancel?force=true"),
        None,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let run = &answer.body["workflowRun"];
    assert_eq!(
        run["status"], "COMPLETED",
        "force ends the run at once: {run:#}"
    );
    assert_eq!(run["result"], "CANCELLED");
    assert_eq!(run["nodeRuns"][1]["result"], "CANCELLED");
    // The abandoned request's answer, when it comes, changes nothing.
    std::thread::sleep(Duration::from_millis(1800));
    let later = server.wait_for_run(&forced, |_| true);
    assert_eq!(later["result"], "CANCELLED");
    assert_eq!(later["nodeRuns"].as_array().unwrap().len(), 2);

    let answer = server.admin("POST", &format!("/v1/workflows/runs/{forced}/cancel"), None);
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(
        fast.requests().is_empty(),
        "no cancelled run reached its next node"
    );
}

/// Every route in /openapi.json is served (it answers, with auth required where it says).
#[test]
fn the_openapi_document_matches_the_routes() {
    let scene = Scene::new();
    let server = start(&scene, &[]);
    let answer = server.request("GET", "/openapi.json", None, None);
    assert_eq!(answer.status, 200);
    let doc = answer.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let address = server.base.trim_start_matches("http://");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "wf")
            .replace("{wfr}", "wfr_x")
            .replace("{wfnr}", "wfnr_x");
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let public = operation.get("security") == Some(&json!([]));
            let upper = method.to_uppercase();
            let answer = http(address, &upper, &concrete, None, None);
            if public {
                assert_eq!(answer.status, 200, "{upper} {path}: {answer:?}");
            } else {
                assert_eq!(
                    answer.status, 401,
                    "{upper} {path} must need the token: {answer:?}"
                );
            }
            let answer = http(address, &upper, &concrete, Some(ADMIN_TOKEN), None);
            assert_ne!(answer.status, 405, "{upper} {path}");
            assert!(
                !answer.text.contains("no such route"),
                "{upper} {path} is not routed: {answer:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} operations");
}
