//! wasi:http's outgoing-handler, for nodes that use their language's standard HTTP client. The
//! request is buffered and handed to the same egress gate, with the same `Caller`, as the
//! `egress.send` import: same policy, secret handles, per-node-run request cap, limits and
//! audit record. Nothing here opens a socket.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::LinkOptions;
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttp, WasiHttpHooks, WasiHttpView};

use super::host::NodeState;
use crate::egress::{self, Caller, EgressError, Gate};

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

/// The wasi:http version this wasmtime-wasi-http defines; guests importing any 0.2.x link to it.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Adds wasi:http (p2) to the linker, its outgoing-handler behind the node run's request cap.
pub(super) fn add_to_linker(linker: &mut Linker<NodeState>) -> wasmtime::Result<()> {
    let options = LinkOptions::default();
    types::add_to_linker::<_, WasiHttp>(linker, &options.into(), NodeState::http)?;
    linker
        .instance(OUTGOING_HANDLER)?
        .func_wrap("handle", handle)
}

type HandleResult = Result<Resource<HostFutureIncomingResponse>, types::ErrorCode>;

/// `outgoing-handler.handle`, counted against the request cap exactly as `egress.send` is: the
/// request past the cap stops the node rather than answering it.
fn handle(
    mut store: StoreContextMut<'_, NodeState>,
    (request, options): (
        Resource<HostOutgoingRequest>,
        Option<Resource<types::RequestOptions>>,
    ),
) -> wasmtime::Result<(HandleResult,)> {
    let state = store.data_mut();
    let (method, url) = describe(state, &request);
    state.start_request(&method, &url)?;
    match outgoing_handler::Host::handle(&mut state.http(), request, options) {
        Ok(future) => Ok((Ok(future),)),
        // Anything but an error code is a trap, as in the crate's own binding.
        Err(err) => Ok((Err(err.downcast()?),)),
    }
}

