//! Maps a node's `config.type` to the component that runs it. The built-in WEBHOOK and custom
//! nodes go through this one registry.

use std::collections::HashMap;

use crate::sandbox::{NodeComponent, Sandbox, SandboxError};

/// The WEBHOOK component, built from `nodes/webhook` by build.rs and embedded in the binary.
const WEBHOOK_COMPONENT: &[u8] = include_bytes!(env!("AIRLOCK_NODE_WEBHOOK"));

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("loading the built-in {kind} node: {source}")]
    BuiltIn { kind: String, source: SandboxError },
}

pub struct NodeRegistry {
    components: HashMap<String, NodeComponent>,
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
        let mut components = HashMap::new();
        components.insert("WEBHOOK".to_string(), webhook);
        Ok(NodeRegistry { components })
    }

    pub fn get(&self, node_type: &str) -> Option<&NodeComponent> {
        self.components.get(node_type)
    }

    /// Config types served by custom (non built-in) nodes, for workflow validation.
    pub fn custom_types(&self) -> Vec<String> {
        self.components
            .keys()
            .filter(|t| t.as_str() != "WEBHOOK")
            .cloned()
            .collect()
    }
}
