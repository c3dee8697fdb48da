//! wasi:http's outgoing-handler, for nodes that use their language's standard HTTP client. The
//! request is buffered and handed to the same egress gate, with the same `Caller`, as the
//! `egress.send` import: same policy, secret handles, per-node-run request cap, limits and
//! audit record. Nothing here opens a socket.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::LinkOptions;
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttp, WasiHttpHooks, WasiHttpView};

use super::logs::{LogLevel, NodeLog};
use crate::egress::{
    self, BodyBudget, Caller, ConnectionFailure, Denial, EgressError, Gate, Invalid, Reservation,
};
use crate::secrets::Bindings;

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

/// The wasi:http version this wasmtime-wasi-http defines; guests importing any 0.2.x link to it.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Bytes one write to an outgoing body may carry. A body's stream holds at most two such chunks
/// until the hooks below read them (and reserve them against the node run's body budget).
const BODY_CHUNK: usize = 64 * 1024;

/// What the outgoing handler needs from a node run's state besides wasi:http's own view.
pub(super) trait GatedHttp: WasiHttpView + Send + 'static {
    /// Counts a request against the node run's cap; past it, the error stops the node.
    fn start_request(&mut self, method: &str, url: &str) -> wasmtime::Result<()>;
    /// The gate's decision on a request's head; a refusal is audited.
    fn admit(&self, head: &egress::Request) -> Result<(), EgressError>;
    /// Audits a request that failed before it reached the gate.
    fn record_unsent(&self, method: &str, url: &str, err: EgressError);
    /// Notes in the node's log why a request failed: the error code cannot say.
    fn note_failure(&self, method: &str, url: &str, err: &EgressError);
}

/// Adds wasi:http (p2) to the linker, its outgoing-handler behind the node run's request cap.
pub(super) fn add_to_linker<T: GatedHttp>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let options = LinkOptions::default();
    types::add_to_linker::<_, WasiHttp>(linker, &options.into(), T::http)?;
    linker
        .instance(OUTGOING_HANDLER)?
        .func_wrap("handle", handle::<T>)
}

type HandleResult = Result<Resource<HostFutureIncomingResponse>, types::ErrorCode>;

/// `outgoing-handler.handle`, counted against the request cap exactly as `egress.send` is (the
/// request past the cap stops the node rather than answering it), and decided by the gate from
/// its head, before any of its body is buffered. Every refusal here is audited.
fn handle<T: GatedHttp>(
    mut store: StoreContextMut<'_, T>,
    (request, options): (
        Resource<HostOutgoingRequest>,
        Option<Resource<types::RequestOptions>>,
    ),
) -> wasmtime::Result<(HandleResult,)> {
    let state = store.data_mut();
    let head = describe(state, &request);
    state.start_request(&head.method, &head.url)?;
    let admitted = match head.headers {
        Ok(headers) => state.admit(&egress::Request {
            method: head.method.clone(),
            url: head.url.clone(),
            headers,
            body: None,
            timeout_ms: None,
        }),
        Err(err) => {
            state.record_unsent(&head.method, &head.url, err.clone());
            Err(err)
        }
    };
    if let Err(err) = admitted {
        // The request (and the stream its body is written to) goes.
        state.http().table.delete(request)?;
        state.note_failure(&head.method, &head.url, &err);
        return Ok((Err(to_error_code(&err)),));
    }
    match outgoing_handler::Host::handle(&mut state.http(), request, options) {
        Ok(future) => Ok((Ok(future),)),
        // Anything but an error code is a trap, as in the crate's own binding.
        Err(err) => {
            let code: types::ErrorCode = err.downcast()?;
            let reason = EgressError::InvalidRequest(Invalid::Body(format!("{code:?}")));
            state.note_failure(&head.method, &head.url, &reason);
            state.record_unsent(&head.method, &head.url, reason);
            Ok((Err(code),))
        }
    }
}

