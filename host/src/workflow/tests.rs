use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

fn load(doc: &Value) -> Result<Workflow, WorkflowError> {
    Workflow::from_json(&doc.to_string(), "wf.json", &["SEND_EMAIL".to_owned()])
}

fn problems(doc: &Value) -> Vec<Problem> {
    match load(doc) {
        Ok(_) => panic!("expected problems, the workflow loaded"),
        Err(WorkflowError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

/// Asserts that exactly one problem sits at `path`, for `node`, and mentions `needle`.
#[track_caller]
fn expect(doc: &Value, path: &str, node: Option<&str>, needle: &str) {
    let found = problems(doc);
    let at: Vec<&Problem> = found
        .iter()
        .filter(|problem| problem.path == path)
        .collect();
    assert_eq!(at.len(), 1, "one problem at {path}, got: {found:#?}");
    assert_eq!(at[0].node.as_deref(), node, "{found:#?}");
    assert!(
        at[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        at[0].message
    );
}

fn trigger() -> Value {
    json!({"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER",
        "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]}}})
}

fn webhook(id: &str, config: Value) -> Value {
    let mut full = json!({"type": "WEBHOOK", "url": "https://example.com/x"});
    if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), config) {
        full.extend(extra);
    }
    json!({"identifier": id, "config": full})
}

fn link(source: &str, target: &str) -> Value {
    json!({"sourceIdentifier": source, "targetIdentifier": target})
}

/// trigger -> create -> check (CONDITION) -> prod | other (fallback)
fn valid() -> Value {
    json!({
        "identifier": "deploy",
        "title": "Deploy",
        "description": "d",
        "icon": "Rocket",
        "allowAnyoneToViewRuns": true,
        "nodes": [
            trigger(),
            {"identifier": "create", "title": "Create",
             "config": {"type": "WEBHOOK", "url": "https://api.example.com/{{ .outputs.trigger.name }}",
                        "method": "PUT", "onFailure": "continue",
                        "headers": {"Authorization": "Bearer {{ .secrets[\"api-token\"] }}"},
                        "body": {"name": "{{ .outputs.trigger.name }}", "n": 1}},
             "variables": {"id": "{{ .result.response.data.id }}", "kind": ".result.kind",
                           "label": "id-{{ .result.response.data.id }}", "fixed": 3}},
            {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "prod", "title": "Prod", "expression": ".outputs.create.id == \"p\""},
                {"identifier": "big", "expression": "{{ .outputs.trigger.name | length > 3 }}"}]}},
            webhook("prod", json!({"body": {"id": "{{ .outputs.create.id }}"}})),
            webhook("other", json!({"method": "GET",
                "url": "https://x.example.com/?t={{ .secrets.token }}&n={{ .outputs[\"create\"].id }}"})),
            {"identifier": "mail", "config": {"type": "SEND_EMAIL", "to": "{{ .outputs.trigger.name }}"}}
        ],
        "connections": [
            link("trigger", "create"),
            link("create", "check"),
            {"sourceIdentifier": "check", "targetIdentifier": "prod", "sourceOutletIdentifier": "prod"},
            {"sourceIdentifier": "check", "targetIdentifier": "mail", "sourceOutletIdentifier": "big"},
            {"sourceIdentifier": "check", "targetIdentifier": "other", "fallback": true, "description": "else"}
        ]
    })
}

/// `valid()` with `edit` applied to it.
fn with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc = valid();
    edit(&mut doc);
    doc
}

#[test]
fn a_valid_workflow_loads_with_its_graph() {
    let workflow = load(&valid()).expect("valid");
    assert_eq!(workflow.identifier, "deploy");
    assert_eq!(workflow.title.as_deref(), Some("Deploy"));
    assert_eq!(workflow.nodes.len(), 6);
    assert_eq!(workflow.source, valid());
    let triggers: Vec<&str> = workflow
        .triggers()
        .iter()
        .map(|n| n.identifier.as_str())
        .collect();
    assert_eq!(triggers, ["trigger"]);
    assert_eq!(
        workflow.next("trigger").map(|n| n.identifier.as_str()),
        Some("create")
    );
    assert_eq!(
        workflow.next("create").map(|n| n.identifier.as_str()),
        Some("check")
    );
    assert!(workflow.next("prod").is_none());
    let via = |outlet| {
        workflow
            .next_from_condition("check", outlet)
            .map(|n| n.identifier.as_str())
    };
    assert_eq!(via(Some("prod")), Some("prod"));
    assert_eq!(via(Some("big")), Some("mail"));
    assert_eq!(via(None), Some("other"));
    assert_eq!(via(Some("nope")), None);
    assert_eq!(workflow.connections[4].description.as_deref(), Some("else"));
    assert!(workflow.connections[4].fallback);
}

