//! The egress policy (parsed from `airlock.toml` by `config`) and the decisions it makes.

use super::address::{Restriction, restriction};
use super::pattern::{Pattern, Target};
use crate::config::{ConfigError, PolicyFile};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The parsed policy. Immutable once loaded; shared by every request.
#[derive(Debug, Clone)]
pub struct Policy {
    default: DefaultRule,
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
    /// Only the secrets with a `hosts` scope; the others go anywhere the policy allows.
    secret_scopes: BTreeMap<String, Vec<Pattern>>,
}

/// What the policy decides for a URL no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRule {
    /// Allowed when every resolved address is public.
    Public,
    /// Refused.
    Deny,
}

/// Why a resolved address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    /// A deny rule covers the address.
    #[error("deny[{index}] {rule} (resolved address {ip})")]
    DenyRule {
        index: usize,
        rule: String,
        ip: IpAddr,
    },
    /// Not a public address, and no allow rule names it.
    #[error("private address {ip}: {restriction}")]
    NotPublic {
        ip: IpAddr,
        restriction: Restriction,
    },
}

fn not_http() -> Decision {
    Decision {
        allowed: false,
        rule: "only http and https URLs with a host are allowed".to_string(),
    }
}

/// The URL-level verdict and the rule that reached it, e.g. `allow[0] http://127.0.0.1:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: String,
}

impl Policy {
    /// No policy file: any destination whose resolved addresses are all public.
    pub fn default_public() -> Policy {
        Policy {
            default: DefaultRule::Public,
            allow: Vec::new(),
            deny: Vec::new(),
            secret_scopes: BTreeMap::new(),
        }
    }

    /// `secret_scopes`: the secrets with a `hosts` scope; the others go anywhere the policy
    /// allows.
    pub fn new(
        default: DefaultRule,
        allow: Vec<Pattern>,
        deny: Vec<Pattern>,
        secret_scopes: BTreeMap<String, Vec<Pattern>>,
    ) -> Policy {
        Policy {
            default,
            allow,
            deny,
            secret_scopes,
        }
    }

    /// Parses policy text (its `[egress]` and `[secrets]`); see [`PolicyFile`].
    pub fn from_toml(text: &str) -> Result<Policy, ConfigError> {
        PolicyFile::parse(text, "policy").map(|file| file.egress)
    }

    /// The URL-level decision: deny rules first, then allow rules, then the default. Addresses
    /// are checked separately, after resolution (see `vet_addresses`).
    pub fn decide(&self, url: &url::Url) -> Decision {
        let Some(target) = Target::from_url(url) else {
            return not_http();
        };
        if let Some(denied) = self.denied(&target) {
            return denied;
        }
        if let Some((i, rule)) = self
            .allow
            .iter()
            .enumerate()
            .find(|(_, p)| p.matches(&target))
        {
            return Decision {
                allowed: true,
                rule: format!("allow[{i}] {rule}"),
            };
        }
        match self.default {
            DefaultRule::Public => Decision {
                allowed: true,
                rule: "default public".to_string(),
            },
            DefaultRule::Deny => Decision {
                allowed: false,
                rule: "default deny".to_string(),
            },
        }
    }

    /// The decision for the platform's own API under `airlock serve` (the gate has checked that
    /// `url` is under the public URL): allowed by the implicit rule `rule`; only a deny rule
    /// refuses it.
    pub fn decide_platform_api(&self, url: &url::Url, rule: &str) -> Decision {
        let Some(target) = Target::from_url(url) else {
            return not_http();
        };
        self.denied(&target).unwrap_or_else(|| Decision {
            allowed: true,
            rule: rule.to_owned(),
        })
    }

    fn denied(&self, target: &Target<'_>) -> Option<Decision> {
        let (i, rule) = self
            .deny
            .iter()
            .enumerate()
            .find(|(_, p)| p.matches_widely(target))?;
        Some(Decision {
            allowed: false,
            rule: format!("deny[{i}] {rule}"),
        })
    }

    /// This policy with `pattern` as its first allow rule: what the platform API's connector
    /// vets with, so that the public URL's own address (named by `pattern`) may be reached.
    pub fn with_first_allow(&self, pattern: Pattern) -> Policy {
        let mut policy = self.clone();
        policy.allow.insert(0, pattern);
        policy
    }