/// A wasi:http request's head as the node set it.
struct Head {
    method: String,
    url: String,
    /// Header values must be text: the gate reveals secret handles in them.
    headers: Result<Vec<(String, String)>, EgressError>,
}

fn describe<T: GatedHttp>(state: &mut T, request: &Resource<HostOutgoingRequest>) -> Head {
    let view = state.http();
    let Ok(request) = view.table.get(request) else {
        return Head {
            method: "?".into(),
            url: "?".into(),
            headers: Ok(Vec::new()),
        };
    };
    let method: Result<http::Method, _> = request.method.clone().try_into();
    let method = method.map_or_else(|_| "?".to_string(), |m| m.to_string());
    let scheme = match &request.scheme {
        Some(types::Scheme::Http) => "http",
        Some(types::Scheme::Other(other)) => other.as_str(),
        Some(types::Scheme::Https) | None => "https",
    };
    let url = format!(
        "{scheme}://{}{}",
        request.authority.as_deref().unwrap_or_default(),
        request.path_with_query.as_deref().unwrap_or("/")
    );
    Head {
        method,
        url,
        headers: text_headers(&request.headers),
    }
}

fn text_headers(headers: &http::HeaderMap) -> Result<Vec<(String, String)>, EgressError> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().map_err(|_| {
                EgressError::InvalidRequest(Invalid::Header(format!(
                    "header {name} has a value that is not ASCII"
                )))
            })?;
            Ok((name.as_str().to_string(), value.to_string()))
        })
        .collect()
}

/// The wasi:http hooks of one node run: every outgoing request goes through the gate.
pub(super) struct GateHooks {
    gate: Arc<Gate>,
    caller: Arc<Caller>,
    log: NodeLog,
}

impl GateHooks {
    pub(super) fn new(gate: Arc<Gate>, caller: Arc<Caller>, log: NodeLog) -> GateHooks {
        GateHooks { gate, caller, log }
    }
}

impl WasiHttpHooks for GateHooks {
    // The gate sets Host from the URL it vetted; a second source could disagree with it.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: IoFuture,
    ) -> SendFuture {
        let gate = Arc::clone(&self.gate);
        let caller = Arc::clone(&self.caller);
        let log = self.log.clone();
        let unsent = Unsent {
            gate: Arc::clone(&gate),
            caller: Arc::clone(&caller),
            log: log.clone(),
            method: request.method().to_string(),
            url: request.uri().to_string(),
            open: true,
        };
        let (method, url) = (unsent.method.clone(), unsent.url.clone());
        Box::new(async move {
            let (request, _held) = match to_egress(request, options, &caller.buffers).await {
                Ok(buffered) => buffered,
                Err(err) => return Err(unsent.fail(err)),
            };
            if caller.flights.has_ended() {
                return Err(unsent.fail(EgressError::Cancelled));
            }
            // The gate writes the record from here, even if this future is dropped.
            unsent.hand_over();
            let response = gate.send(&caller, request).await.map_err(|err| {
                note_failure(&log, &caller.bindings, &method, &url, &err);
                Error::from(to_error_code(&err))
            })?;
            Ok((
                to_response(response)?,
                Box::new(async { Ok(()) }) as IoFuture,
            ))
        })
    }
}

/// A wasi:http request admitted by the gate but not yet handed to it. If it never is (its body
/// fails or passes the budget, or the node drops it or ends before finishing it), it is audited
/// here, once.
struct Unsent {
    gate: Arc<Gate>,
    caller: Arc<Caller>,
    log: NodeLog,
    method: String,
    url: String,
    /// Not yet audited nor handed over.
    open: bool,
}

impl Unsent {
    /// Audits the failure; returns what the node is told.
    fn fail(mut self, err: EgressError) -> Error {
        self.open = false;
        note_failure(
            &self.log,
            &self.caller.bindings,
            &self.method,
            &self.url,
            &err,
        );
        let code = to_error_code(&err);
        self.gate
            .record_unsent(&self.caller, &self.method, &self.url, err);
        Error::from(code)
    }

