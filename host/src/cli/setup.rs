//! Loading what a command needs, with errors that name the file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::{Exit, failed, invalid};
use crate::audit::AuditLog;
use crate::egress::{Gate, GateLimits, Policy};
use crate::engine::{NodeRegistry, Runtime};
use crate::sandbox::{PolicyLimits, Sandbox};
use crate::secrets::SecretStore;

/// The files under the state dir.
pub(crate) struct StateDir<'a>(pub &'a Path);

impl StateDir<'_> {
    pub fn audit(&self) -> std::path::PathBuf {
        self.0.join("audit.jsonl")
    }
    pub fn runs(&self) -> std::path::PathBuf {
        self.0.join("runs.db")
    }
    pub fn cache(&self) -> std::path::PathBuf {
        self.0.join("cache")
    }
    pub fn create(&self) -> Result<(), Exit> {
        std::fs::create_dir_all(self.0)
            .with_context(|| format!("creating the state dir {}", self.0.display()))
            .map_err(failed)
    }
}

pub(crate) fn load_policy(path: Option<&Path>) -> Result<Policy, Exit> {
    match path {
        Some(path) => {
            let policy = Policy::load(path).map_err(invalid)?;
            // The engine reads [limits]; check it now so a bad value is invalid input.
            PolicyLimits::from_table(policy.limits_table())
                .with_context(|| format!("policy {}", path.display()))
                .map_err(invalid)?;
            Ok(policy)
        }
        None => Ok(Policy::default_public()),
    }
}

pub(crate) fn load_secrets(path: Option<&Path>) -> Result<SecretStore, Exit> {
    SecretStore::load(path, std::env::vars()).map_err(invalid)
}

/// Builds the process-wide runtime: sandbox (compiles or loads the built-in nodes), gate, audit.
pub(crate) fn runtime(
    state: &StateDir<'_>,
    policy: Policy,
    secrets: SecretStore,
) -> Result<Runtime, Exit> {
    state.create()?;
    let audit = AuditLog::open(&state.audit()).map_err(failed)?;
    let sandbox = Sandbox::new(&state.cache()).map_err(failed)?;
    let nodes = NodeRegistry::with_builtins(&sandbox).map_err(failed)?;
    let limits = PolicyLimits::from_table(policy.limits_table()).map_err(invalid)?;
    let gate_limits = GateLimits {
        max_requests_per_node_run: limits.max_requests(),
        ..GateLimits::default()
    };
    let gate = Gate::new(Arc::new(policy), Arc::new(audit), gate_limits);
    Ok(Runtime {
        sandbox,
        gate: Arc::new(gate),
        secrets: Arc::new(secrets),
        nodes,
        limits,
    })
}
