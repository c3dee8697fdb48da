//! The WEBHOOK config: Port's fields (`synchronized: false` with `timeoutMs` and `onTimeout` for
//! an asynchronous webhook), plus Airlock's optional extensions (`timeoutMs` of a synchronous
//! request, `retry`, `successStatusCodes`).

use serde_json::Value;

use super::error::{Problems, child, index, quoted_list};
use super::fields::{Fields, describe};
use super::model::{Callback, OnTimeout};
use crate::template::Template;

const ALLOWED_KEYS: &[&str] = &[
    "type",
    "url",
    "method",
    "headers",
    "body",
    "synchronized",
    "onFailure",
    "verbose",
    "timeoutMs",
    "onTimeout",
    "retry",
    "successStatusCodes",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
const METHODS_WITH_BODY: &[&str] = &["POST", "PUT", "PATCH"];
const RETRY_KEYS: &[&str] = &[
    "maxAttempts",
    "initialIntervalMs",
    "backoffRate",
    "maxIntervalMs",
];
/// One day: anything longer is certainly a unit mistake.
const MAX_MS: u64 = 86_400_000;

/// Checks a WEBHOOK config; for an asynchronous one, returns how it waits for its callback.
pub(super) fn check(config: &Fields<'_>, problems: &mut Problems) -> Option<Callback> {
    config.reject_unknown(ALLOWED_KEYS, "a WEBHOOK config", problems);
    url(config, problems);
    let method = method(config, problems);
    headers(config, problems);
    if config.get("body").is_some()
        && let Some(method) = method
        && !METHODS_WITH_BODY.contains(&method)
    {
        problems.push(
            config.path_of("body"),
            config.node,
            format!(
                "a {method} request cannot have a body; use {}",
                METHODS_WITH_BODY.join(", ")
            ),
        );
    }
    let asynchronous = config.bool("synchronized", problems) == Some(false);
    config.bool("verbose", problems);
    let timeout_ms = config.integer("timeoutMs", 1, MAX_MS, problems);
    let on_timeout = on_timeout(config, asynchronous, problems);
    retry(config, problems);
    success_status_codes(config, problems);
    asynchronous.then_some(Callback {
        timeout_ms,
        on_timeout,
    })
}

fn on_timeout(config: &Fields<'_>, asynchronous: bool, problems: &mut Problems) -> OnTimeout {
    let Some(value) = config.get("onTimeout").filter(|v| !v.is_null()) else {
        return OnTimeout::Fail;
    };
    let path = config.path_of("onTimeout");
    if !asynchronous {
        problems.push(
            path,
            config.node,
            "\"onTimeout\" applies to asynchronous webhooks (synchronized: false); a synchronous request fails at its timeoutMs",
        );
        return OnTimeout::Fail;
    }
    match value.as_str() {
        Some("fail") => OnTimeout::Fail,
        Some("continue") => OnTimeout::Continue,
        _ => {
            problems.push(
                path,
                config.node,
                format!(
                    "\"onTimeout\" must be \"fail\" or \"continue\", not {}",
                    describe(value)
                ),
            );
            OnTimeout::Fail
        }
    }
}

fn url(config: &Fields<'_>, problems: &mut Problems) {
    let Some(url) = config.required_string("url", problems) else {
        return;
    };
    let path = config.path_of("url");
    if url.trim().is_empty() {
        problems.push(path, config.node, "\"url\" must not be empty");
        return;
    }
    // A templated URL can only be checked once rendered; a broken template is reported by the
    // config's template compilation.
    let is_static =
        Template::compile(&Value::from(url), &path).is_ok_and(|template| template.is_static());
    if !is_static {
        return;
    }
    match url::Url::parse(url) {
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => problems.push(
            path,
            config.node,
            format!(
                "the URL scheme must be http or https, not \"{}\"",
                parsed.scheme()
            ),
        ),
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => {
            problems.push(path, config.node, "the URL has no host")
        }
        Ok(_) => {}
        Err(error) => problems.push(
            path,
            config.node,
            format!("\"{url}\" is not an absolute URL: {error}"),
        ),
    }
}

/// The method the request will use (POST by default), or None when it is invalid.
fn method(config: &Fields<'_>, problems: &mut Problems) -> Option<&'static str> {
    if config.get("method").is_none() {
        return Some("POST");
    }
    let method = config.string("method", problems)?;
    if let Some(known) = METHODS.iter().find(|known| **known == method) {
        return Some(known);
    }
    // Port compares methods case-sensitively; say so rather than guess.
    let upper = method.to_ascii_uppercase();
    let message = if METHODS.contains(&upper.as_str()) {
        format!("methods are upper case: use \"{upper}\" instead of \"{method}\"")
    } else {
        format!(
            "\"method\" must be one of {}, not \"{method}\"",
            quoted_list(METHODS)
        )
    };
    problems.push(config.path_of("method"), config.node, message);
    None
}

fn headers(config: &Fields<'_>, problems: &mut Problems) {
    let Some(headers) = config.object("headers", problems) else {
        return;
    };
    let path = config.path_of("headers");
    for (name, value) in headers {
        let at = child(&path, name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(
                &at,
                config.node,
                format!("\"{name}\" is not a valid HTTP header name"),
            );
        }
        if !value.is_string() {
            problems.push(
                at,
                config.node,
                format!(
                    "header \"{name}\" must be a string, not {}",
                    describe(value)
                ),
            );
        }
    }
}

fn retry(config: &Fields<'_>, problems: &mut Problems) {
    let Some(retry) = config.object("retry", problems) else {
        return;
    };
    let path = config.path_of("retry");
    let retry = Fields::new(retry, &path, config.node);
    retry.reject_unknown(RETRY_KEYS, "\"retry\"", problems);
    retry.integer("maxAttempts", 1, 100, problems);
    retry.integer("initialIntervalMs", 0, MAX_MS, problems);
    retry.integer("maxIntervalMs", 0, MAX_MS, problems);
    if let Some(rate) = retry.get("backoffRate")
        && !rate
            .as_f64()
            .is_some_and(|rate| (1.0..=100.0).contains(&rate))
    {
        problems.push(
            retry.path_of("backoffRate"),
            config.node,
            format!(
                "\"backoffRate\" must be a number from 1 to 100, not {}",
                describe(rate)
            ),
        );
    }
}

fn success_status_codes(config: &Fields<'_>, problems: &mut Problems) {
    let Some(codes) = config.array("successStatusCodes", problems) else {
        return;
    };
    let path = config.path_of("successStatusCodes");
    if codes.is_empty() {
        problems.push(
            &path,
            config.node,
            "\"successStatusCodes\" must list at least one status",
        );
    }
    for (i, code) in codes.iter().enumerate() {
        if !code
            .as_u64()
            .is_some_and(|code| (100..=599).contains(&code))
        {
            problems.push(
                index(&path, i),
                config.node,
                format!(
                    "a status code must be a whole number from 100 to 599, not {}",
                    describe(code)
                ),
            );
        }
    }
}
