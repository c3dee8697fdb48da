//! `Gate::send`: one node request, checked step by step, sent through the pooled client, and
//! recorded in the audit log before the node gets its answer.

use std::borrow::Cow;
use std::cell::Cell;
use std::error::Error as StdError;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::{ConnectError, VettedConnector, VettedPeer};
use super::pattern::{Pattern, Target};
use super::platform::{PLATFORM_API_RULE, PlatformApi, PlatformApiError};
use super::policy::Policy;
use super::reached::Reached;
use super::{
    BodyBudget, Caller, ConnectionFailure, Denial, EgressError, Flights, GateLimits, Invalid,
    Request, Reservation, Response,
};
use crate::audit::{AuditLog, AuditRecord, Decision};
use crate::secrets::{Bindings, Encoding, PLATFORM_TOKEN_SECRET};
use crate::sync;
use crate::time::now;

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const HANDLE_MARKER: &str = "__airlock_secret_";
/// Hop-by-hop headers and Host describe the connection, not the request: the client sets them.
const CONNECTION_HEADERS: [&str; 7] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The egress gate: one per process, shared by every node run.
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Arc<Policy>,
    audit: Arc<AuditLog>,
    limits: GateLimits,
    client: Client<VettedConnector, Full<Bytes>>,
    /// Under `airlock serve`: the public URL, whose requests carry the run token.
    platform: Option<PlatformApi>,
}

/// A request the head checks admitted.
struct Admitted {
    method: String,
    url: url::Url,
    /// It goes to the platform's own API, with the run token.
    platform: bool,
}

/// The caller's identity, owned so that the exchange can run to its audit record even when the
/// node run that asked is cancelled mid-request.
struct Who {
    run: String,
    node_run: String,
    node: String,
    component: String,
    bindings: Arc<Bindings>,
    node_allow: Option<Arc<Vec<Pattern>>>,
    buffers: Arc<BodyBudget>,
    flights: Arc<Flights>,
    carried_value: Arc<Mutex<bool>>,
}

impl Who {
    fn of(caller: &Caller) -> Who {
        Who {
            run: caller.run.clone(),
            node_run: caller.node_run.clone(),
            node: caller.node.clone(),
            component: caller.component.clone(),
            bindings: Arc::clone(&caller.bindings),
            node_allow: caller.node_allow.clone(),
            buffers: Arc::clone(&caller.buffers),
            flights: Arc::clone(&caller.flights),
            carried_value: Arc::clone(&caller.carried_value),
        }
    }
}

/// What the audit record says, gathered as the request goes through the steps.
#[derive(Default)]
struct Facts {
    method: String,
    /// The URL as the gate parsed it, so that the record need not parse it again.
    url: Option<url::Url>,
    rule: Option<String>,
    secrets: Vec<String>,
    resolved_ip: Option<String>,
    status: Option<u16>,
    bytes_sent: u64,
    bytes_received: u64,
}

impl Gate {
    pub fn new(policy: Arc<Policy>, audit: Arc<AuditLog>, limits: GateLimits) -> Gate {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(VettedConnector::new(Arc::clone(&policy)));
        Gate {
            inner: Arc::new(Inner {
                policy,
                audit,
                limits,
                client,
                platform: None,
            }),
        }
    }

    /// This gate, sending requests under `base` (`airlock serve --public-url`) to the platform's
    /// own API with the node run's run token (see `platform`). Made before any node runs.
    pub fn with_platform_api(&self, base: &url::Url) -> Result<Gate, PlatformApiError> {
        let platform = PlatformApi::new(base, &self.inner.policy)?;
        Ok(Gate {
            inner: Arc::new(Inner {
                policy: Arc::clone(&self.inner.policy),
                audit: Arc::clone(&self.inner.audit),
                limits: self.inner.limits,
                client: self.inner.client.clone(),
                platform: Some(platform),
            }),
        })
    }

    pub async fn send(&self, caller: &Caller, req: Request) -> Result<Response, EgressError> {
        // Every attempt counts, refused ones included.
        let made = caller
            .requests_made
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(u32::MAX);
        let who = Who::of(caller);
        let boarding = caller.flights.board();
        let inner = Arc::clone(&self.inner);
        // A separate task: dropping this future cannot stop a request between leaving and
        // being audited. It lands once audited. The exchange's future (several KiB) is built
        // and boxed by the task, on a worker's stack: built here, on the node's fiber stack,
        // it deepened every slot's stack by its size, pages that stay resident per slot.
        tokio::spawn(async move {
            let _boarding = boarding;
            Box::pin(inner.send(&who, made, req)).await
        })
        .await
        .unwrap_or_else(|err| {
            Err(EgressError::Connection(ConnectionFailure::Exchange(
                format!("the request task failed: {err}"),
            )))
        })
    }
}

