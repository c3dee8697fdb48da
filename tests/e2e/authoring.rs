//! Authoring nodes in Rust, Python, JavaScript and C: `airlock node new` in a temp dir, `airlock
//! node build` with the language's real toolchain, then `airlock run` of a workflow using the
//! new type against a real local server, through the same egress gate as every node.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::{Receiver, Reply, Run, Scene, node_run};

const CANARY: &str = "canary-author-Wq93k";

/// Answers `/status` with its path and query (so a secret echo would come back), `/missing` 404.
fn receiver() -> Receiver {
    Receiver::with_routes(|r| match r.path.as_str() {
        "/missing" => Reply::json(404, json!({"error": "no such thing"})),
        _ => Reply::json(200, json!({"path": r.path, "query": r.query})),
    })
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `airlock node new DIR --lang LANG`, then the author's edit: the manifest allows `allow` and
/// the secret `api-token`.
pub fn new_project(scene: &Scene, name: &str, lang: &str, allow: &str) -> PathBuf {
    let dir = scene.path(name);
    scene
        .airlock(&["node", "new", path(&dir), "--lang", lang])
        .expect_code(0);
    let manifest = dir.join("node.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text
        .replacen("allow = []", &format!("allow = [\"{allow}\"]"), 1)
        .replacen("allow = []", "allow = [\"api-token\"]", 1);
    std::fs::write(&manifest, text).unwrap();
    dir
}

/// `airlock node build DIR`, which must succeed.
pub fn build(scene: &Scene, dir: &Path) -> Run {
    let out = scene.airlock(&["node", "build", path(dir)]);
    out.expect_code(0);
    assert!(dir.join("node.wasm").is_file(), "{}", out.stderr());
    out
}

/// trigger → `fetch` (the new type) with config `{"url": url}`.
fn workflow(node_type: &str, url: &str) -> String {
    json!({
        "identifier": "authored",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "fetch", "config": {"type": node_type, "url": url}}
        ],
        "connections": [{"sourceIdentifier": "start", "targetIdentifier": "fetch"}]
    })
    .to_string()
}

fn run(scene: &Scene, dir: &Path, node_type: &str, url: &str, receiver: &Receiver) -> Run {
    let wf = scene.write("wf.json", &workflow(node_type, url));
    let policy = scene.allow_policy(receiver);
    let secrets = scene.write("secrets.json", &json!({"api-token": CANARY}).to_string());
    scene.airlock(&[
        "run",
        path(&wf),
        "--nodes",
        path(dir),
        "--policy",
        path(&policy),
        "--secrets",
        path(&secrets),
        "--json",
    ])
}

/// The whole path for one language: scaffold, build, run against a server; then a non-2xx and a
/// denied request fail the node with the reason.
fn scaffold_build_run(lang: &str) {
    let receiver = receiver();
    let scene = Scene::new();
    let dir = new_project(&scene, "status-check", lang, &receiver.url());
    build(&scene, &dir);

    let url = format!(
        "{}/status?token={{{{ .secrets[\"api-token\"] }}}}",
        receiver.url()
    );
    let out = run(&scene, &dir, "STATUS_CHECK", &url, &receiver);
    out.expect_code(0);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{lang}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/status");
    assert_eq!(
        requests[0].query.as_deref(),
        Some(&*format!("token={CANARY}")),
        "the gate put the secret's value in"
    );

    let run_json = out.json();
    let fetch = node_run(&run_json, "fetch");
    assert_eq!(fetch["result"], "SUCCESS", "{lang}: {fetch:#}");
    assert_eq!(fetch["output"]["status"], 200, "{lang}: {fetch:#}");
    assert_eq!(fetch["output"]["data"]["path"], "/status");
    assert_eq!(
        fetch["output"]["data"]["query"], "token=[secret:api-token]",
        "{lang}: the echoed secret is redacted"
    );
    let logs = fetch["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{lang}: {logs:?}");
    assert_eq!(logs[0]["logLevel"], "INFO");
    let line = logs[0]["log"].as_str().unwrap();
    assert!(line.starts_with("GET http://127.0.0.1:"), "{lang}: {line}");
    assert!(line.ends_with("-> HTTP 200"), "{lang}: {line}");
    assert!(
        line.contains("[secret:api-token]") || line.contains("__airlock_secret_"),
        "{lang}: the node holds a handle: {line}"
    );

    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1, "{lang}");
    assert_eq!(audit[0]["node"], "fetch");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[0]["method"], "GET");
    assert_eq!(audit[0]["status"], 200);
    assert!(
        audit[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/status?token=[secret:api-token]"),
        "{}",
        audit[0]["url"]
    );
    assert_eq!(audit[0]["secrets"], json!(["api-token"]));
    scene.assert_nowhere(&out, &[CANARY]);

    // A non-2xx answer fails the node with the status.
    let out = run(
        &scene,
        &dir,
        "STATUS_CHECK",
        &format!("{}/missing", receiver.url()),
        &receiver,
    );
    out.expect_code(1);
    let error = node_run(&out.json(), "fetch")["error"].to_string();
    assert!(error.contains("answered HTTP 404"), "{lang}: {error}");

    // A destination the manifest does not allow is denied by the gate, which fails the node.
    let out = run(
        &scene,
        &dir,
        "STATUS_CHECK",
        "http://127.0.0.1:9/elsewhere",
        &receiver,
    );
    out.expect_code(1);
    let error = node_run(&out.json(), "fetch")["error"].to_string();
    assert!(
        error.contains("request denied by the egress policy"),
        "{lang}: {error}"
    );
    let denied = scene.audit_records().pop().unwrap();
    assert_eq!(denied["decision"], "deny");
    assert_eq!(
        receiver.requests().len(),
        2,
        "the denied request was not sent"
    );
}

