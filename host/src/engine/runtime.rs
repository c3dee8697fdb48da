//! Building the process-wide [`Runtime`] from a state dir, a policy and secrets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{NodeRegistry, RegistryError, Runtime};
use crate::audit::{AuditError, AuditLog};
use crate::config::{NodeManifest, PolicyFile};
use crate::egress::{Gate, GateLimits, PlatformApiError};
use crate::sandbox::{NodeLimits, Sandbox, SandboxError, Slots};
use crate::secrets::{PlatformKey, SecretStore};

/// Where a runtime keeps its files: the audit log, the run store and the compile cache.
#[derive(Debug, Clone)]
pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn new(path: &Path) -> StateDir {
        StateDir(path.to_path_buf())
    }
    pub fn audit(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
    pub fn runs(&self) -> PathBuf {
        self.0.join("runs.db")
    }
    pub fn cache(&self) -> PathBuf {
        self.0.join("cache")
    }

    /// Claims the state dir (`serve.lock`) for as long as the returned file is open. A server
    /// needs it to itself: two servers would both resume the same runs after a restart and each
    /// trust its own view of the stored workflows, and a server starting beside a one-shot run
    /// would take that run, still going, for one cut off by a crash (time out the callbacks it
    /// waits for, write to it). One-shot runs may share a state dir with each other.
    pub fn claim(&self, by: Claimant) -> Result<std::fs::File, RuntimeError> {
        std::fs::create_dir_all(&self.0).map_err(|source| RuntimeError::StateDir {
            path: self.0.display().to_string(),
            source,
        })?;
        let path = self.0.join("serve.lock");
        let failed = |source| RuntimeError::Claim {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(failed)?;
        let locked = match by {
            Claimant::Server => file.try_lock(),
            Claimant::OneShotRun => file.try_lock_shared(),
        };
        match locked {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(RuntimeError::Claimed {
                path: path.display().to_string(),
                by,
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(failed(source)),
        }
    }
}

/// Who claims a state dir: see [`StateDir::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    Server,
    OneShotRun,
}

impl Claimant {
    /// Why the claim was refused: who holds the state dir, and what to do.
    fn refusal(self) -> &'static str {
        match self {
            Claimant::Server => {
                "another `airlock serve` or an `airlock run` is using this state dir; a server needs it to itself"
            }
            Claimant::OneShotRun => {
                "an `airlock serve` is using this state dir; give this run its own (--state-dir), or start it through the server's API"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("creating the state dir {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is held: {}", by.refusal())]
    Claimed { path: String, by: Claimant },
    #[error("locking {path}: {source}")]
    Claim {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl RuntimeError {
    /// A custom node's component or manifest is at fault (invalid input), not the machine.
    pub fn is_bad_custom_node(&self) -> bool {
        matches!(self, RuntimeError::Registry(err) if !matches!(err, RegistryError::BuiltIn { .. }))
    }
}

impl Runtime {
    /// Opens the audit log and compile cache under `state`, loads the built-in nodes, and builds
    /// the one egress gate. Custom nodes are added afterwards with [`Runtime::add_custom_nodes`].
    /// `slots`: how many node runs may run at once (more wait for one to end).
    pub fn open(
        state: &StateDir,
        policy: PolicyFile,
        secrets: SecretStore,
        slots: Slots,
    ) -> Result<Runtime, RuntimeError> {
        std::fs::create_dir_all(&state.0).map_err(|source| RuntimeError::StateDir {
            path: state.0.display().to_string(),
            source,
        })?;
        let PolicyFile {
            egress: policy,
            limits,
        } = policy;
        let audit = AuditLog::open(&state.audit())?;
        let sandbox = Sandbox::new(&state.cache(), slots)?;
        let nodes = NodeRegistry::with_builtins(&sandbox)?;
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
            callback_base: None,
            platform_key: None,
        })
    }

    /// Under `airlock serve`: node requests to `base` (the public URL) carry their run's token,
    /// derived with `key`. See `egress::platform` and `secrets::PlatformKey`.
    pub fn serve_platform_api(
        &mut self,
        base: &url::Url,
        key: PlatformKey,
    ) -> Result<(), PlatformApiError> {
        self.gate = Arc::new(self.gate.with_platform_api(base)?);
        self.platform_key = Some(Arc::new(key));
        Ok(())
    }

    /// Loads custom nodes' components and registers them under their manifests' types; each
    /// manifest's `[limits]` applies over the policy's defaults. A file that is not an
    /// `action-node` component is refused.
    pub fn add_custom_nodes(&mut self, manifests: Vec<NodeManifest>) -> Result<(), RegistryError> {
        self.nodes
            .add_custom(&self.sandbox, manifests, self.limits.defaults())
    }
}

/// What `airlock validate` checks of custom nodes without opening a runtime (no audit log):
/// each component loads (from the compile cache under `state`) as an action node.
pub fn check_custom_nodes(
    state: &StateDir,
    manifests: Vec<NodeManifest>,
) -> Result<(), RuntimeError> {
    // Loading runs nothing: one slot keeps the engine's setup small.
    let sandbox = Sandbox::new(&state.cache(), Slots::new(1))?;
    let mut nodes = NodeRegistry::with_builtins(&sandbox)?;
    nodes.add_custom(&sandbox, manifests, &NodeLimits::default())?;
    Ok(())
}
