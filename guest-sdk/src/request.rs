//! Outbound HTTP through the host's egress gate.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::bindings::airlock::node::egress;

/// An HTTP request built by the node and sent through the egress gate.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with any method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS).
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header; names are matched case-insensitively by [`Request::has_header`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Sets a JSON body, and `Content-Type: application/json` unless a content type is set.
    pub fn json(mut self, body: &Value) -> Self {
        if !self.has_header("content-type") {
            self.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Asks for a shorter timeout than the host's; the host never allows a longer one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn send(self) -> Result<Response, EgressError> {
        let timeout_ms = self
            .timeout
            .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
        let request = egress::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms,
        };
        egress::send(&request)
            .map(|r| Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(EgressError)
    }
}

/// The answer to a [`Request`]. Redirects are not followed: a 3xx arrives here as it is.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why the gate did not deliver a response.
#[derive(Debug, Clone)]
pub struct EgressError(pub egress::Error);

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            egress::Error::Denied(why) => write!(f, "request denied by the egress policy: {why}"),
            egress::Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            egress::Error::Timeout => write!(f, "request timed out"),
            egress::Error::Connection(why) => write!(f, "connection failed: {why}"),
            egress::Error::TooLarge(limit) => {
                write!(f, "response larger than the {limit}-byte limit")
            }
        }
    }
}

impl std::error::Error for EgressError {}
