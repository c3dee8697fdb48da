//! Adversarial end-to-end cases for the egress gate: every request goes through the real
//! `airlock` binary and the built-in WEBHOOK node, aimed at real local servers that record every
//! TCP connection, so "refused" always also means "the server was never contacted".

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Receiver, Reply, Run, Scene, node_run};

/// A start trigger followed by one WEBHOOK node `call` with this config (url, method, ...).
fn hook_workflow(config: Value) -> String {
    let mut call = json!({"type": "WEBHOOK"});
    call.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({
        "identifier": "adversarial",
        "nodes": [
            {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "call", "config": call}
        ],
        "connections": [{"sourceIdentifier": "start", "targetIdentifier": "call"}]
    })
    .to_string()
}

fn run(scene: &Scene, workflow: &str, policy: Option<&str>, extra: &[&str]) -> Run {
    scene.run_json(workflow, policy, extra)
}

fn get(url: &str) -> String {
    hook_workflow(json!({"url": url, "method": "GET"}))
}

fn allow(url: &str) -> String {
    format!("[egress]\nallow = [\"{url}\"]\n")
}

/// The `call` node's error, asserting that it failed.
fn call_error(out: &Run) -> String {
    let json = out.json();
    let call = node_run(&json, "call");
    assert_eq!(call["result"], "FAILED", "{call:#}");
    call["error"].as_str().unwrap_or_default().to_string()
}

/// The run failed (exit 1) because the gate refused `call`, for a reason containing `why`;
/// the single audit record is a deny naming it too.
fn assert_denied(scene: &Scene, out: &Run, why: &str) {
    out.expect_code(1);
    let error = call_error(out);
    assert!(error.contains("denied") && error.contains(why), "{error}");
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["decision"], "deny", "{:#}", audit[0]);
    assert!(
        audit[0]["rule"].as_str().unwrap_or_default().contains(why),
        "{:#}",
        audit[0]
    );
    assert_eq!(audit[0]["resolvedIp"], Value::Null);
    assert_eq!(audit[0]["status"], Value::Null);
}

/// Like `assert_denied`, for requests the gate rejects as malformed (deny record, no rule match).
fn assert_invalid(scene: &Scene, out: &Run, why: &str) {
    out.expect_code(1);
    let error = call_error(out);
    assert!(error.contains(why), "{error}");
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["decision"], "deny", "{:#}", audit[0]);
    assert!(
        audit[0]["error"].as_str().unwrap_or_default().contains(why),
        "{:#}",
        audit[0]
    );
}

/// A connection the child made just before exiting may still sit in the accept queue: give the
/// receiver's accept loop a moment before concluding that nobody connected.
fn assert_untouched(connections: impl Fn() -> usize) {
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(connections(), 0, "the server was contacted");
}

/// A bare TCP listener on [::1] counting connections (the shared Receiver binds 127.0.0.1 only).
/// `None` when this machine has no IPv6 loopback.
fn ipv6_loopback_listener() -> Option<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("[::1]:0").ok()?;
    let port = listener.local_addr().ok()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Some((port, count))
}

/// With the default policy, `http://HOST:PORT/` aimed at a live receiver on 127.0.0.1:PORT is
/// refused as `range` and the receiver never sees a connection.
fn refused_at_live_receiver(host: &str, range: &str) {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let url = format!("http://{host}:{}/probe", receiver.addr.port());
    let out = run(&scene, &get(&url), None, &[]);
    assert_denied(&scene, &out, range);
    assert_untouched(|| receiver.connections());
}

/// With the default policy, `http://HOST/` is refused as `range` (nothing listens there).
fn refused_without_listener(host: &str, range: &str) {
    let scene = Scene::new();
    let out = run(
        &scene,
        &get(&format!("http://{host}/latest/meta-data/")),
        None,
        &[],
    );
    assert_denied(&scene, &out, range);
}

macro_rules! refused_forms {
    ($check:ident: $($name:ident: $host:expr => $range:expr;)*) => {
        $(
            #[test]
            fn $name() {
                $check($host, $range);
            }
        )*
    };
}

