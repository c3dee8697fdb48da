//! Automatic auth to the platform's own API: under `airlock serve`, a node's request to the
//! `--public-url` base carries its run's token, added by the gate; the node never sees it, the
//! API takes it for that run only and only while the run is in progress, and no request
//! anywhere else gets it.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::canary::find_leak;
use crate::support::server::{Answer, Server};
use crate::support::{Receiver, Reply, Scene, chain_workflow};

/// The run token the server derives for `run`, from the key it keeps in the state dir.
fn run_token(scene: &Scene, run: &str) -> String {
    let key = std::fs::read_to_string(scene.state_dir().join("platform-key")).unwrap();
    let key = hex::decode(key.trim()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(run.as_bytes());
    format!("{run}.{}", hex::encode(mac.finalize().into_bytes()))
}

fn create(server: &Server, workflow: &str) {
    let answer = server.admin("POST", "/v1/workflows", Some(workflow));
    assert_eq!(answer.status, 201, "{answer:?}");
}

/// Starts a run of `workflow` and returns its identifier.
fn start_run(server: &Server, workflow: &str) -> String {
    let answer = server.admin(
        "POST",
        &format!("/v1/workflows/{workflow}/runs"),
        Some("{}"),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["workflowRun"]["identifier"]
        .as_str()
        .unwrap()
        .to_string()
}

fn finished(server: &Server, wfr: &str) -> Value {
    server.wait_for_run(wfr, |run| run["status"] == "COMPLETED")
}

fn node<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["nodeRuns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("no node run of {name} in {run:#}"))
}

fn audit_verify(scene: &Scene) {
    let out = scene.airlock(&["audit", "verify"]);
    assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
}

/// The token (and its secret part) appears nowhere: not in the state dir (run store, audit
/// log), the server's log, or `texts` (API answers).
fn assert_token_nowhere(scene: &Scene, token: &str, texts: &[&str]) {
    let mac = token.rsplit_once('.').unwrap().1;
    let state = String::from_utf8_lossy(&scene.state_bytes()).into_owned();
    let log = std::fs::read_to_string(scene.path("serve.log")).unwrap_or_default();
    for (place, text) in [
        ("the state dir", state.as_str()),
        ("serve.log", log.as_str()),
    ]
    .into_iter()
    .chain(texts.iter().map(|t| ("an API answer", *t)))
    {
        for value in [token, mac] {
            if let Some(form) = find_leak(text, value) {
                panic!("the run token leaked into {place} as {form:?}");
            }
        }
    }
}

#[test]
fn a_node_reads_its_own_run_with_a_token_it_never_sees() {
    let scene = Scene::new();
    let sink = Receiver::start();
    // The policy names only the sink: the API is reached by the implicit rule `platform-api`.
    let server = Server::start(&scene, &["--policy", &scene.policy_allowing(&[&sink])]);
    let workflow = chain_workflow(
        "self-aware",
        vec![
            json!({"identifier": "read_self", "config": {"type": "WEBHOOK", "method": "GET",
                "url": format!("{}/v1/workflows/runs/{{{{ .workflowRun.identifier }}}}", server.base),
                // The node's own Authorization never reaches the API: the gate replaces it.
                "headers": {"Authorization": "Bearer node-wrote-this"}}}),
            json!({"identifier": "report", "config": {"type": "WEBHOOK", "method": "POST",
            "url": format!("{}/report", sink.url()),
            "headers": {"Authorization": "Bearer node-wrote-this"},
            "body": {
                "run": "{{ .outputs.read_self.workflowRun.identifier }}",
                "status": "{{ .outputs.read_self.workflowRun.status }}",
                "first": "{{ .outputs.read_self.workflowRun.nodeRuns[0].node }}"
            }}}),
        ],
    );
    create(&server, &workflow);
    let wfr = start_run(&server, "self-aware");
    let run = finished(&server, &wfr);
    assert_eq!(run["result"], "SUCCESS", "{run:#}");

    let reports = sink.requests();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = reports[0].json();
    assert_eq!(
        report["run"],
        wfr.as_str(),
        "the later node read the API's answer"
    );
    assert_eq!(report["status"], "IN_PROGRESS");
    assert_eq!(report["first"], "start");
    assert_eq!(
        reports[0].header("authorization"),
        Some("Bearer node-wrote-this"),
        "a request anywhere else keeps the node's own header and gets no token"
    );

    let token = run_token(&scene, &wfr);
    let records = scene.audit_records();
    let to_api: Vec<&Value> = records
        .iter()
        .filter(|r| r["node"] == "read_self")
        .collect();
    assert_eq!(to_api.len(), 1, "{records:#?}");
    assert_eq!(to_api[0]["decision"], "allow");
    assert_eq!(to_api[0]["status"], 200);
    let rule = to_api[0]["rule"].as_str().unwrap();
    assert!(
        rule.starts_with("platform-api") && rule.contains("Authorization header was replaced"),
        "{rule}"
    );
    assert_eq!(to_api[0]["secrets"], json!(["airlock-platform-token"]));
    let to_sink: Vec<&Value> = records.iter().filter(|r| r["node"] == "report").collect();
    assert_eq!(to_sink[0]["rule"], "allow[0] ".to_string() + &sink.url());
    assert_eq!(to_sink[0]["secrets"], json!([]));

    // Once the run has ended its token is refused; the admin token works as before.
    let ended = server.request(
        "GET",
        &format!("/v1/workflows/runs/{wfr}"),
        Some(&token),
        None,
    );
    assert_eq!(ended.status, 401, "{ended:?}");
    let read = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_eq!(read.status, 200);
    let audit = server.admin("GET", "/v1/audit", None);
    assert_token_nowhere(&scene, &token, &[&read.text, &audit.text, &run.to_string()]);
    audit_verify(&scene);
}

/// An asynchronous webhook to `receiver` that leaves its run waiting for a callback.
fn waiting_workflow(id: &str, receiver: &Receiver) -> String {
    chain_workflow(
        id,
        vec![
            json!({"identifier": "wait", "config": {"type": "WEBHOOK", "method": "POST",
                "url": format!("{}/{id}", receiver.url()), "synchronized": false}}),
        ],
    )
}

/// The node run of `workflow`'s run `wfr` that waits for its callback, once `service` has had
/// its request and the answer has had time to be committed.
fn waiting_node_run(server: &Server, service: &Receiver, workflow: &str, wfr: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !service
        .requests()
        .iter()
        .any(|r| r.path == format!("/{workflow}"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{workflow}: no request"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let run = server.wait_for_run(wfr, |run| {
        run["nodeRuns"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["node"] == "wait"))
    });
    node(&run, "wait")["identifier"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_run_token_reads_its_run_and_updates_its_node_runs_only_while_the_run_lasts() {
    let scene = Scene::new();
    let service = Receiver::start();
    let server = Server::start(&scene, &["--policy", &scene.policy_allowing(&[&service])]);
    create(&server, &waiting_workflow("mine", &service));
    create(&server, &waiting_workflow("theirs", &service));
    let mine = start_run(&server, "mine");
    let theirs = start_run(&server, "theirs");
    let my_wait = waiting_node_run(&server, &service, "mine", &mine);
    let their_wait = waiting_node_run(&server, &service, "theirs", &theirs);
    let token = run_token(&scene, &mine);
    let with_token = |method: &str, path: &str, body: Option<&str>| -> Answer {
        server.request(method, path, Some(&token), body)
    };

    let own = with_token("GET", &format!("/v1/workflows/runs/{mine}"), None);
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.body["workflowRun"]["identifier"], mine.as_str());

    let completion = json!({"status": "COMPLETED", "result": "SUCCESS",
                            "output": {"by": "someone else's token"}})
    .to_string();
    for (method, path, body) in [
        ("GET", format!("/v1/workflows/runs/{theirs}"), None),
        ("GET", "/v1/workflows/runs".to_string(), None),
        ("GET", "/v1/workflows".to_string(), None),
        ("GET", "/v1/workflows/mine".to_string(), None),
        ("POST", "/v1/workflows/mine/runs".to_string(), Some("{}")),
        ("DELETE", "/v1/workflows/theirs".to_string(), None),
        ("POST", format!("/v1/workflows/runs/{mine}/cancel"), None),
        ("POST", format!("/v1/workflows/runs/{theirs}/cancel"), None),
        ("GET", "/v1/audit".to_string(), None),
        ("GET", "/metrics".to_string(), None),
        (
            "PATCH",
            format!("/v1/workflows/nodes/runs/{their_wait}"),
            Some(completion.as_str()),
        ),
        (
            "PATCH",
            format!("/v1/workflows/runs/{theirs}/nodes/{their_wait}"),
            Some(completion.as_str()),
        ),
        (
            "POST",
            format!("/v1/workflows/nodes/runs/{their_wait}/logs"),
            Some(r#"{"logLevel": "INFO", "log": "not yours"}"#),
        ),
    ] {
        let answer = with_token(method, &path, body);
        assert_eq!(answer.status, 403, "{method} {path}: {answer:?}");
        assert_eq!(answer.body["error"], "forbidden");
    }
    // Nothing changed: their run still waits with no logs, the workflows and my run stand.
    let their_run = server
        .admin("GET", &format!("/v1/workflows/runs/{theirs}"), None)
        .body;
    assert_eq!(their_run["workflowRun"]["status"], "IN_PROGRESS");
    assert_eq!(node(&their_run["workflowRun"], "wait")["logs"], json!([]));
    assert_eq!(
        server.admin("GET", "/v1/workflows/theirs", None).status,
        200
    );
    assert_eq!(
        server
            .admin("GET", &format!("/v1/workflows/runs/{mine}"), None)
            .body["workflowRun"]["status"],
        "IN_PROGRESS"
    );
    let runs = server
        .admin("GET", "/v1/workflows/runs?limit=100", None)
        .body;
    assert_eq!(runs["workflowRuns"].as_array().unwrap().len(), 2);

    for forged in [
        format!("{theirs}.{}", token.rsplit_once('.').unwrap().1),
        format!("{mine}.00"),
        "not-a-token".to_string(),
    ] {
        let answer = server.request(
            "GET",
            &format!("/v1/workflows/runs/{mine}"),
            Some(&forged),
            None,
        );
        assert_eq!(answer.status, 401, "{forged}: {answer:?}");
    }

    let logged = with_token(
        "POST",
        &format!("/v1/workflows/nodes/runs/{my_wait}/logs"),
        Some(r#"{"logLevel": "INFO", "log": "from the run itself"}"#),
    );
    assert_eq!(logged.status, 200, "{logged:?}");
    let done = with_token(
        "PATCH",
        &format!("/v1/workflows/runs/{mine}/nodes/{my_wait}"),
        Some(
            &json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"by": "my run"}})
                .to_string(),
        ),
    );
    assert_eq!(done.status, 200, "{done:?}");
    let run = finished(&server, &mine);
    assert_eq!(run["result"], "SUCCESS");
    let wait = node(&run, "wait");
    assert_eq!(wait["output"]["by"], "my run");
    assert_eq!(wait["logs"][0]["log"], "from the run itself");

    let after = with_token("GET", &format!("/v1/workflows/runs/{mine}"), None);
    assert_eq!(after.status, 401, "{after:?}");
    let their_token = run_token(&scene, &theirs);
    let theirs_read = server.request(
        "GET",
        &format!("/v1/workflows/runs/{theirs}"),
        Some(&their_token),
        None,
    );
    assert_eq!(
        theirs_read.status, 200,
        "another run's token works for that run"
    );
    assert_eq!(server.admin("GET", "/v1/workflows", None).status, 200);
    let audit = server.admin("GET", "/v1/audit", None);
    assert_token_nowhere(
        &scene,
        &token,
        &[&own.text, &logged.text, &done.text, &audit.text],
    );
    assert_token_nowhere(&scene, &their_token, &[&theirs_read.text]);
    audit_verify(&scene);
}

#[test]
fn a_node_completes_and_logs_its_own_node_run_through_the_api() {
    let scene = Scene::new();
    let sink = Receiver::start();
    let server = Server::start(&scene, &["--policy", &scene.policy_allowing(&[&sink])]);
    let workflow = chain_workflow(
        "self-complete",
        vec![
            json!({"identifier": "finish_self", "config": {"type": "WEBHOOK", "method": "PATCH",
                "synchronized": false,
                "url": format!("{}/v1/workflows/nodes/runs/{{{{ .workflowNodeRun.identifier }}}}", server.base),
                "body": {"status": "COMPLETED", "result": "SUCCESS",
                         "output": {"verdict": "done by the node itself"},
                         "logs": [{"logLevel": "INFO", "log": "logged by the node itself"}]}}}),
            json!({"identifier": "report", "config": {"type": "WEBHOOK", "method": "POST",
                "url": format!("{}/report", sink.url()),
                "body": {"verdict": "{{ .outputs.finish_self.verdict }}"}}}),
        ],
    );
    create(&server, &workflow);
    let wfr = start_run(&server, "self-complete");
    let run = finished(&server, &wfr);
    assert_eq!(run["result"], "SUCCESS", "{run:#}");
    let own = node(&run, "finish_self");
    assert_eq!(own["output"]["verdict"], "done by the node itself");
    let logs = own["logs"].to_string();
    assert!(logs.contains("logged by the node itself"), "{logs}");
    let reports = sink.requests();
    assert_eq!(reports[0].json()["verdict"], "done by the node itself");

    let token = run_token(&scene, &wfr);
    let read = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_token_nowhere(&scene, &token, &[&read.text, &run.to_string()]);
    audit_verify(&scene);
}

#[test]
fn only_the_public_url_base_gets_the_token() {
    let scene = Scene::new();
    // Stands in for the platform's API behind a path (`--public-url http://HOST:PORT/airlock`):
    // it answers everything, and records what it was sent.
    let api = Receiver::with_routes(|_| Reply::json(200, json!({"seen": true})));
    let other_port = Receiver::start();
    let server = Server::start(
        &scene,
        &[
            "--policy",
            &scene.policy_allowing(&[&api, &other_port]),
            "--public-url",
            &format!("{}/airlock/", api.url()),
        ],
    );
    let hook = |id: &str, url: String| {
        json!({"identifier": id, "config": {"type": "WEBHOOK", "method": "POST", "url": url,
            "headers": {"Authorization": "Bearer x"}, "body": {"from": id}}})
    };
    let workflow = chain_workflow(
        "where",
        vec![
            hook(
                "inside",
                format!("{}/airlock/v1/workflows/runs/x", api.url()),
            ),
            hook("dotted", format!("{}/other/../airlock/v1", api.url())),
            hook("outside", format!("{}/other", api.url())),
            hook("sibling", format!("{}/airlock-other/v1", api.url())),
            hook("escape", format!("{}/airlock/%2e%2e/other", api.url())),
            hook("port", format!("{}/airlock/v1", other_port.url())),
        ],
    );
    create(&server, &workflow);
    let wfr = start_run(&server, "where");
    let run = finished(&server, &wfr);
    assert_eq!(run["result"], "SUCCESS", "{run:#}");
    let token = run_token(&scene, &wfr);

    let authorization = |receiver: &Receiver, from: &str| -> String {
        let request = receiver
            .requests()
            .into_iter()
            .find(|r| r.json()["from"] == from)
            .unwrap_or_else(|| panic!("{from} never arrived"));
        request
            .header("authorization")
            .unwrap_or_default()
            .to_string()
    };
    let bearer = format!("Bearer {token}");
    assert_eq!(authorization(&api, "inside"), bearer);
    assert_eq!(
        authorization(&api, "dotted"),
        bearer,
        "normalised into the base"
    );
    for from in ["outside", "sibling", "escape"] {
        assert_eq!(authorization(&api, from), "Bearer x", "{from}");
    }
    assert_eq!(authorization(&other_port, "port"), "Bearer x");
    let rules: Vec<(String, String)> = scene
        .audit_records()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_string(),
                r["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (node, rule) in &rules {
        let platform = rule.starts_with("platform-api");
        assert_eq!(
            platform,
            node == "inside" || node == "dotted",
            "{node}: {rule}"
        );
    }
    let read = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_token_nowhere(&scene, &token, &[&read.text]);
    audit_verify(&scene);
}

#[test]
fn an_echo_of_the_token_is_masked_before_the_node_sees_it() {
    let scene = Scene::new();
    // A stand-in for the API that echoes the Authorization header it got.
    let api = Receiver::with_routes(|request| {
        let got = request
            .header("authorization")
            .unwrap_or_default()
            .to_string();
        Reply::json(200, json!({"got": got, "upper": got.to_uppercase()}))
    });
    let sink = Receiver::start();
    let server = Server::start(
        &scene,
        &[
            "--policy",
            &scene.policy_allowing(&[&sink]),
            "--public-url",
            &api.url(),
        ],
    );
    let workflow = chain_workflow(
        "echo",
        vec![
            json!({"identifier": "call", "config": {"type": "WEBHOOK", "method": "GET",
                "url": format!("{}/v1/workflows/runs/x", api.url())}}),
            json!({"identifier": "pass_on", "config": {"type": "WEBHOOK", "method": "POST",
                "url": format!("{}/pass", sink.url()),
                "body": {"got": "{{ .outputs.call.got }}", "upper": "{{ .outputs.call.upper }}"}}}),
        ],
    );
    create(&server, &workflow);
    let wfr = start_run(&server, "echo");
    let run = finished(&server, &wfr);
    assert_eq!(run["result"], "SUCCESS", "{run:#}");
    let token = run_token(&scene, &wfr);
    assert_eq!(
        api.requests()[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    let passed = sink.requests()[0].json();
    let masked = format!("Bearer {wfr}.[secret:airlock-platform-token]");
    assert_eq!(passed["got"], masked.as_str());
    assert_eq!(
        passed["upper"],
        masked.to_uppercase().replace(
            "[SECRET:AIRLOCK-PLATFORM-TOKEN]",
            "[secret:airlock-platform-token]"
        )
    );
    let read = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_token_nowhere(
        &scene,
        &token,
        &[&read.text, &sink.requests()[0].json().to_string()],
    );
    audit_verify(&scene);
}

#[test]
fn a_custom_node_using_wasi_http_gets_the_token_the_same_way() {
    let scene = Scene::new();
    let sink = Receiver::start();
    // HTTP_CLIENT does its requests with wasi:http; its manifest allows any port on 127.0.0.1,
    // so the host policy and the gate decide.
    let nodes = scene.path("nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    std::fs::copy(
        env!("AIRLOCK_NODE_HTTP_CLIENT"),
        nodes.join("http_client.wasm"),
    )
    .unwrap();
    std::fs::write(
        nodes.join("node.toml"),
        "type = \"HTTP_CLIENT\"\ncomponent = \"http_client.wasm\"\n\n\
         [egress]\nallow = [\"http://127.0.0.1:*\"]\n",
    )
    .unwrap();
    let server = Server::start(
        &scene,
        &[
            "--policy",
            &scene.policy_allowing(&[&sink]),
            "--nodes",
            nodes.to_str().unwrap(),
        ],
    );
    let workflow = chain_workflow(
        "wasi-self",
        vec![
            json!({"identifier": "read_self", "config": {"type": "HTTP_CLIENT", "method": "GET",
                "url": format!("{}/v1/workflows/runs/{{{{ .workflowRun.identifier }}}}", server.base),
                "headers": {"authorization": "Bearer x"}}}),
            json!({"identifier": "elsewhere", "config": {"type": "HTTP_CLIENT", "method": "POST",
                "url": format!("{}/elsewhere", sink.url()),
                "headers": {"authorization": "Bearer x", "content-type": "application/json"},
                "body": "{\"status\": {{ .outputs.read_self.status }}}"}}),
        ],
    );
    create(&server, &workflow);
    let wfr = start_run(&server, "wasi-self");
    let run = finished(&server, &wfr);
    assert_eq!(run["result"], "SUCCESS", "{run:#}");
    let read = node(&run, "read_self");
    assert_eq!(read["output"]["status"], 200, "{read:#}");
    let body: Value = serde_json::from_str(read["output"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["workflowRun"]["identifier"], wfr.as_str());
    let sent = sink.requests();
    assert_eq!(sent[0].json(), json!({"status": 200}));
    assert_eq!(sent[0].header("authorization"), Some("Bearer x"));
    let records = scene.audit_records();
    let to_api = records.iter().find(|r| r["node"] == "read_self").unwrap();
    assert!(
        to_api["rule"].as_str().unwrap().starts_with("platform-api"),
        "{to_api:#}"
    );
    assert_eq!(to_api["secrets"], json!(["airlock-platform-token"]));

    let token = run_token(&scene, &wfr);
    let answer = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_token_nowhere(&scene, &token, &[&answer.text]);
    audit_verify(&scene);
}

#[test]
fn a_run_token_survives_a_restart() {
    let scene = Scene::new();
    let service = Receiver::start();
    let policy = scene.policy_allowing(&[&service]);
    let mut server = Server::start(&scene, &["--policy", &policy]);
    create(&server, &waiting_workflow("resumed", &service));
    let wfr = start_run(&server, "resumed");
    // Killed once the node run waits (cut off mid-request, a POST would end the run after the
    // restart instead).
    let wait = waiting_node_run(&server, &service, "resumed", &wfr);
    let token = run_token(&scene, &wfr);
    server.kill9();

    let server = Server::start(&scene, &["--policy", &policy]);
    let read = server.request(
        "GET",
        &format!("/v1/workflows/runs/{wfr}"),
        Some(&token),
        None,
    );
    assert_eq!(read.status, 200, "the same key after the restart: {read:?}");
    let done = server.request(
        "PATCH",
        &format!("/v1/workflows/nodes/runs/{wait}"),
        Some(&token),
        Some(&json!({"status": "COMPLETED", "result": "SUCCESS", "output": {}}).to_string()),
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(finished(&server, &wfr)["result"], "SUCCESS");
    assert_token_nowhere(&scene, &token, &[&read.text, &done.text]);
    audit_verify(&scene);
    let log = std::fs::read_to_string(scene.path("serve.log")).unwrap();
    assert_eq!(
        log.matches("generated the run-token key").count(),
        1,
        "made once, then read: {log}"
    );
}
