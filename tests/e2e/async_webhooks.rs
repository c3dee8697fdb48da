//! Asynchronous webhooks (`synchronized: false`): a real external service on 127.0.0.1 receives
//! the request with the callback headers and PATCHes the node run back, through `airlock serve`
//! and through a one-shot `airlock run`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::server::{ADMIN_TOKEN, Answer, Server, http};
use crate::support::{Received, Receiver, Reply, Scene, chain_workflow, node_run};

/// What an echo of a callback token becomes.
const MASKED: &str = "[secret:airlock-callback-token]";

/// The callback an external service got: where to PATCH, and with which token.
#[derive(Debug, Clone)]
struct Callback {
    run: String,
    node_run: String,
    address: String,
    path: String,
    token: String,
}

impl Callback {
    fn of(request: &Received) -> Callback {
        let header = |name: &str| {
            request
                .header(name)
                .unwrap_or_else(|| panic!("no {name} header in {request:?}"))
                .to_string()
        };
        let url = header("Airlock-Callback-Url");
        let rest = url.strip_prefix("http://").expect("an http callback URL");
        let (address, path) = rest.split_at(rest.find('/').expect("a path"));
        Callback {
            run: header("Airlock-Run"),
            node_run: header("Airlock-Node-Run"),
            address: address.to_string(),
            path: path.to_string(),
            token: header("Airlock-Callback-Token"),
        }
    }

    fn patch(&self, token: Option<&str>, body: &Value) -> Answer {
        http(
            &self.address,
            "PATCH",
            &self.path,
            token,
            Some(&body.to_string()),
        )
    }

    fn complete(&self, token: Option<&str>, result: &str, output: Value) -> Answer {
        self.patch(
            token,
            &json!({"status": "COMPLETED", "result": result, "output": output,
                    "logs": [{"logLevel": "INFO", "log": "built by the external service"}]}),
        )
    }
}

