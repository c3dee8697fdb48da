//! Custom node manifests (`node.toml`): which `config.type` a component serves, where the
//! component is, and what it may reach and use.
//!
//! ```toml
//! type = "SLACK_MESSAGE"
//! component = "slack_message.wasm"   # relative to this file's directory
//! description = "Posts a message"    # optional, for people
//! [egress]
//! allow = ["https://hooks.slack.com"] # optional; without it the node may send nothing
//! [secrets]
//! allow = ["slack-token"]             # optional; without it the node's config may use none
//! [limits]                            # optional; this node's own limits (see config/limits.rs)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::limits::LimitsSection;
use super::{ConfigError, Source};
use crate::egress::Pattern;
use crate::sandbox::LimitOverrides;
use crate::workflow::NodeKind;

/// A parsed, checked `node.toml`.
#[derive(Debug, Clone)]
pub struct NodeManifest {
    /// The manifest file itself, for error messages.
    pub path: PathBuf,
    pub node_type: String,
    /// The component file, resolved against the manifest's directory.
    pub component: PathBuf,
    /// Destinations the node may reach; a request must also pass the host policy.
    pub egress_allow: Arc<Vec<Pattern>>,
    /// Secrets the node's config may reference.
    pub secrets_allow: Vec<String>,
    /// The node's own limits, applied on top of the policy's defaults.
    pub limits: Option<LimitOverrides>,
}