// Every textual form of loopback, aimed at a receiver that would answer on 127.0.0.1:PORT.
refused_forms! { refused_at_live_receiver:
    loopback_dotted_is_refused: "127.0.0.1" => "loopback (127.0.0.0/8)";
    loopback_trailing_dot_is_refused: "127.0.0.1." => "loopback (127.0.0.0/8)";
    localhost_name_is_refused: "localhost" => "loopback";
    loopback_decimal_is_refused: "2130706433" => "loopback (127.0.0.0/8)";
    loopback_hex_is_refused: "0x7f000001" => "loopback (127.0.0.0/8)";
    loopback_octal_is_refused: "0177.0.0.1" => "loopback (127.0.0.0/8)";
    loopback_short_is_refused: "127.1" => "loopback (127.0.0.0/8)";
    loopback_hex_short_is_refused: "0x7f.1" => "loopback (127.0.0.0/8)";
    loopback_other_address_is_refused: "127.0.0.2" => "loopback (127.0.0.0/8)";
    unspecified_reaching_loopback_is_refused: "0.0.0.0" => "unspecified (0.0.0.0/8)";
    ipv4_mapped_dotted_is_refused: "[::ffff:127.0.0.1]" => "loopback (127.0.0.0/8) via IPv4-mapped";
    ipv4_mapped_hex_is_refused: "[::ffff:7f00:1]" => "loopback (127.0.0.0/8) via IPv4-mapped";
    ipv4_mapped_long_form_is_refused: "[0:0:0:0:0:ffff:127.0.0.1]" => "loopback (127.0.0.0/8) via IPv4-mapped";
    ipv4_compatible_is_refused: "[::127.0.0.1]" => "loopback (127.0.0.0/8) via IPv4-compatible";
    nat64_loopback_is_refused: "[64:ff9b::7f00:1]" => "loopback (127.0.0.0/8) via NAT64";
    ipv6_unspecified_is_refused: "[::]" => "unspecified (::)";
}

// Private, metadata and special ranges: refused before any connection is attempted.
refused_forms! { refused_without_listener:
    cloud_metadata_is_refused: "169.254.169.254" => "link-local (169.254.0.0/16)";
    mapped_cloud_metadata_is_refused: "[::ffff:169.254.169.254]" => "link-local (169.254.0.0/16) via IPv4-mapped";
    private_10_is_refused: "10.0.0.1" => "private (10.0.0.0/8)";
    private_172_is_refused: "172.16.0.1" => "private (172.16.0.0/12)";
    private_192_is_refused: "192.168.1.1" => "private (192.168.0.0/16)";
    cgnat_is_refused: "100.64.0.1" => "shared CGNAT (100.64.0.0/10)";
    unique_local_ipv6_is_refused: "[fd00::1]" => "unique local (fc00::/7)";
    link_local_ipv6_is_refused: "[fe80::1]" => "link-local (fe80::/10)";
    multicast_is_refused: "224.0.0.1" => "multicast (224.0.0.0/4)";
    broadcast_is_refused: "255.255.255.255" => "broadcast (255.255.255.255)";
    documentation_range_is_refused: "192.0.2.1" => "documentation (192.0.2.0/24)";
}

#[test]
fn ipv6_loopback_is_refused() {
    let Some((port, connections)) = ipv6_loopback_listener() else {
        // No IPv6 loopback here: the form is still refused, just with nothing to contact.
        refused_without_listener("[::1]", "loopback (::1)");
        return;
    };
    let scene = Scene::new();
    let out = run(
        &scene,
        &get(&format!("http://[::1]:{port}/probe")),
        None,
        &[],
    );
    assert_denied(&scene, &out, "loopback (::1)");
    assert_untouched(|| connections.load(Ordering::SeqCst));
}

#[test]
fn an_address_rule_opens_only_its_port() {
    let (a, b) = (Receiver::start(), Receiver::start());
    let policy = allow(&a.url());
    let scene = Scene::new();
    run(&scene, &get(&format!("{}/ok", a.url())), Some(&policy), &[]).expect_code(0);
    assert_eq!(a.requests().len(), 1);

    let scene = Scene::new();
    let out = run(&scene, &get(&format!("{}/no", b.url())), Some(&policy), &[]);
    assert_denied(&scene, &out, "private address 127.0.0.1: loopback");
    assert_untouched(|| b.connections());
}

#[test]
fn a_rule_for_an_address_does_not_cover_its_ipv6_forms() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let url = format!("http://[::ffff:127.0.0.1]:{}/", receiver.addr.port());
    let out = run(&scene, &get(&url), Some(&allow(&receiver.url())), &[]);
    assert_denied(&scene, &out, "via IPv4-mapped");
    assert_untouched(|| receiver.connections());
}

