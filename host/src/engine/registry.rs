//! Maps a node's `config.type` to the component that runs it. The built-in WEBHOOK and custom
//! nodes go through this one registry; a custom node also brings its manifest, whose egress
//! and secrets allow lists narrow what the host policy grants.

use std::collections::HashMap;
use std::sync::Arc;

use super::secret_refs::{SecretRefError, check_allowed};
use crate::config::NodeManifest;
use crate::egress::Pattern;
use crate::sandbox::{NodeComponent, NodeLimits, Sandbox, SandboxError};

/// The WEBHOOK component, built from `nodes/webhook` by build.rs and embedded in the binary.
const WEBHOOK_COMPONENT: &[u8] = include_bytes!(env!("AIRLOCK_NODE_WEBHOOK"));

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("loading the built-in {kind} node: {source}")]
    BuiltIn { kind: String, source: SandboxError },
    #[error("{path}: cannot read the component: {reason}")]
    Read { path: String, reason: String },
    /// Not a component, corrupt, or not the `action-node` world; the message names the file.
    #[error("{0}")]
    Component(SandboxError),
    #[error("{manifest}: `type`: {node_type} is already registered")]
    Duplicate { manifest: String, node_type: String },
}

/// A registered node: its loaded component and, for custom nodes, the manifest.
pub struct RegisteredNode {
    pub component: NodeComponent,
    /// `None` for built-in nodes, which the host policy alone governs.
    pub manifest: Option<Arc<NodeManifest>>,
    /// The policy's default limits with the manifest's `[limits]` applied; `None` when the
    /// defaults apply unchanged.
    pub limits: Option<NodeLimits>,
}

impl RegisteredNode {
    /// The manifest's egress allow list, for the gate to intersect with the policy.
    pub fn egress_allow(&self) -> Option<Arc<Vec<Pattern>>> {
        self.manifest.as_ref().map(|m| Arc::clone(&m.egress_allow))
    }

    /// Refuses secrets (by name) that the manifest does not allow the workflow node `node` to
    /// use.
    pub fn check_secrets(&self, node: &str, names: &[String]) -> Result<(), SecretRefError> {
        let Some(manifest) = &self.manifest else {
            return Ok(());
        };
        names
            .iter()
            .try_for_each(|name| check_allowed(manifest, node, name))
    }
}

pub struct NodeRegistry {
    nodes: HashMap<String, RegisteredNode>,
}

impl NodeRegistry {
    /// A registry with the built-in nodes loaded (compiled once, then from the disk cache).
    pub fn with_builtins(sandbox: &Sandbox) -> Result<NodeRegistry, RegistryError> {
        let webhook = sandbox
            .load("built-in WEBHOOK node", WEBHOOK_COMPONENT)
            .map_err(|source| RegistryError::BuiltIn {
                kind: "WEBHOOK".into(),
                source,
            })?;
        let mut nodes = HashMap::new();
        nodes.insert(
            "WEBHOOK".to_string(),
            RegisteredNode {
                component: webhook,
                manifest: None,
                limits: None,
            },
        );
        Ok(NodeRegistry { nodes })
    }

    /// Loads each manifest's component and registers it under the manifest's type. A file
    /// that is not a component, or not one implementing `airlock:node/action-node`, is refused.
    /// `defaults` are the limits the manifests' `[limits]` override.
    pub fn add_custom(
        &mut self,
        sandbox: &Sandbox,
        manifests: Vec<NodeManifest>,
        defaults: &NodeLimits,
    ) -> Result<(), RegistryError> {
        for manifest in manifests {
            if self.nodes.contains_key(&manifest.node_type) {
                return Err(RegistryError::Duplicate {
                    manifest: manifest.path.display().to_string(),
                    node_type: manifest.node_type,
                });
            }
            let limits = manifest.limits.as_ref().map(|own| own.apply(defaults));
            let file = manifest.component.display().to_string();
            let bytes = std::fs::read(&manifest.component).map_err(|e| RegistryError::Read {
                path: file.clone(),
                reason: e.to_string(),
            })?;
            let what = format!(
                "{file} (node type {}, from {})",
                manifest.node_type,
                manifest.path.display()
            );
            let component = sandbox
                .load(&what, &bytes)
                .map_err(|e| RegistryError::Component(one_line(e)))?;
            self.nodes.insert(
                manifest.node_type.clone(),
                RegisteredNode {
                    component,
                    manifest: Some(Arc::new(manifest)),
                    limits,
                },
            );
        }
        Ok(())
    }

    pub fn get(&self, node_type: &str) -> Option<&RegisteredNode> {
        self.nodes.get(node_type)
    }

    /// Config types served by custom (non built-in) nodes, for workflow validation.
    pub fn custom_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, node)| node.manifest.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        types.sort();
        types
    }
}

/// The wasm parser's reasons may span lines (e.g. a bad magic number printed as two arrays);
/// an error line for the operator should not.
fn one_line(error: SandboxError) -> SandboxError {
    let squash = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    match error {
        SandboxError::NotAComponent { what, reason } => SandboxError::NotAComponent {
            what,
            reason: squash(reason),
        },
        SandboxError::WrongWorld { what, reason } => SandboxError::WrongWorld {
            what,
            reason: squash(reason),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_errors_fit_on_one_line() {
        let error = one_line(SandboxError::NotAComponent {
            what: "n/x.wasm".into(),
            reason: "bad magic number - expected=[\n    0x0,\n    0x61,\n] actual=[\n    0x75,\n]"
                .into(),
        });
        assert_eq!(
            error.to_string(),
            "n/x.wasm: not a WebAssembly component this host can run: bad magic number - expected=[ 0x0, 0x61, ] actual=[ 0x75, ]"
        );
    }
}
