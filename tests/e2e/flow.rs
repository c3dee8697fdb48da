//! Runs as a whole: conditions, variables, failures, denial, the store and the exit codes.

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, Scene, node_run};

fn webhook(id: &str, url: &str, extra: Value) -> Value {
    let mut config = json!({"type": "WEBHOOK", "url": url});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"identifier": id, "config": config})
}

fn workflow(nodes: Vec<Value>, connections: Vec<(&str, &str, Value)>) -> String {
    let mut all = vec![json!({"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}})];
    all.extend(nodes);
    let connections: Vec<Value> = connections
        .into_iter()
        .map(|(from, to, extra)| {
            let mut c = json!({"sourceIdentifier": from, "targetIdentifier": to});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        })
        .collect();
    json!({"identifier": "flow", "nodes": all, "connections": connections}).to_string()
}

fn run(scene: &Scene, receiver: &Receiver, text: &str, inputs: Value) -> crate::support::Run {
    let wf = scene.write("wf.json", text);
    let policy = scene.allow_policy(receiver);
    scene.airlock(&[
        "run",
        wf.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--inputs",
        &inputs.to_string(),
        "--json",
    ])
}

#[test]
fn condition_picks_the_first_true_outlet_else_the_fallback() {
    let receiver = Receiver::start();
    let base = receiver.url();
    let text = workflow(
        vec![
            json!({"identifier": "route", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "big", "expression": ".outputs.trigger.n > 10"},
                {"identifier": "also_big", "expression": ".outputs.trigger.n > 5"}]}}),
            webhook("big_hook", &format!("{base}/big"), json!({})),
            webhook("also_hook", &format!("{base}/also"), json!({})),
            webhook("small_hook", &format!("{base}/small"), json!({})),
        ],
        vec![
            ("start", "route", json!({})),
            (
                "route",
                "big_hook",
                json!({"sourceOutletIdentifier": "big"}),
            ),
            (
                "route",
                "also_hook",
                json!({"sourceOutletIdentifier": "also_big"}),
            ),
            ("route", "small_hook", json!({"fallback": true})),
        ],
    );
    let scene = Scene::new();
    run(&scene, &receiver, &text, json!({"n": 20})).expect_code(0);
    run(&scene, &receiver, &text, json!({"n": 7})).expect_code(0);
    let out = run(&scene, &receiver, &text, json!({"n": 1}));
    out.expect_code(0);
    let paths: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    // Only the first true outlet fires, even when a later one is true too.
    assert_eq!(paths, ["/big", "/also", "/small"]);
    assert_eq!(node_run(&out.json(), "route")["output"]["fallback"], true);
}

#[test]
fn variables_replace_the_output_and_flow_on_with_their_types() {
    let receiver = Receiver::with_routes(|r| match r.path.as_str() {
        "/create" => Reply::json(201, json!({"id": 7, "tags": ["a", "b"]})),
        _ => Reply::json(200, json!({})),
    });
    let base = receiver.url();
    let mut create = webhook("create", &format!("{base}/create"), json!({"body": {}}));
    create["variables"] = json!({"resourceId": "{{ .result.id }}", "status": "{{ .result.response.status }}", "first": ".result.tags[0]"});
    let text = workflow(
        vec![
            create,
            webhook(
                "use",
                &format!("{base}/use"),
                json!({"body": {"id": "{{ .outputs.create.resourceId }}",
                "status": "{{ .outputs.create.status }}", "label": "tag {{ .outputs.create.first }}"}}),
            ),
        ],
        vec![("start", "create", json!({})), ("create", "use", json!({}))],
    );
    let scene = Scene::new();
    let out = run(&scene, &receiver, &text, json!({}));
    out.expect_code(0);
    assert_eq!(
        node_run(&out.json(), "create")["output"],
        json!({"resourceId": 7, "status": 201, "first": "a"})
    );
    assert_eq!(
        receiver.requests()[1].json(),
        json!({"id": 7, "status": 201, "label": "tag a"})
    );
}

#[test]
fn non_2xx_fails_the_node_and_the_run_with_exit_1() {
    let receiver = Receiver::with_routes(|r| match r.path.as_str() {
        "/fail" => Reply::json(503, json!({"error": "maintenance"})),
        _ => Reply::json(200, json!({})),
    });
    let base = receiver.url();
    let text = workflow(
        vec![
            webhook("call", &format!("{base}/fail"), json!({})),
            webhook("after", &format!("{base}/after"), json!({})),
        ],
        vec![("start", "call", json!({})), ("call", "after", json!({}))],
    );
    let scene = Scene::new();
    let out = run(&scene, &receiver, &text, json!({}));
    out.expect_code(1);
    let json = out.json();
    assert_eq!(json["result"], "FAILED");
    let call = node_run(&json, "call");
    assert_eq!(call["result"], "FAILED");
    let error = call["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 503") && error.contains("maintenance"),
        "{error}"
    );
    // Terminate (the default) stops the run: the next node never sends.
    assert_eq!(receiver.requests().len(), 1);
    // The human summary says it too.
    let human = scene.airlock(&[
        "run",
        scene.path("wf.json").to_str().unwrap(),
        "--policy",
        scene.path("airlock.toml").to_str().unwrap(),
    ]);
    human.expect_code(1);
    assert!(
        human.stdout().contains("FAIL") && human.stdout().contains("HTTP 503"),
        "{}",
        human.stdout()
    );
}

