//! The record of a workflow run and its node runs, as stored and as printed by `--json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ids::{new_node_run_id, new_run_id};
use crate::time::now;
use crate::workflow::{Node, Workflow};

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
    /// The stored workflow version the run follows (None for a run of a workflow file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_version: Option<u32>,
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
    /// How many times the node run was started (more than 1 only when a crash cut off an
    /// idempotent request that was then sent again).
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

/// A run of `workflow` (at `version`, when stored) that starts at `trigger` with `payload`:
/// IN_PROGRESS, holding only the trigger's node run.
pub fn new_run(
    workflow: &Workflow,
    version: Option<u32>,
    trigger: &Node,
    payload: Value,
) -> WorkflowRun {
    let created_at = now();
    let mut outputs = Map::new();
    outputs.insert("trigger".into(), payload.clone());
    outputs.insert(trigger.identifier.clone(), payload.clone());
    WorkflowRun {
        identifier: new_run_id(),
        workflow: workflow.identifier.clone(),
        workflow_version: version,
        status: RunStatus::InProgress,
        result: None,
        created_at: created_at.clone(),
        finished_at: None,
        trigger: json!({ "node": trigger.identifier, "type": trigger.kind.type_name(), "payload": payload }),
        node_runs: vec![NodeRun {
            identifier: new_node_run_id(),
            node: trigger.identifier.clone(),
            node_type: trigger.kind.type_name().to_string(),
            status: RunStatus::Completed,
            result: Some(RunResult::Success),
            output: payload,
            error: None,
            logs: Vec::new(),
            created_at,
            duration_ms: 0,
            attempts: 1,
        }],
        outputs,
    }
}

impl WorkflowRun {
    pub fn succeeded(&self) -> bool {
        self.result == Some(RunResult::Success)
    }
}

impl NodeRun {
    /// A node run of `node` that has just begun.
    pub fn started(node: &Node, identifier: String, created_at: String) -> NodeRun {
        NodeRun {
            identifier,
            node: node.identifier.clone(),
            node_type: node.kind.type_name().to_string(),
            status: RunStatus::InProgress,
            result: None,
            output: Value::Null,
            error: None,
            logs: Vec::new(),
            created_at,
            duration_ms: 0,
            attempts: 1,
        }
    }

    pub fn fail(&mut self, error: String, duration_ms: u64) {
        self.status = RunStatus::Completed;
        self.result = Some(RunResult::Failed);
        self.error = Some(error);
        self.duration_ms = duration_ms;
    }

    /// The HTTP status a WEBHOOK-like node saw, when its output says.
    pub fn http_status(&self) -> Option<u64> {
        self.output
            .pointer("/response/status")
            .and_then(Value::as_u64)
    }
}
