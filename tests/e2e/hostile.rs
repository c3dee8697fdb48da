//! Hostile nodes (nodes/testing/hostile, one behaviour per `config.mode`): each fails its own
//! node run with a message naming the limit and its value, the process exits 1 rather than
//! crashing, and a normal run in the same process at the same time is unaffected.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::config::PolicyFile;
use airlock::engine::{Runtime, StateDir, WorkflowRun, load_dirs};
use airlock::sandbox::Slots;
use airlock::secrets::SecretStore;
use airlock::workflow::Workflow;
use serde_json::{Value, json};

use crate::support::{Receiver, Run, Scene, node_run};

/// A node directory serving `HOSTILE` (and, for the normal runs, `ECHO`).
fn node_dirs(scene: &Scene, hostile_manifest_extra: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (name, node_type, wasm, extra) in [
        (
            "hostile",
            "HOSTILE",
            env!("AIRLOCK_NODE_HOSTILE"),
            hostile_manifest_extra,
        ),
        ("echo", "ECHO", env!("AIRLOCK_NODE_ECHO"), ""),
    ] {
        let dir = scene.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(wasm, dir.join("node.wasm")).unwrap();
        let manifest = format!("type = \"{node_type}\"\ncomponent = \"node.wasm\"\n{extra}");
        std::fs::write(dir.join("node.toml"), manifest).unwrap();
        dirs.push(dir);
    }
    dirs
}