    fn hand_over(mut self) {
        self.open = false;
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        if self.open {
            let reason = EgressError::InvalidRequest(Invalid::Body(
                "the request was dropped before its body was finished".into(),
            ));
            self.gate
                .record_unsent(&self.caller, &self.method, &self.url, reason);
        }
    }
}

/// The request as the gate takes it, its body read whole and held against the node run's body
/// budget (returned with it, to keep until the gate is done).
async fn to_egress(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    buffers: &Arc<BodyBudget>,
) -> Result<(egress::Request, Reservation), EgressError> {
    let (parts, mut body) = request.into_parts();
    let headers = text_headers(&parts.headers)?;
    let mut held = buffers.reservation();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            EgressError::InvalidRequest(Invalid::Body(format!("the request body failed: {err}")))
        })?;
        if let Ok(data) = frame.into_data() {
            held.grow(data.len())?;
            bytes.extend_from_slice(&data);
        }
    }
    let request = egress::Request {
        method: parts.method.as_str().to_string(),
        url: parts.uri.to_string(),
        headers,
        body: (!bytes.is_empty()).then_some(bytes),
        timeout_ms: timeout_ms(options),
    };
    Ok((request, held))
}

/// The gate has one timeout for the whole exchange; the guest's connect and first-byte
/// timeouts together bound the same span. The gate caps it at its own limit.
fn timeout_ms(options: Option<RequestOptions>) -> Option<u32> {
    let options = options?;
    let total = match (options.connect_timeout, options.first_byte_timeout) {
        (None, None) => return None,
        (a, b) => a.unwrap_or_default().saturating_add(b.unwrap_or_default()),
    };
    Some(u32::try_from(total.as_millis()).unwrap_or(u32::MAX))
}

fn to_response(response: egress::Response) -> Result<http::Response<WasiBody>, Error> {
    let mut builder = http::Response::builder().status(response.status);
    // The body arrives whole and possibly redacted: its framing headers no longer apply.
    let reframe = !response.body.is_empty();
    for (name, value) in &response.headers {
        let framing = name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str())
            || name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str());
        if !(reframe && framing) {
            builder = builder.header(name, value);
        }
    }
    if reframe {
        builder = builder.header(CONTENT_LENGTH, response.body.len());
    }
    let body = HeldBody {
        body: Full::new(Bytes::from(response.body)),
        _held: response.held,
    }
    .boxed_unsync();
    builder
        .body(body)
        .map_err(|err| Error::InternalError(Some(format!("building the response: {err}"))))
}

/// A response body the node has not read yet: its bytes stay reserved against the node run's
/// body budget until it is dropped.
struct HeldBody {
    body: Full<Bytes>,
    _held: Reservation,
}

impl Body for HeldBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map_err(|never| match never {})
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The wasi:http error code for a gate error, as wasmtime-wasi-http's own client would give
/// it. The code carries no reason; [`note_failure`] puts it in the node's log.
fn to_error_code(err: &EgressError) -> types::ErrorCode {
    use types::ErrorCode as Code;
    match err {
        EgressError::Denied(Denial::Address(_)) => Code::DestinationIpProhibited,
        EgressError::Denied(_) => Code::HttpRequestDenied,
        EgressError::InvalidRequest(invalid) => match invalid {
            Invalid::Method(_) => Code::HttpRequestMethodInvalid,
            Invalid::Url(_) => Code::HttpRequestUriInvalid,
            Invalid::UrlTooLong { .. } => Code::HttpRequestUriTooLong,
            Invalid::TooManyHeaders { limit, .. } | Invalid::HeadersTooLarge { limit, .. } => {
                Code::HttpRequestHeaderSectionSize(u32::try_from(*limit).ok())
            }
            Invalid::Header(_) | Invalid::Body(_) => Code::HttpProtocolError,
        },
        EgressError::Timeout => Code::ConnectionTimeout,
        EgressError::Connection(failure) => match failure {
            ConnectionFailure::Unresolved { .. } | ConnectionFailure::NoAddresses { .. } => {
                Code::DnsError(types::DnsErrorPayload {
                    rcode: None,
                    info_code: None,
                })
            }
            ConnectionFailure::Connect { .. } => Code::ConnectionRefused,
            ConnectionFailure::Tls { .. } => Code::TlsProtocolError,
            ConnectionFailure::Exchange(_) => Code::HttpProtocolError,
            ConnectionFailure::Unaudited(_) => Code::InternalError(Some(err.to_string())),
        },
        EgressError::TooLarge(limit) => Code::HttpResponseBodySize(Some(*limit)),
        EgressError::OverBudget(_) | EgressError::Cancelled => {
            Code::InternalError(Some(err.to_string()))
        }
    }
}

