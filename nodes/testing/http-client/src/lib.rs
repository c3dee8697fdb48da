//! Test node: performs `config.{method, url, headers, body}` through wasi:http's
//! outgoing-handler, the import a language's standard HTTP client uses, and returns
//! the `{status, headers, body}` of the last of `config.repeat` (default 1) identical requests.
//! Shows that wasi:http meets the same egress gate as `egress.send`.
//!
//! `config.mode` makes it misbehave instead:
//! - `spin-while-pending`: sends the request, then computes until its response arrives.
//! - `unfinished-bodies`: starts `config.count` POSTs, writes `config.bytes` of each body and
//!   never finishes one, keeping them all open; then waits `config.holdMs`.
//! - `skipBody`: hands the request over without ever opening its body.
//! - `unread-responses`: makes `config.count` GETs and keeps every response without reading
//!   its body; then waits `config.holdMs`.

use std::hint::black_box;
use std::time::Duration;

use airlock_guest::{Context, Node, config_str, export_node};
use serde_json::{Map, Value, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// wasi:io output streams accept at most this much per blocking write.
const WRITE_CHUNK: usize = 4096;

struct HttpClient;

impl Node for HttpClient {
    fn run(_ctx: Context, config: Value) -> Result<Value, String> {
        let url = config_str(&config, "url")?;
        let method = config
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET");
        let headers = match config.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| match value {
                    Value::String(v) => Ok((name.clone(), v.clone().into_bytes())),
                    _ => Err(format!("config.headers.{name} must be a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("config.headers must be an object".into()),
        };
        let body = config
            .get("body")
            .and_then(Value::as_str)
            .map(str::as_bytes);
        let number = |field: &str, default: u64| {
            config.get(field).and_then(Value::as_u64).unwrap_or(default)
        };
        let hold = Duration::from_millis(number("holdMs", 0));
        if config.get("skipBody").and_then(Value::as_bool) == Some(true) {
            // Handed over without ever asking for its body stream.
            let request = new_request(method, url, &headers)?;
            let pending = outgoing_handler::handle(request, None)
                .map_err(|e| format!("wasi:http request failed: {}", describe(e)))?;
            return wait(&pending)
                .map(|response| json!({"status": response.status()}))
                .map_err(|e| format!("wasi:http request failed: {e}"));
        }
        match config.get("mode").and_then(Value::as_str) {
            None => {}
            Some("spin-while-pending") => {
                let (pending, outgoing) = start(method, url, &headers)?;
                write_body(outgoing, body.unwrap_or_default())?;
                while pending.get().is_none() {
                    black_box(());
                }
                return Ok(json!("the response arrived"));
            }
            Some("unfinished-bodies") => {
                let bytes = number("bytes", 15 << 20) as usize;
                return Ok(unfinished_bodies(url, number("count", 60), bytes, hold));
            }
            Some("unread-responses") => {
                return Ok(unread_responses(url, number("count", 20), hold));
            }
            Some(other) => return Err(format!("unknown mode {other:?}")),
        }
        let repeat = number("repeat", 1);
        let mut last = Value::Null;
        for _ in 0..repeat {
            last = send(method, url, &headers, body)
                .map_err(|e| format!("wasi:http request failed: {e}"))?;
        }
        Ok(last)
    }
}

/// Starts `count` POSTs to `url`, writing up to `bytes` of each body without finishing any,
/// and keeps them all open for `hold`. Counts the requests refused and the writes that failed.
fn unfinished_bodies(url: &str, count: u64, bytes: usize, hold: Duration) -> Value {
    let chunk = [b'x'; WRITE_CHUNK];
    let mut open = Vec::new();
    let (mut refused, mut cut_short) = (0, 0);
    for _ in 0..count {
        let (pending, outgoing) = match start("POST", url, &[]) {
            Ok(started) => started,
            Err(_) => {
                refused += 1;
                continue;
            }
        };
        let stream = outgoing.write().expect("the body stream, once");
        let mut written = 0;
        while written < bytes {
            let n = WRITE_CHUNK.min(bytes - written);
            if stream.blocking_write_and_flush(&chunk[..n]).is_err() {
                cut_short += 1;
                break;
            }
            written += n;
        }
        open.push((pending, stream, outgoing));
    }
    std::thread::sleep(hold);
    let report = json!({"refused": refused, "cutShort": cut_short, "open": open.len()});
    // Dropping a body would end it, as if finished: leave them all unfinished to the host.
    std::mem::forget(open);
    report
}

/// Makes `count` GETs to `url` and keeps each response, body unread, for `hold`.
fn unread_responses(url: &str, count: u64, hold: Duration) -> Value {
    let mut kept: Vec<IncomingResponse> = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..count {
        let response = start("GET", url, &[]).and_then(|(pending, outgoing)| {
            write_body(outgoing, &[])?;
            wait(&pending)
        });
        match response {
            Ok(response) => kept.push(response),
            Err(error) => failed.push(error),
        }
    }
    std::thread::sleep(hold);
    json!({"kept": kept.len(), "failed": failed})
}

fn send(
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
) -> Result<Value, String> {
    let (pending, outgoing) = start(method, url, headers)?;
    write_body(outgoing, body.unwrap_or_default())?;
    let response = wait(&pending)?;
    let mut out_headers = Map::new();
    for (name, value) in response.headers().entries() {
        out_headers.insert(
            name,
            Value::String(String::from_utf8_lossy(&value).into_owned()),
        );
    }
    let status = response.status();
    let body = read_body(
        response
            .consume()
            .map_err(|()| "response body unavailable")?,
    )?;
    Ok(json!({
        "status": status,
        "headers": out_headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

fn wait(pending: &FutureIncomingResponse) -> Result<IncomingResponse, String> {
    pending.subscribe().block();
    pending
        .get()
        .ok_or("response not ready")?
        .map_err(|()| "response already taken")?
        .map_err(describe)
}

/// Hands the request to the outgoing handler; its body is still to be written.
fn start(
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<(FutureIncomingResponse, OutgoingBody), String> {
    let request = new_request(method, url, headers)?;
    let outgoing = request.body().map_err(|()| "request body unavailable")?;
    let pending = outgoing_handler::handle(request, None).map_err(describe)?;
    Ok((pending, outgoing))
}

fn new_request(
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<OutgoingRequest, String> {
    let (scheme, rest) = url.split_once("://").ok_or("url must be absolute")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let fields = Fields::from_list(headers).map_err(|e| format!("header rejected: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    request.set_method(&method).map_err(|()| "invalid method")?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "invalid authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "invalid path")?;
    Ok(request)
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing
            .write()
            .map_err(|()| "request body stream unavailable")?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the request body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(describe)
}

fn read_body(incoming: IncomingBody) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| "response body stream unavailable")?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("reading the response body: {e:?}")),
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    Ok(body)
}

/// The error code is all a wasi:http client learns; the host logs the gate's reason.
fn describe(error: ErrorCode) -> String {
    format!("{error:?}")
}

export_node!(HttpClient);