#[test]
fn a_rust_node_is_scaffolded_built_and_run() {
    scaffold_build_run("rust");
}

#[test]
fn a_python_node_is_scaffolded_built_and_run() {
    scaffold_build_run("python");
}

#[test]
fn a_javascript_node_is_scaffolded_built_and_run() {
    scaffold_build_run("js");
}

#[test]
fn a_c_node_is_scaffolded_built_and_run() {
    scaffold_build_run("c");
}

#[test]
fn node_new_refuses_a_non_empty_directory() {
    let scene = Scene::new();
    let dir = scene.path("taken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mine.txt"), "keep").unwrap();
    let out = scene.airlock(&["node", "new", path(&dir), "--lang", "python"]);
    out.expect_code(2);
    assert!(out.stderr().contains("not empty"), "{}", out.stderr());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn a_missing_toolchain_names_its_install_command() {
    let scene = Scene::new();
    let cases = [
        ("python", "pip install componentize-py==0.25.1"),
        (
            "js",
            "npm install -g @bytecodealliance/componentize-js@0.23.0",
        ),
        (
            "c",
            "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32",
        ),
    ];
    for (lang, install) in cases {
        let dir = scene.path(&format!("n-{lang}"));
        scene
            .airlock(&["node", "new", path(&dir), "--lang", lang])
            .expect_code(0);
        // An empty PATH: no toolchain can be found.
        let out = Run(std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["node", "build", path(&dir)])
            .env("PATH", scene.path("empty-bin"))
            .env("AIRLOCK_STATE_DIR", scene.state_dir())
            .output()
            .unwrap());
        out.expect_code(2);
        assert!(out.stderr().contains(install), "{lang}: {}", out.stderr());
        assert!(!dir.join("node.wasm").exists());
    }
}