#[test]
fn nodes_keep_kind_failure_mode_outlets_variables_and_inputs() {
    let workflow = load(&valid()).expect("valid");
    let node = |id| workflow.node(id).expect(id);
    assert_eq!(node("trigger").kind, NodeKind::SelfServeTrigger);
    assert_eq!(
        node("trigger")
            .user_inputs()
            .and_then(|i| i.get("required")),
        Some(&json!(["name"]))
    );
    assert!(node("create").user_inputs().is_none());
    assert_eq!(node("create").on_failure, OnFailure::Continue);
    assert_eq!(node("prod").on_failure, OnFailure::Terminate);
    assert_eq!(node("mail").kind, NodeKind::Custom("SEND_EMAIL".into()));
    assert_eq!(node("mail").kind.type_name(), "SEND_EMAIL");
    assert!(!node("mail").kind.is_trigger());
    let outlets: Vec<&str> = node("check")
        .outlets
        .iter()
        .map(|o| o.identifier.as_str())
        .collect();
    assert_eq!(outlets, ["prod", "big"]);
    assert_eq!(node("check").outlets[0].title.as_deref(), Some("Prod"));
    let big = &node("check").outlets[1].expression;
    assert_eq!(
        big.eval(&json!({"outputs": {"trigger": {"name": "abcd"}}}))
            .ok(),
        Some(json!(true))
    );

    let variables = node("create").variables.as_ref().expect("variables");
    let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["id", "kind", "label", "fixed"]);
    let result = json!({"result": {"kind": "k", "response": {"data": {"id": 7}}}});
    let values: Vec<Value> = variables
        .iter()
        .filter_map(|(_, e)| e.eval(&result).ok())
        .collect();
    assert_eq!(values, [json!(7), json!("k"), json!("id-7"), json!(3)]);
    assert!(node("prod").variables.is_none());
}

#[test]
fn variables_and_outlets_split_templates_jq_aware() {
    // An object literal's `}}` inside the template must not close it.
    let doc = with(|d| {
        d["nodes"][1]["variables"] = json!({
            "whole": "{{ {a: {b: 1}} }}",
            "text": "b={{ {a: {b: 1}} | .a.b }}!",
        });
        d["nodes"][2]["config"]["outlets"][0]["expression"] =
            json!("{{ {a: {b: 1}} | .a.b == 1 }}");
    });
    let workflow = load(&doc).expect("valid");
    let variables = workflow.node("create").and_then(|n| n.variables.as_ref());
    let values: Vec<Value> = variables
        .expect("variables")
        .iter()
        .filter_map(|(_, e)| e.eval(&json!({"result": {}})).ok())
        .collect();
    assert_eq!(values, [json!({"a": {"b": 1}}), json!("b=1!")]);
    let outlet = &workflow.node("check").expect("check").outlets[0].expression;
    assert_eq!(outlet.eval(&json!({})).ok(), Some(json!(true)));
}

#[test]
fn config_template_drops_host_keys_and_renders() {
    let workflow = load(&valid()).expect("valid");
    let create = workflow.node("create").expect("create");
    assert_eq!(create.config["type"], "WEBHOOK");
    assert_eq!(create.config["onFailure"], "continue");
    let context = json!({"outputs": {"trigger": {"name": "svc"}}, "secrets": {"api-token": "h"}});
    let rendered = create.config_template.render(&context).expect("renders");
    assert_eq!(
        rendered,
        json!({"url": "https://api.example.com/svc", "method": "PUT",
               "headers": {"Authorization": "Bearer h"}, "body": {"name": "svc", "n": 1}})
    );
    assert!(
        workflow
            .node("trigger")
            .expect("trigger")
            .config_template
            .is_static()
    );
}

#[test]
fn referenced_secrets_are_listed_per_node() {
    let workflow = load(&valid()).expect("valid");
    assert_eq!(
        workflow.referenced_secrets(),
        [
            ("create".to_owned(), "api-token".to_owned()),
            ("other".to_owned(), "token".to_owned())
        ]
    );
}