#[test]
fn on_failure_continue_records_the_error_and_goes_on() {
    let receiver = Receiver::with_routes(|r| match r.path.as_str() {
        "/fail" => Reply::json(500, json!({})),
        _ => Reply::json(200, json!({})),
    });
    let base = receiver.url();
    let text = workflow(
        vec![
            webhook(
                "call",
                &format!("{base}/fail"),
                json!({"onFailure": "continue"}),
            ),
            webhook(
                "after",
                &format!("{base}/after"),
                json!({"body": {"previous": "{{ .outputs.call.error.message }}"}}),
            ),
        ],
        vec![("start", "call", json!({})), ("call", "after", json!({}))],
    );
    let scene = Scene::new();
    let out = run(&scene, &receiver, &text, json!({}));
    out.expect_code(0);
    let json = out.json();
    assert_eq!(node_run(&json, "call")["result"], "FAILED");
    assert!(
        json["outputs"]["call"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
    let sent = receiver.requests()[1].json();
    assert!(
        sent["previous"].as_str().unwrap().contains("HTTP 500"),
        "{sent}"
    );
}

#[test]
fn a_denied_destination_is_not_contacted_fails_the_node_and_is_audited() {
    let allowed = Receiver::start();
    let forbidden = Receiver::start();
    let text = workflow(
        vec![webhook(
            "sneak",
            &format!("{}/steal", forbidden.url()),
            json!({}),
        )],
        vec![("start", "sneak", json!({}))],
    );
    let scene = Scene::new();
    // The policy names only the other server, so this loopback port stays forbidden.
    let out = run(&scene, &allowed, &text, json!({}));
    out.expect_code(1);
    assert_eq!(
        forbidden.connections(),
        0,
        "the forbidden server was contacted"
    );
    let error = node_run(&out.json(), "sneak")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("denied"), "{error}");
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["decision"], "deny");
    assert_eq!(audit[0]["node"], "sneak");
    assert_eq!(audit[0]["url"], format!("{}/steal", forbidden.url()));
    scene.airlock(&["audit", "verify"]).expect_code(0);
    let table = scene.airlock(&["audit", "--decision", "deny"]);
    assert!(table.stdout().contains("sneak"), "{}", table.stdout());
}

#[test]
fn runs_are_stored_and_listed() {
    let receiver = Receiver::start();
    let text = workflow(
        vec![webhook("call", &format!("{}/x", receiver.url()), json!({}))],
        vec![("start", "call", json!({}))],
    );
    let scene = Scene::new();
    let out = run(&scene, &receiver, &text, json!({}));
    out.expect_code(0);
    let id = out.json()["identifier"].as_str().unwrap().to_string();
    assert!(id.starts_with("wfr_") && id.len() == 20, "{id}");
    let listed = scene.airlock(&["runs"]);
    assert!(
        listed.stdout().contains(&id) && listed.stdout().contains("SUCCESS"),
        "{}",
        listed.stdout()
    );
    let shown = scene.airlock(&["runs", &id]);
    shown.expect_code(0);
    let stored: Value = serde_json::from_str(&shown.stdout()).unwrap();
    assert_eq!(stored["nodeRuns"][1]["output"]["response"]["status"], 200);
}

#[test]
fn secret_handles_never_reach_stored_outputs_even_through_variables() {
    let receiver = Receiver::start();
    let mut call = webhook("call", &format!("{}/x", receiver.url()), json!({}));
    call["variables"] = json!({"token": "{{ .secrets[\"api-token\"] }}", "ok": "{{ .result.ok }}"});
    let text = workflow(vec![call], vec![("start", "call", json!({}))]);
    let mut scene = Scene::new();
    scene.env("AIRLOCK_SECRET_API_TOKEN", "canary-Vr7q2wLs");
    let out = run(&scene, &receiver, &text, json!({}));
    out.expect_code(0);
    let json = out.json();
    let output = &node_run(&json, "call")["output"];
    assert_eq!(output["token"], "[secret:api-token]");
    assert_eq!(output["ok"], true);
    assert!(
        !out.stdout().contains("__airlock_secret_"),
        "{}",
        out.stdout()
    );
    scene.assert_nowhere(&out, &["canary-Vr7q2wLs", "__airlock_secret_"]);
}
