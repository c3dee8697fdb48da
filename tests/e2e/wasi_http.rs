//! A node using its language's standard HTTP client (wasi:http outgoing-handler) meets the same
//! egress gate as one using the `egress.send` import: each case runs the test node
//! HTTP_CLIENT (a Rust guest doing its request with wasi:http, loaded with `--nodes`) side by
//! side with the built-in WEBHOOK node against real local servers.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, Run, Scene, node_run};

const CANARY: &str = "canary-wasihttp-7Hq2";

/// A `--nodes` directory serving HTTP_CLIENT. Its manifest narrows nothing the tests rely on:
/// it allows `allow` and the secret `api-token`, so the host policy is what decides.
fn client_nodes(scene: &Scene, allow: &str) -> PathBuf {
    let dir = scene.path("nodes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        env!("AIRLOCK_NODE_HTTP_CLIENT"),
        dir.join("http_client.wasm"),
    )
    .unwrap();
    let manifest = format!(
        "type = \"HTTP_CLIENT\"\ncomponent = \"http_client.wasm\"\n\n\
         [egress]\nallow = [\"{allow}\"]\n\n[secrets]\nallow = [\"api-token\"]\n"
    );
    std::fs::write(dir.join("node.toml"), manifest).unwrap();
    dir
}

/// A start trigger, then `hook` (WEBHOOK, continuing on failure) and `client` (HTTP_CLIENT).
fn workflow(hook: Value, client: Value) -> String {
    let mut hook_config = json!({"type": "WEBHOOK", "onFailure": "continue"});
    hook_config
        .as_object_mut()
        .unwrap()
        .extend(hook.as_object().unwrap().clone());
    let mut client_config = json!({"type": "HTTP_CLIENT"});
    client_config
        .as_object_mut()
        .unwrap()
        .extend(client.as_object().unwrap().clone());
    json!({
        "identifier": "wasi-http",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "hook", "config": hook_config},
            {"identifier": "client", "config": client_config}
        ],
        "connections": [
            {"sourceIdentifier": "start", "targetIdentifier": "hook"},
            {"sourceIdentifier": "hook", "targetIdentifier": "client"}
        ]
    })
    .to_string()
}

/// `airlock run wf.json --nodes DIR [--policy FILE] EXTRA... --json`.
fn run(scene: &Scene, workflow: &str, nodes: &Path, policy: Option<&str>, extra: &[&str]) -> Run {
    let mut args = vec!["--nodes", nodes.to_str().unwrap()];
    args.extend_from_slice(extra);
    scene.run_json(workflow, policy, &args)
}

fn allow(receiver: &Receiver) -> String {
    format!("[egress]\nallow = [\"{}\"]\n", receiver.url())
}

/// The audit record of `node`, asserting there is exactly one.
fn record<'a>(audit: &'a [Value], node: &str) -> &'a Value {
    let records: Vec<&Value> = audit.iter().filter(|r| r["node"] == node).collect();
    assert_eq!(records.len(), 1, "one record for {node}: {audit:#?}");
    records[0]
}

fn assert_secret_nowhere(scene: &Scene, out: &Run) {
    scene.assert_nowhere(out, &[CANARY]);
}

#[test]
fn an_allowed_request_is_sent_and_audited_like_the_egress_import() {
    let receiver = Receiver::with_routes(|r| Reply::json(200, json!({"path": r.path})));
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let body = json!({"hello": "world"}).to_string();
    let wf = workflow(
        json!({"url": format!("{}/hook", receiver.url()), "method": "POST", "body": {"hello": "world"}}),
        json!({"url": format!("{}/client?x=1", receiver.url()), "method": "POST",
               "headers": {"content-type": "application/json", "x-test": "yes"}, "body": body}),
    );
    let out = run(&scene, &wf, &nodes, Some(&allow(&receiver)), &[]);
    out.expect_code(0);

    let requests = receiver.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/hook", "/client"]);
    let sent = &requests[1];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.query.as_deref(), Some("x=1"));
    assert_eq!(sent.header("x-test"), Some("yes"));
    assert_eq!(sent.json(), json!({"hello": "world"}));

    let run = out.json();
    let client = node_run(&run, "client");
    assert_eq!(client["result"], "SUCCESS", "{client:#}");
    assert_eq!(client["output"]["status"], 200);
    let echoed: Value = serde_json::from_str(client["output"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed, json!({"path": "/client"}));

    let audit = scene.audit_records();
    assert_eq!(audit.len(), 2, "{audit:#?}");
    for node in ["hook", "client"] {
        let r = record(&audit, node);
        assert_eq!(r["decision"], "allow", "{r:#}");
        assert_eq!(r["method"], "POST");
        assert_eq!(r["resolvedIp"], "127.0.0.1");
        assert_eq!(r["status"], 200);
        assert!(r["bytesSent"].as_u64().unwrap() > 0, "{r:#}");
        assert!(r["bytesReceived"].as_u64().unwrap() > 0, "{r:#}");
        assert_eq!(r["rule"], audit[0]["rule"], "the same rule decides both");
        assert!(r["component"].as_str().unwrap().starts_with("sha256:"));
    }
    let client_record = record(&audit, "client");
    assert_eq!(
        client_record["url"],
        format!("{}/client?x=1", receiver.url()).as_str()
    );
    assert_ne!(
        client_record["component"],
        record(&audit, "hook")["component"]
    );
    scene.airlock(&["audit", "verify"]).expect_code(0);
}