/// Longest part of a URL a note quotes.
const NOTE_URL_BYTES: usize = 200;

/// Tells the node's log why a wasi:http request failed, quoting the URL masked (the engine
/// scrubs logs again, but a value cut in two here would no longer be recognised).
pub(super) fn note_failure(
    log: &NodeLog,
    bindings: &Bindings,
    method: &str,
    url: &str,
    err: &EgressError,
) {
    let url = egress::quoted_url(bindings, url, NOTE_URL_BYTES);
    log.push(LogLevel::Warn, format!("wasi:http {method} {url}: {err}"));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::egress::AddressRefusal;
    use crate::egress::OverBudget;
    use crate::secrets::SecretStore;

    #[test]
    fn timeouts_from_request_options() {
        assert_eq!(timeout_ms(None), None);
        assert_eq!(timeout_ms(Some(RequestOptions::default())), None);
        let options = RequestOptions {
            connect_timeout: Some(Duration::from_millis(250)),
            first_byte_timeout: Some(Duration::from_secs(2)),
            between_bytes_timeout: Some(Duration::from_secs(60)),
        };
        assert_eq!(timeout_ms(Some(options)), Some(2250));
    }

    #[test]
    fn gate_errors_become_wasi_http_error_codes_and_log_their_reason() {
        use types::ErrorCode as Code;
        let denied = EgressError::Denied(Denial::Policy {
            rule: "default deny".into(),
        });
        assert!(matches!(to_error_code(&denied), Code::HttpRequestDenied));
        let address = EgressError::Denied(Denial::Address(AddressRefusal::DenyRule {
            index: 0,
            rule: "10.0.0.0/8".into(),
            ip: "10.0.0.1".parse().expect("an address"),
        }));
        assert!(matches!(
            to_error_code(&address),
            Code::DestinationIpProhibited
        ));
        let unresolved = EgressError::Connection(ConnectionFailure::NoAddresses {
            host: "empty.example".into(),
        });
        assert!(matches!(to_error_code(&unresolved), Code::DnsError(_)));
        let long_url = EgressError::InvalidRequest(Invalid::UrlTooLong {
            bytes: 9000,
            limit: 8192,
        });
        assert!(matches!(
            to_error_code(&long_url),
            Code::HttpRequestUriTooLong
        ));
        assert!(matches!(
            to_error_code(&EgressError::Timeout),
            Code::ConnectionTimeout
        ));
        assert!(matches!(
            to_error_code(&EgressError::TooLarge(10)),
            Code::HttpResponseBodySize(Some(10))
        ));

        let log = NodeLog::default();
        let env = [("AIRLOCK_SECRET_TOKEN".into(), "straddling-value-42".into())];
        let bindings = Bindings::new(Arc::new(SecretStore::load(None, env).unwrap()));
        let url = format!("http://x/{}", "é".repeat(200));
        note_failure(&log, &bindings, "GET", &url, &denied);
        // The value begins before the cut and ends after it: masked whole, then cut.
        let url = format!("http://x/{}straddling-value-42/", "a".repeat(185));
        note_failure(&log, &bindings, "GET", &url, &denied);
        let lines = log.take();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].message.starts_with("wasi:http GET http://x/é"));
        for line in &lines {
            assert!(
                line.message.ends_with("…: denied: default deny"),
                "{}",
                line.message
            );
        }
        assert!(!lines[1].message.contains("strad"), "{}", lines[1].message);
        assert!(
            lines[1].message.contains("aaa[secre"),
            "{}",
            lines[1].message
        );
    }

    #[tokio::test]
    async fn request_is_converted_for_the_gate() {
        let body = Full::new(Bytes::from_static(b"{\"a\":1}"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .method("POST")
            .uri("https://api.example.com/v1/x?q=1")
            .header("content-type", "application/json")
            .header("authorization", "Bearer __airlock_secret_0")
            .body(body)
            .expect("valid request");
        let budget = BodyBudget::new(1024);
        let (converted, held) = to_egress(request, None, &budget).await.expect("converts");
        assert_eq!(budget.used(), 7, "the body is held against the budget");
        drop(held);
        assert_eq!(budget.used(), 0);
        assert_eq!(converted.method, "POST");
        assert_eq!(converted.url, "https://api.example.com/v1/x?q=1");
        assert_eq!(converted.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(
            converted.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                (
                    "authorization".to_string(),
                    "Bearer __airlock_secret_0".to_string()
                ),
            ]
        );
        assert_eq!(converted.timeout_ms, None);
    }

    #[tokio::test]
    async fn a_body_past_the_budget_is_refused_naming_the_limit() {
        let body = Full::new(Bytes::from(vec![b'x'; 100]))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .method("PUT")
            .uri("https://api.example.com/")
            .body(body)
            .expect("valid request");
        let budget = BodyBudget::new(10);
        let err = to_egress(request, None, &budget)
            .await
            .expect_err("too large");
        assert_eq!(err, EgressError::OverBudget(OverBudget { limit: 10 }));
        assert_eq!(budget.used(), 0, "nothing stays reserved");
    }

    #[tokio::test]
    async fn a_header_value_that_is_not_ascii_is_refused() {
        let body = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .uri("https://api.example.com/")
            .header(
                "x-name",
                http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
            )
            .body(body)
            .expect("valid request");
        let err = to_egress(request, None, &BodyBudget::new(10))
            .await
            .expect_err("not ASCII");
        assert_eq!(
            err.to_string(),
            "invalid request: header x-name has a value that is not ASCII"
        );
    }

    #[tokio::test]
    async fn an_unread_response_holds_its_bytes_until_dropped() {
        let budget = BodyBudget::new(100);
        let mut held = budget.reservation();
        held.grow(4).unwrap();
        let response = to_response(egress::Response {
            status: 200,
            headers: Vec::new(),
            body: b"body".to_vec(),
            held,
        })
        .expect("builds");
        assert_eq!(budget.used(), 4);
        let body = response.into_body().collect().await.expect("reads");
        assert_eq!(body.to_bytes(), "body");
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn redacted_body_is_reframed() {
        let response = to_response(egress::Response {
            status: 200,
            headers: vec![
                ("content-length".into(), "40".into()),
                ("transfer-encoding".into(), "chunked".into()),
                ("x-id".into(), "7".into()),
            ],
            body: b"[REDACTED]".to_vec(),
            held: Reservation::default(),
        })
        .expect("builds");
        assert_eq!(response.headers()["content-length"], "10");
        assert!(response.headers().get("transfer-encoding").is_none());
        assert_eq!(response.headers()["x-id"], "7");
    }

    #[test]
    fn empty_body_keeps_server_framing() {
        // A HEAD or 304 response announces a length it does not carry.
        let response = to_response(egress::Response {
            status: 304,
            headers: vec![("content-length".into(), "40".into())],
            body: Vec::new(),
            held: Reservation::default(),
        })
        .expect("builds");
        assert_eq!(response.headers()["content-length"], "40");
    }
}