impl Gate {
    /// Decides a request from its head alone (method, URL, headers), before any of its body is
    /// buffered: size caps, policy and node manifest. A refusal is audited here (without
    /// waiting: the caller may be inside a synchronous host call); an admitted request is
    /// checked again, in full, and audited when it is sent.
    pub fn admit(&self, caller: &Caller, head: &Request) -> Result<(), EgressError> {
        let who = Who::of(caller);
        let mut facts = Facts {
            method: head.method.clone(),
            ..Facts::default()
        };
        let result = self
            .inner
            .admit(&who, head, &mut facts)
            .map(drop)
            .map_err(|err| scrubbed_for_node(&who, err));
        if let Err(err) = &result {
            self.record_detached(attempt_record(&who, &head.url, facts, Some(err), 0));
        }
        result
    }

    /// Audits a request that never reached the gate: the sandbox refused it (a node stopped at
    /// its request limit) or it failed before it could be sent (its body unfinished, too large
    /// or abandoned). It does not wait for the write; the record is on disk before the audit
    /// log is dropped.
    pub fn record_unsent(&self, caller: &Caller, method: &str, url: &str, err: EgressError) {
        let who = Who::of(caller);
        let facts = Facts {
            method: method.to_string(),
            ..Facts::default()
        };
        let err = scrubbed_for_node(&who, err);
        self.record_detached(attempt_record(&who, url, facts, Some(&err), 0));
    }

    fn record_detached(&self, record: AuditRecord) {
        if let Err(err) = self.inner.audit.append_detached(record) {
            tracing::error!(error = %err, "could not audit a refused request");
        }
    }
}

/// The audit record of one attempt. Requests refused or never sent are denies; the rule is the
/// one that decided, or the refusal itself when no rule did. The URL is kept as the node wrote
/// it and as it was (or would have been) reached. Every field made from the request (method,
/// URLs, host, and the rule and error, which quote the host or origin) is masked.
fn attempt_record(
    who: &Who,
    raw_url: &str,
    mut facts: Facts,
    error: Option<&EgressError>,
    duration_ms: u64,
) -> AuditRecord {
    let decision = match error {
        None => Decision::Allow,
        Some(EgressError::Denied(reason)) => {
            facts.rule.get_or_insert_with(|| reason.to_string());
            Decision::Deny
        }
        Some(err @ EgressError::InvalidRequest(_)) => {
            facts.rule = Some(err.to_string());
            Decision::Deny
        }
        // No rule admitted it: it never left.
        Some(_) if facts.rule.is_none() => Decision::Deny,
        Some(_) => Decision::Allow,
    };
    let mask = |text: &str| who.bindings.scrub(text);
    // The log keeps 2 KiB of it anyway; this bounds the work on a huge URL. The margin keeps
    // any secret value that starts within those 2 KiB whole, so it is redacted, not cut.
    let whole = raw_url.len() <= MASKED_URL_BYTES;
    let raw_url = head(raw_url, MASKED_URL_BYTES);
    // The gate's own parse, unless the URL was cut or never parsed (refused before that).
    let reached = match facts.url.take() {
        Some(url) if whole => Reached::from(url),
        _ => Reached::of(raw_url),
    };
    AuditRecord {
        seq: 0,
        time: now(),
        run: who.run.clone(),
        node_run: who.node_run.clone(),
        node: who.node.clone(),
        component: who.component.clone(),
        method: mask(&facts.method),
        url: mask(raw_url),
        normalized_url: reached.url.as_deref().map(mask),
        host: reached.host.as_deref().map(mask),
        resolved_ip: facts.resolved_ip,
        decision,
        rule: facts.rule.as_deref().map(mask),
        secrets: facts.secrets,
        status: facts.status,
        bytes_sent: facts.bytes_sent,
        bytes_received: facts.bytes_received,
        duration_ms,
        error: error.map(|error| mask(&error.to_string())),
        prev: String::new(),
        hash: String::new(),
    }
}

/// How much of a URL is masked before it is recorded or quoted: more than is ever shown, so a
/// secret value that begins in the part shown is masked whole.
const MASKED_URL_BYTES: usize = 64 * 1024;