#[test]
fn a_denied_request_never_connects_and_fails_the_node_with_the_reason() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let wf = workflow(
        json!({"url": format!("{}/hook", receiver.url()), "method": "GET"}),
        json!({"url": format!("{}/client", receiver.url()), "method": "GET"}),
    );
    // The default policy: public destinations only; 127.0.0.1 is not named.
    let out = run(&scene, &wf, &nodes, None, &[]);
    out.expect_code(1);
    assert_eq!(receiver.connections(), 0, "the server was contacted");

    let run = out.json();
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 2, "{audit:#?}");
    let rule = record(&audit, "hook")["rule"].as_str().unwrap().to_string();
    assert!(rule.starts_with("private address 127.0.0.1"), "{rule}");
    for node in ["hook", "client"] {
        let node_result = node_run(&run, node);
        assert_eq!(node_result["result"], "FAILED", "{node_result:#}");
        let r = record(&audit, node);
        assert_eq!(r["decision"], "deny", "{r:#}");
        assert_eq!(r["rule"], rule.as_str());
        assert_eq!(r["resolvedIp"], Value::Null);
        assert_eq!(r["status"], Value::Null);
    }
    // The egress import's error says why.
    let hook_error = node_run(&run, "hook")["error"].as_str().unwrap();
    assert!(
        hook_error.ends_with(&format!("denied by the egress policy: {rule}")),
        "{hook_error}"
    );
    // A wasi:http client gets the error code wasi:http defines for it; the reason is in its log.
    let client = node_run(&run, "client");
    assert_eq!(
        client["error"], "wasi:http request failed: ErrorCode::DestinationIpProhibited",
        "{client:#}"
    );
    let logs = client["logs"].to_string();
    assert!(
        logs.contains(&format!("denied: {rule}")) && logs.contains("/client"),
        "{logs}"
    );
}

#[test]
fn a_secret_handle_in_a_header_is_injected_at_the_server_and_an_echo_is_redacted() {
    // The server echoes the authorization header in its body and in a header.
    let receiver = Receiver::with_routes(|r| {
        let auth = r.header("authorization").unwrap_or_default().to_string();
        let mut reply = Reply::json(200, json!({"auth": auth, "query": r.query}));
        reply.headers.push(("x-echo".into(), auth));
        reply
    });
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let secrets = scene.write("secrets.json", &json!({"api-token": CANARY}).to_string());
    let auth = "Bearer {{ .secrets[\"api-token\"] }}";
    let wf = workflow(
        json!({"url": format!("{}/hook", receiver.url()), "method": "GET",
               "headers": {"Authorization": auth}}),
        json!({"url": format!("{}/client?key={{{{ .secrets[\"api-token\"] }}}}", receiver.url()),
               "method": "GET", "headers": {"authorization": auth}}),
    );
    let out = run(
        &scene,
        &wf,
        &nodes,
        Some(&allow(&receiver)),
        &["--secrets", secrets.to_str().unwrap()],
    );
    out.expect_code(0);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for sent in &requests {
        assert_eq!(
            sent.header("authorization"),
            Some(&*format!("Bearer {CANARY}")),
            "{}",
            sent.path
        );
    }
    assert_eq!(
        requests[1].query.as_deref(),
        Some(&*format!("key={CANARY}"))
    );

    let run = out.json();
    let client = &node_run(&run, "client")["output"];
    assert_eq!(client["status"], 200);
    let body = client["body"].as_str().unwrap();
    assert!(body.contains("Bearer [secret:api-token]"), "{body}");
    assert!(body.contains("key=[secret:api-token]"), "{body}");
    assert_eq!(client["headers"]["x-echo"], "Bearer [secret:api-token]");
    let hook = node_run(&run, "hook")["output"].to_string();
    assert!(hook.contains("[secret:api-token]"), "{hook}");

    let audit = scene.audit_records();
    for node in ["hook", "client"] {
        assert_eq!(record(&audit, node)["secrets"], json!(["api-token"]));
    }
    assert!(
        record(&audit, "client")["url"]
            .as_str()
            .unwrap()
            .ends_with("/client?key=[secret:api-token]")
    );
    assert_secret_nowhere(&scene, &out);
}

