//! Drives `Gate::send` against real loopback listeners that record whether they were contacted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{
    AddressRefusal, BodyBudget, Caller, ConnectionFailure, Denial, EgressError, Gate, GateLimits,
    Invalid, Policy, Request,
};
use crate::audit::{self, AuditFilter, AuditLog, AuditRecord, Decision};
use crate::secrets::{Bindings, Encoding, SecretStore};

const SECRET: &str = "s3cr3t-VALUE";

/// A loopback HTTP/1.1 server answering every request with `respond(raw request)`.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Server {
    async fn start(respond: fn(&[u8]) -> Option<Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (hits_in, received_in) = (Arc::clone(&hits), Arc::clone(&received));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                hits_in.fetch_add(1, Ordering::SeqCst);
                let received = Arc::clone(&received_in);
                tokio::spawn(async move {
                    let request = read_request(&mut socket).await;
                    received.lock().expect("lock").push(request.clone());
                    match respond(&request) {
                        Some(reply) => {
                            let _ = socket.write_all(&reply).await;
                            let _ = socket.shutdown().await;
                        }
                        // Never answer: hold the connection open until the client gives up.
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        Server {
            addr,
            hits,
            received,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn rule(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return data;
            }
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return data,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reply(status: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn ok(_: &[u8]) -> Option<Vec<u8>> {
    Some(reply("200 OK", "", b"ok"))
}

fn echo(request: &[u8]) -> Option<Vec<u8>> {
    Some(reply("200 OK", &format!("x-echo: {SECRET}\r\n"), request))
}

struct Setup {
    gate: Gate,
    caller: Caller,
    handle: String,
    audit_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(policy: &str, limits: GateLimits) -> Setup {
        Setup::with_secret(policy, limits, SECRET)
    }

    /// Secret `api-token` holds `value`.
    fn with_secret(policy: &str, limits: GateLimits, value: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit_path = dir.path().join("audit.jsonl");
        let audit = Arc::new(AuditLog::open(&audit_path).expect("audit log"));
        let policy = Arc::new(Policy::from_toml(policy).expect("valid policy"));
        let env = [("AIRLOCK_SECRET_API_TOKEN".to_string(), value.to_string())];
        let store = Arc::new(SecretStore::load(None, env).expect("secrets"));
        let bindings = Bindings::new(store);
        let handle = bindings.context_object()["api-token"]
            .as_str()
            .expect("handle")
            .to_string();
        let caller = Caller {
            run: "r1".to_string(),
            node_run: "nr1".to_string(),
            node: "call".to_string(),
            component: "sha256:00".to_string(),
            bindings: Arc::new(bindings),
            requests_made: AtomicU32::new(0),
            node_allow: None,
            buffers: BodyBudget::new(64 << 20),
            flights: Arc::default(),
            carried_value: Arc::default(),
        };
        Setup {
            gate: Gate::new(policy, audit, limits),
            caller,
            handle,
            audit_path,
            _dir: dir,
        }
    }

    async fn get(&self, url: &str) -> Result<super::Response, EgressError> {
        self.send(request("GET", url)).await
    }

    async fn send(&self, req: Request) -> Result<super::Response, EgressError> {
        self.gate.send(&self.caller, req).await
    }

    fn records(&self) -> Vec<AuditRecord> {
        let all = AuditFilter {
            run: None,
            node: None,
            decision: None,
        };
        audit::read(&self.audit_path, &all).expect("audit log readable")
    }

    fn only_record(&self) -> AuditRecord {
        let mut records = self.records();
        assert_eq!(records.len(), 1, "exactly one audit record: {records:?}");
        records.remove(0)
    }
}

fn request(method: &str, url: &str) -> Request {
    Request {
        method: method.to_string(),
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
    }
}

fn allow_only(server: &Server) -> String {
    format!(
        "[egress]\ndefault = \"deny\"\nallow = [\"{}\"]",
        server.rule()
    )
}

/// `allow_only(server)`, with secret `api-token` scoped to another host.
fn scoped_elsewhere(server: &Server) -> String {
    format!(
        "{}\n[secrets.api-token]\nhosts = [\"api.example.com\"]",
        allow_only(server)
    )
}

#[test]
fn numeric_ipv4_forms_normalise_to_loopback() {
    for host in [
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0x7f.1",
        "127.0.1",
    ] {
        let url = url::Url::parse(&format!("http://{host}/")).expect("parses");
        assert_eq!(url.host_str(), Some("127.0.0.1"), "{host}");
    }
}

#[tokio::test]
async fn explicit_address_rule_allows_loopback() {
    let server = Server::start(ok).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let response = setup.get(&server.url("/ping")).await.expect("allowed");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
    assert_eq!(server.hits(), 1);
    let record = setup.only_record();
    assert_eq!(record.decision, Decision::Allow);
    assert_eq!(record.rule, Some(format!("allow[0] {}", server.rule())));
    assert_eq!(record.resolved_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.status, Some(200));
    assert_eq!(record.bytes_received, 2);
    assert_eq!(record.method, "GET");
    assert_eq!(record.node, "call");
    assert_eq!(record.error, None);
}

#[tokio::test]
async fn a_node_manifest_narrows_the_policy() {
    let allowed = Server::start(ok).await;
    let outside = Server::start(ok).await;
    let policy = format!(
        "[egress]\ndefault = \"deny\"\nallow = [\"{}\", \"{}\"]",
        allowed.rule(),
        outside.rule()
    );
    let mut setup = Setup::new(&policy, GateLimits::default());
    let manifest = super::Pattern::parse(&allowed.rule(), false).expect("pattern");
    setup.caller.node_allow = Some(Arc::new(vec![manifest]));
    setup.get(&allowed.url("/")).await.expect("allowed by both");
    let err = setup.get(&outside.url("/")).await.expect_err("refused");
    let expected = format!("node manifest does not allow {}", outside.rule());
    assert_eq!(
        err,
        EgressError::Denied(Denial::NodeManifest {
            origin: outside.rule()
        })
    );
    assert_eq!(err.to_string(), format!("denied: {expected}"));
    assert_eq!(outside.hits(), 0);
    let records = setup.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].decision, Decision::Deny);
    assert_eq!(records[1].rule.as_deref(), Some(expected.as_str()));

    // The manifest cannot widen the policy: a destination only it allows stays denied.
    let mut setup = Setup::new("[egress]\ndefault = \"deny\"", GateLimits::default());
    let manifest = super::Pattern::parse(&allowed.rule(), false).expect("pattern");
    setup.caller.node_allow = Some(Arc::new(vec![manifest]));
    let err = setup
        .get(&allowed.url("/again"))
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        EgressError::Denied(Denial::Policy {
            rule: "default deny".into()
        })
    );
    assert_eq!(allowed.hits(), 1);
}

#[tokio::test]
async fn default_public_refuses_loopback_without_connecting() {
    let server = Server::start(ok).await;
    let setup = Setup::new("", GateLimits::default());
    let err = setup.get(&server.url("/")).await.expect_err("refused");
    let EgressError::Denied(Denial::Address(reason @ AddressRefusal::NotPublic { .. })) = err
    else {
        panic!("expected a private address denial, got {err:?}");
    };
    let reason = reason.to_string();
    assert!(reason.starts_with("private address 127.0.0.1"), "{reason}");
    assert_eq!(server.hits(), 0);
    let record = setup.only_record();
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.rule, Some(reason));
    assert_eq!(record.status, None);
}

#[tokio::test]
async fn names_resolving_to_loopback_are_refused() {
    let server = Server::start(ok).await;
    let setup = Setup::new("", GateLimits::default());
    let url = format!("http://localhost:{}/", server.addr.port());
    let err = setup.get(&url).await.expect_err("refused");
    let EgressError::Denied(Denial::Address(reason)) = err else {
        panic!("expected an address denial, got {err:?}");
    };
    assert!(
        reason.to_string().starts_with("private address"),
        "{reason}"
    );
    assert_eq!(server.hits(), 0);
    assert_eq!(setup.only_record().decision, Decision::Deny);
}

#[tokio::test]
async fn tls_failures_are_connection_errors() {
    // Answers in plain HTTP before reading anything, so the TLS handshake fails at once.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(&reply("200 OK", "", b"plain")).await;
        }
    });
    let setup = Setup::new(
        &format!("[egress]\nallow = [\"https://{addr}\"]"),
        GateLimits::default(),
    );
    let err = setup
        .get(&format!("https://{addr}/"))
        .await
        .expect_err("not TLS");
    let EgressError::Connection(ConnectionFailure::Tls { host, .. }) = &err else {
        panic!("expected a TLS failure, got {err:?}");
    };
    assert_eq!(host, "127.0.0.1");
    assert!(
        err.to_string()
            .contains("TLS handshake with 127.0.0.1 failed"),
        "{err}"
    );
    assert_eq!(setup.only_record().decision, Decision::Allow);
}

