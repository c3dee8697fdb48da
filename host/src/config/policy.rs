//! The policy file (`airlock.toml`): `[egress]` rules, `[secrets.<name>]` scopes and `[limits]`.
//!
//! ```toml
//! [egress]
//! default = "public"                  # or "deny": only what an allow rule matches
//! allow = ["http://127.0.0.1:8787"]   # needed for any non-public address
//! deny = ["https://*.internal.example.com"]
//! [secrets.api-token]
//! hosts = ["api.example.com"]         # where this secret may be sent
//! [limits]                            # see config/limits.rs
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::limits::LimitsSection;
use super::{ConfigError, Source};
use crate::egress::{DefaultRule, Pattern, Policy};
use crate::sandbox::PolicyLimits;

/// A loaded policy file, each section as the module that enforces it takes it.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    /// `[egress]` and `[secrets]`, for the gate.
    pub egress: Policy,
    /// `[limits]`, for the sandbox.
    pub limits: PolicyLimits,
}

impl Default for PolicyFile {
    /// No policy file: public destinations only, built-in limits.
    fn default() -> PolicyFile {
        PolicyFile {
            egress: Policy::default_public(),
            limits: PolicyLimits::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    egress: EgressSection,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSection>,
    #[serde(default)]
    limits: LimitsSection,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressSection {
    default: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSection {
    hosts: Option<Vec<Spanned<String>>>,
}

impl PolicyFile {
    pub fn load(path: &Path) -> Result<PolicyFile, ConfigError> {
        let text = Source::read(path)?;
        PolicyFile::parse(&text, &path.display().to_string())
    }

    /// Parses policy text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<PolicyFile, ConfigError> {
        let source = Source { file, text };
        let raw: RawPolicy = source.parse()?;
        let default = match &raw.egress.default {
            None => DefaultRule::Public,
            Some(rule) => match rule.get_ref().as_str() {
                "public" => DefaultRule::Public,
                "deny" => DefaultRule::Deny,
                other => {
                    return Err(source.error_at(
                        rule.span(),
                        format!("must be \"public\" or \"deny\", not {other:?}"),
                    ));
                }
            },
        };
        let allow = patterns(&raw.egress.allow, false, &source)?;
        let deny = patterns(&raw.egress.deny, false, &source)?;
        let mut secret_scopes = BTreeMap::new();
        for (name, secret) in &raw.secrets {
            if let Some(hosts) = &secret.hosts {
                secret_scopes.insert(name.clone(), patterns(hosts, true, &source)?);
            }
        }
        Ok(PolicyFile {
            egress: Policy::new(default, allow, deny, secret_scopes),
            limits: raw.limits.policy_limits(&source)?,
        })
    }
}

/// `bare_host_ok`: a secret's `hosts` may name a host without a scheme.
fn patterns(
    items: &[Spanned<String>],
    bare_host_ok: bool,
    source: &Source<'_>,
) -> Result<Vec<Pattern>, ConfigError> {
    items
        .iter()
        .map(|item| {
            Pattern::parse(item.get_ref(), bare_host_ok)
                .map_err(|reason| source.error_at(item.span(), format!("bad pattern: {reason}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_optional() {
        let file = PolicyFile::parse("", "p.toml").expect("empty policy");
        let url = url::Url::parse("https://example.org/").expect("valid URL");
        assert_eq!(file.egress.decide(&url).rule, "default public");
        assert_eq!(
            file.limits.defaults(),
            PolicyFile::default().limits.defaults()
        );
    }

    #[test]
    fn malformed_policies_name_the_line_and_key() {
        let cases = [
            (
                "[egress]\ndefault = \"maybe\"",
                2,
                Some("egress.default"),
                "must be \"public\" or \"deny\"",
            ),
            (
                "[egress]\nallow = [\n  \"https://ok.com\",\n  \"ftp://x\",\n]",
                4,
                Some("egress.allow[1]"),
                "unsupported scheme",
            ),
            (
                "[egress]\n\ndeny = [\"https://x.com/path\"]",
                3,
                Some("egress.deny[0]"),
                "path",
            ),
            (
                "[egress]\nallow = [\"https://x.com\"]\nbogus = 1",
                3,
                Some("egress.bogus"),
                "bogus",
            ),
            (
                "[egress]\n\n[network]\nx = 1",
                3,
                Some("network"),
                "network",
            ),
            (
                "[secrets.t]\nhosts = [\"https://x.com:99999\"]",
                2,
                Some("secrets.t.hosts[0]"),
                "invalid port",
            ),
            (
                "[secrets.t]\nplaces = []",
                2,
                Some("secrets.t.places"),
                "places",
            ),
            (
                "[egress]\nallow = \"https://x.com\"",
                2,
                Some("egress.allow"),
                "",
            ),
            ("[limits]\nmemory = \"lots\"", 2, Some("limits.memory"), ""),
            ("[egress\n", 1, None, ""),
        ];
        for (text, line, key, reason) in cases {
            let err = PolicyFile::parse(text, "p.toml").expect_err(text);
            assert_eq!(err.line, Some(line), "{text}: {err}");
            assert_eq!(err.key.as_deref(), key, "{text}: {err}");
            assert!(err.reason.contains(reason), "{text}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("p.toml, line {line}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("airlock.toml");
        std::fs::write(&path, "[egress]\ndefault = \"nope\"\n").expect("write");
        let err = PolicyFile::load(&path).expect_err("invalid").to_string();
        assert!(err.contains("airlock.toml, line 2"), "{err}");
        let missing = PolicyFile::load(&dir.path().join("missing.toml")).expect_err("missing");
        assert!(missing.reason.starts_with("cannot read"), "{missing}");
        assert_eq!(missing.line, None);
    }
}