#[test]
fn a_redirect_is_returned_to_the_node_not_followed() {
    let forbidden = Receiver::start();
    let target = format!("{}/internal", forbidden.url());
    let allowed = Receiver::with_routes(move |_| Reply {
        status: 302,
        headers: vec![("location".into(), target.clone())],
        body: b"moved".to_vec(),
    });
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &allowed.url());
    let wf = workflow(
        json!({"url": format!("{}/hook", allowed.url()), "method": "GET"}),
        json!({"url": format!("{}/client", allowed.url()), "method": "GET"}),
    );
    let out = run(&scene, &wf, &nodes, Some(&allow(&allowed)), &[]);
    // WEBHOOK fails on the 3xx (and the run continues); the wasi:http client just sees it.
    out.expect_code(0);
    let run = out.json();
    let hook = node_run(&run, "hook");
    assert!(
        hook["error"].as_str().unwrap().contains("HTTP 302"),
        "{hook:#}"
    );
    let client = node_run(&run, "client");
    assert_eq!(client["result"], "SUCCESS", "{client:#}");
    assert_eq!(client["output"]["status"], 302);
    assert_eq!(
        client["output"]["headers"]["location"],
        format!("{}/internal", forbidden.url()).as_str()
    );
    assert_eq!(client["output"]["body"], "moved");

    let paths: Vec<String> = allowed.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/hook", "/client"]);
    assert_eq!(
        forbidden.connections(),
        0,
        "the redirect target was contacted"
    );
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 2, "{audit:#?}");
    for node in ["hook", "client"] {
        let r = record(&audit, node);
        assert_eq!(r["decision"], "allow");
        assert_eq!(r["status"], 302);
    }
}

#[test]
fn wasi_http_requests_count_against_the_request_limit() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let wf = workflow(
        json!({"url": format!("{}/hook", receiver.url()), "method": "GET"}),
        json!({"url": format!("{}/client", receiver.url()), "method": "GET", "repeat": 3}),
    );
    let policy = format!("{}\n[limits]\nrequests = 2\n", allow(&receiver));
    let out = run(&scene, &wf, &nodes, Some(&policy), &[]);
    out.expect_code(1);
    let run = out.json();
    let client = node_run(&run, "client");
    assert_eq!(client["result"], "FAILED", "{client:#}");
    let error = client["error"].as_str().unwrap();
    assert!(
        error.contains("request limit of 2 egress requests per node run exceeded"),
        "{error}"
    );
    let paths: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/hook", "/client", "/client"]);
    // The third wasi:http attempt was refused before the gate, and still audited.
    let audit = scene.audit_records();
    let refused = audit.last().unwrap();
    assert_eq!(refused["node"], "client");
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["method"], "GET");
    assert_eq!(refused["url"], format!("{}/client", receiver.url()));
}

#[test]
fn waiting_on_a_slow_server_is_not_cpu_time() {
    let receiver = Receiver::with_routes(|_| {
        std::thread::sleep(std::time::Duration::from_millis(800));
        Reply::json(200, json!({"slow": true}))
    });
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let wf = workflow(
        json!({"url": format!("{}/hook", receiver.url()), "method": "GET"}),
        json!({"url": format!("{}/client", receiver.url()), "method": "GET"}),
    );
    let policy = format!("{}\n[limits]\ncpu_time_ms = 300\n", allow(&receiver));
    let out = run(&scene, &wf, &nodes, Some(&policy), &[]);
    out.expect_code(0);
    let run = out.json();
    for node in ["hook", "client"] {
        let node_result = node_run(&run, node);
        assert_eq!(node_result["result"], "SUCCESS", "{node_result:#}");
    }
}

