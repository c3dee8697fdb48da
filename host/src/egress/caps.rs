//! Size caps on a request's head, checked before anything else: a URL or header block cannot
//! approach the node's memory limit, nor fill the audit log.

use super::{EgressError, GateLimits, Invalid, Request};

impl GateLimits {
    /// Refuses a request whose URL or headers exceed their caps, naming the cap.
    pub(super) fn check_head(&self, req: &Request) -> Result<(), EgressError> {
        let too_large = |what: Invalid| Err(EgressError::InvalidRequest(what));
        if req.url.len() > self.max_url_bytes {
            return too_large(Invalid::UrlTooLong {
                bytes: req.url.len(),
                limit: self.max_url_bytes,
            });
        }
        if req.headers.len() > self.max_headers {
            return too_large(Invalid::TooManyHeaders {
                count: req.headers.len(),
                limit: self.max_headers,
            });
        }
        let header_bytes: usize = req
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        if header_bytes > self.max_header_bytes {
            return too_large(Invalid::HeadersTooLarge {
                bytes: header_bytes,
                limit: self.max_header_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: String, headers: Vec<(String, String)>) -> Request {
        Request {
            method: "GET".into(),
            url,
            headers,
            body: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn each_cap_is_named_when_breached() {
        let limits = GateLimits::default();
        let ok = request(
            "https://example.com/".into(),
            vec![("a".into(), "b".into())],
        );
        assert_eq!(limits.check_head(&ok), Ok(()));

        let long_url = request(format!("https://example.com/{}", "x".repeat(8192)), vec![]);
        let err = limits.check_head(&long_url).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid request: URL of 8212 bytes exceeds the URL length limit of 8192 bytes"
        );

        let many = (0..101).map(|i| (format!("x-{i}"), "v".into())).collect();
        let err = limits
            .check_head(&request("https://example.com/".into(), many))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("101 headers exceed the header count limit of 100"),
            "{err}"
        );

        let big = vec![("x-big".into(), "v".repeat(64 * 1024))];
        let err = limits
            .check_head(&request("https://example.com/".into(), big))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("headers of 65541 bytes exceed the header size limit of 65536 bytes"),
            "{err}"
        );
    }
}