#[test]
fn gate_is_shareable_and_send_is_spawnable() {
    fn shareable<T: Send + Sync>() {}
    fn spawnable<F: std::future::Future + Send>(_: F) {}
    shareable::<Gate>();
    let setup = Setup::new("", GateLimits::default());
    spawnable(setup.get("http://example.com/"));
}

#[tokio::test]
async fn numeric_ipv4_forms_are_refused() {
    let server = Server::start(ok).await;
    let setup = Setup::new("", GateLimits::default());
    let port = server.addr.port();
    let forms = [
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
    ];
    for host in forms {
        let err = setup
            .get(&format!("http://{host}:{port}/"))
            .await
            .expect_err(host);
        assert!(matches!(err, EgressError::Denied(_)), "{host}: {err:?}");
    }
    assert_eq!(server.hits(), 0);
    let records = setup.records();
    assert_eq!(records.len(), forms.len());
    assert!(records.iter().all(|r| r.decision == Decision::Deny));
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    fn redirect(_: &[u8]) -> Option<Vec<u8>> {
        Some(reply(
            "302 Found",
            "location: http://169.254.169.254/\r\n",
            b"",
        ))
    }
    let server = Server::start(redirect).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let response = setup.get(&server.url("/")).await.expect("allowed");
    assert_eq!(response.status, 302);
    let location = response.headers.iter().find(|(n, _)| n == "location");
    assert_eq!(
        location.map(|(_, v)| v.as_str()),
        Some("http://169.254.169.254/")
    );
    assert_eq!(server.hits(), 1);
    assert_eq!(setup.only_record().status, Some(302));
}

