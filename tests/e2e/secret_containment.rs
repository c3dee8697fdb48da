//! A secret never leaves its scope: echoes in every common escaping style are redacted, a value
//! moved by a later node towards another host is refused before it leaves, and a handle cannot be
//! split from its value by an escape sequence. Every case ends with the canary sweep.

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, Run, Scene, node_run};

/// Contains the characters Go and .NET escape in JSON (& < > + '), and starts with hex digits.
const SECRET: &str = "2d4f&tok<Zq81>xPm4+it's";
/// A hex token, as API keys often are: every character a hex digit.
const HEX_SECRET: &str = "2d41c0ffee99aa0b";

fn policy(allowed: &[&Receiver], scope: &Receiver) -> String {
    let allow: Vec<String> = allowed.iter().map(|r| format!("\"{}\"", r.url())).collect();
    format!(
        "[egress]\nallow = [{}]\n\n[secrets.api-token]\nhosts = [\"{}\"]\n",
        allow.join(", "),
        scope.url()
    )
}

fn workflow(nodes: Vec<Value>) -> String {
    crate::support::chain_workflow("containment", nodes)
}

fn webhook(identifier: &str, config: Value) -> Value {
    let mut full = json!({"type": "WEBHOOK"});
    full.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({"identifier": identifier, "config": full})
}

fn run(scene: &Scene, workflow: &str, policy: &str, value: &str) -> Run {
    let secrets = scene.write("secrets.json", &json!({"api-token": value}).to_string());
    scene.run_json(
        workflow,
        Some(policy),
        &["--secrets", secrets.to_str().unwrap()],
    )
}

/// A server that answers with the bearer token it received, written by `encode`.
fn echo_server(encode: fn(&str) -> String) -> Receiver {
    Receiver::with_routes(move |r| {
        let token = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default();
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!("{{\"token\": \"{}\"}}", encode(token)).into_bytes(),
        }
    })
}

fn bearer(identifier: &str, url: &str) -> Value {
    webhook(
        identifier,
        json!({"url": url, "method": "GET",
               "headers": {"Authorization": "Bearer {{ .secrets[\"api-token\"] }}"}}),
    )
}

/// Go's encoding/json: & < > as \u0026 \u003c \u003e (lower-case hex).
fn go_json(value: &str) -> String {
    value
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
}

/// .NET's System.Text.Json default encoder: also + and ', upper-case hex.
fn dotnet_json(value: &str) -> String {
    value
        .replace('&', "\\u0026")
        .replace('<', "\\u003C")
        .replace('>', "\\u003E")
        .replace('+', "\\u002B")
        .replace('\'', "\\u0027")
}

fn reversed(value: &str) -> String {
    value.chars().rev().collect()
}

fn assert_echo_redacted(encode: fn(&str) -> String) {
    let server = echo_server(encode);
    let scene = Scene::new();
    let out = run(
        &scene,
        &workflow(vec![bearer("echo", &server.url())]),
        &policy(&[&server], &server),
        SECRET,
    );
    out.expect_code(0);
    // The server did get the value, and did echo it in its own style.
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(&*format!("Bearer {SECRET}"))
    );
    let json = out.json();
    assert_eq!(
        node_run(&json, "echo")["output"]["token"],
        "[secret:api-token]",
        "{json:#}"
    );
    scene.assert_no_leak(&out, SECRET);
}

#[test]
fn a_go_style_json_echo_is_redacted() {
    assert_echo_redacted(go_json);
}

#[test]
fn a_dotnet_style_json_echo_is_redacted() {
    assert_echo_redacted(dotnet_json);
}

/// Node `echo` learns the value from an in-scope server that echoes it reversed (a form no
/// redaction can recognise); node `exfil` turns it back and sends it to `other`, a host the
/// policy allows but the secret's scope does not include, placed by `exfil_config`.
fn moved_value_run(exfil_config: impl Fn(&Receiver) -> Value) -> (Scene, Run, Receiver, Receiver) {
    let server = echo_server(reversed);
    let other = Receiver::start();
    let scene = Scene::new();
    let mut config = json!({"url": format!("{}/collect", other.url())});
    config
        .as_object_mut()
        .unwrap()
        .extend(exfil_config(&other).as_object().unwrap().clone());
    let out = run(
        &scene,
        &workflow(vec![
            bearer("echo", &server.url()),
            webhook("exfil", config),
        ]),
        &policy(&[&server, &other], &server),
        SECRET,
    );
    (scene, out, server, other)
}

const UNREVERSED: &str = "{{ .outputs.echo.token | explode | reverse | implode }}";

#[test]
fn a_value_moved_to_an_out_of_scope_host_is_refused_in_every_place_and_encoding() {
    let encoded = |filter: &str| {
        format!("{{{{ .outputs.echo.token | explode | reverse | implode | {filter} }}}}")
    };
    let placements = [
        json!({"body": {"t": UNREVERSED}}),
        json!({"method": "GET", "headers": {"X-Token": UNREVERSED}}),
        json!({"body": {"t": encoded("@base64")}}),
        json!({"body": {"t": encoded("@uri")}}),
        json!({"body": {"t": encoded("@html")}}),
        json!({"headers": {"Content-Type": "text/plain"}, "body": UNREVERSED}),
    ];
    for placement in placements {
        let (scene, out, _server, other) = moved_value_run(|_| placement.clone());
        out.expect_code(1);
        let json = out.json();
        let exfil = node_run(&json, "exfil");
        let error = exfil["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("denied") && error.contains("the value of secret api-token"),
            "{placement}: {error}"
        );
        assert_eq!(other.connections(), 0, "{placement}: the value left");
        let audit = scene.audit_records();
        let record = audit.last().unwrap();
        assert_eq!(record["decision"], "deny", "{record:#}");
        assert_eq!(record["secrets"], json!(["api-token"]), "{record:#}");
        assert!(
            record["rule"].as_str().unwrap().contains("api-token"),
            "{record:#}"
        );
        scene.assert_no_leak(&out, SECRET);
    }
}

