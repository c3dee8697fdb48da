//! Custom node manifests (`node.toml`): which `config.type` a component serves, where the
//! component is, and what it may reach and use. Pure parsing: no wasm here.
//!
//! ```toml
//! type = "SLACK_MESSAGE"
//! component = "slack_message.wasm"   # relative to this file's directory
//! description = "Posts a message"    # optional
//! [egress]
//! allow = ["https://hooks.slack.com"] # optional; without it the node may send nothing
//! [secrets]
//! allow = ["slack-token"]             # optional; without it the node's config may use none
//! [limits]                            # optional; per-node overrides of the policy's [limits]
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::egress::Pattern;
use crate::sandbox::NodeLimits;
use crate::workflow::{NodeKind, Workflow};

/// The file a node directory must contain.
pub const MANIFEST_FILE: &str = "node.toml";

/// A parsed, checked `node.toml`.
#[derive(Debug, Clone)]
pub struct NodeManifest {
    /// The manifest file itself, for error messages.
    pub path: PathBuf,
    pub node_type: String,
    /// The component file, resolved against the manifest's directory.
    pub component: PathBuf,
    pub description: Option<String>,
    /// Destinations the node may reach; a request must also pass the host policy.
    pub egress_allow: Arc<Vec<Pattern>>,
    /// Secrets the node's config may reference.
    pub secrets_allow: Vec<String>,
    /// The `[limits]` table (already checked), applied on top of the policy's defaults.
    pub limits: Option<toml::Table>,
}

/// A manifest problem: the file, the key (when one is at fault) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub path: PathBuf,
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: `{key}`: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

impl NodeManifest {
    /// Reads and checks the manifest at `path` (including that its component file exists).
    pub fn load(path: &Path) -> Result<NodeManifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            key: None,
            reason: format!("cannot read: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let manifest = NodeManifest::parse(&text, path, dir)?;
        if !manifest.component.is_file() {
            return Err(ManifestError {
                path: path.to_path_buf(),
                key: Some("component".into()),
                reason: format!("no such file {}", manifest.component.display()),
            });
        }
        Ok(manifest)
    }

    /// Parses manifest text; `path` names it in errors and `dir` anchors `component`.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<NodeManifest, ManifestError> {
        let err = |key: Option<&str>, reason: String| ManifestError {
            path: path.to_path_buf(),
            key: key.map(str::to_owned),
            reason,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(None, format!("invalid TOML: {}", e.message())))?;

        let node_type = take_string(&mut table, "type", &err)?.ok_or_else(|| {
            err(
                Some("type"),
                "missing (the config.type this node serves)".into(),
            )
        })?;
        check_type(&node_type).map_err(|reason| err(Some("type"), reason))?;

        let component = take_string(&mut table, "component", &err)?.ok_or_else(|| {
            err(
                Some("component"),
                "missing (the .wasm file, relative to this manifest)".into(),
            )
        })?;
        if component.is_empty() || Path::new(&component).is_absolute() {
            return Err(err(
                Some("component"),
                "must be a file path relative to the manifest's directory".into(),
            ));
        }
        let description = take_string(&mut table, "description", &err)?;

        let egress_allow = match take_section(&mut table, "egress", &["allow"], &err)? {
            Some(mut egress) => take_list(&mut egress, "egress.allow", &err)?
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    Pattern::parse(&text, false)
                        .map_err(|reason| err(Some(&format!("egress.allow[{i}]")), reason))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let secrets_allow = match take_section(&mut table, "secrets", &["allow"], &err)? {
            Some(mut secrets) => {
                let names = take_list(&mut secrets, "secrets.allow", &err)?;
                if let Some(i) = names.iter().position(String::is_empty) {
                    return Err(err(
                        Some(&format!("secrets.allow[{i}]")),
                        "empty secret name".into(),
                    ));
                }
                names
            }
            None => Vec::new(),
        };
        let limits = match table.remove("limits") {
            None => None,
            Some(toml::Value::Table(limits)) => {
                // Checked here so that a bad value is refused with this file's name; the
                // values apply on top of the policy's defaults when the node is registered.
                NodeLimits::default()
                    .with_overrides(&limits)
                    .map_err(|message| match message.split_once(": ") {
                        Some((key, reason)) => err(Some(&format!("limits.{key}")), reason.into()),
                        None => err(Some("limits"), message),
                    })?;
                Some(limits)
            }
            Some(other) => {
                return Err(err(
                    Some("limits"),
                    format!("expected a table, found {}", other.type_str()),
                ));
            }
        };
        if let Some(key) = table.keys().next() {
            return Err(err(
                Some(key),
                "unknown key (expected type, component, description, [egress], [secrets], [limits])"
                    .into(),
            ));
        }
        Ok(NodeManifest {
            path: path.to_path_buf(),
            node_type,
            component: dir.join(component),
            description,
            egress_allow: Arc::new(egress_allow),
            secrets_allow,
            limits,
        })
    }

