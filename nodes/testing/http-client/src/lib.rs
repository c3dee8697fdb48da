//! Test node: performs `config.{method, url, headers, body}` through wasi:http's
//! outgoing-handler, the import a language's standard HTTP client uses, and returns
//! the `{status, headers, body}` of the last of `config.repeat` (default 1) identical requests.
//! Shows that wasi:http meets the same egress gate as `egress.send`.

use airlock_guest::{Context, Node, config_str, export_node};
use serde_json::{Map, Value, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
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
        let repeat = config.get("repeat").and_then(Value::as_u64).unwrap_or(1);
        let mut last = Value::Null;
        for _ in 0..repeat {
            last = send(method, url, &headers, body)
                .map_err(|e| format!("wasi:http request failed: {e}"))?;
        }
        Ok(last)
    }
}

fn send(
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
) -> Result<Value, String> {
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

    let outgoing = request.body().map_err(|()| "request body unavailable")?;
    let pending = outgoing_handler::handle(request, None).map_err(describe)?;
    write_body(outgoing, body.unwrap_or_default())?;

    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("response not ready")?
        .map_err(|()| "response already taken")?
        .map_err(describe)?;
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

/// The host puts the egress gate's reason in `internal-error`; show it as is.
fn describe(error: ErrorCode) -> String {
    match error {
        ErrorCode::InternalError(Some(reason)) => reason,
        other => format!("{other:?}"),
    }
}

export_node!(HttpClient);