#[test]
fn deny_beats_allow() {
    let receiver = Receiver::start();
    let policy = format!(
        "[egress]\nallow = [\"{}\"]\ndeny = [\"*://127.0.0.0/8:*\"]\n",
        receiver.url()
    );
    let scene = Scene::new();
    let out = run(&scene, &get(&receiver.url()), Some(&policy), &[]);
    assert_denied(&scene, &out, "deny[0] *://127.0.0.0/8:*");
    assert_untouched(|| receiver.connections());
}

#[test]
fn deny_by_address_also_catches_its_mapped_form() {
    let receiver = Receiver::start();
    let policy = "[egress]\nallow = [\"*://[::ffff:127.0.0.1]:*\"]\ndeny = [\"*://127.0.0.1:*\"]\n";
    let scene = Scene::new();
    let url = format!("http://[::ffff:127.0.0.1]:{}/", receiver.addr.port());
    let out = run(&scene, &get(&url), Some(policy), &[]);
    assert_denied(&scene, &out, "deny[0] *://127.0.0.1:*");
    assert_untouched(|| receiver.connections());
}

#[test]
fn default_deny_refuses_a_public_host() {
    let scene = Scene::new();
    let policy = "[egress]\ndefault = \"deny\"\nallow = [\"https://api.github.com\"]\n";
    let out = run(&scene, &get("https://example.com/"), Some(policy), &[]);
    assert_denied(&scene, &out, "default deny");
}

#[test]
fn subdomain_wildcard_does_not_match_the_bare_domain() {
    let scene = Scene::new();
    let policy = "[egress]\ndefault = \"deny\"\nallow = [\"https://*.example.com\"]\n";
    let out = run(&scene, &get("https://example.com/"), Some(policy), &[]);
    assert_denied(&scene, &out, "default deny");
}

#[test]
fn non_http_schemes_are_refused() {
    for url in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1:70/",
    ] {
        // Written in the workflow: refused at validation, before anything runs.
        let scene = Scene::new();
        let out = run(&scene, &get(url), None, &[]);
        out.expect_code(2);
        assert!(
            out.stderr().contains("must be http or https"),
            "{}",
            out.stderr()
        );
        assert!(scene.audit_records().is_empty());
        // Coming from an input at run time: refused by the gate.
        let scene = Scene::new();
        let inputs = json!({"u": url}).to_string();
        let templated = get("{{ .outputs.trigger.u }}");
        let out = run(&scene, &templated, None, &["--inputs", &inputs]);
        assert_invalid(&scene, &out, "only http and https URLs are allowed");
    }
}

#[test]
fn userinfo_in_the_url_is_refused_and_nothing_sent() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let url = format!("http://evil.example@{}/", receiver.addr);
    let out = run(&scene, &get(&url), Some(&allow(&receiver.url())), &[]);
    assert_invalid(&scene, &out, "credentials in the URL are not supported");
    assert_untouched(|| receiver.connections());
}

#[test]
fn a_redirect_to_a_forbidden_address_is_not_followed() {
    let forbidden = Receiver::start();
    let target = format!("{}/internal", forbidden.url());
    let allowed = Receiver::with_routes(move |_| Reply {
        status: 302,
        headers: vec![("location".into(), target.clone())],
        body: b"moved".to_vec(),
    });
    let scene = Scene::new();
    let out = run(
        &scene,
        &get(&format!("{}/start", allowed.url())),
        Some(&allow(&allowed.url())),
        &[],
    );
    out.expect_code(1);
    let error = call_error(&out);
    assert!(error.contains("HTTP 302"), "{error}");
    assert_eq!(allowed.requests().len(), 1);
    assert_untouched(|| forbidden.connections());
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[0]["status"], 302);
}

#[test]
fn a_redirect_to_an_allowed_address_is_not_followed_either() {
    let receiver = Receiver::with_routes(|r| {
        if r.path == "/start" {
            Reply {
                status: 301,
                headers: vec![("location".into(), "/next".into())],
                body: Vec::new(),
            }
        } else {
            Reply::json(200, json!({"reached": r.path}))
        }
    });
    let scene = Scene::new();
    let out = run(
        &scene,
        &get(&format!("{}/start", receiver.url())),
        Some(&allow(&receiver.url())),
        &[],
    );
    out.expect_code(1);
    assert!(call_error(&out).contains("HTTP 301"));
    let paths: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/start"]);
}