#[test]
fn a_component_importing_what_the_host_lacks_is_refused_naming_the_import() {
    let scene = Scene::new();
    let file = scene.path("foreign.wasm");
    std::fs::copy(env!("AIRLOCK_NODE_FOREIGN"), &file).unwrap();
    let out = scene.airlock(&["node", "inspect", path(&file)]);
    out.expect_code(2);
    let stdout = out.stdout();
    assert!(
        stdout.contains("acme:vault/keys") && stdout.contains("NOT PROVIDED"),
        "{stdout}"
    );
    assert!(
        out.stderr()
            .contains("imports `acme:vault/keys`, which this host does not provide"),
        "{}",
        out.stderr()
    );

    // run and validate refuse it the same way when it is loaded as a node.
    let dir = scene.path("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&file, dir.join("node.wasm")).unwrap();
    std::fs::write(
        dir.join("node.toml"),
        "type = \"FOREIGN\"\ncomponent = \"node.wasm\"\n",
    )
    .unwrap();
    let wf = scene.write("wf.json", &workflow("FOREIGN", "http://127.0.0.1:9/"));
    for command in ["run", "validate"] {
        let out = scene.airlock(&[command, path(&wf), "--nodes", path(&dir)]);
        out.expect_code(2);
        assert!(
            out.stderr()
                .contains("imports `acme:vault/keys`, which this host does not provide"),
            "{command}: {}",
            out.stderr()
        );
    }
}

#[test]
fn inspect_describes_a_runnable_component() {
    let scene = Scene::new();
    let file = scene.path("echo.wasm");
    std::fs::copy(env!("AIRLOCK_NODE_ECHO"), &file).unwrap();
    let out = scene.airlock(&["node", "inspect", path(&file)]);
    out.expect_code(0);
    let stdout = out.stdout();
    let bytes = std::fs::read(&file).unwrap();
    for expected in [
        "world     airlock:node/action-node",
        "exports   run",
        "airlock:node/log@0.1.0                     the node run's logs",
        "runnable  yes",
        &format!("{} bytes", bytes.len()),
        "digest    sha256:",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
}

const HOSTILE_PYTHON: &str = r#"
import airlock_node as airlock
from airlock_node import WitWorld  # noqa: F401


@airlock.node
def run(ctx, config):
    if config["do"] == "spin":
        while True:
            pass
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))
"#;

const HOSTILE_JS: &str = r#"
import { node } from "./airlock.js";

export const run = node((ctx, config) => {
  if (config.do === "spin") for (;;) {}
  const hoard = [];
  for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
});
"#;

/// An infinite loop and a memory bomb in a language with its own runtime: each is stopped at its
/// limit and fails its own node run, and the workflow goes on to the next node.
fn hostile(lang: &str, source_file: &str, source: &str) {
    let scene = Scene::new();
    let dir = new_project(&scene, "hostile", lang, "http://127.0.0.1:9");
    std::fs::write(dir.join(source_file), source).unwrap();
    build(&scene, &dir);
    let wf = json!({
        "identifier": "hostile",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "spin", "config": {"type": "HOSTILE", "do": "spin", "onFailure": "continue"}},
            {"identifier": "hoard", "config": {"type": "HOSTILE", "do": "hoard"}}
        ],
        "connections": [
            {"sourceIdentifier": "start", "targetIdentifier": "spin"},
            {"sourceIdentifier": "spin", "targetIdentifier": "hoard"}
        ]
    });
    let wf = scene.write("wf.json", &wf.to_string());
    let policy = scene.write(
        "airlock.toml",
        "[limits]\ncpu_time_ms = 1000\nmemory = \"64 MiB\"\n",
    );
    let started = std::time::Instant::now();
    let out = scene.airlock(&[
        "run",
        path(&wf),
        "--nodes",
        path(&dir),
        "--policy",
        path(&policy),
        "--json",
    ]);
    out.expect_code(1);
    let run = out.json();
    assert_eq!(
        node_run(&run, "spin")["error"],
        "CPU time limit of 1000 ms exceeded",
        "{lang}: {run:#}"
    );
    assert_eq!(
        node_run(&run, "hoard")["error"],
        format!("memory limit of {} bytes exceeded", 64 << 20),
        "{lang}: {run:#}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{lang}"
    );
}

#[test]
fn a_hostile_python_node_is_stopped_at_its_limits() {
    hostile("python", "app.py", HOSTILE_PYTHON);
}

#[test]
fn a_hostile_javascript_node_is_stopped_at_its_limits() {
    hostile("js", "app.js", HOSTILE_JS);
}

/// `node build` compiles the component into the state dir's cache: the run that follows loads
/// it from there and compiles nothing.
#[test]
fn node_build_precompiles_so_the_first_run_does_not_compile() {
    let receiver = receiver();
    let scene = Scene::new();
    let dir = new_project(&scene, "cached", "python", &receiver.url());
    build(&scene, &dir);
    let cache = scene.state_dir().join("cache");
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let after_build = entries();
    assert_eq!(after_build.len(), 1, "{after_build:?}");
    let out = run(
        &scene,
        &dir,
        "CACHED",
        &format!("{}/status", receiver.url()),
        &receiver,
    );
    out.expect_code(0);
    let after_run = entries();
    // The built-in WEBHOOK node is compiled on the first run; the Python node is not again.
    assert!(after_run.contains(&after_build[0]), "{after_run:?}");
    assert_eq!(after_run.len(), 2, "{after_run:?}");
}