    /// Secrets this workflow's `node_type` nodes reference outside the `[secrets]` allow list,
    /// as (node identifier, secret name).
    fn disallowed_secrets(&self, workflow: &Workflow) -> Vec<(String, String)> {
        workflow
            .nodes
            .iter()
            .filter(|node| node.kind.type_name() == self.node_type)
            .flat_map(|node| {
                node.config_template
                    .referenced_secrets()
                    .into_iter()
                    .filter(|name| !self.secrets_allow.contains(name))
                    .map(|name| (node.identifier.clone(), name))
            })
            .collect()
    }
}

/// Every manifest found under `dirs`. Each directory holds one node (`DIR/node.toml`) or
/// several, one per sub-directory. A config type may be served only once.
pub fn load_dirs(dirs: &[PathBuf]) -> Result<Vec<NodeManifest>, ManifestError> {
    let mut manifests: Vec<NodeManifest> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for dir in dirs {
        for path in manifest_paths(dir)? {
            let manifest = NodeManifest::load(&path)?;
            if let Some(first) = seen.get(&manifest.node_type) {
                return Err(ManifestError {
                    path,
                    key: Some("type".into()),
                    reason: format!(
                        "{} is already served by {}",
                        manifest.node_type,
                        first.display()
                    ),
                });
            }
            seen.insert(manifest.node_type.clone(), path);
            manifests.push(manifest);
        }
    }
    Ok(manifests)
}

/// Refuses a workflow whose custom nodes reference secrets their manifests do not allow:
/// one line per offending node and secret, each starting with `origin` (the workflow file).
pub fn check_secrets(
    manifests: &[NodeManifest],
    workflow: &Workflow,
    origin: &str,
) -> Result<(), String> {
    let problems: Vec<String> = manifests
        .iter()
        .flat_map(|manifest| {
            manifest
                .disallowed_secrets(workflow)
                .into_iter()
                .map(move |(node, secret)| {
                    format!(
                        "{origin}: node \"{node}\" ({}) uses secret \"{secret}\", which {} does not allow (its [secrets] allow: {})",
                        manifest.node_type,
                        manifest.path.display(),
                        quoted(&manifest.secrets_allow),
                    )
                })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `DIR/node.toml`, or else `DIR/*/node.toml` in name order.
fn manifest_paths(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let dir_err = |reason: String| ManifestError {
        path: dir.to_path_buf(),
        key: None,
        reason,
    };
    if !dir.is_dir() {
        return Err(dir_err("--nodes: not a directory".into()));
    }
    let single = dir.join(MANIFEST_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| dir_err(format!("cannot read: {e}")))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(MANIFEST_FILE))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(dir_err(format!(
            "--nodes: no {MANIFEST_FILE} in it or in any of its sub-directories"
        )));
    }
    Ok(found)
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

type ErrFn<'a> = dyn Fn(Option<&str>, String) -> ManifestError + 'a;

fn take_string(
    table: &mut toml::Table,
    key: &str,
    err: &ErrFn<'_>,
) -> Result<Option<String>, ManifestError> {
    match table.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(err(
            Some(key),
            format!("expected a string, found {}", other.type_str()),
        )),
    }
}

/// Removes `[name]`, refusing keys other than `known` inside it.
fn take_section(
    table: &mut toml::Table,
    name: &str,
    known: &[&str],
    err: &ErrFn<'_>,
) -> Result<Option<toml::Table>, ManifestError> {
    let section = match table.remove(name) {
        None => return Ok(None),
        Some(toml::Value::Table(section)) => section,
        Some(other) => {
            return Err(err(
                Some(name),
                format!("expected a table, found {}", other.type_str()),
            ));
        }
    };
    if let Some(key) = section.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(err(
            Some(&format!("{name}.{key}")),
            format!("unknown key (expected {})", known.join(", ")),
        ));
    }
    Ok(Some(section))
}

