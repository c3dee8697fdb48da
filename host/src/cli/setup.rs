//! Loading what a command needs, with errors that name the file.

use std::path::Path;

use super::{Exit, failed, invalid};
use crate::config::PolicyFile;
use crate::engine::{Claimant, Runtime, RuntimeError, StateDir};
use crate::sandbox::Slots;
use crate::secrets::SecretStore;

/// The policy file, every section checked; without one, the default policy.
pub(crate) fn load_policy(path: Option<&Path>) -> Result<PolicyFile, Exit> {
    match path {
        Some(path) => PolicyFile::load(path).map_err(invalid),
        None => Ok(PolicyFile::default()),
    }
}

pub(crate) fn load_secrets(path: Option<&Path>) -> Result<SecretStore, Exit> {
    SecretStore::load(path, std::env::vars()).map_err(invalid)
}

/// Claims the state dir (see [`StateDir::claim`]) while the returned file is open. Held by
/// another process, it is the user's to fix (exit 2); a lock that fails otherwise is not.
pub(crate) fn claim(state: &StateDir, by: Claimant) -> Result<std::fs::File, Exit> {
    state.claim(by).map_err(|error| match error {
        RuntimeError::Claimed { .. } => invalid(error),
        other => failed(other),
    })
}

/// Builds the process-wide runtime: sandbox (compiles or loads the built-in nodes), gate, audit.
/// `slots`: node runs at once (see [`Slots`]).
pub(crate) fn runtime(
    state: &StateDir,
    policy: PolicyFile,
    secrets: SecretStore,
    slots: Slots,
) -> Result<Runtime, Exit> {
    Runtime::open(state, policy, secrets, slots).map_err(failed)
}
