//! Custom nodes: components loaded with `--nodes DIR` and their `node.toml` manifests, whose
//! egress and secrets allow lists narrow what the policy grants.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Receiver, Scene, node_run};

/// Puts `component` and a manifest for `node_type` in `scene/dir` (created as needed).
fn node_dir(scene: &Scene, dir: &str, node_type: &str, component: &[u8], extra: &str) -> PathBuf {
    let dir = scene.path(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("node.wasm"), component).unwrap();
    let manifest = format!("type = \"{node_type}\"\ncomponent = \"node.wasm\"\n{extra}");
    std::fs::write(dir.join("node.toml"), manifest).unwrap();
    dir
}

fn echo() -> Vec<u8> {
    std::fs::read(env!("AIRLOCK_NODE_ECHO")).unwrap()
}

fn webhook_component() -> Vec<u8> {
    std::fs::read(env!("AIRLOCK_NODE_WEBHOOK")).unwrap()
}

/// A trigger followed by `nodes`, each connected to the next.
fn workflow(nodes: Vec<Value>) -> String {
    crate::support::chain_workflow("custom", nodes)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `airlock COMMAND wf.json --nodes DIR...` plus `extra` arguments.
fn airlock(
    scene: &Scene,
    command: &str,
    wf: &Path,
    dirs: &[&Path],
    extra: &[&str],
) -> crate::support::Run {
    let mut args = vec![command, path(wf)];
    for dir in dirs {
        args.extend(["--nodes", path(dir)]);
    }
    args.extend(extra);
    scene.airlock(&args)
}

#[test]
fn a_custom_node_runs_with_its_rendered_config() {
    let scene = Scene::new();
    let nodes = node_dir(
        &scene,
        "echo",
        "ECHO_NODE",
        &echo(),
        "description = \"echo\"\n",
    );
    let wf = scene.write(
        "wf.json",
        &workflow(vec![json!({"identifier": "greet", "config": {
            "type": "ECHO_NODE", "greeting": "hello {{ .outputs.trigger.name }}"}})]),
    );
    airlock(&scene, "validate", &wf, &[&nodes], &[]).expect_code(0);
    let out = airlock(
        &scene,
        "run",
        &wf,
        &[&nodes],
        &["--inputs", r#"{"name":"Ada"}"#, "--json"],
    );
    out.expect_code(0);
    let run = out.json();
    assert_eq!(run["result"], "SUCCESS");
    let greet = node_run(&run, "greet");
    assert_eq!(greet["output"]["config"]["greeting"], "hello Ada");
    assert_eq!(greet["output"]["context"]["node"], "greet");
}

#[test]
fn a_type_no_manifest_serves_is_invalid() {
    let scene = Scene::new();
    let nodes = node_dir(&scene, "echo", "ECHO_NODE", &echo(), "");
    let wf = scene.write(
        "wf.json",
        &workflow(vec![
            json!({"identifier": "x", "config": {"type": "OTHER_NODE"}}),
        ]),
    );
    for command in ["run", "validate"] {
        let out = airlock(&scene, command, &wf, &[&nodes], &[]);
        out.expect_code(2);
        assert!(out.stderr().contains("OTHER_NODE"), "{}", out.stderr());
        assert!(
            out.stderr().contains("ECHO_NODE"),
            "lists the known types: {}",
            out.stderr()
        );
    }
    // Without --nodes, the custom type is unknown too.
    let wf = scene.write(
        "wf2.json",
        &workflow(vec![
            json!({"identifier": "x", "config": {"type": "ECHO_NODE"}}),
        ]),
    );
    airlock(&scene, "run", &wf, &[], &[]).expect_code(2);
    assert!(!scene.state_dir().exists(), "nothing may be written");
}

#[test]
fn a_component_of_another_world_is_refused_at_load() {
    let scene = Scene::new();
    let wrong = std::fs::read(env!("AIRLOCK_NODE_WRONG_WORLD")).unwrap();
    let nodes = node_dir(&scene, "wrong", "GREETER", &wrong, "");
    let wf = scene.write(
        "wf.json",
        &workflow(vec![
            json!({"identifier": "x", "config": {"type": "GREETER"}}),
        ]),
    );
    for command in ["run", "validate"] {
        let out = airlock(&scene, command, &wf, &[&nodes], &[]);
        out.expect_code(2);
        let stderr = out.stderr();
        assert!(
            stderr.contains(path(&nodes.join("node.wasm"))),
            "names the file: {stderr}"
        );
        assert!(
            stderr.contains("does not implement the airlock:node/action-node world"),
            "{stderr}"
        );
    }
}

#[test]
fn a_corrupt_component_is_refused_at_load() {
    let scene = Scene::new();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let nodes = node_dir(&scene, "corrupt", "BROKEN", &garbage, "");
    let wf = scene.write(
        "wf.json",
        &workflow(vec![
            json!({"identifier": "x", "config": {"type": "BROKEN"}}),
        ]),
    );
    let out = airlock(&scene, "run", &wf, &[&nodes], &[]);
    out.expect_code(2);
    let stderr = out.stderr();
    assert!(
        stderr.contains(path(&nodes.join("node.wasm"))),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
}

#[test]
fn the_manifest_allow_list_narrows_the_policy() {
    let inside = Receiver::start();
    let outside = Receiver::start();
    let scene = Scene::new();
    // One --nodes directory holding two nodes, one per sub-directory.
    node_dir(&scene, "nodes/echo", "ECHO_NODE", &echo(), "");
    node_dir(
        &scene,
        "nodes/limited",
        "LIMITED_WEBHOOK",
        &webhook_component(),
        &format!("[egress]\nallow = [\"{}\"]\n", inside.url()),
    );
    let policy = scene.write(
        "airlock.toml",
        &format!(
            "[egress]\nallow = [\"{}\", \"{}\"]\n",
            inside.url(),
            outside.url()
        ),
    );
    let wf = scene.write(
        "wf.json",
        &workflow(vec![
            json!({"identifier": "echo", "config": {"type": "ECHO_NODE"}}),
            json!({"identifier": "in", "config": {
                "type": "LIMITED_WEBHOOK", "url": format!("{}/in", inside.url())}}),
            json!({"identifier": "out", "config": {
                "type": "LIMITED_WEBHOOK", "url": format!("{}/out", outside.url())}}),
        ]),
    );
    let nodes = scene.path("nodes");
    let out = airlock(
        &scene,
        "run",
        &wf,
        &[&nodes],
        &["--policy", path(&policy), "--json"],
    );
    out.expect_code(1);
    let run = out.json();
    assert_eq!(node_run(&run, "in")["result"], "SUCCESS");
    let denied = node_run(&run, "out");
    assert_eq!(denied["result"], "FAILED");
    let rule = format!("node manifest does not allow {}", outside.url());
    assert!(
        denied["error"].as_str().unwrap().contains(&rule),
        "{denied}"
    );
    assert_eq!(inside.requests().len(), 1);
    assert_eq!(
        outside.connections(),
        0,
        "the receiver outside the manifest is never contacted"
    );

    let audit = scene.audit_records();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[1]["decision"], "deny");
    assert_eq!(audit[1]["node"], "out");
    assert_eq!(audit[1]["rule"], rule.as_str());

    // The built-in WEBHOOK, run with the same --nodes, is governed by the policy alone.
    let wf = scene.write(
        "wf2.json",
        &workflow(vec![json!({"identifier": "builtin", "config": {
            "type": "WEBHOOK", "url": format!("{}/builtin", outside.url())}})]),
    );
    airlock(&scene, "run", &wf, &[&nodes], &["--policy", path(&policy)]).expect_code(0);
    assert_eq!(outside.requests().len(), 1);
}

#[test]
fn secrets_outside_the_manifest_are_refused_before_anything_runs() {
    let scene = Scene::new();
    let nodes = node_dir(
        &scene,
        "echo",
        "ECHO_NODE",
        &echo(),
        "[secrets]\nallow = [\"slack-token\"]\n",
    );
    let secrets = scene.write(
        "secrets.json",
        &json!({"slack-token": "slack-VALUE-1", "github-token": "github-VALUE-2"}).to_string(),
    );
    let wf = scene.write(
        "wf.json",
        &workflow(vec![json!({"identifier": "leak", "config": {
            "type": "ECHO_NODE", "token": "{{ .secrets[\"github-token\"] }}"}})]),
    );
    for command in ["run", "validate"] {
        let mut extra = vec![];
        if command == "run" {
            extra = vec!["--secrets", path(&secrets)];
        }
        let out = airlock(&scene, command, &wf, &[&nodes], &extra);
        out.expect_code(2);
        let stderr = out.stderr();
        assert!(stderr.contains("wf.json"), "{stderr}");
        assert!(stderr.contains("\"leak\""), "{stderr}");
        assert!(stderr.contains("github-token"), "{stderr}");
        assert!(stderr.contains(path(&nodes.join("node.toml"))), "{stderr}");
    }
    assert!(!scene.state_dir().exists(), "nothing may be written");

    // The allowed secret reaches the node as a handle, shown by name in the output.
    let wf = scene.write(
        "ok.json",
        &workflow(vec![json!({"identifier": "ok", "config": {
            "type": "ECHO_NODE", "token": "{{ .secrets[\"slack-token\"] }}"}})]),
    );
    let out = airlock(
        &scene,
        "run",
        &wf,
        &[&nodes],
        &["--secrets", path(&secrets), "--json"],
    );
    out.expect_code(0);
    let token = node_run(&out.json(), "ok")["output"]["config"]["token"].clone();
    assert!(token.as_str().unwrap().contains("slack-token"), "{token}");
    assert!(!out.stdout().contains("slack-VALUE-1"));
}

#[test]
fn a_dynamic_secret_reference_outside_the_manifest_fails_the_node_run() {
    let scene = Scene::new();
    let nodes = node_dir(&scene, "echo", "ECHO_NODE", &echo(), "");
    let secrets = scene.write(
        "secrets.json",
        &json!({"github-token": "github-VALUE-2"}).to_string(),
    );
    // The name comes from the inputs, so validation cannot see it; the node run must not start.
    let wf = scene.write(
        "wf.json",
        &workflow(vec![json!({"identifier": "sneaky", "config": {
            "type": "ECHO_NODE", "token": "{{ .secrets[.outputs.trigger.which] }}"}})]),
    );
    let out = airlock(
        &scene,
        "run",
        &wf,
        &[&nodes],
        &[
            "--secrets",
            path(&secrets),
            "--inputs",
            r#"{"which":"github-token"}"#,
            "--json",
        ],
    );
    out.expect_code(1);
    let sneaky = node_run(&out.json(), "sneaky").clone();
    assert_eq!(sneaky["result"], "FAILED");
    let error = sneaky["error"].as_str().unwrap();
    assert!(
        error.contains("uses secret \"github-token\", which")
            && error.contains("node.toml does not allow (its [secrets] allow:"),
        "{error}"
    );
    assert!(sneaky["output"].is_null(), "{sneaky}");
}

#[test]
fn bad_manifests_are_refused_naming_file_and_key() {
    let scene = Scene::new();
    let wf = scene.write(
        "wf.json",
        &workflow(vec![
            json!({"identifier": "x", "config": {"type": "ECHO_NODE"}}),
        ]),
    );
    let cases: [(&str, &str, &str); 4] = [
        ("colour = \"red\"\n", "`colour`", "unknown field"),
        (
            "[egress]\nallow = [\"ftp://x.com\"]\n",
            "`egress.allow[0]`",
            "unsupported scheme",
        ),
        ("[limits]\nmemory = \"lots\"\n", "`limits.memory`", ""),
        (
            "[secrets]\nallow = \"one\"\n",
            "`secrets.allow`",
            "expected a sequence",
        ),
    ];
    for (i, (extra, key, reason)) in cases.into_iter().enumerate() {
        let nodes = node_dir(&scene, &format!("bad{i}"), "ECHO_NODE", &echo(), extra);
        let out = airlock(&scene, "validate", &wf, &[&nodes], &[]);
        out.expect_code(2);
        let stderr = out.stderr();
        assert!(stderr.contains(path(&nodes.join("node.toml"))), "{stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }

    // The same type from two directories.
    let one = node_dir(&scene, "one", "ECHO_NODE", &echo(), "");
    let two = node_dir(&scene, "two", "ECHO_NODE", &echo(), "");
    let out = airlock(&scene, "run", &wf, &[&one, &two], &[]);
    out.expect_code(2);
    assert!(
        out.stderr().contains("already served by"),
        "{}",
        out.stderr()
    );

    // A missing component file, and a built-in type.
    let missing = node_dir(&scene, "missing", "ECHO_NODE", &echo(), "");
    std::fs::remove_file(missing.join("node.wasm")).unwrap();
    let out = airlock(&scene, "run", &wf, &[&missing], &[]);
    out.expect_code(2);
    assert!(
        out.stderr().contains("`component`: no such file"),
        "{}",
        out.stderr()
    );
    let shadow = node_dir(&scene, "shadow", "WEBHOOK", &echo(), "");
    let out = airlock(&scene, "run", &wf, &[&shadow], &[]);
    out.expect_code(2);
    assert!(out.stderr().contains("built-in"), "{}", out.stderr());
    assert!(!scene.state_dir().exists(), "nothing may be written");
}