/// `url` as a log line may quote it: handles and secret values masked first, then cut to `max`
/// bytes (marked `…`). Cut first, a value could be split and half of it shown.
pub fn quoted_url(bindings: &Bindings, url: &str, max: usize) -> String {
    let masked = bindings.scrub(head(url, MASKED_URL_BYTES));
    let shown = head(&masked, max);
    if shown.len() < url.len().min(masked.len()) {
        format!("{shown}…")
    } else {
        shown.to_owned()
    }
}

/// The first `max` bytes of `text` (fewer, to end on a character boundary).
fn head(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `err` as the node may see it: scrubbed. A secret's value in its text came from what the node
/// wrote (a method, a header name, a host quoted back), and the label in its place would tell
/// the node which of its guesses it was: the node is told once, as by the carried-value check,
/// and no later request of its node run is sent.
fn scrubbed_for_node(caller: &Who, err: EgressError) -> EgressError {
    let held_value = Cell::new(false);
    let err = err.scrubbed(|text| {
        let bindings = &caller.bindings;
        if !bindings.store().values_in(text.as_bytes()).is_empty()
            || !bindings.own_values_in(text.as_bytes()).is_empty()
        {
            held_value.set(true);
        }
        bindings.scrub(text)
    });
    if held_value.get() {
        *sync::lock(&caller.carried_value) = true;
    }
    err
}

fn carried(denial: Denial, facts: &mut Facts) -> EgressError {
    facts.rule = Some(denial.to_string());
    EgressError::Denied(denial)
}

impl Inner {
    async fn send(&self, caller: &Who, made: u32, req: Request) -> Result<Response, EgressError> {
        let time = now();
        let started = Instant::now();
        let mut facts = Facts {
            method: req.method.clone(),
            ..Facts::default()
        };
        // A request still in flight when its node run ends is cut short, and recorded.
        let result = tokio::select! {
            // Checked first: once its node run has ended, a request does not start.
            biased;
            () = caller.flights.ended() => Err(EgressError::Cancelled),
            result = self.attempt(caller, made, &req, &mut facts) => result,
        }
        .map_err(|err| scrubbed_for_node(caller, err));
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let error = result.as_ref().err();
        let mut record = attempt_record(caller, &req.url, facts, error, duration_ms);
        record.time = time;
        self.record(record).await?;
        result
    }

    /// No answer reaches the node unless its record is written.
    async fn record(&self, record: AuditRecord) -> Result<(), EgressError> {
        self.audit
            .append(record)
            .await
            .map_err(|err| EgressError::Connection(ConnectionFailure::Unaudited(err.to_string())))
    }

    /// The checks that need only the request's head (method, URL, headers): its size caps, the
    /// policy and the node manifest. They decide before any body is buffered.
    fn admit(
        &self,
        caller: &Who,
        req: &Request,
        facts: &mut Facts,
    ) -> Result<Admitted, EgressError> {
        // Also read where a wasi:http request is admitted by its head, before its body.
        if *sync::lock(&caller.carried_value) {
            return Err(carried(Denial::AfterCarriedValue, facts));
        }
        self.limits.check_head(req)?;
        let method = req.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(EgressError::InvalidRequest(Invalid::Method(format!(
                "method {:?} is not allowed (expected one of {})",
                req.method,
                METHODS.join(", ")
            ))));
        }
        facts.method.clone_from(&method);
        let url = parse_url(&req.url)?;
        facts.url = Some(url.clone());

        let platform = caller.bindings.has_run_token()
            && self.platform.as_ref().is_some_and(|api| api.covers(&url));
        let decision = if platform {
            self.policy.decide_platform_api(&url, PLATFORM_API_RULE)
        } else {
            self.policy.decide(&url)
        };
        facts.rule = Some(decision.rule.clone());
        if !decision.allowed {
            return Err(EgressError::Denied(Denial::Policy {
                rule: decision.rule,
            }));
        }
        if let Some(allow) = caller.node_allow.as_deref() {
            let matched =
                Target::from_url(&url).is_some_and(|t| allow.iter().any(|p| p.matches(&t)));
            if !matched {
                let denial = Denial::NodeManifest {
                    origin: url.origin().ascii_serialization(),
                };
                facts.rule = Some(denial.to_string());
                return Err(EgressError::Denied(denial));
            }
        }
        Ok(Admitted {
            method,
            url,
            platform,
        })
    }

    async fn attempt(
        &self,
        caller: &Who,
        made: u32,
        req: &Request,
        facts: &mut Facts,
    ) -> Result<Response, EgressError> {
        let cap = self.limits.max_requests_per_node_run;
        if made >= cap {
            let denial = Denial::RequestLimit { limit: cap };
            facts.rule = Some(denial.to_string());
            return Err(EgressError::Denied(denial));
        }
        let Admitted {
            method,
            url,
            platform,
        } = self.admit(caller, req, facts)?;

        self.check_handles(&caller.bindings, &url, req, facts)?;
        {
            // Held through the check: of two requests checked at once, the second must see
            // the first's refusal, or each would answer a question of its own.
            let mut carried_before = sync::lock(&caller.carried_value);
            if *carried_before {
                return Err(carried(Denial::AfterCarriedValue, facts));
            }
            let checked = self.check_carried_values(caller, &url, req, facts);
            *carried_before = checked.is_err();
            checked?;
        }

        let bindings = &caller.bindings;
        let revealed_url = bindings
            .reveal(url.as_str().as_bytes(), Encoding::UrlComponent)
            .map_err(|err| EgressError::InvalidRequest(Invalid::Url(err.to_string())))?;
        let uri = http::Uri::try_from(revealed_url.as_slice()).map_err(|err| {
            EgressError::InvalidRequest(Invalid::Url(format!("URL cannot be sent: {err}")))
        })?;
        let mut builder = http::Request::builder().method(method.as_str()).uri(uri);
        let body_has_handle = req
            .body
            .as_deref()
            .is_some_and(|body| !bindings.used_in(body).is_empty());
        let body_encoding = body_encoding(&req.headers, body_has_handle)?;
        builder = headers(caller, &req.headers, platform, builder, facts)?;
        let body = match &req.body {
            Some(body) => {
                let revealed = bindings
                    .reveal(body, body_encoding)
                    .map_err(|err| EgressError::InvalidRequest(Invalid::Body(err.to_string())))?;
                builder = builder.header(CONTENT_LENGTH, revealed.len());
                Bytes::copy_from_slice(&revealed)
            }
            None => Bytes::new(),
        };
        let outgoing = builder.body(Full::new(body.clone())).map_err(|err| {
            EgressError::InvalidRequest(Invalid::Header(format!("request cannot be built: {err}")))
        })?;
        facts.bytes_sent = body.len() as u64;

        let timeout = match req.timeout_ms {
            Some(ms) => self.limits.timeout.min(Duration::from_millis(ms.into())),
            None => self.limits.timeout,
        };
        let client = match &self.platform {
            Some(api) if platform => &api.client,
            _ => &self.client,
        };
        tokio::time::timeout(timeout, self.exchange(client, caller, outgoing, facts))
            .await
            .unwrap_or(Err(EgressError::Timeout))
            .map(|response| redact_response(caller, response))
    }

    /// Every secret whose handle the request carries must be allowed for its destination.
    fn check_handles(
        &self,
        bindings: &Bindings,
        url: &url::Url,
        req: &Request,
        facts: &mut Facts,
    ) -> Result<(), EgressError> {
        // The parsed URL, not the node's text: parsing strips tabs and newlines, which could
        // otherwise rejoin a handle after this check and reveal it below, outside its scope.
        let mut used = bindings.used_in(url.as_str().as_bytes());
        let texts = req
            .headers
            .iter()
            .map(|(_, value)| value.as_bytes())
            .chain(req.body.as_deref());
        for text in texts {
            for name in bindings.used_in(text) {
                if !used.contains(&name) {
                    used.push(name);
                }
            }
        }
        facts.secrets.clone_from(&used);
        if let Some(name) = used.iter().find(|n| !self.policy.secret_allowed(n, url)) {
            let denial = Denial::SecretScope {
                secret: name.clone(),
                host: url.host_str().unwrap_or_default().to_string(),
            };
            facts.rule = Some(denial.to_string());
            return Err(EgressError::Denied(denial));
        }
        Ok(())
    }

    /// The data-loss check: a secret's value written into the request itself (not as a handle)
    /// may only go where that secret may go. It catches a value that reached the node through an
    /// echo the redaction did not recognise, or that another node passed on, before it can leave
    /// for another host, in every encoding `redact` recognises.
    fn check_carried_values(
        &self,
        caller: &Who,
        url: &url::Url,
        req: &Request,
        facts: &mut Facts,
    ) -> Result<(), EgressError> {
        let store = caller.bindings.store();
        let places = [("URL", url.as_str().as_bytes())]
            .into_iter()
            .chain(req.headers.iter().flat_map(|(name, value)| {
                [("headers", name.as_bytes()), ("headers", value.as_bytes())]
            }))
            .chain(req.body.as_deref().map(|body| ("body", body)));
        for (place, text) in places {
            // Only the gate puts a value made for this node run into a request, where its
            // handle sits, and after this check: the node itself never holds one.
            if let Some(name) = caller.bindings.own_values_in(text).first() {
                facts.secrets.push((*name).to_owned());
                let denial = Denial::CarriedValue {
                    secret: (*name).to_owned(),
                    place,
                    host: url.host_str().unwrap_or_default().to_owned(),
                };
                return Err(carried(denial, facts));
            }
            for name in store.values_in(text) {
                if !facts.secrets.iter().any(|n| n == name) {
                    facts.secrets.push(name.to_owned());
                }
                if !self.policy.secret_allowed(name, url) {
                    let denial = Denial::CarriedValue {
                        secret: name.to_owned(),
                        place,
                        host: url.host_str().unwrap_or_default().to_owned(),
                    };
                    return Err(carried(denial, facts));
                }
            }
        }
        Ok(())
    }

    async fn exchange(
        &self,
        client: &Client<VettedConnector, Full<Bytes>>,
        caller: &Who,
        outgoing: http::Request<Full<Bytes>>,
        facts: &mut Facts,
    ) -> Result<Response, EgressError> {
        let response = client.request(outgoing).await.map_err(|err| {
            let err = connection_error(&err);
            if let EgressError::Denied(reason) = &err {
                facts.rule = Some(reason.to_string());
            }
            err
        })?;
        facts.resolved_ip = response
            .extensions()
            .get::<VettedPeer>()
            .map(|peer| peer.0.ip().to_string());
        let status = response.status().as_u16();
        facts.status = Some(status);
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect();
        let (body, held) = self.read_body(caller, response.into_body(), facts).await?;
        facts.bytes_received = body.len() as u64;
        Ok(Response {
            status,
            headers,
            body,
            held,
        })
    }

    /// Reads a response body up to the gate's size cap, reserving each piece against the node
    /// run's body budget before keeping it.
    async fn read_body(
        &self,
        caller: &Who,
        mut incoming: hyper::body::Incoming,
        facts: &mut Facts,
    ) -> Result<(Vec<u8>, Reservation), EgressError> {
        let cap = self.limits.max_response_bytes;
        let limit = usize::try_from(cap).unwrap_or(usize::MAX);
        let mut held = caller.buffers.reservation();
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|err| {
                EgressError::Connection(ConnectionFailure::Exchange(format!(
                    "reading the response failed: {}",
                    chain(&err)
                )))
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if body.len().saturating_add(data.len()) > limit {
                facts.bytes_received = cap;
                return Err(EgressError::TooLarge(cap));
            }
            if let Err(over) = held.grow(data.len()) {
                facts.bytes_received = body.len() as u64;
                return Err(over.into());
            }
            body.extend_from_slice(&data);
        }
        Ok((body, held))
    }
}