#[tokio::test]
async fn header_injection_is_refused() {
    let server = Server::start(ok).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let mut req = request("GET", &server.url("/"));
    req.headers = vec![("X-Note".into(), "a\r\nX-Injected: 1".into())];
    let err = setup.send(req).await.expect_err("refused");
    assert_eq!(
        err,
        EgressError::InvalidRequest(Invalid::Header(
            "header x-note contains CR, LF or NUL".into()
        ))
    );
    assert_eq!(server.hits(), 0);
    assert_eq!(setup.only_record().decision, Decision::Deny);
}

#[tokio::test]
async fn connection_headers_and_bad_methods_are_refused() {
    let server = Server::start(ok).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    for name in [
        "Host",
        "Transfer-Encoding",
        "Connection",
        "Proxy-Authorization",
        "TE",
    ] {
        let mut req = request("GET", &server.url("/"));
        req.headers = vec![(name.into(), "x".into())];
        let err = setup.send(req).await.expect_err(name);
        assert!(
            matches!(err, EgressError::InvalidRequest(_)),
            "{name}: {err:?}"
        );
    }
    let err = setup
        .send(request("CONNECT", &server.url("/")))
        .await
        .expect_err("method");
    assert!(matches!(err, EgressError::InvalidRequest(_)), "{err:?}");
    let err = setup.get("ftp://127.0.0.1/").await.expect_err("scheme");
    assert!(matches!(err, EgressError::InvalidRequest(_)), "{err:?}");
    assert_eq!(server.hits(), 0);
    assert_eq!(setup.records().len(), 7);
}