/// `node.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(rename = "type")]
    node_type: Option<Spanned<String>>,
    component: Option<Spanned<String>>,
    /// Accepted for people reading the file; Airlock does not use it.
    #[serde(rename = "description")]
    _description: Option<String>,
    egress: Option<AllowSection>,
    secrets: Option<AllowSection>,
    limits: Option<LimitsSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSection {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

impl NodeManifest {
    /// Reads and checks the manifest at `path` (including that its component file exists).
    pub fn load(path: &Path) -> Result<NodeManifest, ConfigError> {
        let text = Source::read(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        NodeManifest::parse_checked(&text, path, dir, true)
    }

    /// Parses manifest text; `path` names it in errors and `dir` anchors `component`.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<NodeManifest, ConfigError> {
        NodeManifest::parse_checked(text, path, dir, false)
    }

    fn parse_checked(
        text: &str,
        path: &Path,
        dir: &Path,
        component_must_exist: bool,
    ) -> Result<NodeManifest, ConfigError> {
        let file = path.display().to_string();
        let source = Source { file: &file, text };
        let raw: ManifestFile = source.parse()?;
        let node_type = raw.node_type.ok_or_else(|| {
            source.error(
                Some("type"),
                "missing (the config.type this node serves)".into(),
            )
        })?;
        check_type(node_type.get_ref())
            .map_err(|reason| source.error_at(node_type.span(), reason))?;
        let component = raw.component.ok_or_else(|| {
            source.error(
                Some("component"),
                "missing (the .wasm file, relative to this manifest)".into(),
            )
        })?;
        let relative = component.get_ref();
        if relative.is_empty() || Path::new(relative).is_absolute() {
            return Err(source.error_at(
                component.span(),
                "must be a file path relative to the manifest's directory".into(),
            ));
        }
        let component_path = dir.join(relative);
        if component_must_exist && !component_path.is_file() {
            return Err(source.error_at(
                component.span(),
                format!("no such file {}", component_path.display()),
            ));
        }
        let egress_allow = raw
            .egress
            .map(|egress| egress.allow)
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Pattern::parse(item.get_ref(), false)
                    .map_err(|reason| source.error_at(item.span(), reason.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut secrets_allow = Vec::new();
        for name in raw.secrets.map(|s| s.allow).unwrap_or_default() {
            if name.get_ref().is_empty() {
                return Err(source.error_at(name.span(), "empty secret name".into()));
            }
            secrets_allow.push(name.into_inner());
        }
        let limits = raw
            .limits
            .map(|limits| limits.node_overrides(&source))
            .transpose()?;
        Ok(NodeManifest {
            path: path.to_path_buf(),
            node_type: node_type.into_inner(),
            component: component_path,
            egress_allow: Arc::new(egress_allow),
            secrets_allow,
            limits,
        })
    }
}

/// `UPPER_SNAKE`, and not a built-in type.
fn check_type(name: &str) -> Result<(), String> {
    let upper_snake = name.split('_').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }) && name.starts_with(|c: char| c.is_ascii_uppercase());
    if !upper_snake {
        return Err(format!(
            "\"{name}\" is not UPPER_SNAKE_CASE (A-Z, 0-9 and single underscores, starting with a letter)"
        ));
    }
    if NodeKind::builtin(name).is_some() {
        return Err(format!(
            "\"{name}\" is a built-in type; a custom node cannot replace it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<NodeManifest, ConfigError> {
        NodeManifest::parse(text, Path::new("n/node.toml"), Path::new("n"))
    }

    fn error(text: &str) -> (Option<String>, String) {
        let e = parse(text).expect_err("should be refused");
        assert_eq!(e.file, "n/node.toml");
        (e.key, e.reason)
    }

    const MINIMAL: &str = "type = \"SLACK_MESSAGE\"\ncomponent = \"slack.wasm\"\n";

    #[test]
    fn full_manifest_parses() {
        let m = parse(
            r#"
            type = "SLACK_MESSAGE"
            component = "build/slack.wasm"
            description = "Posts to Slack"
            [egress]
            allow = ["https://hooks.slack.com", "https://*.slack.com"]
            [secrets]
            allow = ["slack-token"]
            [limits]
            memory = "16 MiB"
            cpu_time_ms = 100
            "#,
        )
        .unwrap();
        assert_eq!(m.node_type, "SLACK_MESSAGE");
        assert_eq!(m.component, Path::new("n/build/slack.wasm"));
        let allow: Vec<String> = m.egress_allow.iter().map(|p| p.to_string()).collect();
        assert_eq!(allow, ["https://hooks.slack.com", "https://*.slack.com"]);
        assert_eq!(m.secrets_allow, ["slack-token"]);
        let limits = m.limits.expect("limits");
        assert_eq!(limits.memory_bytes, Some(16 << 20));
        assert_eq!(limits.cpu_time, Some(Duration::from_millis(100)));
        assert_eq!(limits.max_requests, None);
    }

    #[test]
    fn omitted_sections_grant_nothing() {
        let m = parse(MINIMAL).unwrap();
        assert!(m.egress_allow.is_empty());
        assert!(m.secrets_allow.is_empty());
        assert!(m.limits.is_none());
    }

    #[test]
    fn missing_required_fields_are_named() {
        let (key, reason) = error("component = \"x.wasm\"");
        assert_eq!(key.as_deref(), Some("type"));
        assert!(reason.starts_with("missing"), "{reason}");
        let (key, reason) = error("type = \"X\"");
        assert_eq!(key.as_deref(), Some("component"));
        assert!(reason.starts_with("missing"), "{reason}");
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let (key, _) = error(&format!("{MINIMAL}colour = \"red\""));
        assert_eq!(key.as_deref(), Some("colour"));
        let (key, reason) = error(&format!("{MINIMAL}[egress]\nalow = []"));
        assert_eq!(key.as_deref(), Some("egress.alow"));
        assert!(reason.contains("expected `allow`"), "{reason}");
        let (key, _) = error(&format!("{MINIMAL}[secrets]\ndeny = []"));
        assert_eq!(key.as_deref(), Some("secrets.deny"));
        let (key, reason) = error(&format!("{MINIMAL}[limits.nodes.x]\nmemory = 1"));
        assert_eq!(key.as_deref(), Some("limits.nodes"), "{reason}");
        assert!(reason.contains("belong in the policy"), "{reason}");
    }

    #[test]
    fn types_must_be_upper_snake_and_not_built_in() {
        for bad in [
            "slack",
            "Slack_Message",
            "_X",
            "X__Y",
            "X_",
            "9X",
            "X-Y",
            "",
        ] {
            let (key, reason) = error(&format!("type = \"{bad}\"\ncomponent = \"x.wasm\""));
            assert_eq!(key.as_deref(), Some("type"), "{bad}");
            assert!(reason.contains("UPPER_SNAKE"), "{bad}: {reason}");
        }
        for builtin in [
            "WEBHOOK",
            "CONDITION",
            "SELF_SERVE_TRIGGER",
            "EVENT_TRIGGER",
        ] {
            let (_, reason) = error(&format!("type = \"{builtin}\"\ncomponent = \"x.wasm\""));
            assert!(reason.contains("built-in"), "{builtin}: {reason}");
        }
        assert!(parse("type = \"A1_B2\"\ncomponent = \"x.wasm\"").is_ok());
    }

    #[test]
    fn wrong_value_types_are_named() {
        let (key, reason) = error("type = 3\ncomponent = \"x.wasm\"");
        assert_eq!(key.as_deref(), Some("type"));
        assert!(reason.contains("expected a string"), "{reason}");
        let (key, _) = error(&format!("{MINIMAL}[egress]\nallow = \"https://a.com\""));
        assert_eq!(key.as_deref(), Some("egress.allow"));
        let (key, _) = error(&format!("{MINIMAL}[secrets]\nallow = [\"a\", 1]"));
        assert_eq!(key.as_deref(), Some("secrets.allow[1]"));
        let (key, _) = error(&format!("{MINIMAL}egress = 1"));
        assert_eq!(key.as_deref(), Some("egress"));
        let (key, _) = error(&format!("{MINIMAL}limits = \"fast\""));
        assert_eq!(key.as_deref(), Some("limits"));
        let (key, _) = error(&format!("{MINIMAL}[limits]\nmemory = \"lots\""));
        assert_eq!(key.as_deref(), Some("limits.memory"));
        let (key, _) = error(&format!("{MINIMAL}[limits]\nspeed = 1"));
        assert_eq!(key.as_deref(), Some("limits.speed"));
    }

    #[test]
    fn bad_patterns_and_paths_are_refused() {
        let (key, reason) = error(&format!(
            "{MINIMAL}[egress]\nallow = [\"https://ok.com\", \"ftp://x.com\"]"
        ));
        assert_eq!(key.as_deref(), Some("egress.allow[1]"));
        assert!(reason.contains("unsupported scheme"), "{reason}");
        let (key, _) = error("type = \"X\"\ncomponent = \"/abs/x.wasm\"");
        assert_eq!(key.as_deref(), Some("component"));
        let e = parse("type = [").unwrap_err();
        assert_eq!((e.line, e.key), (Some(1), None));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("type = \"webhook\"\ncomponent = \"x.wasm\"").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("n/node.toml, line 1: `type`: "), "{text}");
    }
}
