//! The egress policy file (`airlock.toml`) and the decisions it makes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::address::restriction;
use super::pattern::{Pattern, Target};

/// The parsed policy. Immutable once loaded; shared by every request.
#[derive(Debug, Clone)]
pub struct Policy {
    default: DefaultRule,
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
    /// Only the secrets with a `hosts` scope; the others go anywhere the policy allows.
    secret_scopes: BTreeMap<String, Vec<Pattern>>,
    limits: Option<toml::Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultRule {
    Public,
    Deny,
}

/// The URL-level verdict and the rule that reached it, e.g. `allow[0] http://127.0.0.1:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}, line {line}: {reason}")]
    Invalid {
        origin: String,
        line: usize,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    egress: Option<RawEgress>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    /// Parsed by the engine's limits; only its presence is checked here.
    limits: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    default: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    hosts: Option<Vec<Spanned<String>>>,
}

const POLICY_ORIGIN: &str = "policy";

impl Policy {
    /// No policy file: any destination whose resolved addresses are all public.
    pub fn default_public() -> Policy {
        Policy {
            default: DefaultRule::Public,
            allow: Vec::new(),
            deny: Vec::new(),
            secret_scopes: BTreeMap::new(),
            limits: None,
        }
    }

    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_toml(&text).map_err(|err| match err {
            PolicyError::Invalid { line, reason, .. } => PolicyError::Invalid {
                origin: path.display().to_string(),
                line,
                reason,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let invalid = |start: usize, reason: String| PolicyError::Invalid {
            origin: POLICY_ORIGIN.to_string(),
            line: line_of(text, start),
            reason,
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|err| {
            let start = err.span().map_or(0, |span| span.start);
            invalid(start, err.message().trim().to_string())
        })?;
        let mut policy = Policy::default_public();
        policy.limits = raw.limits;
        if let Some(egress) = raw.egress {
            if let Some(default) = egress.default {
                policy.default = match default.get_ref().as_str() {
                    "public" => DefaultRule::Public,
                    "deny" => DefaultRule::Deny,
                    other => {
                        return Err(invalid(
                            default.span().start,
                            format!("egress.default must be \"public\" or \"deny\", not {other:?}"),
                        ));
                    }
                };
            }
            let parse_all = |list: &[Spanned<String>], what: &str, bare_host_ok: bool| {
                list.iter()
                    .map(|item| {
                        Pattern::parse(item.get_ref(), bare_host_ok).map_err(|reason| {
                            invalid(item.span().start, format!("bad {what} pattern: {reason}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            policy.allow = parse_all(&egress.allow, "egress.allow", false)?;
            policy.deny = parse_all(&egress.deny, "egress.deny", false)?;
        }
        for (name, secret) in raw.secrets {
            let Some(hosts) = secret.hosts else { continue };
            let patterns = hosts
                .iter()
                .map(|item| {
                    Pattern::parse(item.get_ref(), true).map_err(|reason| {
                        invalid(
                            item.span().start,
                            format!("bad secrets.{name}.hosts pattern: {reason}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            policy.secret_scopes.insert(name, patterns);
        }
        Ok(policy)
    }

    /// The URL-level decision: deny rules first, then allow rules, then the default. Addresses
    /// are checked separately, after resolution (see `vet_addresses`).
    pub fn decide(&self, url: &url::Url) -> Decision {
        let Some(target) = Target::from_url(url) else {
            return Decision {
                allowed: false,
                rule: "only http and https URLs with a host are allowed".to_string(),
            };
        };
        if let Some((i, rule)) = self
            .deny
            .iter()
            .enumerate()
            .find(|(_, p)| p.matches_widely(&target))
        {
            return Decision {
                allowed: false,
                rule: format!("deny[{i}] {rule}"),
            };
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

    /// Checks every address a host resolved to. `Err` names the refused address and why: a
    /// deny rule naming it, or a non-public range that no allow rule names explicitly.
    pub fn vet_addresses(&self, scheme: &str, port: u16, addrs: &[IpAddr]) -> Result<(), String> {
        for &ip in addrs {
            let denied = self
                .deny
                .iter()
                .enumerate()
                .find(|(_, p)| p.matches_address_widely(scheme, port, ip));
            if let Some((i, rule)) = denied {
                return Err(format!("deny[{i}] {rule} (resolved address {ip})"));
            }
            if let Some(range) = restriction(ip) {
                let named = self.allow.iter().any(|p| p.names_address(scheme, port, ip));
                if !named {
                    return Err(format!("private address {ip}: {range}"));
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

    /// The `[limits]` table, left for the engine to interpret.
    pub fn limits_table(&self) -> Option<&toml::Table> {
        self.limits.as_ref()
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

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
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

    fn error_of(text: &str) -> (usize, String) {
        match Policy::from_toml(text) {
            Err(PolicyError::Invalid { line, reason, .. }) => (line, reason),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("policy should be refused:\n{text}"),
        }
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
        assert!(p.limits_table().is_none());
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
        assert!(err.starts_with("deny[0]"), "{err}");
    }

    #[test]
    fn non_public_addresses_need_an_explicit_address_rule() {
        let p = policy(EXAMPLE);
        let lo: IpAddr = "127.0.0.1".parse().expect("parses");
        assert_eq!(p.vet_addresses("http", 8080, &[lo]), Ok(()));
        let err = p.vet_addresses("http", 8081, &[lo]).expect_err("refused");
        assert!(
            err.starts_with("private address 127.0.0.1: loopback"),
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
    fn limits_table_is_exposed() {
        let p = policy(EXAMPLE);
        let limits = p.limits_table().expect("limits present");
        assert_eq!(limits.get("memory").and_then(|v| v.as_str()), Some("64MiB"));
    }

    #[test]
    fn malformed_policies_name_the_line() {
        let cases = [
            (
                "[egress]\ndefault = \"maybe\"",
                2,
                "must be \"public\" or \"deny\"",
            ),
            (
                "[egress]\nallow = [\n  \"https://ok.com\",\n  \"ftp://x\",\n]",
                4,
                "unsupported scheme",
            ),
            ("[egress]\n\ndeny = [\"https://x.com/path\"]", 3, "path"),
            (
                "[egress]\nallow = [\"https://x.com\"]\nbogus = 1",
                3,
                "bogus",
            ),
            ("[egress]\n\n[network]\nx = 1", 3, "network"),
            (
                "[secrets.t]\nhosts = [\"https://x.com:99999\"]",
                2,
                "invalid port",
            ),
            ("[secrets.t]\nplaces = []", 2, "places"),
            ("[egress]\nallow = \"https://x.com\"", 2, ""),
            ("[egress\n", 1, ""),
        ];
        for (text, line, reason) in cases {
            let (got_line, got_reason) = error_of(text);
            assert_eq!(got_line, line, "{text}: {got_reason}");
            assert!(got_reason.contains(reason), "{text}: {got_reason}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("airlock.toml");
        std::fs::write(&path, "[egress]\ndefault = \"nope\"\n").expect("write");
        let err = Policy::load(&path).expect_err("invalid").to_string();
        assert!(err.contains("airlock.toml, line 2"), "{err}");
        let missing = Policy::load(&dir.path().join("missing.toml")).expect_err("missing");
        assert!(matches!(missing, PolicyError::Read { .. }));
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