#[tokio::test]
async fn handles_outside_path_and_query_are_refused() {
    let setup = Setup::new("", GateLimits::default());
    let handle = setup.handle.clone();
    let expected = EgressError::InvalidRequest(Invalid::Url(
        "secret handles may only appear in the URL path or query".into(),
    ));
    for url in [
        format!("http://{handle}.example.com/"),
        format!("http://{handle}@example.com/"),
        format!("http://user:{handle}@example.com/"),
        format!("{handle}://example.com/"),
    ] {
        assert_eq!(setup.get(&url).await.err(), Some(expected.clone()), "{url}");
    }
    let records = setup.records();
    assert_eq!(records.len(), 4);
    // The audit log shows the handle masked, never the handle itself.
    assert!(
        records.iter().all(|r| !r.url.contains(&handle)),
        "{records:?}"
    );
    assert!(records[0].url.contains("[secret:api-token]"));
}

#[tokio::test]
async fn secret_outside_its_scope_is_refused() {
    let server = Server::start(ok).await;
    let policy = scoped_elsewhere(&server);
    let setup = Setup::new(&policy, GateLimits::default());
    let mut req = request("GET", &server.url("/"));
    req.headers = vec![("Authorization".into(), format!("Bearer {}", setup.handle))];
    let err = setup.send(req).await.expect_err("refused");
    assert_eq!(
        err,
        EgressError::Denied(Denial::SecretScope {
            secret: "api-token".into(),
            host: "127.0.0.1".into()
        })
    );
    assert_eq!(
        err.to_string(),
        "denied: secret api-token is not allowed for 127.0.0.1"
    );
    assert_eq!(server.hits(), 0);
    let record = setup.only_record();
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.secrets, vec!["api-token".to_string()]);
}

#[tokio::test]
async fn a_handle_split_by_characters_the_url_parser_strips_is_still_scoped() {
    let server = Server::start(ok).await;
    let policy = scoped_elsewhere(&server);
    let setup = Setup::new(&policy, GateLimits::default());
    // URL parsing removes tabs and newlines, which would rejoin the handle after the check.
    let (head, tail) = setup.handle.split_at(10);
    for split in [format!("{head}\t{tail}"), format!("{head}\n{tail}")] {
        let err = setup
            .get(&server.url(&format!("/?k={split}")))
            .await
            .expect_err("refused");
        assert_eq!(
            err,
            EgressError::Denied(Denial::SecretScope {
                secret: "api-token".into(),
                host: "127.0.0.1".into()
            })
        );
    }
    assert_eq!(server.hits(), 0);
    let received = server.received.lock().expect("lock").concat();
    assert!(!String::from_utf8_lossy(&received).contains(SECRET));
}