/// Parses the node's URL and refuses secret handles outside the path and query, where a
/// value would become part of the destination itself.
fn parse_url(raw: &str) -> Result<url::Url, EgressError> {
    let invalid = |reason: String| EgressError::InvalidRequest(Invalid::Url(reason));
    let handle_outside_path =
        || invalid("secret handles may only appear in the URL path or query".to_string());
    let mut url = match url::Url::parse(raw) {
        Ok(url) => url,
        Err(_) if raw.split('/').take(3).any(has_handle) => {
            return Err(handle_outside_path());
        }
        Err(err) => return Err(invalid(format!("invalid URL: {err}"))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs are allowed".to_string()));
    }
    let authority = [
        url.scheme(),
        url.username(),
        url.password().unwrap_or_default(),
        url.host_str().unwrap_or_default(),
    ];
    if authority.iter().any(|part| has_handle(part)) {
        return Err(handle_outside_path());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not supported; send an Authorization header".to_string(),
        ));
    }
    // The fragment never leaves the client.
    url.set_fragment(None);
    Ok(url)
}

fn has_handle(text: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    decoded.to_ascii_lowercase().contains(HANDLE_MARKER)
}

/// A secret inside a JSON or form body must be escaped the way its surroundings are, so the
/// body's media type decides. With two Content-Type headers a receiver may read the body as
/// either: a body with a secret handle is then refused.
fn body_encoding(headers: &[(String, String)], has_handle: bool) -> Result<Encoding, EgressError> {
    let mut types = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| media_type(value));
    let first = types.next().unwrap_or_default();
    if has_handle && types.next().is_some() {
        return Err(EgressError::InvalidRequest(Invalid::Header(
            "a body with a secret handle may have only one Content-Type header".to_string(),
        )));
    }
    Ok(if first == "application/json" || first.ends_with("+json") {
        Encoding::JsonString
    } else if first == "application/x-www-form-urlencoded" {
        Encoding::UrlComponent
    } else {
        Encoding::Raw
    })
}