/// A workflow whose `call` sets header `name` from the trigger input `h`.
fn header_from_input(url: &str, name: &str) -> String {
    hook_workflow(json!({
        "url": url,
        "method": "GET",
        "headers": {name: "{{ .outputs.trigger.h }}"}
    }))
}

fn run_with_input(scene: &Scene, workflow: &str, policy: &str, input: Value) -> Run {
    let inputs = input.to_string();
    run(scene, workflow, Some(policy), &["--inputs", &inputs])
}

#[test]
fn crlf_header_injection_from_an_input_is_refused() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let workflow = header_from_input(&receiver.url(), "X-Note");
    let out = run_with_input(
        &scene,
        &workflow,
        &allow(&receiver.url()),
        json!({"h": "hello\r\nX-Injected: 1"}),
    );
    assert_invalid(&scene, &out, "header x-note contains CR, LF or NUL");
    assert_untouched(|| receiver.connections());
}

#[test]
fn lone_lf_header_injection_is_refused() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let workflow = header_from_input(&receiver.url(), "X-Note");
    let out = run_with_input(
        &scene,
        &workflow,
        &allow(&receiver.url()),
        json!({"h": "hello\nX-Injected: 1"}),
    );
    assert_invalid(&scene, &out, "contains CR, LF or NUL");
    assert_untouched(|| receiver.connections());
}

#[test]
fn host_header_override_is_refused() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let workflow = header_from_input(&receiver.url(), "Host");
    let out = run_with_input(
        &scene,
        &workflow,
        &allow(&receiver.url()),
        json!({"h": "169.254.169.254"}),
    );
    assert_invalid(&scene, &out, "header host is managed by the gate");
    assert_untouched(|| receiver.connections());
}

#[test]
fn transfer_encoding_header_is_refused() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let workflow = hook_workflow(json!({
        "url": receiver.url(),
        "headers": {"Transfer-Encoding": "chunked"},
        "body": {"smuggle": "0\r\n\r\nGET /admin HTTP/1.1"}
    }));
    let out = run(&scene, &workflow, Some(&allow(&receiver.url())), &[]);
    assert_invalid(
        &scene,
        &out,
        "header transfer-encoding is managed by the gate",
    );
    assert_untouched(|| receiver.connections());
}

#[test]
fn proxy_headers_are_refused() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let workflow = header_from_input(&receiver.url(), "Proxy-Authorization");
    let out = run_with_input(
        &scene,
        &workflow,
        &allow(&receiver.url()),
        json!({"h": "Basic eDp5"}),
    );
    assert_invalid(
        &scene,
        &out,
        "header proxy-authorization is managed by the gate",
    );
    assert_untouched(|| receiver.connections());
}

const SECRET: &str = "tok/Zq81 xPm4+&=";

/// The policy allowing `receiver`, with `api-token` scoped to `scope`.
fn scoped_policy(receiver: &Receiver, scope: &str) -> String {
    format!(
        "{}\n[secrets.api-token]\nhosts = [\"{scope}\"]\n",
        allow(&receiver.url())
    )
}

fn bearer_workflow(url: &str) -> String {
    hook_workflow(json!({
        "url": url,
        "method": "GET",
        "headers": {"Authorization": "Bearer {{ .secrets[\"api-token\"] }}"}
    }))
}

fn run_with_secret(scene: &Scene, workflow: &str, policy: &str, value: &str) -> Run {
    let secrets = scene.write("secrets.json", &json!({"api-token": value}).to_string());
    let secrets = secrets.to_str().unwrap().to_string();
    run(scene, workflow, Some(policy), &["--secrets", &secrets])
}

/// None of `forms` appears in stdout, stderr, or any file under the state dir.
fn assert_nowhere(scene: &Scene, out: &Run, forms: &[String]) {
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    scene.assert_nowhere(out, &forms);
}