#[tokio::test]
async fn secrets_are_injected_and_echoes_redacted() {
    let server = Server::start(echo).await;
    let policy = format!(
        "{}\n[secrets.api-token]\nhosts = [\"{}\"]",
        allow_only(&server),
        server.rule()
    );
    let setup = Setup::new(&policy, GateLimits::default());
    let handle = setup.handle.clone();
    let mut req = request("post", &server.url(&format!("/x?token={handle}")));
    req.headers = vec![
        ("Authorization".into(), format!("Bearer {handle}")),
        ("Content-Type".into(), "application/json".into()),
        ("Content-Length".into(), "999".into()),
    ];
    req.body = Some(format!("{{\"token\":\"{handle}\"}}").into_bytes());
    let response = setup.send(req).await.expect("allowed");
    assert_eq!(response.status, 200);

    let received = server.received.lock().expect("lock")[0].clone();
    let received = String::from_utf8_lossy(&received).into_owned();
    assert!(
        received.contains(&format!("authorization: Bearer {SECRET}")),
        "{received}"
    );
    assert!(
        received.contains(&format!("/x?token={SECRET}")),
        "{received}"
    );
    assert!(
        received.contains(&format!("{{\"token\":\"{SECRET}\"}}")),
        "{received}"
    );
    assert!(received.contains("content-length: 24\r\n"), "{received}");
    assert!(!received.contains(&handle));

    let body = String::from_utf8_lossy(&response.body).into_owned();
    assert!(!body.contains(SECRET), "{body}");
    assert!(body.contains("Bearer [secret:api-token]"), "{body}");
    let echoed = response.headers.iter().find(|(n, _)| n == "x-echo");
    assert_eq!(echoed.map(|(_, v)| v.as_str()), Some("[secret:api-token]"));

    let record = setup.only_record();
    assert_eq!(record.method, "POST");
    assert_eq!(record.secrets, vec!["api-token".to_string()]);
    assert!(
        record.url.ends_with("/x?token=[secret:api-token]"),
        "{}",
        record.url
    );
    assert_eq!(record.bytes_sent, 24);
    let line = std::fs::read_to_string(&setup.audit_path).expect("audit file");
    assert!(!line.contains(SECRET) && !line.contains(&handle));
}

#[tokio::test]
async fn a_secret_echoed_as_a_header_name_is_dropped() {
    // Header names arrive lowercased, so only a lowercase value can come back as one verbatim.
    const LOWER: &str = "lower-s3cr3t-value";
    fn echo_name(_: &[u8]) -> Option<Vec<u8>> {
        Some(reply(
            "200 OK",
            &format!("{LOWER}: 1\r\nx-kept: 2\r\n"),
            b"ok",
        ))
    }
    let server = Server::start(echo_name).await;
    let mut setup = Setup::new(&allow_only(&server), GateLimits::default());
    let env = [("AIRLOCK_SECRET_LOW".to_string(), LOWER.to_string())];
    let store = Arc::new(SecretStore::load(None, env).expect("secrets"));
    setup.caller.bindings = Arc::new(Bindings::new(store));
    let response = setup.get(&server.url("/")).await.expect("allowed");
    let names: Vec<&str> = response.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"x-kept"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(LOWER)), "{names:?}");
}

#[tokio::test]
async fn secret_values_are_checked_for_header_injection() {
    let server = Server::start(ok).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let audit_path = dir.path().join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(&audit_path).expect("audit log"));
    let policy = Arc::new(Policy::from_toml(&allow_only(&server)).expect("policy"));
    let env = [("AIRLOCK_SECRET_BAD".to_string(), "x\r\nEvil: 1".to_string())];
    let store = Arc::new(SecretStore::load(None, env).expect("secrets"));
    let bindings = Bindings::new(store);
    let handle = bindings.context_object()["bad"]
        .as_str()
        .expect("handle")
        .to_string();
    let caller = Caller {
        run: "r".into(),
        node_run: "nr".into(),
        node: "n".into(),
        component: "c".into(),
        bindings: Arc::new(bindings),
        requests_made: AtomicU32::new(0),
        node_allow: None,
        buffers: BodyBudget::new(64 << 20),
        flights: Arc::default(),
        carried_value: Arc::default(),
    };
    let gate = Gate::new(policy, audit, GateLimits::default());
    let mut req = request("GET", &server.url("/"));
    req.headers = vec![("X-Key".into(), handle)];
    let err = gate.send(&caller, req).await.expect_err("refused");
    assert_eq!(
        err,
        EgressError::InvalidRequest(Invalid::Header(
            "header x-key contains CR, LF or NUL".into()
        ))
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn responses_over_the_cap_are_too_large() {
    fn big(_: &[u8]) -> Option<Vec<u8>> {
        Some(reply("200 OK", "", &[b'a'; 100]))
    }
    fn big_chunked(_: &[u8]) -> Option<Vec<u8>> {
        let chunk = "64\r\n".to_string() + &"b".repeat(100) + "\r\n0\r\n\r\n";
        Some(
            format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}"
            )
            .into_bytes(),
        )
    }
    let limits = GateLimits {
        max_response_bytes: 10,
        ..GateLimits::default()
    };
    for respond in [big, big_chunked] {
        let server = Server::start(respond).await;
        let setup = Setup::new(&allow_only(&server), limits);
        let err = setup.get(&server.url("/")).await.expect_err("too large");
        assert_eq!(err, EgressError::TooLarge(10));
        let record = setup.only_record();
        assert_eq!(record.decision, Decision::Allow);
        assert_eq!(record.status, Some(200));
        assert!(record.error.is_some());
    }
}