#[test]
fn workflows_are_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Workflow>();
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let error = Workflow::from_json(
        "{\n  \"identifier\": \"x\",\n  \"nodes\": [,]\n}",
        "bad.json",
        &[],
    );
    match error {
        Err(WorkflowError::Parse {
            origin,
            line,
            column,
            message,
        }) => {
            assert_eq!((origin.as_str(), line, column), ("bad.json", 3, 13));
            assert!(!message.contains("line"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn load_reads_files_and_reports_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wf.json");
    std::fs::write(&path, valid().to_string()).expect("write");
    assert_eq!(
        Workflow::load(&path, &["SEND_EMAIL".into()])
            .expect("loads")
            .identifier,
        "deploy"
    );
    let missing = dir.path().join("missing.json");
    let error = Workflow::load(&missing, &[]).expect_err("missing");
    assert!(matches!(error, WorkflowError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&missing.display().to_string()),
        "{error}"
    );
}

#[test]
fn every_problem_is_reported_and_displayed_one_per_line() {
    let doc = json!({"identifier": "bad id", "nodes": [
        trigger(),
        {"identifier": "a", "config": {"type": "WEBHOOK", "method": "get"}},
        {"identifier": "a", "config": {"type": "NOPE"}}
    ]});
    let error = load(&doc).expect_err("invalid");
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"wf.json: $.nodes[1].config.url (node \"a\"): \"url\" is required"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wf.json: $.identifier: ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wf.json: $.nodes[1].config.method (node \"a\"): ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wf.json: $.nodes[2].identifier (node \"a\"): ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wf.json: $.nodes[2].config.type (node \"a\"): ")),
        "{text}"
    );
    assert!(lines.iter().all(|l| l.starts_with("wf.json: $")), "{text}");
}

// ---- top level ----

#[test]
fn workflow_identifier_is_required_bounded_and_restricted() {
    expect(
        &with(|d| _ = d.as_object_mut().map(|m| m.remove("identifier"))),
        "$.identifier",
        None,
        "required",
    );
    expect(
        &with(|d| d["identifier"] = json!("a".repeat(61))),
        "$.identifier",
        None,
        "limit is 60",
    );
    load(&with(|d| d["identifier"] = json!("a".repeat(60)))).expect("60 is fine");
    expect(
        &with(|d| d["identifier"] = json!("a b")),
        "$.identifier",
        None,
        "may only contain",
    );
    expect(
        &with(|d| d["identifier"] = json!(5)),
        "$.identifier",
        None,
        "must be a string",
    );
}

#[test]
fn unknown_top_level_keys_are_rejected_and_ports_are_allowed() {
    expect(
        &with(|d| d["version"] = json!(2)),
        "$.version",
        None,
        "unknown key \"version\"",
    );
    load(&with(|d| d["category"] = json!("ops"))).expect("category is Port's");
}

#[test]
fn a_workflow_needs_nodes() {
    expect(
        &json!({"identifier": "w", "nodes": []}),
        "$.nodes",
        None,
        "no nodes",
    );
    expect(&json!({"identifier": "w"}), "$.nodes", None, "required");
    expect(
        &json!({"identifier": "w", "nodes": {}}),
        "$.nodes",
        None,
        "must be an array",
    );
    expect(&json!([1]), "$", None, "JSON object");
}

// ---- nodes ----

#[test]
fn node_identifiers_are_required_valid_and_unique() {
    expect(
        &with(|d| d["nodes"][3]["identifier"] = json!("pr od")),
        "$.nodes[3].identifier",
        Some("pr od"),
        "may only contain",
    );
    expect(
        &with(|d| {
            _ = d["nodes"][5]
                .as_object_mut()
                .map(|m| m.remove("identifier"))
        }),
        "$.nodes[5].identifier",
        None,
        "required",
    );
    let duplicate = with(|d| d["nodes"][5]["identifier"] = json!("prod"));
    expect(
        &duplicate,
        "$.nodes[5].identifier",
        Some("prod"),
        "$.nodes[3]",
    );
}

#[test]
fn trigger_is_reserved_for_trigger_nodes() {
    let doc = with(|d| {
        d["nodes"][0]["identifier"] = json!("start");
        d["nodes"][5]["identifier"] = json!("trigger");
        d["connections"][0]["sourceIdentifier"] = json!("start");
        d["connections"][3]["targetIdentifier"] = json!("trigger");
    });
    expect(&doc, "$.nodes[5].identifier", Some("trigger"), "reserved");
    let renamed = with(|d| {
        d["nodes"][0]["identifier"] = json!("start");
        d["connections"][0]["sourceIdentifier"] = json!("start");
    });
    load(&renamed).expect("any trigger id works; .outputs.trigger stays an alias");
}

#[test]
fn node_config_and_type_are_required() {
    expect(
        &with(|d| _ = d["nodes"][3].as_object_mut().map(|m| m.remove("config"))),
        "$.nodes[3].config",
        Some("prod"),
        "required",
    );
    expect(
        &with(|d| d["nodes"][3]["config"] = json!("WEBHOOK")),
        "$.nodes[3].config",
        Some("prod"),
        "must be an object",
    );
    expect(
        &with(|d| {
            _ = d["nodes"][3]["config"]
                .as_object_mut()
                .map(|m| m.remove("type"))
        }),
        "$.nodes[3].config.type",
        Some("prod"),
        "required",
    );
}

#[test]
fn unknown_types_list_the_known_ones() {
    let doc = with(|d| d["nodes"][3]["config"]["type"] = json!("WEBHOK"));
    expect(
        &doc,
        "$.nodes[3].config.type",
        Some("prod"),
        "unknown node type \"WEBHOK\"",
    );
    let message = problems(&doc)
        .into_iter()
        .find(|p| p.path == "$.nodes[3].config.type")
        .map(|p| p.message);
    let message = message.unwrap_or_default();
    for known in [
        "SELF_SERVE_TRIGGER",
        "EVENT_TRIGGER",
        "WEBHOOK",
        "CONDITION",
        "SEND_EMAIL",
    ] {
        assert!(message.contains(known), "{message}");
    }
}

#[test]
fn known_port_types_are_not_supported_yet() {
    for kind in [
        "SCHEDULE_TRIGGER",
        "UPSERT_ENTITY",
        "KAFKA",
        "INTEGRATION_ACTION",
        "AI_AGENT",
        "INPUT",
    ] {
        let doc = with(|d| d["nodes"][5]["config"]["type"] = json!(kind));
        expect(
            &doc,
            "$.nodes[5].config.type",
            Some("mail"),
            "not supported by Airlock yet",
        );
    }
}

#[test]
fn custom_types_come_from_manifests() {
    let error = Workflow::from_json(&valid().to_string(), "wf.json", &[]).expect_err("no manifest");
    assert!(
        error
            .to_string()
            .contains("unknown node type \"SEND_EMAIL\""),
        "{error}"
    );
}

#[test]
fn unknown_node_keys_are_rejected() {
    expect(
        &with(|d| d["nodes"][3]["confg"] = json!({})),
        "$.nodes[3].confg",
        Some("prod"),
        "unknown key \"confg\"",
    );
    load(&with(|d| d["nodes"][3]["icon"] = json!("Slack"))).expect("icon is Port's");
}

// ---- WEBHOOK ----

fn prod_config(key: &str, value: Value) -> Value {
    with(|d| d["nodes"][3]["config"][key] = value)
}

#[test]
fn webhook_url_is_required_and_must_be_absolute_http() {
    let no_url = with(|d| {
        _ = d["nodes"][3]["config"]
            .as_object_mut()
            .map(|m| m.remove("url"))
    });
    expect(&no_url, "$.nodes[3].config.url", Some("prod"), "required");
    expect(
        &prod_config("url", json!("")),
        "$.nodes[3].config.url",
        Some("prod"),
        "must not be empty",
    );
    expect(
        &prod_config("url", json!(3)),
        "$.nodes[3].config.url",
        Some("prod"),
        "must be a string",
    );
    expect(
        &prod_config("url", json!("/relative")),
        "$.nodes[3].config.url",
        Some("prod"),
        "not an absolute URL",
    );
    expect(
        &prod_config("url", json!("ftp://example.com/x")),
        "$.nodes[3].config.url",
        Some("prod"),
        "http or https",
    );
    load(&prod_config("url", json!("http://127.0.0.1:18080/a?b=c"))).expect("plain http");
    load(&prod_config("url", json!("{{ .outputs.trigger.name }}")))
        .expect("templated URLs are checked at run time");
}

#[test]
fn webhook_method_must_be_an_upper_case_known_method() {
    expect(
        &prod_config("method", json!("post")),
        "$.nodes[3].config.method",
        Some("prod"),
        "use \"POST\"",
    );
    expect(
        &prod_config("method", json!("FETCH")),
        "$.nodes[3].config.method",
        Some("prod"),
        "\"GET\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\"",
    );
    for method in ["POST", "PUT", "PATCH"] {
        load(&prod_config("method", json!(method))).expect(method);
    }
}

#[test]
fn webhook_body_only_goes_with_post_put_patch() {
    for method in ["GET", "DELETE"] {
        expect(
            &prod_config("method", json!(method)),
            "$.nodes[3].config.body",
            Some("prod"),
            "cannot have a body",
        );
    }
    let without_body = with(|d| {
        d["nodes"][3]["config"]["method"] = json!("DELETE");
        d["nodes"][3]["config"]
            .as_object_mut()
            .map(|m| m.remove("body"));
    });
    load(&without_body).expect("DELETE without body");
}

#[test]
fn webhook_headers_are_strings_with_valid_names() {
    expect(
        &prod_config("headers", json!({"X-N": 1})),
        "$.nodes[3].config.headers[\"X-N\"]",
        Some("prod"),
        "must be a string",
    );
    expect(
        &prod_config("headers", json!({"Bad Name": "v"})),
        "$.nodes[3].config.headers[\"Bad Name\"]",
        Some("prod"),
        "not a valid HTTP header name",
    );
    expect(
        &prod_config("headers", json!(["a"])),
        "$.nodes[3].config.headers",
        Some("prod"),
        "must be an object",
    );
}

#[test]
fn asynchronous_webhooks_wait_for_a_callback_with_an_optional_timeout() {
    let workflow = load(&prod_config("synchronized", json!(false))).expect("async");
    let callback = workflow.node("prod").and_then(|n| n.callback);
    assert_eq!(
        callback,
        Some(Callback {
            timeout_ms: None,
            on_timeout: OnTimeout::Fail
        })
    );
    let doc = with(|d| {
        let config = &mut d["nodes"][3]["config"];
        config["synchronized"] = json!(false);
        config["timeoutMs"] = json!(1500);
        config["onTimeout"] = json!("continue");
    });
    let workflow = load(&doc).expect("async with a timeout");
    assert_eq!(
        workflow.node("prod").and_then(|n| n.callback),
        Some(Callback {
            timeout_ms: Some(1500),
            on_timeout: OnTimeout::Continue
        })
    );
    // The component never sees it (its config refuses unknown keys).
    assert!(HOST_KEYS.contains(&"onTimeout"));
    expect(
        &prod_config("synchronized", json!("yes")),
        "$.nodes[3].config.synchronized",
        Some("prod"),
        "true or false",
    );
    expect(
        &with(|d| {
            let config = &mut d["nodes"][3]["config"];
            config["synchronized"] = json!(false);
            config["onTimeout"] = json!("retry");
        }),
        "$.nodes[3].config.onTimeout",
        Some("prod"),
        "\"fail\" or \"continue\"",
    );
    expect(
        &prod_config("onTimeout", json!("continue")),
        "$.nodes[3].config.onTimeout",
        Some("prod"),
        "asynchronous",
    );
    let sync = load(&prod_config("synchronized", json!(true))).expect("sync");
    assert_eq!(sync.node("prod").and_then(|n| n.callback), None);
    load(&prod_config("verbose", json!(true))).expect("verbose is ignored");
}

#[test]
fn on_failure_is_terminate_or_continue() {
    expect(
        &prod_config("onFailure", json!("ignore")),
        "$.nodes[3].config.onFailure",
        Some("prod"),
        "\"terminate\" or \"continue\"",
    );
    load(&prod_config("onFailure", Value::Null)).expect("null is unset");
    let workflow = load(&prod_config("onFailure", json!("terminate"))).expect("terminate");
    assert_eq!(
        workflow.node("prod").map(|n| n.on_failure),
        Some(OnFailure::Terminate)
    );
}

#[test]
fn unknown_webhook_keys_are_named_with_the_allowed_ones() {
    let doc = prod_config("timeout", json!(5));
    expect(
        &doc,
        "$.nodes[3].config.timeout",
        Some("prod"),
        "unknown key \"timeout\"",
    );
    let message = problems(&doc).remove(0).message;
    assert!(
        message.contains("\"url\"") && message.contains("\"synchronized\""),
        "{message}"
    );
}

#[test]
fn airlock_webhook_extensions_are_checked() {
    let doc = with(|d| {
        let config = &mut d["nodes"][3]["config"];
        config["timeoutMs"] = json!(5000);
        config["retry"] = json!({"maxAttempts": 3, "initialIntervalMs": 100, "backoffRate": 2.0, "maxIntervalMs": 1000});
        config["successStatusCodes"] = json!([200, 404]);
    });
    load(&doc).expect("extensions");
    expect(
        &prod_config("timeoutMs", json!(0)),
        "$.nodes[3].config.timeoutMs",
        Some("prod"),
        "whole number",
    );
    expect(
        &prod_config("retry", json!({"maxAttempts": 0})),
        "$.nodes[3].config.retry.maxAttempts",
        Some("prod"),
        "from 1",
    );
    expect(
        &prod_config("retry", json!({"backoffRate": 0.5})),
        "$.nodes[3].config.retry.backoffRate",
        Some("prod"),
        "from 1 to 100",
    );
    expect(
        &prod_config("retry", json!({"tries": 1})),
        "$.nodes[3].config.retry.tries",
        Some("prod"),
        "unknown key",
    );
    expect(
        &prod_config("successStatusCodes", json!([200, 99])),
        "$.nodes[3].config.successStatusCodes[1]",
        Some("prod"),
        "100 to 599",
    );
    expect(
        &prod_config("successStatusCodes", json!([])),
        "$.nodes[3].config.successStatusCodes",
        Some("prod"),
        "at least one",
    );
}

// ---- CONDITION, triggers, templates ----

#[test]
fn condition_outlets_are_required_unique_and_compiled() {
    let outlets = |value: Value| with(|d| d["nodes"][2]["config"]["outlets"] = value);
    expect(
        &with(|d| {
            _ = d["nodes"][2]["config"]
                .as_object_mut()
                .map(|m| m.remove("outlets"))
        }),
        "$.nodes[2].config.outlets",
        Some("check"),
        "needs \"outlets\"",
    );
    expect(
        &outlets(json!([])),
        "$.nodes[2].config.outlets",
        Some("check"),
        "at least one outlet",
    );
    let duplicate = outlets(
        json!([{"identifier": "prod", "expression": "true"}, {"identifier": "prod", "expression": "false"}, {"identifier": "big", "expression": "1"}]),
    );
    expect(
        &duplicate,
        "$.nodes[2].config.outlets[1].identifier",
        Some("check"),
        "duplicate outlet identifier \"prod\"",
    );
    let broken =
        outlets(json!([{"identifier": "prod", "expression": ".a |"}, {"identifier": "big"}]));
    expect(
        &broken,
        "$.nodes[2].config.outlets[0].expression",
        Some("check"),
        "template \".a |\"",
    );
    expect(
        &broken,
        "$.nodes[2].config.outlets[1].expression",
        Some("check"),
        "required",
    );
}

#[test]
fn required_user_inputs_must_be_declared() {
    let doc = with(|d| d["nodes"][0]["config"]["userInputs"]["required"] = json!(["name", "env"]));
    expect(
        &doc,
        "$.nodes[0].config.userInputs.required[1]",
        Some("trigger"),
        "\"env\" is not declared",
    );
}

#[test]
fn event_triggers_keep_event_and_condition() {
    let doc = with(|d| {
        d["nodes"][0]["config"] = json!({"type": "EVENT_TRIGGER",
            "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"},
            "condition": {"type": "JQ", "expressions": [".diff.after != null"], "combinator": "and"}});
    });
    let workflow = load(&doc).expect("event trigger");
    let trigger = workflow.node("trigger").expect("trigger");
    assert_eq!(trigger.kind, NodeKind::EventTrigger);
    assert!(trigger.kind.is_trigger());
    assert_eq!(trigger.config["event"]["type"], "ENTITY_CREATED");
    expect(
        &with(|d| d["nodes"][0]["config"] = json!({"type": "EVENT_TRIGGER", "event": "x"})),
        "$.nodes[0].config.event",
        Some("trigger"),
        "must be an object",
    );
}