/// Removes `path`'s last segment from `table` as a list of strings (missing = empty).
fn take_list(
    table: &mut toml::Table,
    path: &str,
    err: &ErrFn<'_>,
) -> Result<Vec<String>, ManifestError> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let items = match table.remove(key) {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items,
        Some(other) => {
            return Err(err(
                Some(path),
                format!("expected a list of strings, found {}", other.type_str()),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            toml::Value::String(text) => Ok(text),
            other => Err(err(
                Some(&format!("{path}[{i}]")),
                format!("expected a string, found {}", other.type_str()),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeManifest, ManifestError> {
        NodeManifest::parse(text, Path::new("n/node.toml"), Path::new("n"))
    }

    fn error(text: &str) -> (Option<String>, String) {
        let e = parse(text).expect_err("should be refused");
        assert_eq!(e.path, Path::new("n/node.toml"));
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
        assert_eq!(m.description.as_deref(), Some("Posts to Slack"));
        let allow: Vec<String> = m.egress_allow.iter().map(|p| p.to_string()).collect();
        assert_eq!(allow, ["https://hooks.slack.com", "https://*.slack.com"]);
        assert_eq!(m.secrets_allow, ["slack-token"]);
        assert_eq!(
            m.limits.unwrap().get("memory").and_then(|v| v.as_str()),
            Some("16 MiB")
        );
    }

    #[test]
    fn omitted_sections_grant_nothing() {
        let m = parse(MINIMAL).unwrap();
        assert!(m.egress_allow.is_empty());
        assert!(m.secrets_allow.is_empty());
        assert!(m.limits.is_none());
        assert!(m.description.is_none());
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
        assert!(reason.contains("expected allow"), "{reason}");
        let (key, _) = error(&format!("{MINIMAL}[secrets]\ndeny = []"));
        assert_eq!(key.as_deref(), Some("secrets.deny"));
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
        assert!(
            reason.contains("expected a string, found integer"),
            "{reason}"
        );
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
        let (key, reason) = error("type = [");
        assert_eq!(key, None);
        assert!(reason.starts_with("invalid TOML"), "{reason}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = parse("type = \"webhook\"\ncomponent = \"x.wasm\"").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("n/node.toml: `type`: "), "{text}");
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_directory_holds_one_node_or_one_per_sub_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let one = tmp.path().join("one");
        write(
            &one,
            "node.toml",
            "type = \"ONE\"\ncomponent = \"one.wasm\"",
        );
        write(&one, "one.wasm", "");
        let many = tmp.path().join("many");
        for name in ["b", "a"] {
            let text = format!("type = \"{}\"\ncomponent = \"n.wasm\"", name.to_uppercase());
            write(&many, &format!("{name}/node.toml"), &text);
            write(&many, &format!("{name}/n.wasm"), "");
        }
        write(&many, "notes/readme.txt", "not a node");
        let found = load_dirs(&[one.clone(), many.clone()]).unwrap();
        let types: Vec<&str> = found.iter().map(|m| m.node_type.as_str()).collect();
        assert_eq!(types, ["ONE", "A", "B"]);
        assert_eq!(found[1].component, many.join("a/n.wasm"));

        let e = load_dirs(&[one.clone(), one.clone()]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("type"));
        assert!(e.reason.contains("already served by"), "{}", e.reason);

        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = load_dirs(&[empty]).unwrap_err();
        assert!(e.reason.contains("no node.toml"), "{}", e.reason);
        let e = load_dirs(&[tmp.path().join("absent")]).unwrap_err();
        assert!(e.reason.contains("not a directory"), "{}", e.reason);
    }

    #[test]
    fn a_missing_component_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "node.toml",
            "type = \"X\"\ncomponent = \"gone.wasm\"",
        );
        let e = load_dirs(&[tmp.path().to_path_buf()]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("component"));
        assert!(e.reason.contains("gone.wasm"), "{}", e.reason);
    }

    #[test]
    fn secrets_outside_the_allow_list_are_found() {
        let manifest = parse(
            "type = \"SLACK_MESSAGE\"\ncomponent = \"s.wasm\"\n[secrets]\nallow = [\"slack-token\"]",
        )
        .unwrap();
        let workflow = Workflow::from_json(
            &serde_json::json!({
                "identifier": "w",
                "nodes": [
                    {"identifier": "t", "config": {"type": "SELF_SERVE_TRIGGER"}},
                    {"identifier": "ok", "config": {"type": "SLACK_MESSAGE", "token": "{{ .secrets[\"slack-token\"] }}"}},
                    {"identifier": "bad", "config": {"type": "SLACK_MESSAGE", "token": "{{ .secrets.github }}"}},
                    {"identifier": "hook", "config": {"type": "WEBHOOK", "url": "https://a.com/{{ .secrets.github }}"}}
                ],
                "connections": [
                    {"sourceIdentifier": "t", "targetIdentifier": "ok"},
                    {"sourceIdentifier": "ok", "targetIdentifier": "bad"},
                    {"sourceIdentifier": "bad", "targetIdentifier": "hook"}
                ]
            })
            .to_string(),
            "wf.json",
            &["SLACK_MESSAGE".to_string()],
        )
        .unwrap();
        assert_eq!(
            manifest.disallowed_secrets(&workflow),
            [("bad".to_string(), "github".to_string())]
        );
        let message = check_secrets(&[manifest], &workflow, "wf.json").unwrap_err();
        assert!(
            message.starts_with("wf.json: node \"bad\" (SLACK_MESSAGE) uses secret \"github\""),
            "{message}"
        );
        assert!(message.contains("n/node.toml"), "{message}");
    }
}