    /// Checks every address a host resolved to. `Err` names the refused address and why: a
    /// deny rule naming it, or a non-public range that no allow rule names explicitly.
    pub fn vet_addresses(
        &self,
        scheme: &str,
        port: u16,
        addrs: &[IpAddr],
    ) -> Result<(), AddressRefusal> {
        for &ip in addrs {
            let denied = self
                .deny
                .iter()
                .enumerate()
                .find(|(_, p)| p.matches_address_widely(scheme, port, ip));
            if let Some((index, rule)) = denied {
                return Err(AddressRefusal::DenyRule {
                    index,
                    rule: rule.to_string(),
                    ip,
                });
            }
            if let Some(restriction) = restriction(ip) {
                let named = self.allow.iter().any(|p| p.names_address(scheme, port, ip));
                if !named {
                    return Err(AddressRefusal::NotPublic { ip, restriction });
                }
            }
        }
        Ok(())
    }

    /// Whether secret `name` may be sent to `url`: true when the secret has no `hosts` scope.
    pub fn secret_allowed(&self, name: &str, url: &url::Url) -> bool {
        match self.secret_scopes.get(name) {
            None => true,
            Some(patterns) => {
                Target::from_url(url).is_some_and(|t| patterns.iter().any(|p| p.matches(&t)))
            }
        }
    }