/// The requests `receiver` has had on `path`, once it has had `count` (10 s at most).
fn requests_on(receiver: &Receiver, path: &str, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen: Vec<Received> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        if seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {} of {count} requests",
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An external service: accepts jobs with 202 and records what `notify` receives.
fn service() -> Receiver {
    Receiver::with_routes(|r| match r.path.as_str() {
        "/build" => Reply::json(202, json!({"accepted": true})),
        _ => Reply::json(200, json!({"ok": true})),
    })
}

/// trigger -> build (asynchronous) -> notify (reads the build's output).
fn build_workflow(id: &str, receiver: &Receiver, build_extra: Value) -> String {
    let mut build = json!({"type": "WEBHOOK", "url": format!("{}/build", receiver.url()),
        "synchronized": false, "body": {"service": "{{ .outputs.trigger.service }}"}});
    for (key, value) in build_extra.as_object().unwrap() {
        build[key] = value.clone();
    }
    chain_workflow(
        id,
        vec![
            json!({"identifier": "build", "config": build}),
            json!({"identifier": "notify", "config": {"type": "WEBHOOK",
                "url": format!("{}/notify", receiver.url()),
                "body": {"artifact": "{{ .outputs.build.artifact }}",
                         "timedOut": "{{ .outputs.build.timeout }}"}}}),
        ],
    )
}

fn policy(scene: &Scene, receiver: &Receiver) -> String {
    scene.allow_policy(receiver).to_str().unwrap().to_string()
}

fn start_run(server: &Server, workflow: &str, query: &str) -> Value {
    let answer = server.admin(
        "POST",
        &format!("/v1/workflows/{workflow}/runs{query}"),
        Some(r#"{"inputs": {"service": "checkout"}}"#),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["workflowRun"].clone()
}

fn create(server: &Server, workflow: &str) {
    let answer = server.admin("POST", "/v1/workflows", Some(workflow));
    assert_eq!(answer.status, 201, "{answer:?}");
}

fn read_run(server: &Server, wfr: &str) -> Value {
    let answer = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["workflowRun"].clone()
}

/// The run is still waiting at `build`, exactly as before.
fn assert_still_waiting(server: &Server, wfr: &str, before: &Value) {
    let now = read_run(server, wfr);
    assert_eq!(now["status"], "IN_PROGRESS");
    assert_eq!(node_run(&now, "build")["status"], "IN_PROGRESS");
    assert_eq!(&now, before, "nothing changed");
}

fn completed(server: &Server, wfr: &str) -> Value {
    server.wait_for_run(wfr, |run| run["status"] == "COMPLETED")
}

#[test]
fn a_callback_completes_the_node_run_and_its_output_flows_on() {
    let scene = Scene::new();
    let receiver = service();
    let server = Server::start(&scene, &["--policy", &policy(&scene, &receiver)]);
    create(&server, &build_workflow("release", &receiver, json!({})));

    let run = start_run(&server, "release", "");
    let wfr = run["identifier"].as_str().unwrap().to_string();
    let request = requests_on(&receiver, "/build", 1).remove(0);
    let callback = Callback::of(&request);
    assert_eq!(callback.run, wfr);
    assert!(callback.node_run.starts_with("wfnr_"), "{callback:?}");
    assert_eq!(
        format!("http://{}{}", callback.address, callback.path),
        format!(
            "{}/v1/workflows/nodes/runs/{}",
            server.base, callback.node_run
        )
    );
    assert_eq!(callback.token.len(), 64, "{callback:?}");
    assert_eq!(request.json()["service"], "checkout");

    server.wait_for_run(&wfr, |run| run["nodeRuns"].as_array().unwrap().len() == 2);
    // The request's answer (202) has come back by now: the node run waits for its callback.
    std::thread::sleep(Duration::from_millis(200));
    let waiting = read_run(&server, &wfr);
    assert_eq!(waiting["status"], "IN_PROGRESS", "{waiting:#}");
    assert_eq!(node_run(&waiting, "build")["identifier"], callback.node_run);

    // No token, a wrong one, a bad body: refused, nothing changes.
    let answer = callback.complete(None, "SUCCESS", json!({}));
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = callback.complete(Some("not-the-token"), "SUCCESS", json!({}));
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = callback.patch(
        Some(&callback.token),
        &json!({"status": "DONE", "result": "SUCCESS"}),
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["details"][0]["path"], "$.status");
    let answer = callback.patch(Some(&callback.token), &json!({"status": "COMPLETED"}));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["details"][0]["path"], "$.result");
    assert_still_waiting(&server, &wfr, &waiting);

    // Another run's token is refused for this node run (and the other way round).
    let other = start_run(&server, "release", "");
    let other_wfr = other["identifier"].as_str().unwrap().to_string();
    let other_callback = Callback::of(&requests_on(&receiver, "/build", 2)[1]);
    assert_eq!(other_callback.run, other_wfr);
    let answer = callback.complete(Some(&other_callback.token), "SUCCESS", json!({}));
    assert_eq!(answer.status, 403, "{answer:?}");
    let answer = other_callback.complete(Some(&callback.token), "SUCCESS", json!({}));
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_still_waiting(&server, &wfr, &waiting);

    // Logs while it works, then the completion with its own token; a service that echoes its
    // token (as is, JSON-escaped, percent-escaped, as character references, in base64) has it
    // masked before anything is stored.
    let echoed = STANDARD.encode(&callback.token);
    let written = |form: fn(char) -> String| callback.token.chars().map(form).collect::<String>();
    let line = format!(
        r#"{{"logLevel": "INFO", "log": "halfway, called back with {}"}}"#,
        written(|c| format!("\\u{:04x}", c as u32))
    );
    let answer = http(
        &callback.address,
        "POST",
        &format!("{}/logs", callback.path),
        Some(&callback.token),
        Some(&line),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let percent = written(|c| format!("%{:02X}", c as u32));
    let references = written(|c| format!("&#{};", c as u32));
    let answer = callback.complete(
        Some(&callback.token),
        "SUCCESS",
        json!({"artifact": "img-42", "echo": [echoed, percent, references]}),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["workflowNodeRun"]["status"], "COMPLETED");
    let done = completed(&server, &wfr);
    assert_eq!(done["result"], "SUCCESS", "{done:#}");
    let build = node_run(&done, "build");
    assert_eq!(build["result"], "SUCCESS");
    assert_eq!(
        build["output"],
        json!({"artifact": "img-42", "echo": [MASKED, MASKED, MASKED]})
    );
    let logs: Vec<&str> = build["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["log"].as_str())
        .collect();
    assert!(
        logs.contains(&format!("halfway, called back with {MASKED}").as_str()),
        "{logs:?}"
    );
    assert!(logs.contains(&"built by the external service"), "{logs:?}");
    let notified = requests_on(&receiver, "/notify", 1);
    assert_eq!(notified[0].json()["artifact"], "img-42");

    // A second completion changes nothing.
    let answer = callback.complete(Some(&callback.token), "FAILED", json!({"artifact": "x"}));
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(read_run(&server, &wfr), done);

    // The admin token may complete any node run; FAILED follows onFailure (terminate).
    let answer = other_callback.complete(
        Some(ADMIN_TOKEN),
        "FAILED",
        json!({"error": {"message": "the build broke"}}),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let failed = completed(&server, &other_wfr);
    assert_eq!(failed["result"], "FAILED", "{failed:#}");
    let build = node_run(&failed, "build");
    assert_eq!(build["result"], "FAILED");
    assert!(
        build["error"].as_str().unwrap().contains("the build broke"),
        "{build:#}"
    );
    assert_eq!(
        requests_on(&receiver, "/notify", 1).len(),
        1,
        "the failed run went no further"
    );

    // The tokens never show: not in runs, the audit (which names the secret), the log, the store.
    let audit = scene.audit_records();
    let build_audit = audit
        .iter()
        .find(|r| r["nodeRun"] == callback.node_run.as_str())
        .expect("the build request is audited");
    assert_eq!(build_audit["secrets"], json!(["airlock-callback-token"]));
    let listing = server.admin("GET", "/v1/workflows/runs?limit=100", None);
    let serve_log = std::fs::read_to_string(scene.path("serve.log")).unwrap();
    let state = scene.state_bytes();
    for token in [
        &callback.token,
        &other_callback.token,
        &echoed,
        &percent,
        &references,
    ] {
        assert!(!listing.text.contains(token.as_str()));
        assert!(!serve_log.contains(token.as_str()));
        assert!(
            !state.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is in the state dir"
        );
    }
}

#[test]
fn a_missing_callback_times_out_by_on_timeout() {
    let scene = Scene::new();
    let receiver = service();
    let server = Server::start(&scene, &["--policy", &policy(&scene, &receiver)]);
    create(
        &server,
        &build_workflow(
            "lenient",
            &receiver,
            json!({"timeoutMs": 400, "onTimeout": "continue"}),
        ),
    );
    create(
        &server,
        &build_workflow("strict", &receiver, json!({"timeoutMs": 400})),
    );

    // continue: the node succeeds with {"timeout": true}; wait=true answers once it completed.
    let started = Instant::now();
    let run = start_run(&server, "lenient", "?wait=true");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(run["status"], "COMPLETED", "{run:#}");
    assert_eq!(run["result"], "SUCCESS", "{run:#}");
    assert_eq!(node_run(&run, "build")["output"], json!({"timeout": true}));
    assert_eq!(
        requests_on(&receiver, "/notify", 1)[0].json()["timedOut"],
        true
    );

    // fail: the node run fails, and so does the run; a late callback changes nothing.
    let run = start_run(&server, "strict", "");
    let wfr = run["identifier"].as_str().unwrap();
    let callback = Callback::of(&requests_on(&receiver, "/build", 2)[1]);
    let done = completed(&server, wfr);
    assert_eq!(done["result"], "FAILED", "{done:#}");
    let build = node_run(&done, "build");
    assert!(
        build["error"]
            .as_str()
            .unwrap()
            .contains("timeoutMs (400 ms)"),
        "{build:#}"
    );
    let answer = callback.complete(Some(&callback.token), "SUCCESS", json!({}));
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(read_run(&server, wfr), done);
    assert_eq!(requests_on(&receiver, "/notify", 1).len(), 1);
}

#[test]
fn a_non_2xx_answer_fails_an_asynchronous_webhook_as_a_synchronous_one() {
    let scene = Scene::new();
    let receiver = Receiver::with_routes(|_| Reply::json(503, json!({"busy": true})));
    let server = Server::start(&scene, &["--policy", &policy(&scene, &receiver)]);
    create(&server, &build_workflow("busy", &receiver, json!({})));
    let run = start_run(&server, "busy", "?wait=true");
    assert_eq!(run["result"], "FAILED", "{run:#}");
    let build = node_run(&run, "build");
    assert!(
        build["error"].as_str().unwrap().contains("HTTP 503"),
        "{build:#}"
    );
}

/// `airlock run` in a child process: returns it with the callback base it printed.
fn one_shot(scene: &Scene, workflow: &str, policy: &str) -> (std::process::Child, String) {
    let path = scene.write("wf.json", workflow);
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["run", path.to_str().unwrap(), "--policy", policy, "--json"])
        .args(["--inputs", r#"{"service": "checkout"}"#])
        .env("AIRLOCK_STATE_DIR", scene.state_dir())
        .env_remove("AIRLOCK_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line
        .split("call back at ")
        .nth(1)
        .and_then(|rest| rest.split("/v1/").next())
        .unwrap_or_else(|| panic!("no callback URL printed: {line:?}"))
        .to_string();
    (child, base)
}

fn finish(child: std::process::Child) -> (i32, Value) {
    let output = child.wait_with_output().unwrap();
    let run = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code().unwrap_or(-1), run)
}

#[test]
fn a_one_shot_run_takes_its_callbacks_on_its_own_listener() {
    let scene = Scene::new();
    let receiver = service();
    let policy = policy(&scene, &receiver);
    // Two asynchronous nodes in a row: the first one's token is foreign to the second.
    let workflow = chain_workflow(
        "one-shot",
        vec![
            json!({"identifier": "build", "config": {"type": "WEBHOOK",
                "url": format!("{}/build", receiver.url()), "synchronized": false}}),
            json!({"identifier": "deploy", "config": {"type": "WEBHOOK",
                "url": format!("{}/build", receiver.url()), "synchronized": false,
                "body": {"artifact": "{{ .outputs.build.artifact }}"}}}),
            json!({"identifier": "notify", "config": {"type": "WEBHOOK",
                "url": format!("{}/notify", receiver.url()),
                "body": {"where": "{{ .outputs.deploy.url }}"}}}),
        ],
    );
    let (child, base) = one_shot(&scene, &workflow, &policy);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let build = Callback::of(&requests_on(&receiver, "/build", 1)[0]);
    assert_eq!(
        format!("http://{}{}", build.address, build.path),
        format!("{base}/v1/workflows/nodes/runs/{}", build.node_run)
    );
    assert_eq!(build.complete(None, "SUCCESS", json!({})).status, 401);
    assert_eq!(
        build.complete(Some("wrong"), "SUCCESS", json!({})).status,
        401
    );
    let answer = build.complete(Some(&build.token), "SUCCESS", json!({"artifact": "img-7"}));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        build
            .complete(Some(&build.token), "SUCCESS", json!({}))
            .status,
        409
    );

    let deploy_request = requests_on(&receiver, "/build", 2).remove(1);
    assert_eq!(deploy_request.json()["artifact"], "img-7");
    let deploy = Callback::of(&deploy_request);
    assert_eq!(
        deploy
            .complete(Some(&build.token), "SUCCESS", json!({}))
            .status,
        403
    );
    let answer = deploy.complete(
        Some(&deploy.token),
        "SUCCESS",
        json!({"url": "https://checkout.example"}),
    );
    assert_eq!(answer.status, 200, "{answer:?}");

    let (code, run) = finish(child);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["result"], "SUCCESS");
    assert_eq!(node_run(&run, "build")["output"]["artifact"], "img-7");
    assert_eq!(
        requests_on(&receiver, "/notify", 1)[0].json()["where"],
        "https://checkout.example"
    );
    let text = run.to_string();
    assert!(!text.contains(&build.token) && !text.contains(&deploy.token));
}

#[test]
fn a_one_shot_run_ends_at_its_timeouts() {
    let scene = Scene::new();
    let receiver = service();
    let policy = policy(&scene, &receiver);
    let lenient = build_workflow(
        "lenient",
        &receiver,
        json!({"timeoutMs": 300, "onTimeout": "continue"}),
    );
    let (child, _) = one_shot(&scene, &lenient, &policy);
    let (code, run) = finish(child);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(node_run(&run, "build")["output"], json!({"timeout": true}));

    let strict = build_workflow("strict", &receiver, json!({"timeoutMs": 300}));
    let (child, _) = one_shot(&scene, &strict, &policy);
    let (code, run) = finish(child);
    assert_eq!(code, 1, "{run:#}");
    assert_eq!(run["result"], "FAILED");
    assert_eq!(node_run(&run, "build")["result"], "FAILED");
    assert_eq!(requests_on(&receiver, "/notify", 1).len(), 1);
}

/// `?wait=true` on a run that waits for a callback answers at `waitTimeoutMs` with the run as it
/// stands, and the callback still completes the run afterwards.
#[test]
fn a_wait_ends_at_its_timeout_with_the_run_as_it_stands() {
    let scene = Scene::new();
    let receiver = service();
    let server = Server::start(&scene, &["--policy", &policy(&scene, &receiver)]);
    create(&server, &build_workflow("release", &receiver, json!({})));

    let started = Instant::now();
    let run = start_run(&server, "release", "?wait=true&waitTimeoutMs=500");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(run["status"], "IN_PROGRESS", "{run:#}");
    assert_eq!(node_run(&run, "build")["status"], "IN_PROGRESS", "{run:#}");
    let wfr = run["identifier"].as_str().unwrap().to_string();

    let callback = Callback::of(&requests_on(&receiver, "/build", 1).remove(0));
    let answer = callback.complete(Some(&callback.token), "SUCCESS", json!({"artifact": "a1"}));
    assert_eq!(answer.status, 200, "{answer:?}");
    let done = completed(&server, &wfr);
    assert_eq!(done["result"], "SUCCESS", "{done:#}");
    assert_eq!(
        requests_on(&receiver, "/notify", 1)[0].json()["artifact"],
        "a1"
    );
}