#[test]
fn a_spin_while_a_request_is_pending_is_stopped_at_the_cpu_limit() {
    let receiver = Receiver::with_routes(|r| {
        if r.path == "/slow" {
            std::thread::sleep(std::time::Duration::from_secs(20));
        }
        Reply::json(200, json!({"ok": true}))
    });
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let wf = workflow(
        json!({"url": format!("{}/hook", receiver.url()), "method": "GET"}),
        json!({"url": format!("{}/slow", receiver.url()), "method": "POST", "body": "x",
               "mode": "spin-while-pending"}),
    );
    let policy = format!("{}\n[limits]\ncpu_time_ms = 500\n", allow(&receiver));
    let out = run(&scene, &wf, &nodes, Some(&policy), &[]);
    out.expect_code(1);
    let run = out.json();
    let client = node_run(&run, "client");
    assert_eq!(
        client["error"], "CPU time limit of 500 ms exceeded",
        "{client:#}"
    );
    // Stopped at its CPU limit, not when the server answers after 20 s. Generous margin: a
    // loaded machine may deschedule the process, which stretches wall time, not CPU time.
    let took = client["durationMs"].as_u64().unwrap();
    assert!(took < 12_000, "the spinning node ran {took} ms");

    // The POST it left pending was cut short with the node run, and recorded once.
    let audit = scene.audit_records();
    let r = record(&audit, "client");
    assert_eq!(r["method"], "POST");
    assert_eq!(
        r["error"], "cancelled: the node run ended before the request finished",
        "{r:#}"
    );
}

/// The policy allowing `receiver`, with `memory = "16 MiB"`.
fn small_memory(receiver: &Receiver) -> String {
    format!(
        "{}\n[limits]\nmemory = \"16 MiB\"\nwall_time_ms = 30000\n",
        allow(receiver)
    )
}

/// Runs `client` with a warm compile cache and returns the run and how much more resident
/// memory (bytes) the process peaked at than a run of a well-behaved client.
fn extra_rss(scene: &Scene, receiver: &Receiver, nodes: &Path, client: Value) -> (Run, u64) {
    let policy = scene.write("airlock.toml", &small_memory(receiver));
    let hook = json!({"url": format!("{}/hook", receiver.url()), "method": "GET"});
    let quiet = workflow(
        hook.clone(),
        json!({"url": format!("{}/quiet", receiver.url()), "method": "GET", "holdMs": 0}),
    );
    let measure = |wf: &str| {
        let wf = scene.write("wf.json", wf);
        scene.airlock_peak_rss(&[
            "run",
            wf.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--nodes",
            nodes.to_str().unwrap(),
            "--json",
        ])
    };
    // The first run compiles the components, which takes memory of its own.
    measure(&quiet).0.expect_code(0);
    let (quiet_run, baseline) = measure(&quiet);
    quiet_run.expect_code(0);
    let (out, peak) = measure(&workflow(hook, client));
    (out, peak.saturating_sub(baseline))
}

const MIB: u64 = 1 << 20;

#[test]
fn unfinished_request_bodies_stay_within_the_node_memory_limit() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let (out, extra) = extra_rss(
        &scene,
        &receiver,
        &nodes,
        json!({"url": format!("{}/upload", receiver.url()), "mode": "unfinished-bodies",
               "count": 60, "bytes": 15 * MIB, "holdMs": 1500}),
    );
    out.expect_code(0);
    // 60 bodies of 15 MiB would be 900 MiB; the node's 16 MiB limit bounds them all together.
    assert!(
        extra < 32 * MIB,
        "the host grew {} MiB over a quiet run",
        extra / MIB
    );
    let run = out.json();
    let report = &node_run(&run, "client")["output"];
    assert_eq!(report["refused"], 0, "{report}");
    assert_eq!(report["cutShort"], 59, "{report}");
    let received: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    assert!(!received.contains(&"/upload".to_string()), "{received:?}");

    // Every attempt is audited once, as a request that never left.
    let audit = scene.audit_records();
    let records: Vec<&Value> = audit
        .iter()
        .filter(|r| r["node"] == "client" && r["url"].as_str().unwrap().ends_with("/upload"))
        .collect();
    assert_eq!(records.len(), 60, "{records:#?}");
    let over_budget = "request and response bodies buffered for this node run would exceed \
                       its memory limit of 16777216 bytes";
    let mut over = 0;
    for r in &records {
        assert_eq!(r["decision"], "deny", "{r:#}");
        assert_eq!(r["status"], Value::Null, "{r:#}");
        let error = r["error"].as_str().unwrap();
        if error.contains(over_budget) {
            over += 1;
        } else {
            // The one body still open when the node run ended.
            assert!(
                error.contains("cancelled") || error.contains("before its body was finished"),
                "{error}"
            );
        }
    }
    assert_eq!(over, 59);
}