/// The method and URL of a wasi:http request, for the audit record of a refused attempt.
fn describe(state: &mut NodeState, request: &Resource<HostOutgoingRequest>) -> (String, String) {
    let view = state.http();
    let Ok(request) = view.table.get(request) else {
        return ("?".into(), "?".into());
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
    (method, url)
}

/// The wasi:http hooks of one node run: every outgoing request goes through the gate.
pub(super) struct GateHooks {
    gate: Arc<Gate>,
    caller: Arc<Caller>,
    /// A request body larger than this is refused before it reaches the gate. The egress
    /// import can only carry a body that fits in the node's memory; a stream must not do more.
    max_request_body: usize,
    waits: Arc<WaitClock>,
}

impl GateHooks {
    pub(super) fn new(gate: Arc<Gate>, caller: Arc<Caller>, max_request_body: usize) -> GateHooks {
        GateHooks {
            gate,
            caller,
            max_request_body,
            waits: Arc::default(),
        }
    }

    /// Time during which at least one request was waiting on the gate.
    pub(super) fn waited(&self) -> Duration {
        self.waits.total()
    }
}

impl WasiHttpHooks for GateHooks {
    // The gate sets Host from the URL it vetted; a second source could disagree with it.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: IoFuture,
    ) -> SendFuture {
        let gate = Arc::clone(&self.gate);
        let caller = Arc::clone(&self.caller);
        let waits = Arc::clone(&self.waits);
        let max_body = self.max_request_body;
        Box::new(async move {
            // Buffering waits on the guest writing its body: that is the guest's time.
            let request = to_egress(request, options, max_body).await?;
            let result = {
                let _waiting = WaitClock::begin(&waits);
                gate.send(&caller, request).await
            };
            let response = to_response(result.map_err(to_error)?)?;
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

async fn to_egress(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    max_body: usize,
) -> Result<egress::Request, Error> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|err| match err.downcast::<Error>() {
            Ok(err) => *err,
            Err(err) if err.is::<LengthLimitError>() => {
                Error::HttpRequestBodySize(u64::try_from(max_body).ok())
            }
            Err(err) => Error::InternalError(Some(format!("reading the request body: {err}"))),
        })?
        .to_bytes();
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let value = value
            .to_str()
            .map_err(|_| Error::InternalError(Some(format!("header {name} is not valid UTF-8"))))?;
        headers.push((name.as_str().to_string(), value.to_string()));
    }
    Ok(egress::Request {
        method: parts.method.as_str().to_string(),
        url: parts.uri.to_string(),
        headers,
        body: (!body.is_empty()).then(|| body.to_vec()),
        timeout_ms: timeout_ms(options),
    })
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
    let body = Full::new(Bytes::from(response.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder
        .body(body)
        .map_err(|err| Error::InternalError(Some(format!("building the response: {err}"))))
}

/// The gate's reason must reach the node, so refusals travel in `internal-error`, the one
/// wasi:http error code that carries text.
fn to_error(err: EgressError) -> Error {
    match err {
        EgressError::Timeout => Error::ConnectionTimeout,
        EgressError::TooLarge(limit) => Error::HttpResponseBodySize(Some(limit)),
        other => Error::InternalError(Some(other.to_string())),
    }
}

/// Wall time during which any request was waiting on the gate. Overlapping requests count
/// once, so concurrent requests cannot inflate the time excused from the CPU limit.
#[derive(Default)]
struct WaitClock {
    state: Mutex<Waits>,
}

#[derive(Default)]
struct Waits {
    in_flight: u32,
    since: Option<Instant>,
    total: Duration,
}

struct Waiting(Arc<WaitClock>);

impl WaitClock {
    fn begin(clock: &Arc<WaitClock>) -> Waiting {
        let mut waits = clock.lock();
        if waits.in_flight == 0 {
            waits.since = Some(Instant::now());
        }
        waits.in_flight += 1;
        Waiting(Arc::clone(clock))
    }

    fn total(&self) -> Duration {
        let waits = self.lock();
        waits.total + waits.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waits> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waits = self.0.lock();
        waits.in_flight = waits.in_flight.saturating_sub(1);
        if waits.in_flight == 0
            && let Some(since) = waits.since.take()
        {
            waits.total += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_waits_count_once() {
        let clock = Arc::new(WaitClock::default());
        let first = WaitClock::begin(&clock);
        let second = WaitClock::begin(&clock);
        std::thread::sleep(Duration::from_millis(30));
        drop(first);
        std::thread::sleep(Duration::from_millis(30));
        drop(second);
        let total = clock.total();
        assert!(total >= Duration::from_millis(60), "{total:?}");
        assert!(total < Duration::from_millis(120), "{total:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            clock.total(),
            total,
            "no request in flight, the clock stands still"
        );
    }

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
    fn gate_errors_keep_their_reason() {
        let denied = to_error(EgressError::Denied("no rule allows 127.0.0.1".into()));
        assert!(
            matches!(&denied, Error::InternalError(Some(text)) if text == "denied: no rule allows 127.0.0.1"),
            "{denied}"
        );
        assert!(matches!(
            to_error(EgressError::Timeout),
            Error::ConnectionTimeout
        ));
        assert!(matches!(
            to_error(EgressError::TooLarge(10)),
            Error::HttpResponseBodySize(Some(10))
        ));
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
        let converted = to_egress(request, None, 1024).await.expect("converts");
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
    async fn oversized_request_body_is_refused() {
        let body = Full::new(Bytes::from(vec![b'x'; 100]))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .method("PUT")
            .uri("https://api.example.com/")
            .body(body)
            .expect("valid request");
        let err = to_egress(request, None, 10).await.expect_err("too large");
        assert!(matches!(err, Error::HttpRequestBodySize(Some(10))), "{err}");
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
        })
        .expect("builds");
        assert_eq!(response.headers()["content-length"], "40");
    }
}
