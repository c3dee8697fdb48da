//! Loading what a command needs, with errors that name the file.

use std::path::Path;

use anyhow::Context as _;

use super::{Exit, failed, invalid};
use crate::egress::Policy;
use crate::engine::{Runtime, StateDir};
use crate::sandbox::PolicyLimits;
use crate::secrets::SecretStore;

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
    state: &StateDir,
    policy: Policy,
    secrets: SecretStore,
) -> Result<Runtime, Exit> {
    Runtime::open(state, policy, secrets).map_err(failed)
}