    /// A human description, for `airlock policy check`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let default = match self.default {
            DefaultRule::Public => {
                "public (any destination whose resolved addresses are all public)"
            }
            DefaultRule::Deny => "deny (only destinations an allow rule matches)",
        };
        let _ = writeln!(out, "default: {default}");
        let mut list = |title: &str, kind: &str, rules: &[Pattern]| {
            if rules.is_empty() {
                let _ = writeln!(out, "{title}: none");
                return;
            }
            let _ = writeln!(out, "{title}:");
            for (i, rule) in rules.iter().enumerate() {
                let _ = writeln!(out, "  {kind}[{i}] {rule}");
            }
        };
        list("deny rules (checked first)", "deny", &self.deny);
        list("allow rules", "allow", &self.allow);
        let _ = writeln!(
            out,
            "non-public addresses (loopback, private, link-local, metadata, CGNAT, multicast, \
             reserved, and IPv6 forms embedding them) are refused after DNS resolution unless an \
             allow rule with that IP address or CIDR range matches"
        );
        if self.secret_scopes.is_empty() {
            let _ = writeln!(out, "secrets: unscoped (sent anywhere the policy allows)");
        } else {
            let _ = writeln!(
                out,
                "secret scopes (other secrets go anywhere the policy allows):"
            );
            for (name, patterns) in &self.secret_scopes {
                let hosts: Vec<String> = patterns.iter().map(ToString::to_string).collect();
                let hosts = if hosts.is_empty() {
                    "nowhere".to_string()
                } else {
                    hosts.join(", ")
                };
                let _ = writeln!(out, "  {name}: {hosts}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn decide(policy: &Policy, url: &str) -> Decision {
        policy.decide(&url::Url::parse(url).expect("test URL parses"))
    }

    const EXAMPLE: &str = r#"
[egress]
default = "public"
allow = ["http://127.0.0.1:8080", "https://*.slack.com", "https://api.github.com", "*://10.0.0.0/8:*"]
deny  = ["https://evil.example.com"]

[secrets.api-token]
hosts = ["api.example.com", "http://127.0.0.1:8080"]

[secrets.unscoped]

[limits]
memory = "64MiB"
"#;

    #[test]
    fn example_policy_decisions() {
        let p = policy(EXAMPLE);
        let cases = [
            (
                "http://127.0.0.1:8080/x",
                true,
                "allow[0] http://127.0.0.1:8080",
            ),
            (
                "https://hooks.slack.com/a",
                true,
                "allow[1] https://*.slack.com",
            ),
            (
                "https://api.github.com/",
                true,
                "allow[2] https://api.github.com",
            ),
            ("http://10.1.2.3:9999/", true, "allow[3] *://10.0.0.0/8:*"),
            (
                "https://evil.example.com/",
                false,
                "deny[0] https://evil.example.com",
            ),
            (
                "https://EVIL.example.com./",
                false,
                "deny[0] https://evil.example.com",
            ),
            ("https://example.org/", true, "default public"),
        ];
        for (url, allowed, rule) in cases {
            assert_eq!(
                decide(&p, url),
                Decision {
                    allowed,
                    rule: rule.to_string()
                },
                "{url}"
            );
        }
    }

    #[test]
    fn deny_rules_win_over_allow_rules() {
        let p = policy(
            r#"[egress]
allow = ["https://*.example.com"]
deny = ["https://bad.example.com"]"#,
        );
        assert!(decide(&p, "https://good.example.com/").allowed);
        let bad = decide(&p, "https://bad.example.com/");
        assert!(!bad.allowed);
        assert_eq!(bad.rule, "deny[0] https://bad.example.com");
    }

    #[test]
    fn default_deny_refuses_unmatched() {
        let p = policy("[egress]\ndefault = \"deny\"\nallow = [\"https://api.github.com\"]");
        assert!(decide(&p, "https://api.github.com/").allowed);
        assert_eq!(
            decide(&p, "https://example.org/"),
            Decision {
                allowed: false,
                rule: "default deny".to_string()
            }
        );
    }

    #[test]
    fn empty_policy_is_default_public() {
        let p = policy("");
        assert_eq!(decide(&p, "https://example.org/").rule, "default public");
    }

    #[test]
    fn non_http_schemes_are_refused() {
        let p = Policy::default_public();
        assert!(!decide(&p, "ftp://example.org/").allowed);
        assert!(!decide(&p, "file:///etc/passwd").allowed);
    }

    #[test]
    fn deny_cidr_applies_to_embedded_ipv4_urls_and_resolved_addresses() {
        let p = policy("[egress]\ndeny = [\"*://10.0.0.0/8:*\"]");
        assert!(!decide(&p, "http://[::ffff:10.0.0.1]/").allowed);
        let resolved: IpAddr = "10.9.9.9".parse().expect("parses");
        let err = p
            .vet_addresses("https", 443, &[resolved])
            .expect_err("denied");
        assert!(
            matches!(err, AddressRefusal::DenyRule { index: 0, ip, .. } if ip == resolved),
            "{err}"
        );
        assert!(err.to_string().starts_with("deny[0]"), "{err}");
    }

    #[test]
    fn non_public_addresses_need_an_explicit_address_rule() {
        let p = policy(EXAMPLE);
        let lo: IpAddr = "127.0.0.1".parse().expect("parses");
        assert_eq!(p.vet_addresses("http", 8080, &[lo]), Ok(()));
        let err = p.vet_addresses("http", 8081, &[lo]).expect_err("refused");
        assert!(
            matches!(err, AddressRefusal::NotPublic { ip, restriction } if ip == lo && restriction.range.starts_with("loopback")),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("private address 127.0.0.1: loopback"),
            "{err}"
        );
        assert!(p.vet_addresses("https", 8080, &[lo]).is_err());
        let ten: IpAddr = "10.2.3.4".parse().expect("parses");
        assert_eq!(p.vet_addresses("https", 1, &[ten]), Ok(()));
        let metadata: IpAddr = "169.254.169.254".parse().expect("parses");
        let public: IpAddr = "93.184.216.34".parse().expect("parses");
        assert_eq!(p.vet_addresses("https", 443, &[public]), Ok(()));
        // One bad address among good ones refuses the whole request.
        assert!(p.vet_addresses("https", 443, &[public, metadata]).is_err());
        // A mapped form is a different address from the one the rule names.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("parses");
        assert!(p.vet_addresses("http", 8080, &[mapped]).is_err());
    }

    #[test]
    fn name_rules_do_not_unlock_private_addresses() {
        let p = policy("[egress]\ndefault = \"deny\"\nallow = [\"http://localhost:8080\"]");
        assert!(decide(&p, "http://localhost:8080/").allowed);
        let lo: IpAddr = "127.0.0.1".parse().expect("parses");
        assert!(p.vet_addresses("http", 8080, &[lo]).is_err());
    }

    #[test]
    fn secret_scopes() {
        let p = policy(EXAMPLE);
        let url = |u: &str| url::Url::parse(u).expect("parses");
        assert!(p.secret_allowed("api-token", &url("https://api.example.com/v1")));
        assert!(p.secret_allowed("api-token", &url("http://api.example.com:81/")));
        assert!(p.secret_allowed("api-token", &url("http://127.0.0.1:8080/")));
        assert!(!p.secret_allowed("api-token", &url("http://127.0.0.1:8081/")));
        assert!(!p.secret_allowed("api-token", &url("https://evil.example.com/")));
        assert!(p.secret_allowed("unscoped", &url("https://anywhere.example/")));
        assert!(p.secret_allowed("never-mentioned", &url("https://anywhere.example/")));
        let nowhere = policy("[secrets.x]\nhosts = []");
        assert!(!nowhere.secret_allowed("x", &url("https://example.com/")));
    }

    #[test]
    fn explain_lists_rules_and_scopes() {
        let text = policy(EXAMPLE).explain();
        assert!(text.contains("default: public"));
        assert!(text.contains("deny[0] https://evil.example.com"));
        assert!(text.contains("allow[3] *://10.0.0.0/8:*"));
        assert!(text.contains("api-token: api.example.com, http://127.0.0.1:8080"));
    }
}
