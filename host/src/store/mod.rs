//! The durable store: workflows with their versions, runs and node runs as they move, and the
//! hashes of async callback tokens. SQLite under the state dir is the embedded implementation;
//! the engine and the API see only the [`Store`] trait, so another database can follow.

mod group;
mod schema;
mod sqlite;

use serde::Serialize;
use serde_json::Value;

use crate::engine::{RunJournal, RunStatus, WorkflowRun};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("run store {path}: {what} is not readable: {source}")]
    Corrupt {
        path: String,
        what: String,
        source: serde_json::Error,
    },
    #[error("run store {path}: schema version {found} is newer than this airlock knows ({known})")]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
    /// A write for a run or node run that has already ended (cancelled, or completed by a
    /// callback): the store keeps the first ending.
    #[error("{0} is not in progress")]
    NotInProgress(String),
    /// A group of run-journal changes was not committed: none of them is stored.
    #[error("run store {path}: {reason}")]
    Commit { path: String, reason: String },
    #[error("workflow \"{0}\" already exists")]
    WorkflowExists(String),
    #[error("no workflow \"{0}\"")]
    NoWorkflow(String),
}

/// One version of a stored workflow.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRecord {
    pub identifier: String,
    pub version: u32,
    /// The workflow file as it was given.
    pub source: Value,
    pub created_at: String,
    pub updated_at: String,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: usize,
    pub offset: usize,
}

pub trait Store: RunJournal {
    /// Version 1 of a new workflow (or the next version, when it was deleted before).
    fn create_workflow(
        &self,
        identifier: &str,
        source: &Value,
    ) -> Result<WorkflowRecord, StoreError>;
    /// The next version of an existing workflow.
    fn update_workflow(
        &self,
        identifier: &str,
        source: &Value,
    ) -> Result<WorkflowRecord, StoreError>;
    /// The latest version, or `version`. A deleted workflow's versions stay readable by version,
    /// so its runs can still be explained.
    fn workflow(
        &self,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError>;
    /// The latest version number of a workflow that is not deleted (cheaper than reading it).
    fn latest_version(&self, identifier: &str) -> Result<Option<u32>, StoreError>;
    /// The latest version of every workflow that is not deleted.
    fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError>;
    /// False when there was no such workflow.
    fn delete_workflow(&self, identifier: &str) -> Result<bool, StoreError>;

    fn run(&self, identifier: &str) -> Result<Option<WorkflowRun>, StoreError>;
    fn runs(&self, filter: &RunFilter) -> Result<Vec<WorkflowRun>, StoreError>;
    /// Ends an IN_PROGRESS run CANCELLED, with its IN_PROGRESS node runs, in one transaction.
    /// False when the run was not in progress.
    fn cancel_run(&self, identifier: &str) -> Result<bool, StoreError>;

    /// The SHA-256 (hex) of the callback token of an async node run.
    fn callback_token(&self, node_run: &str) -> Result<Option<String>, StoreError>;
    /// The node run whose callback token has this SHA-256 (hex).
    fn node_run_of_token(&self, token_sha256: &str) -> Result<Option<String>, StoreError>;
    /// The run a node run belongs to.
    fn node_run_owner(&self, node_run: &str) -> Result<Option<String>, StoreError>;
    /// Appends `logs` to an IN_PROGRESS node run; false when it is not in progress.
    fn append_logs(&self, node_run: &str, logs: &[Value]) -> Result<bool, StoreError>;
    /// Every IN_PROGRESS run, oldest first (to resume them after a restart).
    fn runs_in_progress(&self) -> Result<Vec<String>, StoreError>;
    /// Every node run that waits for its callback (IN_PROGRESS, its request answered), oldest
    /// first.
    fn waiting_callbacks(&self) -> Result<Vec<WaitingCallback>, StoreError>;
}

/// An asynchronous webhook's node run waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCallback {
    pub run: String,
    pub node_run: String,
    /// Unix ms when the wait ends; None waits as long as it takes.
    pub deadline_ms: Option<u64>,
}

#[cfg(test)]
mod tests;