#[tokio::test]
async fn slow_responses_time_out() {
    let server = Server::start(|_| None).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let mut req = request("GET", &server.url("/"));
    req.timeout_ms = Some(100);
    assert_eq!(setup.send(req).await.err(), Some(EgressError::Timeout));
    let record = setup.only_record();
    assert_eq!(record.decision, Decision::Allow);
    assert_eq!(record.error.as_deref(), Some("timed out"));
}

#[tokio::test]
async fn request_cap_per_node_run() {
    let server = Server::start(ok).await;
    let limits = GateLimits {
        max_requests_per_node_run: 1,
        ..GateLimits::default()
    };
    let setup = Setup::new(&allow_only(&server), limits);
    setup.get(&server.url("/")).await.expect("first is allowed");
    let err = setup
        .get(&server.url("/"))
        .await
        .expect_err("second is refused");
    assert_eq!(err, EgressError::Denied(Denial::RequestLimit { limit: 1 }));
    assert_eq!(server.hits(), 1);
    assert_eq!(setup.records().len(), 2);
}

#[tokio::test]
async fn connection_failures_are_allowed_with_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let setup = Setup::new(
        &format!("[egress]\nallow = [\"http://{addr}\"]"),
        GateLimits::default(),
    );
    let err = setup
        .get(&format!("http://{addr}/"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, EgressError::Connection(_)), "{err:?}");
    let record = setup.only_record();
    assert_eq!(record.decision, Decision::Allow);
    assert!(record.error.is_some());
}