/// The trigger, then each of `nodes` in a chain.
fn workflow(nodes: Vec<Value>) -> String {
    let mut all = vec![json!({"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}})];
    all.extend(nodes);
    let connections: Vec<Value> = all
        .windows(2)
        .map(|w| json!({"sourceIdentifier": w[0]["identifier"], "targetIdentifier": w[1]["identifier"]}))
        .collect();
    json!({"identifier": "hostile", "nodes": all, "connections": connections}).to_string()
}

fn hostile(mode: &str, extra: Value) -> Value {
    let mut config = json!({"type": "HOSTILE", "mode": mode});
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    json!({"identifier": "bad", "config": config})
}

/// `airlock run` of one hostile node under `policy`; returns the failed node run and the run.
fn run_cli(scene: &Scene, node: Value, policy: &str, manifest_extra: &str) -> (Value, Value) {
    let dirs = node_dirs(scene, manifest_extra);
    let wf = scene.write("wf.json", &workflow(vec![node]));
    let policy = scene.write("airlock.toml", policy);
    let mut args = vec![
        "run",
        wf.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ];
    for dir in &dirs {
        args.extend(["--nodes", dir.to_str().unwrap()]);
    }
    args.push("--json");
    let out = scene.airlock(&args);
    out.expect_code(1);
    let run = out.json();
    assert_eq!(run["result"], "FAILED", "{run:#}");
    let bad = node_run(&run, "bad").clone();
    assert_eq!(bad["result"], "FAILED", "{run:#}");
    (bad, run)
}

fn error_of(node_run: &Value) -> &str {
    node_run["error"].as_str().unwrap_or_default()
}

fn millis(node_run: &Value) -> u64 {
    node_run["durationMs"].as_u64().unwrap()
}

#[test]
fn an_infinite_loop_is_stopped_at_its_cpu_time() {
    let scene = Scene::new();
    let (bad, _) = run_cli(
        &scene,
        hostile("loop", json!({})),
        "[limits]\ncpu_time_ms = 500\n",
        "",
    );
    assert_eq!(error_of(&bad), "CPU time limit of 500 ms exceeded");
    // Generous margin: a loaded CI machine may deschedule the process.
    assert!(millis(&bad) < 10_000, "{bad:#}");
}

#[test]
fn a_memory_bomb_is_stopped_at_its_memory_limit() {
    let scene = Scene::new();
    let (bad, _) = run_cli(
        &scene,
        hostile("memory", json!({})),
        "[limits]\nmemory = \"16 MiB\"\n",
        "",
    );
    assert_eq!(error_of(&bad), "memory limit of 16777216 bytes exceeded");
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let scene = Scene::new();
    let (bad, _) = run_cli(&scene, hostile("recursion", json!({})), "", "");
    assert_eq!(error_of(&bad), "stack overflow (recursion too deep)");
}

#[test]
fn a_panic_fails_the_node_run() {
    let scene = Scene::new();
    let (bad, _) = run_cli(&scene, hostile("panic", json!({})), "", "");
    assert_eq!(
        error_of(&bad),
        "the node crashed (panic or unreachable code reached)"
    );
}

#[test]
fn a_huge_output_is_refused_at_the_output_limit() {
    let scene = Scene::new();
    // Memory enough to build 100 MiB of output: the output limit must be what stops it.
    let policy = "[limits]\noutput = \"4 MiB\"\n[limits.nodes.bad]\nmemory = \"512 MiB\"\n";
    let (bad, _) = run_cli(&scene, hostile("output", json!({})), policy, "");
    assert_eq!(
        error_of(&bad),
        format!(
            "output of {} bytes exceeds the output limit of 4194304 bytes",
            (100 << 20) + 2
        )
    );
}

#[test]
fn a_log_flood_is_stopped_at_the_log_limit() {
    let scene = Scene::new();
    let (bad, _) = run_cli(
        &scene,
        hostile("logs", json!({})),
        "[limits]\nlogs = \"256 KiB\"\n",
        "",
    );
    assert_eq!(error_of(&bad), "log limit of 262144 bytes exceeded");
    // What was logged before the limit is kept, within the limit.
    let logged: usize = bad["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["log"].as_str().unwrap().len())
        .sum();
    assert!(logged > 0 && logged <= 256 << 10, "{logged}");
}

#[test]
fn ten_thousand_requests_stop_at_the_request_cap() {
    let scene = Scene::new();
    let receiver = Receiver::start();
    let policy = format!(
        "[egress]\nallow = [\"{}\"]\n[limits]\nrequests = 100\n[limits.nodes.bad]\nrequests = 25\n",
        receiver.url()
    );
    let node = hostile("requests", json!({"url": format!("{}/x", receiver.url())}));
    let manifest = format!("[egress]\nallow = [\"{}\"]\n", receiver.url());
    let (bad, _) = run_cli(&scene, node, &policy, &manifest);
    assert_eq!(
        error_of(&bad),
        "request limit of 25 egress requests per node run exceeded"
    );
    assert_eq!(receiver.requests().len(), 25);
    // 25 sent, then the attempt that stopped the node: refused, and audited as a deny.
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 26);
    assert!(audit[..25].iter().all(|r| r["decision"] == "allow"));
    assert_eq!(audit[25]["decision"], "deny");
    assert_eq!(
        audit[25]["rule"],
        "request limit of 25 egress requests per node run exceeded"
    );
    assert!(
        audit[25]["url"].as_str().unwrap().ends_with("/x"),
        "{}",
        audit[25]
    );
    scene.airlock(&["audit", "verify"]).expect_code(0);
}

/// `airlock run` of `nodes` (after the trigger) under `policy`, exit code unchecked.
fn run_chain(scene: &Scene, nodes: Vec<Value>, policy: &str, manifest_extra: &str) -> Run {
    let dirs = node_dirs(scene, manifest_extra);
    let wf = scene.write("wf.json", &workflow(nodes));
    let policy = scene.write("airlock.toml", policy);
    let mut args = vec![
        "run",
        wf.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ];
    for dir in &dirs {
        args.extend(["--nodes", dir.to_str().unwrap()]);
    }
    args.push("--json");
    scene.airlock(&args)
}

/// Node runs of one component reuse instance slots whose dirtied pages are restored in place:
/// nothing a node run leaves in memory, in its image's pages or in pages it grew, reaches the
/// next node run, nor a later workflow run in the same process.
#[test]
fn a_node_run_finds_nothing_an_earlier_one_left_in_memory() {
    let scene = Scene::new();
    let nodes: Vec<Value> = (0..4)
        .map(|i| {
            let mut node = hostile("remember", json!({"marker": format!("left-by-run-{i}")}));
            node["identifier"] = json!(format!("remember{i}"));
            node
        })
        .collect();
    for round in 0..2 {
        let out = run_chain(&scene, nodes.clone(), "", "");
        assert_eq!(out.code(), 0, "{}", out.stderr());
        let run = out.json();
        for i in 0..4 {
            let seen = &node_run(&run, &format!("remember{i}"))["output"];
            assert_eq!(seen["inStatic"], "", "round {round}, node run {i}: {seen}");
            assert_eq!(
                seen["nonzeroInHeap"], 0,
                "round {round}, node run {i}: {seen}"
            );
        }
    }
}

#[test]
fn a_hundred_one_megabyte_urls_are_refused_without_filling_the_audit_log() {
    let scene = Scene::new();
    let receiver = Receiver::start();
    let policy = format!("[egress]\nallow = [\"{}\"]\n", receiver.url());
    let url = format!("{}/x", receiver.url());
    let node = hostile(
        "long-urls",
        json!({"url": url, "count": 100, "bytes": 1 << 20}),
    );
    let out = run_chain(&scene, vec![node], &policy, &policy);
    out.expect_code(0);
    let run = out.json();
    let url_bytes = url.len() + 3 + (1 << 20);
    let limit = format!("URL of {url_bytes} bytes exceeds the URL length limit of 8192 bytes");
    let first_error = node_run(&run, "bad")["output"]["firstError"].to_string();
    assert!(first_error.contains(&limit), "{first_error}");
    assert!(receiver.requests().is_empty());

    let audit = scene.audit_records();
    assert_eq!(audit.len(), 100);
    for r in &audit {
        assert_eq!(r["decision"], "deny");
        assert!(
            r["error"].as_str().unwrap().contains(&limit),
            "{}",
            r["error"]
        );
        let recorded = r["url"].as_str().unwrap();
        assert!(recorded.starts_with(&url), "{}", &recorded[..80]);
        assert!(
            recorded.ends_with("exceed the audit field limit of 2048 bytes]"),
            "{}",
            &recorded[recorded.len() - 80..]
        );
        assert_eq!(r["host"], "127.0.0.1");
    }
    let log = std::fs::metadata(scene.state_dir().join("audit.jsonl"))
        .unwrap()
        .len();
    assert!(
        log < 1 << 20,
        "100 refused 1 MB URLs took {log} bytes of audit log"
    );
    scene.airlock(&["audit", "verify"]).expect_code(0);
}

#[test]
fn a_huge_error_is_capped_before_it_is_stored_or_handed_on() {
    let scene = Scene::new();
    let mut bad = hostile("huge-error", json!({"bytes": 6 << 20}));
    bad["config"]["onFailure"] = json!("continue");
    let next = json!({"identifier": "next",
                      "config": {"type": "ECHO", "got": "{{ .outputs.bad.error.message }}"}});
    let out = run_chain(&scene, vec![bad, next], "", "");
    let run = out.json();
    let error = error_of(node_run(&run, "bad")).to_string();
    assert!(
        error.starts_with(
            "error message of 6291456 bytes exceeds the error limit of 65536 bytes; it began: eee"
        ),
        "{}",
        &error[..error.len().min(200)]
    );
    assert!(error.len() < 1024, "{}", error.len());
    let handed_on = &node_run(&run, "next")["output"]["config"]["got"];
    assert_eq!(handed_on, &json!(error));
    let store = std::fs::metadata(scene.state_dir().join("runs.db"))
        .unwrap()
        .len();
    assert!(store < 1 << 20, "the run store holds {store} bytes");
}

#[test]
fn a_node_waiting_forever_is_stopped_at_its_wall_time() {
    let scene = Scene::new();
    let (bad, _) = run_cli(
        &scene,
        hostile("sleep", json!({})),
        "[limits]\nwall_time_ms = 400\n",
        "",
    );
    assert_eq!(error_of(&bad), "wall-time limit of 400 ms exceeded");
    assert!(millis(&bad) < 10_000, "{bad:#}");
}

#[test]
fn a_manifest_sets_its_nodes_limits_and_the_policy_node_table_wins() {
    let scene = Scene::new();
    let (bad, _) = run_cli(
        &scene,
        hostile("loop", json!({})),
        "",
        "[limits]\ncpu_time_ms = 300\n",
    );
    assert_eq!(error_of(&bad), "CPU time limit of 300 ms exceeded");

    let scene = Scene::new();
    let (bad, _) = run_cli(
        &scene,
        hostile("loop", json!({})),
        "[limits.nodes.bad]\ncpu_time_ms = 200\n",
        "[limits]\ncpu_time_ms = 300\n",
    );
    assert_eq!(error_of(&bad), "CPU time limit of 200 ms exceeded");
}

#[test]
fn wasi_grants_no_files_environment_or_sockets() {
    let scene = Scene::new();
    let receiver = Receiver::start();
    let dirs = node_dirs(&scene, "");
    let node = hostile("escape", json!({"addr": receiver.addr.to_string()}));
    let wf = scene.write("wf.json", &workflow(vec![node]));
    let out = scene.airlock(&[
        "run",
        wf.to_str().unwrap(),
        "--nodes",
        dirs[0].to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(0);
    let run = out.json();
    let seen = &node_run(&run, "bad")["output"];
    for key in ["passwd", "rootDir", "cwd", "write", "socket"] {
        assert!(seen[key]["error"].is_string(), "{key} succeeded: {seen:#}");
    }
    assert_eq!(seen["env"], json!([]), "{seen:#}");
    assert_eq!(seen["args"], json!([]), "{seen:#}");
    assert_eq!(receiver.connections(), 0);
}

#[test]
fn a_bad_limits_table_is_invalid_input_naming_file_key_and_reason() {
    let scene = Scene::new();
    let wf = scene.write("wf.json", &workflow(Vec::new()));
    for (policy, key, reason) in [
        (
            "[limits]\nmemory = \"64 XB\"\n",
            "limits.memory",
            "is not a size such as",
        ),
        ("[limits]\ncpu = 5\n", "limits.cpu", "unknown field `cpu`"),
        (
            "[limits.nodes.x]\nrequests = -1\n",
            "limits.nodes.x.requests",
            "-1",
        ),
    ] {
        let file = scene.write("bad.toml", policy);
        let out = scene.airlock(&[
            "run",
            wf.to_str().unwrap(),
            "--policy",
            file.to_str().unwrap(),
        ]);
        out.expect_code(2);
        let stderr = out.stderr();
        for part in [file.to_str().unwrap(), key, reason] {
            assert!(stderr.contains(part), "{part:?} not in {stderr}");
        }
    }
}

/// Library level: one Runtime, as `airlock serve` would hold, for concurrent runs.
fn lib_runtime(scene: &Scene, policy: &str, manifest_extra: &str, slots: Slots) -> Runtime {
    let policy = PolicyFile::parse(policy, "policy").unwrap();
    let state = StateDir::new(scene.dir.path());
    let mut runtime = Runtime::open(&state, policy, SecretStore::empty(), slots).unwrap();
    let manifests = load_dirs(&node_dirs(scene, manifest_extra)).unwrap();
    runtime.add_custom_nodes(manifests).unwrap();
    runtime
}

/// Starts a run on its own task, as a server would; resolves to the run and how long it took.
fn spawn_run(
    runtime: &Arc<Runtime>,
    nodes: Vec<Value>,
) -> tokio::task::JoinHandle<(WorkflowRun, Duration)> {
    let runtime = Arc::clone(runtime);
    let types = runtime.nodes.custom_types();
    let workflow = Workflow::from_json(&workflow(nodes), "test", &types).unwrap();
    tokio::spawn(async move {
        let trigger = workflow.triggers()[0];
        let started = Instant::now();
        let run = runtime.run(&workflow, trigger, json!({})).await;
        (run, started.elapsed())
    })
}

fn error_in(run: &WorkflowRun) -> String {
    let bad = run.node_runs.iter().find(|n| n.node == "bad").unwrap();
    bad.error.clone().unwrap_or_default()
}

#[test]
fn hostile_runs_fail_alone_while_a_normal_run_in_the_same_process_succeeds() {
    let scene = Scene::new();
    let receiver = Receiver::start();
    let policy = format!(
        "[egress]\nallow = [\"{}\"]\n\
         [limits]\ncpu_time_ms = 2000\nmemory = \"32 MiB\"\nlogs = \"64 KiB\"\nrequests = 30\n",
        receiver.url()
    );
    let manifest = format!("[egress]\nallow = [\"{}\"]\n", receiver.url());
    let runtime = Arc::new(lib_runtime(&scene, &policy, &manifest, Slots::SERVER));
    let url = format!("{}/x", receiver.url());
    let hostiles = [
        ("loop", json!({}), "CPU time limit of 2000 ms exceeded"),
        (
            "memory",
            json!({}),
            "memory limit of 33554432 bytes exceeded",
        ),
        (
            "recursion",
            json!({}),
            "stack overflow (recursion too deep)",
        ),
        (
            "panic",
            json!({}),
            "the node crashed (panic or unreachable code reached)",
        ),
        ("logs", json!({}), "log limit of 65536 bytes exceeded"),
        (
            "requests",
            json!({"url": url}),
            "request limit of 30 egress requests per node run exceeded",
        ),
    ];
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (hostile_runs, normal) = tokio.block_on(async {
        let started: Vec<_> = hostiles
            .iter()
            .map(|(mode, extra, _)| spawn_run(&runtime, vec![hostile(mode, extra.clone())]))
            .collect();
        // While the hostile runs are going, normal runs one after another must stay quick.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut normal = Vec::new();
        for i in 0..5 {
            let node = json!({"identifier": "ok", "config": {"type": "ECHO", "n": i}});
            normal.push(spawn_run(&runtime, vec![node]).await.unwrap());
        }
        let mut hostile_runs = Vec::new();
        for run in started {
            hostile_runs.push(run.await.unwrap());
        }
        (hostile_runs, normal)
    });
    for ((mode, _, message), (run, took)) in hostiles.iter().zip(&hostile_runs) {
        assert!(!run.succeeded(), "{mode}");
        assert_eq!(error_in(run), *message, "{mode}");
        assert!(took < &Duration::from_secs(30), "{mode} took {took:?}");
    }
    let loop_took = hostile_runs[0].1;
    assert!(loop_took >= Duration::from_secs(2), "{loop_took:?}");
    for (run, took) in normal {
        assert!(run.succeeded(), "{run:#?}");
        assert!(took < Duration::from_secs(1), "a normal run took {took:?}");
    }
    assert_eq!(receiver.requests().len(), 30);
}

#[test]
fn a_node_run_beyond_the_instance_slots_waits_for_one() {
    let scene = Scene::new();
    let policy = "[limits]\ncpu_time_ms = 1000\n";
    let runtime = Arc::new(lib_runtime(&scene, policy, "", Slots::new(1)));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ((looping, _), (echo, echo_took)) = tokio.block_on(async {
        let looping = spawn_run(&runtime, vec![hostile("loop", json!({}))]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let node = json!({"identifier": "ok", "config": {"type": "ECHO", "n": 1}});
        let echo = spawn_run(&runtime, vec![node]);
        (looping.await.unwrap(), echo.await.unwrap())
    });
    assert_eq!(error_in(&looping), "CPU time limit of 1000 ms exceeded");
    assert!(echo.succeeded(), "{echo:#?}");
    // The one slot was the looping node run's until its limit stopped it.
    assert!(
        echo_took >= Duration::from_millis(600),
        "the second node run did not wait for the slot: {echo_took:?}"
    );
}
