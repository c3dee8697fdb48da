//! What the engine tells a durable store as a run moves on. Each call is one state change; the
//! engine acts on it (sends the node's request, starts the next node) only after it returns Ok.

use super::run::{NodeRun, WorkflowRun};
use crate::store::StoreError;

pub trait RunJournal: Send + Sync {
    /// The run exists, IN_PROGRESS, with its trigger's node run.
    fn run_started(&self, run: &WorkflowRun) -> Result<(), StoreError>;
    /// `node_run` is IN_PROGRESS (its request has not left yet).
    fn node_started(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError>;
    /// `node_run`, cut off by a crash, is run again: one more attempt (its old callback token,
    /// if any, is void).
    fn node_restarted(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError>;
    /// `node_run` has its status, result, output, error and logs.
    fn node_finished(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError>;
    /// `node_run` (an asynchronous webhook's) will wait for a callback: keep the token's hash and
    /// the end of the wait, before the request that carries the token leaves.
    fn callback_expected(
        &self,
        run: &WorkflowRun,
        node_run: &NodeRun,
        expected: &ExpectedCallback,
    ) -> Result<(), StoreError>;
    /// The request of `node_run` was accepted and the node run now waits for its callback
    /// (its logs so far are kept). When a callback already completed it, returns it as stored.
    fn node_waiting(
        &self,
        run: &WorkflowRun,
        node_run: &NodeRun,
    ) -> Result<Option<NodeRun>, StoreError>;
    /// The run has its status and result.
    fn run_finished(&self, run: &WorkflowRun) -> Result<(), StoreError>;
    /// Asked before each node: true ends the run CANCELLED instead of starting the node.
    fn cancel_requested(&self, _run: &str) -> bool {
        false
    }
}

/// What the store keeps of an asynchronous webhook's callback before its request leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedCallback {
    /// SHA-256 (hex) of the callback token; the token itself is never stored.
    pub token_sha256: String,
    /// Unix ms when the wait ends (`timeoutMs` after the node run started); None: no timeout.
    pub deadline_ms: Option<u64>,
}

/// Runs kept in memory only (library callers and tests that need no store).
pub struct NoJournal;

impl RunJournal for NoJournal {
    fn run_started(&self, _: &WorkflowRun) -> Result<(), StoreError> {
        Ok(())
    }
    fn node_started(&self, _: &WorkflowRun, _: &NodeRun) -> Result<(), StoreError> {
        Ok(())
    }
    fn node_restarted(&self, _: &WorkflowRun, _: &NodeRun) -> Result<(), StoreError> {
        Ok(())
    }
    fn node_finished(&self, _: &WorkflowRun, _: &NodeRun) -> Result<(), StoreError> {
        Ok(())
    }
    fn callback_expected(
        &self,
        _: &WorkflowRun,
        _: &NodeRun,
        _: &ExpectedCallback,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    fn node_waiting(&self, _: &WorkflowRun, _: &NodeRun) -> Result<Option<NodeRun>, StoreError> {
        Ok(None)
    }
    fn run_finished(&self, _: &WorkflowRun) -> Result<(), StoreError> {
        Ok(())
    }
}
