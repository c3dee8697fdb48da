//! The secrets a workflow's nodes reference: each must be defined, and a custom node's manifest
//! must allow it. Checked before a run for every reference written in the workflow, and again
//! as a node runs for references its rendered config makes; both use this module.

use std::fmt;

use crate::config::NodeManifest;
use crate::workflow::Workflow;

/// One refused secret reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error(
        "node \"{node}\" uses secret \"{name}\", which is not defined (pass --secrets FILE or set {})",
        env_var(name)
    )]
    Undefined { node: String, name: String },
    #[error(
        "node \"{node}\" ({node_type}) uses secret \"{name}\", which {manifest} does not allow (its [secrets] allow: {})",
        quoted(allowed)
    )]
    NotAllowed {
        node: String,
        node_type: String,
        name: String,
        /// The manifest file.
        manifest: String,
        allowed: Vec<String>,
    },
}

/// Every refused reference of a workflow file, one line each, starting with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SecretRefErrors {
    pub origin: String,
    pub problems: Vec<SecretRefError>,
}

impl fmt::Display for SecretRefErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .problems
            .iter()
            .map(|problem| format!("{}: {problem}", self.origin))
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Refuses a custom node's reference to a secret its manifest does not allow.
pub fn check_allowed(
    manifest: &NodeManifest,
    node: &str,
    name: &str,
) -> Result<(), SecretRefError> {
    if manifest.secrets_allow.iter().any(|allowed| allowed == name) {
        return Ok(());
    }
    Err(SecretRefError::NotAllowed {
        node: node.to_string(),
        node_type: manifest.node_type.clone(),
        name: name.to_string(),
        manifest: manifest.path.display().to_string(),
        allowed: manifest.secrets_allow.clone(),
    })
}

/// The workflow's references that custom nodes' manifests do not allow (`origin` names the
/// workflow file in the error).
pub fn check_manifests(
    manifests: &[NodeManifest],
    workflow: &Workflow,
    origin: &str,
) -> Result<(), SecretRefErrors> {
    let problems = workflow
        .referenced_secrets()
        .into_iter()
        .filter_map(|(node, name)| {
            let node_type = workflow.node(&node)?.kind.type_name();
            let manifest = manifests.iter().find(|m| m.node_type == node_type)?;
            check_allowed(manifest, &node, &name).err()
        })
        .collect();
    refuse(origin, problems)
}

/// The workflow's references to secrets `defined` does not know.
pub fn check_defined(
    workflow: &Workflow,
    defined: impl Fn(&str) -> bool,
    origin: &str,
) -> Result<(), SecretRefErrors> {
    let problems = workflow
        .referenced_secrets()
        .into_iter()
        .filter(|(_, name)| !defined(name))
        .map(|(node, name)| SecretRefError::Undefined { node, name })
        .collect();
    refuse(origin, problems)
}

fn refuse(origin: &str, problems: Vec<SecretRefError>) -> Result<(), SecretRefErrors> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(SecretRefErrors {
        origin: origin.to_string(),
        problems,
    })
}

/// The environment variable that defines secret `name`.
fn env_var(name: &str) -> String {
    format!("AIRLOCK_SECRET_{}", name.to_uppercase().replace('-', "_"))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn workflow() -> Workflow {
        Workflow::from_json(
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
        .expect("valid workflow")
    }

    fn manifest() -> NodeManifest {
        NodeManifest::parse(
            "type = \"SLACK_MESSAGE\"\ncomponent = \"s.wasm\"\n[secrets]\nallow = [\"slack-token\"]",
            Path::new("n/node.toml"),
            Path::new("n"),
        )
        .expect("valid manifest")
    }

    #[test]
    fn manifests_refuse_secrets_outside_their_allow_list() {
        let err = check_manifests(&[manifest()], &workflow(), "wf.json").unwrap_err();
        // Built-in WEBHOOK nodes have no manifest: the policy alone scopes their secrets.
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(
            err.to_string(),
            "wf.json: node \"bad\" (SLACK_MESSAGE) uses secret \"github\", which n/node.toml \
             does not allow (its [secrets] allow: \"slack-token\")"
        );
        assert!(check_allowed(&manifest(), "ok", "slack-token").is_ok());
    }

    #[test]
    fn undefined_secrets_name_the_node_and_the_variable() {
        let defined = |name: &str| name == "slack-token";
        let err = check_defined(&workflow(), defined, "wf.json").unwrap_err();
        let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert_eq!(
            lines[0],
            "wf.json: node \"bad\" uses secret \"github\", which is not defined (pass --secrets \
             FILE or set AIRLOCK_SECRET_GITHUB)"
        );
        assert!(lines[1].contains("node \"hook\""), "{err}");
        assert!(check_defined(&workflow(), |_| true, "wf.json").is_ok());
    }
}