#[test]
fn every_broken_template_is_reported_at_its_field() {
    let doc = with(|d| {
        d["nodes"][3]["config"]["body"] = json!({"a": "{{ .x | }}", "list": ["ok", "{{ (.y }}"]});
        d["nodes"][3]["config"]["headers"] = json!({"X-A": "{{ .z"});
        d["nodes"][1]["variables"]["bad"] = json!("{{ .result | }}");
    });
    let found = problems(&doc);
    for path in [
        "$.nodes[3].config.body.a",
        "$.nodes[3].config.body.list[1]",
        "$.nodes[3].config.headers[\"X-A\"]",
        "$.nodes[1].variables.bad",
    ] {
        assert!(
            found
                .iter()
                .any(|p| p.path == path && p.message.starts_with("template ")),
            "{path}: {found:#?}"
        );
    }
    expect(
        &with(|d| d["nodes"][1]["variables"] = json!([])),
        "$.nodes[1].variables",
        Some("create"),
        "must be an object",
    );
}

// ---- connections and graph ----

fn connection(i: usize, key: &str, value: Value) -> Value {
    with(|d| d["connections"][i][key] = value)
}

#[test]
fn connection_endpoints_must_exist_and_differ() {
    expect(
        &connection(1, "targetIdentifier", json!("ghost")),
        "$.connections[1].targetIdentifier",
        None,
        "no node \"ghost\"",
    );
    expect(
        &connection(1, "sourceIdentifier", json!("ghost")),
        "$.connections[1].sourceIdentifier",
        None,
        "no node \"ghost\"",
    );
    let missing = with(|d| {
        _ = d["connections"][1]
            .as_object_mut()
            .map(|m| m.remove("targetIdentifier"))
    });
    expect(
        &missing,
        "$.connections[1].targetIdentifier",
        None,
        "required",
    );
    let self_loop = with(|d| {
        d["connections"]
            .as_array_mut()
            .map(|c| c.push(link("prod", "prod")))
            .unwrap_or_default()
    });
    expect(
        &self_loop,
        "$.connections[5]",
        Some("prod"),
        "cannot connect to itself",
    );
    expect(
        &connection(0, "via", json!(1)),
        "$.connections[0].via",
        None,
        "unknown key",
    );
}