fn url_encoded(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn base64(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

#[test]
fn a_secret_scoped_elsewhere_is_refused_and_not_sent() {
    let receiver = Receiver::start();
    let other = Receiver::start();
    let scene = Scene::new();
    let out = run_with_secret(
        &scene,
        &bearer_workflow(&receiver.url()),
        &scoped_policy(&receiver, &other.url()),
        SECRET,
    );
    assert_denied(
        &scene,
        &out,
        "secret api-token is not allowed for 127.0.0.1",
    );
    assert_eq!(scene.audit_records()[0]["secrets"], json!(["api-token"]));
    assert_untouched(|| receiver.connections() + other.connections());
    assert_nowhere(&scene, &out, &[SECRET.to_string()]);
}

#[test]
fn a_secret_scoped_to_the_receiver_is_sent() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let out = run_with_secret(
        &scene,
        &bearer_workflow(&format!("{}/api", receiver.url())),
        &scoped_policy(&receiver, &receiver.url()),
        SECRET,
    );
    out.expect_code(0);
    let got = receiver.requests();
    assert_eq!(
        got[0].header("authorization"),
        Some(&*format!("Bearer {SECRET}"))
    );
    let audit = scene.audit_records();
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[0]["secrets"], json!(["api-token"]));
    assert_nowhere(&scene, &out, &[SECRET.to_string()]);
}

#[test]
fn a_secret_echoed_plain_url_encoded_and_base64_is_redacted_everywhere() {
    // The server answers with the token it got, in every encoding, in the body and headers.
    let receiver = Receiver::with_routes(|r| {
        let auth = r.header("authorization").unwrap_or_default();
        let token = auth.strip_prefix("Bearer ").unwrap_or_default().to_string();
        let mut reply = Reply::json(
            200,
            json!({"plain": token, "url": url_encoded(&token), "b64": base64(&token)}),
        );
        reply
            .headers
            .push(("x-echo-url".into(), url_encoded(&token)));
        reply.headers.push(("x-echo-b64".into(), base64(&token)));
        reply
    });
    let scene = Scene::new();
    let out = run_with_secret(
        &scene,
        &bearer_workflow(&receiver.url()),
        &scoped_policy(&receiver, &receiver.url()),
        SECRET,
    );
    out.expect_code(0);
    // The server did get the value: the test would prove nothing otherwise.
    let sent = receiver.requests()[0]
        .header("authorization")
        .map(str::to_string);
    assert_eq!(sent, Some(format!("Bearer {SECRET}")));

    let json = out.json();
    let seen = &node_run(&json, "call")["output"];
    for field in ["plain", "url", "b64"] {
        assert_eq!(seen[field], "[secret:api-token]", "{field}: {seen:#}");
    }
    let headers = &seen["response"]["headers"];
    assert_eq!(headers["x-echo-url"], "[secret:api-token]", "{headers:#}");
    assert_eq!(headers["x-echo-b64"], "[secret:api-token]", "{headers:#}");
    let forms = [SECRET.to_string(), url_encoded(SECRET), base64(SECRET)];
    assert_nowhere(&scene, &out, &forms);
}

#[test]
fn a_secret_echoed_as_a_response_header_name_is_redacted() {
    // Header names are case-insensitive and come back lowercased: use a lowercase token.
    const TOKEN: &str = "tok-zq81xpm4-name";
    let receiver = Receiver::with_routes(|r| {
        let auth = r.header("authorization").unwrap_or_default();
        let token = auth.strip_prefix("Bearer ").unwrap_or_default().to_string();
        let mut reply = Reply::json(200, json!({"ok": true}));
        reply.headers.push((token, "1".into()));
        reply
    });
    let scene = Scene::new();
    let out = run_with_secret(
        &scene,
        &bearer_workflow(&receiver.url()),
        &allow(&receiver.url()),
        TOKEN,
    );
    out.expect_code(0);
    assert_eq!(
        receiver.requests()[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_nowhere(&scene, &out, &[TOKEN.to_string()]);
}

#[test]
fn a_secret_with_crlf_in_a_header_is_refused_without_printing_it() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let value = "canary-Zq81xPm4\r\nX-Injected: 1";
    let out = run_with_secret(
        &scene,
        &bearer_workflow(&receiver.url()),
        &allow(&receiver.url()),
        value,
    );
    assert_invalid(&scene, &out, "header authorization contains CR, LF or NUL");
    assert_untouched(|| receiver.connections());
    assert_nowhere(&scene, &out, &["canary-Zq81xPm4".to_string()]);
}

#[test]
fn a_secret_handle_in_the_host_is_refused() {
    let scene = Scene::new();
    let workflow = get("http://{{ .secrets[\"api-token\"] }}.example.com/");
    let out = run_with_secret(&scene, &workflow, "", "canary-Zq81xPm4");
    assert_invalid(
        &scene,
        &out,
        "secret handles may only appear in the URL path or query",
    );
    assert_nowhere(&scene, &out, &["canary-Zq81xPm4".to_string()]);
}

#[test]
fn a_response_over_the_size_cap_fails_the_node() {
    // The gate's default cap is 10 MiB.
    const CAP: usize = 10 * 1024 * 1024;
    let receiver = Receiver::with_routes(|_| Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: vec![b'x'; CAP + 1],
    });
    let scene = Scene::new();
    let out = run(
        &scene,
        &get(&receiver.url()),
        Some(&allow(&receiver.url())),
        &[],
    );
    out.expect_code(1);
    let error = call_error(&out);
    assert!(
        error.contains("larger than") && error.contains(&CAP.to_string()),
        "{error}"
    );
    let audit = scene.audit_records();
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[0]["bytesReceived"], CAP as u64);
    assert!(
        audit[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than"),
        "{:#}",
        audit[0]
    );
}