#[test]
fn unread_responses_stay_within_the_node_memory_limit() {
    let receiver = Receiver::with_routes(|r| Reply {
        status: 200,
        headers: Vec::new(),
        body: if r.path == "/big" {
            vec![b'y'; 5 << 20]
        } else {
            b"ok".to_vec()
        },
    });
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let (out, extra) = extra_rss(
        &scene,
        &receiver,
        &nodes,
        json!({"url": format!("{}/big", receiver.url()), "mode": "unread-responses",
               "count": 20, "holdMs": 1500}),
    );
    out.expect_code(0);
    assert!(
        extra < 32 * MIB,
        "the host grew {} MiB over a quiet run",
        extra / MIB
    );
    let run = out.json();
    let report = &node_run(&run, "client")["output"];
    // Three 5 MiB bodies fit in 16 MiB; each later one is refused as it arrives.
    assert_eq!(report["kept"], 3, "{report}");
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 17, "{report}");
    for error in failed {
        assert!(
            error
                .as_str()
                .unwrap()
                .contains("memory limit of 16777216 bytes"),
            "{error}"
        );
    }
    let audit = scene.audit_records();
    let records: Vec<&Value> = audit
        .iter()
        .filter(|r| r["node"] == "client" && r["url"].as_str().unwrap().ends_with("/big"))
        .collect();
    assert_eq!(records.len(), 20, "{records:#?}");
    let errors = records.iter().filter(|r| !r["error"].is_null()).count();
    assert_eq!(errors, 17, "{records:#?}");
}

#[test]
fn every_refused_or_failed_attempt_leaves_exactly_one_record() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let nodes = client_nodes(&scene, &receiver.url());
    let base = receiver.url();
    let many_headers: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("x-{i}"), json!("v"))).collect();
    let cases = [
        (
            "non-ascii",
            json!({"url": format!("{base}/a"), "headers": {"x-name": "café"}}),
            "HttpProtocolError",
            "header x-name has a value that is not ASCII",
        ),
        (
            "long-url",
            json!({"url": format!("{base}/{}", "u".repeat(10_000))}),
            "HttpRequestUriTooLong",
            "exceeds the URL length limit of 8192 bytes",
        ),
        (
            "many-headers",
            json!({"url": format!("{base}/b"), "headers": many_headers}),
            "HttpRequestHeaderSectionSize(Some(100))",
            "101 headers exceed the header count limit of 100",
        ),
        (
            "denied",
            json!({"url": "http://127.0.0.2:9/"}),
            "HttpRequestDenied",
            "denied: ",
        ),
        (
            // Refused by wasmtime's own check in `handle`: a length without a body.
            "no-body",
            json!({"url": format!("{base}/c"), "method": "POST", "skipBody": true,
                   "headers": {"content-length": "5"}}),
            "HttpRequestBodySize",
            "HttpRequestBodySize",
        ),
    ];
    let mut all = vec![json!({"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}})];
    for (name, config, _, _) in &cases {
        let mut config = config.clone();
        config["type"] = json!("HTTP_CLIENT");
        config["onFailure"] = json!("continue");
        all.push(json!({"identifier": name, "config": config}));
    }
    let connections: Vec<Value> = all
        .windows(2)
        .map(|w| json!({"sourceIdentifier": w[0]["identifier"], "targetIdentifier": w[1]["identifier"]}))
        .collect();
    let wf =
        json!({"identifier": "attempts", "nodes": all, "connections": connections}).to_string();
    let out = run(&scene, &wf, &nodes, Some(&allow(&receiver)), &[]);
    let run = out.json();
    assert_eq!(receiver.connections(), 0, "nothing was sent");
    let audit = scene.audit_records();
    assert_eq!(audit.len(), cases.len(), "{audit:#?}");
    for (name, _, code, why) in &cases {
        let node = node_run(&run, name);
        let error = node["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(code), "{name}: {error}");
        let logs = node["logs"].to_string();
        assert!(logs.contains(why), "{name}: {logs}");
        let r = record(&audit, name);
        assert_eq!(r["decision"], "deny", "{r:#}");
        let recorded = format!("{} {}", r["error"], r["rule"]);
        assert!(recorded.contains(why), "{name}: {recorded}");
    }
}
