//! The WEBHOOK action node (Port's Workflows): sends one HTTP request and returns the response.
//!
//! Output: `{"response": {"status", "headers", "data"}}`, plus, when the response body is a JSON
//! object, its fields at the top level (so `.outputs.create_resource.id` works as in Port's
//! docs). A non-2xx status fails the node with the status in the message.
//!
//! An asynchronous webhook (`synchronized: false`) sends its request the same way; the host adds
//! the callback headers and then waits for the callback that completes the node run.

use airlock_guest::{Context, Node, Request, Response, export_node};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The config as the host hands it over: templates rendered, host-level keys removed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: Map<String, Value>,
    body: Option<Value>,
    #[serde(default = "default_true")]
    synchronized: bool,
    /// The request's timeout when synchronized; for an asynchronous webhook it is how long the
    /// host waits for the callback, not this request's concern.
    #[serde(default, rename = "timeoutMs")]
    timeout_ms: Option<u64>,
    #[serde(default, rename = "verbose")]
    _verbose: bool,
}

fn default_method() -> String {
    "POST".into()
}

fn default_true() -> bool {
    true
}

/// Longest excerpt of an error response body quoted in the failure message.
const ERROR_BODY_EXCERPT: usize = 300;

struct Webhook;

impl Node for Webhook {
    fn run(_ctx: Context, config: Value) -> Result<Value, String> {
        let config: WebhookConfig =
            serde_json::from_value(config).map_err(|e| format!("invalid WEBHOOK config: {e}"))?;
        let request = build_request(&config)?;
        let response = request.send().map_err(|e| e.to_string())?;
        if !response.is_success() {
            return Err(failure_message(&config, &response));
        }
        Ok(output(&response))
    }
}

fn build_request(config: &WebhookConfig) -> Result<Request, String> {
    let mut request = Request::new(config.method.clone(), config.url.clone());
    for (name, value) in &config.headers {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        request = request.header(name.clone(), value);
    }
    if config.synchronized
        && let Some(ms) = config.timeout_ms
    {
        request = request.timeout(std::time::Duration::from_millis(ms));
    }
    let body = match config.method.as_str() {
        "POST" | "PUT" | "PATCH" => config.body.as_ref(),
        _ => None,
    };
    Ok(match body {
        // A non-JSON content type with a string body means "send this text as is".
        Some(Value::String(text)) if declares_non_json(&request, config) => {
            request.body(text.clone().into_bytes())
        }
        Some(body) => request.json(body),
        None => request,
    })
}

fn declares_non_json(request: &Request, config: &WebhookConfig) -> bool {
    request.has_header("content-type")
        && config.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("content-type")
                && value
                    .as_str()
                    .is_some_and(|v| !v.to_ascii_lowercase().contains("json"))
        })
}

fn failure_message(config: &WebhookConfig, response: &Response) -> String {
    let text = response.text();
    let excerpt: String = text.chars().take(ERROR_BODY_EXCERPT).collect();
    let more = if text.chars().count() > ERROR_BODY_EXCERPT {
        "…"
    } else {
        ""
    };
    format!(
        "HTTP {} from {} {}: {}{more}",
        response.status, config.method, config.url, excerpt
    )
}

fn output(response: &Response) -> Value {
    let data = if response.body.is_empty() {
        Value::Null
    } else {
        response
            .json()
            .unwrap_or_else(|| Value::String(response.text()))
    };
    let mut headers = Map::new();
    for (name, value) in &response.headers {
        let name = name.to_ascii_lowercase();
        match headers.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                headers.insert(name, Value::String(value.clone()));
            }
        }
    }
    let mut out = Map::new();
    if let Value::Object(fields) = &data {
        for (key, value) in fields {
            if key != "response" {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert(
        "response".into(),
        json!({ "status": response.status, "headers": headers, "data": data }),
    );
    Value::Object(out)
}

export_node!(Webhook);