#[test]
fn triggers_cannot_be_targets() {
    let doc = with(|d| {
        d["connections"]
            .as_array_mut()
            .map(|c| c.push(link("prod", "trigger")))
            .unwrap_or_default()
    });
    expect(
        &doc,
        "$.connections[5].targetIdentifier",
        Some("trigger"),
        "trigger cannot be the target",
    );
}

#[test]
fn only_conditions_fan_out() {
    let doc = with(|d| {
        d["connections"]
            .as_array_mut()
            .map(|c| c.push(link("trigger", "mail")))
            .unwrap_or_default()
    });
    expect(
        &doc,
        "$.connections[5]",
        Some("trigger"),
        "already connects to \"create\" ($.connections[0])",
    );
}

#[test]
fn condition_connections_need_exactly_one_of_outlet_and_fallback() {
    let neither = with(|d| {
        _ = d["connections"][4]
            .as_object_mut()
            .map(|m| m.remove("fallback"))
    });
    expect(
        &neither,
        "$.connections[4]",
        Some("check"),
        "needs \"sourceOutletIdentifier\" or \"fallback\": true",
    );
    expect(
        &connection(4, "sourceOutletIdentifier", json!("prod")),
        "$.connections[4]",
        Some("check"),
        "not both",
    );
    expect(
        &connection(2, "sourceOutletIdentifier", json!("staging")),
        "$.connections[2].sourceOutletIdentifier",
        Some("check"),
        "no outlet \"staging\"",
    );
    expect(
        &connection(4, "fallback", json!("yes")),
        "$.connections[4].fallback",
        None,
        "true or false",
    );
}