#[tokio::test]
async fn connections_are_pooled() {
    fn keep_alive(_: &[u8]) -> Option<Vec<u8>> {
        Some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec())
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                loop {
                    let request = read_request(&mut socket).await;
                    let Some(reply) = keep_alive(&request).filter(|_| !request.is_empty()) else {
                        return;
                    };
                    if socket.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let setup = Setup::new(
        &format!("[egress]\nallow = [\"http://{addr}\"]"),
        GateLimits::default(),
    );
    for _ in 0..3 {
        let response = setup
            .get(&format!("http://{addr}/"))
            .await
            .expect("allowed");
        assert_eq!(response.body, b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert!(
        setup
            .records()
            .iter()
            .all(|r| r.resolved_ip.as_deref() == Some("127.0.0.1"))
    );
}

#[tokio::test]
async fn a_cancelled_send_is_still_audited() {
    let server = Server::start(|_| None).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let mut req = request("GET", &server.url("/"));
    req.timeout_ms = Some(200);
    let cancelled = tokio::time::timeout(Duration::from_millis(50), setup.send(req)).await;
    assert!(cancelled.is_err(), "the caller gave up first");
    for _ in 0..50 {
        if !setup.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = setup.only_record();
    assert_eq!(record.error.as_deref(), Some("timed out"));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_carried_value_is_refused_outside_its_scope_in_any_encoding() {
    let server = Server::start(ok).await;
    let policy = scoped_elsewhere(&server);
    let escaped: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04X}", u32::from(c)))
        .collect();
    let percent: String = SECRET.bytes().map(|b| format!("%{b:02x}")).collect();
    for (place, text) in [
        ("body", format!("{{\"t\": \"{escaped}\"}}")),
        ("URL", format!("?t={percent}")),
        ("headers", format!("x {SECRET} y")),
    ] {
        let setup = Setup::new(&policy, GateLimits::default());
        let mut req = request("POST", &server.url("/"));
        match place {
            "body" => req.body = Some(text.into_bytes()),
            "URL" => req.url.push_str(&text),
            _ => req.headers = vec![("X-Note".into(), text)],
        }
        let err = setup.send(req).await.expect_err(place);
        assert_eq!(
            err,
            EgressError::Denied(Denial::CarriedValue {
                secret: "api-token".into(),
                place,
                host: "127.0.0.1".into()
            })
        );
        assert_eq!(
            err.to_string(),
            format!(
                "denied: the value of secret api-token (not its handle) is in the request {place}, and api-token is not allowed for 127.0.0.1"
            )
        );
        let record = setup.only_record();
        assert_eq!(record.decision, Decision::Deny);
        assert_eq!(record.secrets, vec!["api-token".to_string()]);
        assert!(!record.url.contains(SECRET), "{}", record.url);
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn after_a_carried_value_is_refused_no_request_of_the_node_run_is_sent() {
    // Else a node could test guesses of a value request after request, each "refused" or
    // "sent" telling it whether the value was among them.
    let server = Server::start(ok).await;
    let policy = scoped_elsewhere(&server);
    let setup = Setup::new(&policy, GateLimits::default());
    let mut guesses = request("POST", &server.url("/"));
    guesses.body = Some(format!("guess-1 guess-2 {SECRET} guess-4").into_bytes());
    let err = setup.send(guesses).await.expect_err("carried");
    assert!(
        matches!(err, EgressError::Denied(Denial::CarriedValue { .. })),
        "{err}"
    );
    for _ in 0..2 {
        let err = setup
            .send(request("GET", &server.url("/")))
            .await
            .expect_err("stopped");
        assert_eq!(err, EgressError::Denied(Denial::AfterCarriedValue));
    }
    assert_eq!(server.hits(), 0);
    let records = setup.records();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.decision == Decision::Deny));
    // A wasi:http request is refused as soon as its head is admitted, before its body.
    let head = request("POST", &server.url("/"));
    assert_eq!(
        setup.gate.admit(&setup.caller, &head),
        Err(EgressError::Denied(Denial::AfterCarriedValue))
    );
    // Another node run is not affected.
    let fresh = Setup::new(&policy, GateLimits::default());
    fresh
        .send(request("GET", &server.url("/")))
        .await
        .expect("sent");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_value_quoted_back_in_an_error_also_stops_the_node_runs_requests() {
    // The method is quoted in its error, scrubbed: the label would show which guess it was.
    let server = Server::start(ok).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let guesses = request(&format!("GUESS-1 {SECRET} GUESS-3"), &server.url("/"));
    let err = setup.send(guesses).await.expect_err("not a method");
    assert!(err.to_string().contains("[secret:api-token]"), "{err}");
    assert!(!err.to_string().contains(SECRET), "{err}");
    let err = setup
        .send(request("GET", &server.url("/")))
        .await
        .expect_err("stopped");
    assert_eq!(err, EgressError::Denied(Denial::AfterCarriedValue));
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_value_in_a_refused_host_is_redacted_from_every_field_of_its_audit_record() {
    // A value a node got hold of somehow; the URL's host is lowercased when it is parsed.
    let value = "Leaked-Token-0123";
    let policy = "[egress]\ndefault = \"deny\"\nallow = [\"http://*.example.com\"]\n\
                  [secrets.api-token]\nhosts = [\"api.example.com\"]";
    let setup = Setup::with_secret(policy, GateLimits::default(), value);
    let err = setup
        .get(&format!("http://{value}.example.com/"))
        .await
        .expect_err("carried out of scope");
    assert!(
        matches!(err, EgressError::Denied(Denial::CarriedValue { .. })),
        "{err}"
    );
    let record = setup.only_record();
    let text = serde_json::to_string(&record).unwrap().to_lowercase();
    assert!(!text.contains(&value.to_lowercase()), "{text}");
    for field in [&record.rule, &record.error, &record.host] {
        let field = field.as_deref().unwrap_or_default();
        assert!(field.contains("[secret:api-token]"), "{text}");
    }
}

#[tokio::test]
async fn a_value_made_for_the_node_run_is_refused_when_the_node_carries_it() {
    let server = Server::start(ok).await;
    let mut setup = Setup::new(&allow_only(&server), GateLimits::default());
    let mut bindings = Bindings::new(Arc::new(SecretStore::empty()));
    let token = bindings.bind_token("airlock-callback-token");
    let value = bindings
        .reveal(token.handle.as_bytes(), Encoding::Raw)
        .expect("reveal");
    let value = String::from_utf8(value.to_vec()).unwrap().to_uppercase();
    setup.caller.bindings = Arc::new(bindings);
    let mut req = request("POST", &server.url("/"));
    req.headers = vec![("X-Note".into(), format!("got {value}"))];
    let err = setup.send(req).await.expect_err("carried");
    assert_eq!(
        err,
        EgressError::Denied(Denial::CarriedValue {
            secret: "airlock-callback-token".into(),
            place: "headers",
            host: "127.0.0.1".into()
        })
    );
    assert_eq!(server.hits(), 0);
    let record = setup.only_record();
    assert_eq!(record.decision, Decision::Deny);
    let text = serde_json::to_string(&record).unwrap().to_lowercase();
    assert!(!text.contains(&value.to_lowercase()), "{text}");
}

#[tokio::test]
async fn a_handle_after_an_escape_is_refused() {
    let server = Server::start(ok).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let url = format!("{}?q=%2{}", server.url("/"), setup.handle);
    let err = setup.get(&url).await.expect_err("split");
    assert!(
        matches!(&err, EgressError::InvalidRequest(Invalid::Url(m)) if m.contains("its handle must follow")),
        "{err}"
    );
    assert_eq!(server.hits(), 0);
    assert_eq!(setup.only_record().decision, Decision::Deny);
}

#[tokio::test]
async fn a_body_with_a_handle_and_two_content_types_is_refused() {
    let server = Server::start(echo).await;
    let setup = Setup::new(&allow_only(&server), GateLimits::default());
    let handle = setup.handle.clone();
    let mut req = request("post", &server.url("/x"));
    req.headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("content-type".into(), "text/plain".into()),
    ];
    req.body = Some(format!("{{\"token\":\"{handle}\"}}").into_bytes());
    let err = setup.send(req.clone()).await.expect_err("refused");
    assert_eq!(
        err,
        EgressError::InvalidRequest(Invalid::Header(
            "a body with a secret handle may have only one Content-Type header".into()
        ))
    );
    assert_eq!(server.hits(), 0);

    // Without a handle the body is the node's own business; with one Content-Type, parameters
    // and case do not change how a value is escaped.
    req.body = Some(b"{}".to_vec());
    setup.send(req.clone()).await.expect("no handle: sent");
    req.headers = vec![(
        "Content-Type".into(),
        " Application/JSON; charset=utf-8".into(),
    )];
    req.body = Some(format!("{{\"token\":\"{handle}\"}}").into_bytes());
    setup.send(req).await.expect("one content type: sent");
    let received = server.received.lock().expect("lock")[1].clone();
    assert!(
        String::from_utf8_lossy(&received).contains(&format!("{{\"token\":\"{SECRET}\"}}")),
        "{}",
        String::from_utf8_lossy(&received)
    );
}
