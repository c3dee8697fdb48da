//! The record of a workflow run and its node runs, as stored and as printed by `--json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunResult {
    Success,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    pub identifier: String,
    pub workflow: String,
    pub status: RunStatus,
    pub result: Option<RunResult>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The trigger that fired and what it was given (the run's inputs or event).
    pub trigger: Value,
    pub node_runs: Vec<NodeRun>,
    /// Each node's output by node identifier (the trigger's also under "trigger").
    pub outputs: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRun {
    pub identifier: String,
    pub node: String,
    #[serde(rename = "type")]
    pub node_type: String,
    pub status: RunStatus,
    pub result: Option<RunResult>,
    pub output: Value,
    pub error: Option<String>,
    pub logs: Vec<Value>,
    pub created_at: String,
    pub duration_ms: u64,
}

impl WorkflowRun {
    pub fn succeeded(&self) -> bool {
        self.result == Some(RunResult::Success)
    }
}

impl NodeRun {
    /// The HTTP status a WEBHOOK-like node saw, when its output says.
    pub fn http_status(&self) -> Option<u64> {
        self.output
            .pointer("/response/status")
            .and_then(Value::as_u64)
    }
}