/// `type/subtype` of a Content-Type value, lower case, without parameters.
fn media_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// Validates one node header and reveals its value. `None` for Content-Length, which the gate
/// sets from the body it actually sends.
fn header(
    caller: &Who,
    name: &str,
    value: &str,
) -> Result<Option<(HeaderName, HeaderValue)>, EgressError> {
    let invalid = |reason: String| EgressError::InvalidRequest(Invalid::Header(reason));
    let shown = caller.bindings.scrub(name);
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(format!("invalid header name {shown:?}")))?;
    let lower = header_name.as_str();
    if CONNECTION_HEADERS.contains(&lower) || lower.starts_with("proxy-") {
        return Err(invalid(format!(
            "header {lower} is managed by the gate and may not be set"
        )));
    }
    if header_name == CONTENT_LENGTH {
        return Ok(None);
    }
    let revealed = caller
        .bindings
        .reveal(value.as_bytes(), Encoding::Raw)
        .map_err(|err| invalid(format!("header {lower}: {err}")))?;
    if revealed.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(invalid(format!("header {lower} contains CR, LF or NUL")));
    }
    let mut header_value = HeaderValue::from_bytes(&revealed)
        .map_err(|_| invalid(format!("header {lower} has an invalid value")))?;
    if revealed.as_slice() != value.as_bytes() {
        header_value.set_sensitive(true);
    }
    Ok(Some((header_name, header_value)))
}

