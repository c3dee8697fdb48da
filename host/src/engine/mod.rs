//! Runs a workflow: starts at the trigger, follows connections (CONDITION picks one outlet),
//! renders each node's templates, runs action nodes in the sandbox, and records every node run.

mod callback;
mod context;
mod execute;
mod ids;
mod journal;
mod manifest;
mod registry;
mod run;
mod runtime;
mod secret_refs;

use std::sync::Arc;

pub use crate::config::NodeManifest;
pub use callback::Completion;
pub use execute::{CALLBACK_TOKEN_SECRET, start_first_node};
pub use ids::{new_node_run_id, new_run_id};
pub use journal::{Committed, ExpectedCallback, NoJournal, RunJournal};
pub use manifest::{MANIFEST_FILE, load_dirs};
pub use registry::{NodeRegistry, RegisteredNode, RegistryError};
pub use run::{NodeRun, RunResult, RunStatus, WorkflowRun, new_run};
pub use runtime::{Claimant, RuntimeError, StateDir, check_custom_nodes};
pub use secret_refs::{
    SecretRefError, SecretRefErrors, check_allowed, check_defined, check_manifests,
};

use crate::egress::Gate;
use crate::sandbox::{PolicyLimits, Sandbox};
use crate::secrets::{PlatformKey, SecretStore};

/// Everything a run needs that lives for the whole process: one sandbox (engine and compile
/// cache), one egress gate (policy, pooled client, audit), the secrets and the node registry.
pub struct Runtime {
    pub sandbox: Sandbox,
    pub gate: Arc<Gate>,
    pub secrets: Arc<SecretStore>,
    pub nodes: NodeRegistry,
    /// The policy's `[limits]`: defaults, and overrides per workflow node.
    pub limits: PolicyLimits,
    /// The base URL at which this process takes callbacks (`serve`'s public URL, or the listener
    /// of a one-shot `run`); an asynchronous webhook fails without one.
    pub callback_base: Option<String>,
    /// Under `airlock serve`: the key run tokens for the platform's own API derive from; each
    /// node run gets its run's token bound (the gate sends it to the public URL only).
    pub platform_key: Option<Arc<PlatformKey>>,
}