#[test]
fn one_connection_per_outlet_and_one_fallback() {
    let second_fallback = with(|d| {
        d["connections"][3] =
            json!({"sourceIdentifier": "check", "targetIdentifier": "mail", "fallback": true});
    });
    expect(
        &second_fallback,
        "$.connections[4]",
        Some("check"),
        "already has a fallback connection ($.connections[3])",
    );
    let second_outlet = connection(3, "sourceOutletIdentifier", json!("prod"));
    expect(
        &second_outlet,
        "$.connections[3]",
        Some("check"),
        "outlet \"prod\" of \"check\" is already connected ($.connections[2])",
    );
}

#[test]
fn outlets_and_fallback_belong_to_conditions() {
    load(&connection(0, "fallback", json!(false))).expect("fallback: false is no fallback");
    load(&connection(0, "description", Value::Null)).expect("null is unset");
    expect(
        &connection(0, "fallback", json!(true)),
        "$.connections[0].fallback",
        Some("trigger"),
        "only for connections from a CONDITION",
    );
    expect(
        &connection(1, "sourceOutletIdentifier", json!("x")),
        "$.connections[1].sourceOutletIdentifier",
        Some("create"),
        "is a WEBHOOK",
    );
}

#[test]
fn cycles_are_reported_with_their_path() {
    let doc = with(|d| {
        d["connections"]
            .as_array_mut()
            .map(|c| c.push(link("prod", "create")))
            .unwrap_or_default()
    });
    expect(
        &doc,
        "$.connections[5]",
        Some("create"),
        "cycle: create -> check -> prod -> create",
    );
}