/// Adds the node's headers, validated and revealed, to `builder`. A request to the platform's
/// API (`platform`) gets the run token as its Authorization instead of any the node wrote; the
/// audit record names the token and says when the node's header was replaced.
fn headers(
    caller: &Who,
    node_headers: &[(String, String)],
    platform: bool,
    mut builder: http::request::Builder,
    facts: &mut Facts,
) -> Result<http::request::Builder, EgressError> {
    let mut replaced_authorization = false;
    for (name, value) in node_headers {
        if platform && name.eq_ignore_ascii_case(AUTHORIZATION.as_str()) {
            replaced_authorization = true;
            continue;
        }
        if let Some((name, value)) = header(caller, name, value)? {
            builder = builder.header(name, value);
        }
    }
    if platform && let Some(token) = caller.bindings.platform_authorization() {
        let mut value = HeaderValue::from_bytes(&token).map_err(|_| {
            EgressError::InvalidRequest(Invalid::Header(
                "the run token is not a header value".into(),
            ))
        })?;
        value.set_sensitive(true);
        builder = builder.header(AUTHORIZATION, value);
        facts.secrets.push(PLATFORM_TOKEN_SECRET.to_owned());
        if replaced_authorization {
            facts.rule = Some(format!(
                "{PLATFORM_API_RULE} (the node's Authorization header was replaced by the run token)"
            ));
        }
    }
    Ok(builder)
}

/// A vetting refusal inside the connector is a denial, not a connection failure.
fn connection_error(err: &hyper_util::client::legacy::Error) -> EgressError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(ConnectError(err)) = current.downcast_ref::<ConnectError>() {
            return err.clone();
        }
        source = current.source();
    }
    EgressError::Connection(ConnectionFailure::Exchange(chain(err)))
}

fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string());
        source = current.source();
    }
    text
}

/// `response` with every echo of a secret redacted; only what changes is copied.
fn redact_response(caller: &Who, mut response: Response) -> Response {
    let bindings = &caller.bindings;
    // A server can echo a secret as a header name too. Such a header is dropped rather than
    // renamed: `[secret:NAME]` is not a valid header name for clients that rebuild headers.
    response
        .headers
        .retain(|(name, _)| matches!(bindings.redact_str(name), Cow::Borrowed(_)));
    for (_, value) in &mut response.headers {
        if let Cow::Owned(redacted) = bindings.redact_str(value) {
            *value = redacted;
        }
    }
    if let Cow::Owned(redacted) = bindings.redact(&response.body) {
        response.body = redacted;
    }
    response
}
