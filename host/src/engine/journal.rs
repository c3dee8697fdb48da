//! What the engine tells a durable store as a run moves on. Each call is one state change; the
//! engine acts on it (sends the node's request, starts the next node) only after it returns Ok.

use super::run::{NodeRun, WorkflowRun};
use crate::store::StoreError;

pub trait RunJournal: Send + Sync {
    /// The run exists, IN_PROGRESS, with its trigger's node run.
    fn run_started(&self, run: &WorkflowRun) -> Result<(), StoreError>;
    /// `node_run` is IN_PROGRESS (its request has not left yet).
    fn node_started(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError>;
    /// `node_run` has its status, result, output, error and logs.
    fn node_finished(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError>;
    /// The run has its status and result.
    fn run_finished(&self, run: &WorkflowRun) -> Result<(), StoreError>;
    /// Asked before each node: true ends the run CANCELLED instead of starting the node.
    fn cancel_requested(&self, _run: &str) -> bool {
        false
    }
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
    fn node_finished(&self, _: &WorkflowRun, _: &NodeRun) -> Result<(), StoreError> {
        Ok(())
    }
    fn run_finished(&self, _: &WorkflowRun) -> Result<(), StoreError> {
        Ok(())
    }
}
