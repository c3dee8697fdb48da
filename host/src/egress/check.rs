//! `airlock policy test FILE URL`: what the gate would decide for a URL, addresses included.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::connector::{Refusal, Vetted, vet_destination};
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

/// What the connector would do with `url`: the same decision, lookup and address vetting.
pub async fn check_url(policy: &Policy, url: &str) -> PolicyVerdict {
    match url::Url::parse(url) {
        Ok(url) => verdict(vet_destination(policy, &url).await),
        Err(err) => refused(format!("invalid URL: {err}"), Vec::new()),
    }
}

fn verdict(vetted: Result<Vetted, Refusal>) -> PolicyVerdict {
    match vetted {
        Ok(Vetted { decision, addrs }) => PolicyVerdict {
            allowed: true,
            rule: decision.rule,
            addresses: addrs.iter().map(SocketAddr::ip).collect(),
        },
        Err(Refusal::Address { reason, addrs }) => refused(reason.to_string(), addrs),
        Err(Refusal::Rule(rule)) => refused(rule, Vec::new()),
        Err(Refusal::Unresolved(failure)) => refused(failure.to_string(), Vec::new()),
    }
}

fn refused(rule: String, addresses: Vec<IpAddr>) -> PolicyVerdict {
    PolicyVerdict {
        allowed: false,
        rule,
        addresses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::ConnectionFailure;

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

    /// The connector refuses a name that resolves to no address; so does `policy test`.
    #[test]
    fn an_empty_dns_answer_is_refused_as_the_connector_refuses_it() {
        let policy = Policy::default_public();
        let url = url::Url::parse("https://empty.example/").expect("valid URL");
        let decision = policy.decide(&url);
        assert!(decision.allowed);
        let vetted = super::super::connector::vet_resolved(&policy, &url, decision, Ok(vec![]));
        assert_eq!(
            vetted,
            Err(Refusal::Unresolved(ConnectionFailure::NoAddresses {
                host: "empty.example".into()
            }))
        );
        let verdict = verdict(vetted);
        assert!(!verdict.allowed);
        assert_eq!(
            verdict.to_string(),
            "deny: empty.example resolved to no addresses"
        );
    }
}
