//! The platform's own API: under `airlock serve`, a request to the `--public-url` base gets the
//! node run's run token (see `secrets::PlatformKey`) from the gate, by the implicit rule
//! `platform-api`. Only the base is covered: same scheme, host and port, and a path under the
//! base's path, compared after the URL parser has normalised them (case, default ports, dot
//! segments, percent-encoded dots). Anything else on that host goes through the policy as usual.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

use super::connector::VettedConnector;
use super::pattern::Pattern;
use super::policy::Policy;

/// The rule an audit record names for a request to the platform's API.
pub const PLATFORM_API_RULE: &str = "platform-api";

#[derive(Debug, thiserror::Error)]
pub enum PlatformApiError {
    #[error("public URL {url}: {reason}")]
    Base { url: String, reason: String },
}

pub(super) struct PlatformApi {
    base: url::Url,
    /// Its own pool, whose connector admits the base's origin (after the policy's deny rules):
    /// a connection opened for the API is never reused for a request the policy decides.
    pub client: Client<VettedConnector, Full<Bytes>>,
}

impl PlatformApi {
    pub fn new(base: &url::Url, policy: &Policy) -> Result<PlatformApi, PlatformApiError> {
        let error = |reason: &str| PlatformApiError::Base {
            url: base.to_string(),
            reason: reason.to_owned(),
        };
        if !matches!(base.scheme(), "http" | "https") {
            return Err(error("only http and https are supported"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(error("a base URL has no query or fragment"));
        }
        let (Some(host), Some(port)) = (base.host_str(), base.port_or_known_default()) else {
            return Err(error("the URL has no host"));
        };
        let origin = Pattern::parse(&format!("{}://{host}:{port}", base.scheme()), false)
            .map_err(|e| error(&e.to_string()))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(VettedConnector::new(Arc::new(
                policy.with_first_allow(origin),
            )));
        Ok(PlatformApi {
            base: base.clone(),
            client,
        })
    }

    /// Whether `url` (parsed, so normalised) is under the base.
    pub fn covers(&self, url: &url::Url) -> bool {
        let prefix = self.base.path().trim_end_matches('/');
        let path = url.path();
        let under = prefix.is_empty()
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && under
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> PlatformApi {
        PlatformApi::new(&url::Url::parse(base).unwrap(), &Policy::default_public()).unwrap()
    }

    fn covers(api: &PlatformApi, url: &str) -> bool {
        api.covers(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn covers_exactly_the_base_after_normalisation() {
        let root = api("http://127.0.0.1:8080");
        assert!(covers(
            &root,
            "http://127.0.0.1:8080/v1/workflows/runs/wfr_1"
        ));
        assert!(covers(&root, "HTTP://127.0.0.1:8080/x/../v1"));
        assert!(!covers(&root, "https://127.0.0.1:8080/v1"));
        assert!(!covers(&root, "http://127.0.0.1:8081/v1"));
        assert!(!covers(&root, "http://localhost:8080/v1"));
        assert!(!covers(&root, "http://127.0.0.2:8080/v1"));

        let default_port = api("https://Airlock.Example.com/");
        assert!(covers(&default_port, "https://airlock.example.com:443/v1"));
        assert!(!covers(&default_port, "http://airlock.example.com/v1"));

        let prefixed = api("https://example.com/airlock/");
        assert!(covers(&prefixed, "https://example.com/airlock"));
        assert!(covers(
            &prefixed,
            "https://example.com/airlock/v1/workflows"
        ));
        assert!(!covers(&prefixed, "https://example.com/airlock-other/v1"));
        assert!(!covers(&prefixed, "https://example.com/other"));
        assert!(!covers(&prefixed, "https://example.com/airlock/../other"));
        assert!(!covers(
            &prefixed,
            "https://example.com/airlock/%2e%2e/other"
        ));
    }

    #[test]
    fn a_base_must_be_an_http_origin_and_path() {
        for bad in ["ftp://example.com", "http://example.com/?q=1"] {
            assert!(
                PlatformApi::new(&url::Url::parse(bad).unwrap(), &Policy::default_public())
                    .is_err(),
                "{bad}"
            );
        }
    }
}
