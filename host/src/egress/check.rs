//! `airlock policy test FILE URL`: what the gate would decide for a URL, addresses included.

use std::fmt;
use std::net::IpAddr;

use super::policy::Policy;

/// The verdict for one URL: the URL decision, then the check of every resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVerdict {
    pub allowed: bool,
    /// The deciding rule, or why the URL or one of its addresses was refused.
    pub rule: String,
    pub addresses: Vec<IpAddr>,
}

impl fmt::Display for PolicyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allow" } else { "deny" };
        write!(f, "{verdict}: {}", self.rule)?;
        if !self.addresses.is_empty() {
            let addrs: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
            write!(f, " (resolves to {})", addrs.join(", "))?;
        }
        Ok(())
    }
}

pub async fn check_url(policy: &Policy, url: &str) -> PolicyVerdict {
    let refuse = |rule: String, addresses: Vec<IpAddr>| PolicyVerdict {
        allowed: false,
        rule,
        addresses,
    };
    let url = match url::Url::parse(url) {
        Ok(url) => url,
        Err(err) => return refuse(format!("invalid URL: {err}"), Vec::new()),
    };
    let decision = policy.decide(&url);
    if !decision.allowed {
        return refuse(decision.rule, Vec::new());
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return refuse("URL has no host".to_string(), Vec::new());
    };
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match tokio::net::lookup_host((bare_host, port)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(err) => {
            return refuse(
                format!("{}, but cannot resolve {host}: {err}", decision.rule),
                Vec::new(),
            );
        }
    };
    match policy.vet_addresses(url.scheme(), port, &addresses) {
        Ok(()) => PolicyVerdict {
            allowed: true,
            rule: decision.rule,
            addresses,
        },
        Err(reason) => refuse(reason, addresses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_needs_an_address_rule() {
        let public = Policy::default_public();
        let verdict = check_url(&public, "http://127.0.0.1:8080/").await;
        assert!(!verdict.allowed);
        assert!(
            verdict.rule.starts_with("private address 127.0.0.1"),
            "{verdict}"
        );
        let explicit = Policy::from_toml("[egress]\nallow = [\"http://127.0.0.1:8080\"]")
            .expect("valid policy");
        let verdict = check_url(&explicit, "http://127.0.0.1:8080/x").await;
        assert!(verdict.allowed, "{verdict}");
        assert_eq!(
            verdict.to_string(),
            "allow: allow[0] http://127.0.0.1:8080 (resolves to 127.0.0.1)"
        );
    }

    #[tokio::test]
    async fn url_decisions_come_first() {
        let deny = Policy::from_toml("[egress]\ndefault = \"deny\"").expect("valid policy");
        let verdict = check_url(&deny, "https://example.com/").await;
        assert_eq!(verdict.to_string(), "deny: default deny");
        let bad = check_url(&deny, "not a url").await;
        assert!(bad.rule.starts_with("invalid URL"), "{bad}");
    }
}