#[test]
fn a_value_moved_into_the_url_of_an_out_of_scope_host_is_refused() {
    let (scene, out, _server, other) = moved_value_run(
        |other| json!({"method": "GET", "url": format!("{}/collect?t={UNREVERSED}", other.url())}),
    );
    out.expect_code(1);
    assert_eq!(other.connections(), 0);
    let audit = scene.audit_records();
    let record = audit.last().unwrap();
    assert_eq!(record["decision"], "deny");
    let rule = record["rule"].as_str().unwrap();
    assert!(rule.contains("in the request URL"), "{record:#}");
    scene.assert_no_leak(&out, SECRET);
}

#[test]
fn a_value_moved_back_to_a_host_in_its_scope_is_sent() {
    let server = echo_server(reversed);
    let scene = Scene::new();
    let out = run(
        &scene,
        &workflow(vec![
            bearer("echo", &server.url()),
            webhook(
                "back",
                json!({"url": format!("{}/again", server.url()), "body": {"t": UNREVERSED}}),
            ),
        ]),
        &policy(&[&server], &server),
        SECRET,
    );
    out.expect_code(0);
    let got = server.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["t"], SECRET);
    let audit = scene.audit_records();
    assert_eq!(audit[1]["decision"], "allow");
    assert_eq!(audit[1]["secrets"], json!(["api-token"]));
    scene.assert_no_leak(&out, SECRET);
}

fn split_case(prefix: &str, place: &str) -> (Scene, Run, Receiver) {
    let server = Receiver::start();
    let scene = Scene::new();
    let handle = "{{ .secrets[\"api-token\"] }}";
    let call = match place {
        "url" => json!({"method": "GET", "url": format!("{}/q?x={prefix}{handle}", server.url())}),
        "header" => json!({"method": "GET", "url": server.url(),
                           "headers": {"X-Key": format!("{prefix}{handle}")}}),
        _ => json!({"url": server.url(), "headers": {"Content-Type": "text/plain"},
                    "body": format!("key={prefix}{handle}")}),
    };
    let out = run(
        &scene,
        &workflow(vec![webhook("call", call)]),
        &policy(&[&server], &server),
        HEX_SECRET,
    );
    (scene, out, server)
}

#[test]
fn a_handle_after_an_escape_or_a_word_character_is_refused_and_nothing_is_sent() {
    let cases = [
        ("%2", "url"),
        ("%", "url"),
        ("%", "body"),
        ("%2", "body"),
        ("\\", "body"),
        ("\\u00", "body"),
        ("&#x", "body"),
        ("\\", "header"),
        ("%2", "header"),
        // Finished escapes are refused too: a receiver may decode twice (%25 + 41 -> %41 -> A).
        ("%25", "url"),
        ("\\\\", "body"),
        ("&#x0000000000000000000000000000000000", "body"),
    ];
    for (prefix, place) in cases {
        let (scene, out, server) = split_case(prefix, place);
        out.expect_code(1);
        let json = out.json();
        let error = node_run(&json, "call")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            error.contains("secret api-token: its handle must follow the start of the text"),
            "{prefix} in {place}: {error}"
        );
        assert_eq!(server.connections(), 0, "{prefix} in {place}: sent");
        let audit = scene.audit_records();
        assert_eq!(audit.len(), 1, "{audit:#?}");
        assert_eq!(audit[0]["decision"], "deny", "{:#}", audit[0]);
        scene.assert_no_leak(&out, HEX_SECRET);
    }
}

#[test]
fn a_handle_after_a_separator_is_sent() {
    for (prefix, place) in [
        ("", "url"),
        ("", "body"),
        ("", "header"),
        ("Bearer ", "header"),
    ] {
        let (scene, out, server) = split_case(prefix, place);
        out.expect_code(0);
        assert_eq!(server.requests().len(), 1, "{prefix} in {place}");
        scene.assert_no_leak(&out, HEX_SECRET);
    }
}

#[test]
fn errors_inputs_and_outputs_show_names_not_handles_or_values() {
    let server = Receiver::start();
    let scene = Scene::new();
    let secrets = scene.write("secrets.json", &json!({"api-token": SECRET}).to_string());
    // A template error quotes the handle it failed on; the inputs carry the value itself.
    let wf = workflow(vec![
        webhook(
            "broken",
            json!({"url": server.url(), "onFailure": "continue",
                   "body": {"n": "{{ .secrets[\"api-token\"] | tonumber }}"}}),
        ),
        webhook(
            "inputs",
            json!({"url": server.url(), "body": {"seen": "{{ .outputs.trigger.note }}"}}),
        ),
    ]);
    let inputs = json!({"note": SECRET}).to_string();
    let out = scene.run_json(
        &wf,
        Some(&policy(&[&server], &server)),
        &["--secrets", secrets.to_str().unwrap(), "--inputs", &inputs],
    );
    out.expect_code(0);
    let json = out.json();
    let error = node_run(&json, "broken")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("[secret:api-token]"), "{error}");
    assert!(!error.contains("__airlock_secret_"), "{error}");
    assert_eq!(json["outputs"]["trigger"]["note"], "[secret:api-token]");
    assert_eq!(server.requests()[0].json()["seen"], "[secret:api-token]");
    scene.assert_no_leak(&out, SECRET);
}