#[test]
fn a_workflow_needs_a_trigger() {
    let doc = json!({"identifier": "w", "nodes": [webhook("a", json!({}))]});
    expect(&doc, "$.nodes", None, "needs a trigger node");
}

#[test]
fn unreachable_nodes_are_reported() {
    let doc = with(|d| {
        d["nodes"]
            .as_array_mut()
            .map(|n| n.push(webhook("orphan", json!({}))))
            .unwrap_or_default()
    });
    expect(&doc, "$.nodes[6]", Some("orphan"), "never run");
}

// ---- references ----

#[test]
fn references_must_point_at_upstream_nodes() {
    // "other" is on the fallback branch: "prod" never runs before it.
    let sibling = with(|d| {
        d["nodes"][4]["config"]["url"] = json!("https://x.example.com/{{ .outputs.prod.id }}")
    });
    expect(
        &sibling,
        "$.nodes[4].config.url",
        Some("other"),
        "\"prod\", which cannot have run before",
    );
    let unknown =
        with(|d| d["nodes"][3]["config"]["body"]["id"] = json!("{{ .outputs[\"ghost\"] }}"));
    expect(
        &unknown,
        "$.nodes[3].config.body.id",
        Some("prod"),
        "there is no node \"ghost\"",
    );
    let own = with(|d| d["nodes"][3]["config"]["body"]["id"] = json!("{{ .outputs.prod }}"));
    expect(
        &own,
        "$.nodes[3].config.body.id",
        Some("prod"),
        "cannot have run before",
    );
    let downstream = with(|d| d["nodes"][1]["variables"]["next"] = json!(".outputs.mail"));
    expect(
        &downstream,
        "$.nodes[1].variables.next",
        Some("create"),
        "\"mail\", which cannot have run before",
    );
    let outlet =
        with(|d| d["nodes"][2]["config"]["outlets"][0]["expression"] = json!(".outputs.other.x"));
    expect(
        &outlet,
        "$.nodes[2].config.outlets[0].expression",
        Some("check"),
        "\"other\"",
    );
}