#[test]
fn a_slow_server_cannot_hold_a_node_run_past_its_wall_time() {
    // The gate's per-request timeout is not configurable from outside yet; the node run's
    // wall-time limit (policy `[limits]`) bounds a server that never answers in time.
    let receiver = Receiver::with_routes(|_| {
        std::thread::sleep(Duration::from_secs(10));
        Reply::json(200, json!({"late": true}))
    });
    let policy = format!("{}\n[limits]\nwall_time_ms = 500\n", allow(&receiver.url()));
    let scene = Scene::new();
    let started = std::time::Instant::now();
    let out = run(&scene, &get(&receiver.url()), Some(&policy), &[]);
    // Well under the server's 10 s; the rest is room for compiling the node on a busy machine.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    out.expect_code(1);
    let error = call_error(&out);
    assert!(
        error.contains("wall-time limit of 500 ms exceeded"),
        "{error}"
    );
    // The request it left in flight was cut short with it, and still audited, once.
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(
        audit[0]["error"],
        "cancelled: the node run ended before the request finished"
    );
}

#[test]
fn the_audit_keeps_what_an_obfuscated_url_reached() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let port = receiver.addr.port();
    let written = format!("http://0x7f.\t%30%2E1:{port}/probe");
    let out = run(&scene, &get(&written), Some(&allow(&receiver.url())), &[]);
    out.expect_code(0);
    assert_eq!(receiver.requests().len(), 1);
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    let r = &audit[0];
    assert_eq!(r["decision"], "allow", "{r:#}");
    assert_eq!(r["url"], written.as_str(), "the node's text is kept");
    assert_eq!(r["normalizedUrl"], format!("http://127.0.0.1:{port}/probe"));
    assert_eq!(r["host"], "127.0.0.1");
}

#[test]
fn a_denied_url_with_control_characters_still_names_its_host() {
    let scene = Scene::new();
    // From an input: a URL in the workflow file itself is checked when the file is loaded.
    let workflow = hook_workflow(json!({"url": "{{ .outputs.trigger.u }}", "method": "GET"}));
    let input = json!({"u": "http://evil\u{7}host.example\u{202e}/x"});
    let out = run_with_input(&scene, &workflow, "", input);
    assert_invalid(&scene, &out, "invalid URL");
    let r = &scene.audit_records()[0];
    assert_eq!(r["normalizedUrl"], Value::Null, "{r:#}");
    assert_eq!(r["host"], "evil\\u{7}host.example\\u{202e}", "{r:#}");
}

#[test]
fn airlock_audit_escapes_control_bidi_and_separator_characters() {
    let receiver = Receiver::start();
    let scene = Scene::new();
    let url = format!("{}/in\u{202e}voice\u{2028}txt.exe\u{7}", receiver.url());
    let out = run(&scene, &get(&url), Some(&allow(&receiver.url())), &[]);
    out.expect_code(0);
    let table = scene.airlock(&["audit"]);
    table.expect_code(0);
    let text = table.stdout();
    assert!(
        !text.contains(['\u{202e}', '\u{2028}', '\u{2029}', '\u{7}']),
        "{text:?}"
    );
    assert!(text.contains("/in\\u{202e}voice\\u{2028}txt"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
}
