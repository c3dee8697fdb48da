//! What the engine tells a durable store as a run moves on. Each call is one state change; the
//! engine acts on it (sends the node's request, starts the next node) only after it returns Ok.
//! The calls are futures so that a store may commit the changes of many runs together (group
//! commit) while their tasks wait without holding a thread.

use std::future::{Future, ready};
use std::pin::Pin;

use super::run::{NodeRun, WorkflowRun};
use crate::store::StoreError;

/// A state change on its way to durable storage: Ok once it is committed.
pub type Committed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub trait RunJournal: Send + Sync {
    /// The run exists, IN_PROGRESS, with its node runs: the trigger's, and for a new run the
    /// first node run, started (see [`crate::engine::start_first_node`]).
    fn run_started<'a>(&'a self, run: &'a WorkflowRun) -> Committed<'a, ()>;
    /// `node_run` is IN_PROGRESS (its request has not left yet).
    fn node_started<'a>(&'a self, run: &'a WorkflowRun, node_run: &'a NodeRun)
    -> Committed<'a, ()>;
    /// `node_run`, cut off by a crash, is run again: one more attempt (its old callback token,
    /// if any, is void).
    fn node_restarted<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()>;
    /// `node_run` has its status, result, output, error and logs.
    fn node_finished<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()>;
    /// `node_run` (an asynchronous webhook's) will wait for a callback: keep the token's hash and
    /// the end of the wait, before the request that carries the token leaves.
    fn callback_expected<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
        expected: &'a ExpectedCallback,
    ) -> Committed<'a, ()>;
    /// The request of `node_run` was accepted and the node run now waits for its callback
    /// (its logs so far are kept). When a callback already completed it, returns it as stored.
    fn node_waiting<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, Option<NodeRun>>;
    /// The run has its status and result. `last`, when given, is the node run that ended the
    /// run, whose end (as for `node_finished`) is recorded in the same change: nothing acts
    /// between the two, so one commit serves both.
    fn run_finished<'a>(
        &'a self,
        run: &'a WorkflowRun,
        last: Option<&'a NodeRun>,
    ) -> Committed<'a, ()>;
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
    fn run_started<'a>(&'a self, _: &'a WorkflowRun) -> Committed<'a, ()> {
        Box::pin(ready(Ok(())))
    }
    fn node_started<'a>(&'a self, _: &'a WorkflowRun, _: &'a NodeRun) -> Committed<'a, ()> {
        Box::pin(ready(Ok(())))
    }
    fn node_restarted<'a>(&'a self, _: &'a WorkflowRun, _: &'a NodeRun) -> Committed<'a, ()> {
        Box::pin(ready(Ok(())))
    }
    fn node_finished<'a>(&'a self, _: &'a WorkflowRun, _: &'a NodeRun) -> Committed<'a, ()> {
        Box::pin(ready(Ok(())))
    }
    fn callback_expected<'a>(
        &'a self,
        _: &'a WorkflowRun,
        _: &'a NodeRun,
        _: &'a ExpectedCallback,
    ) -> Committed<'a, ()> {
        Box::pin(ready(Ok(())))
    }
    fn node_waiting<'a>(
        &'a self,
        _: &'a WorkflowRun,
        _: &'a NodeRun,
    ) -> Committed<'a, Option<NodeRun>> {
        Box::pin(ready(Ok(None)))
    }
    fn run_finished<'a>(&'a self, _: &'a WorkflowRun, _: Option<&'a NodeRun>) -> Committed<'a, ()> {
        Box::pin(ready(Ok(())))
    }
}