#[test]
fn references_to_triggers_by_id_need_a_path() {
    let doc = with(|d| {
        d["nodes"][3]["config"]["body"]["t"] =
            json!("{{ .outputs.trigger.name }}-{{ .outputs.trigger }}")
    });
    load(&doc).expect("the alias always works");
    let renamed = with(|d| {
        d["nodes"][0]["identifier"] = json!("start");
        d["connections"][0]["sourceIdentifier"] = json!("start");
        d["nodes"][3]["config"]["body"]["t"] = json!("{{ .outputs.start.name }}");
    });
    load(&renamed).expect("an upstream trigger by its id");
}

// ---- the spec's examples ----

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/spec")
}

#[test]
fn the_webhook_spec_examples_validate() {
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(fixtures()).expect("fixtures folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let workflow = Workflow::load(&path, &[]).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(workflow.triggers().len(), 1);
            loaded.push(workflow.identifier);
        }
    }
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "spec-asynchronous",
            "spec-basic",
            "spec-custom-headers",
            "spec-github-workflow",
            "spec-port-api",
            "spec-reference-response",
            "spec-slack-notification",
            "spec-synchronous",
            "spec-using-secrets",
        ]
    );
}

#[test]
fn the_asynchronous_example_waits_for_a_callback() {
    let workflow = Workflow::load(&fixtures().join("asynchronous.json"), &[]).expect("loads");
    let node = workflow.node("long-running-task").expect("the webhook");
    assert_eq!(
        node.callback,
        Some(Callback {
            timeout_ms: None,
            on_timeout: OnTimeout::Fail
        })
    );
    assert_eq!(workflow.node("trigger").map(|n| n.callback), Some(None));
}

#[test]
fn the_reference_example_reads_the_created_resource() {
    let workflow = Workflow::load(&fixtures().join("reference-response.json"), &[]).expect("loads");
    let use_resource = workflow.next("create_resource").expect("second webhook");
    assert_eq!(
        use_resource.config_template.referenced_outputs(),
        ["create_resource"]
    );
    let secrets = Workflow::load(&fixtures().join("using-secrets.json"), &[]).expect("loads");
    let names: Vec<String> = secrets
        .referenced_secrets()
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(names, ["webhook-token", "api-key"]);
}
