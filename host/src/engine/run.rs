//! The record of a workflow run and its node runs, as stored and as printed by `--json`.

use indexmap::IndexMap;
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};
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

/// Serialised with its `outputs` (see [`WorkflowRun::outputs`]); read back without them.
#[derive(Debug, Clone, Deserialize)]
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
    }
}

impl WorkflowRun {
    pub fn succeeded(&self) -> bool {
        self.result == Some(RunResult::Success)
    }

    /// Each node's output by node identifier, the trigger's also under `trigger`: what each
    /// completed node run left, a node's latest winning. Read from the node runs, so an output
    /// is held once (a copy per node run was a measurable part of a run's cost).
    pub fn outputs(&self) -> Outputs<'_> {
        Outputs(&self.node_runs)
    }
}

/// A run's outputs (see [`WorkflowRun::outputs`]), borrowed from its node runs.
#[derive(Clone, Copy)]
pub struct Outputs<'a>(&'a [NodeRun]);

impl<'a> Outputs<'a> {
    /// In order of first appearance, each name once, with its latest value.
    fn entries(self) -> IndexMap<&'a str, &'a Value> {
        let trigger = self.0.first().filter(|t| t.status == RunStatus::Completed);
        let completed = self
            .0
            .iter()
            .filter(|node_run| node_run.status == RunStatus::Completed);
        // `insert` keeps a name where it first appeared and takes its latest value.
        let mut entries = IndexMap::with_capacity(self.0.len() + 1);
        for (name, output) in trigger
            .map(|t| ("trigger", &t.output))
            .into_iter()
            .chain(completed.map(|n| (n.node.as_str(), &n.output)))
        {
            entries.insert(name, output);
        }
        entries
    }

    /// A copy, as templates read it.
    pub fn to_map(self) -> Map<String, Value> {
        self.entries()
            .into_iter()
            .map(|(name, output)| (name.to_owned(), output.clone()))
            .collect()
    }
}

impl Serialize for Outputs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.entries();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (name, output) in entries {
            map.serialize_entry(name, output)?;
        }
        map.end()
    }
}

impl Serialize for WorkflowRun {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown<'a> {
            identifier: &'a str,
            workflow: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            workflow_version: Option<u32>,
            status: RunStatus,
            result: Option<RunResult>,
            created_at: &'a str,
            finished_at: Option<&'a str>,
            trigger: &'a Value,
            node_runs: &'a [NodeRun],
            outputs: Outputs<'a>,
        }
        Shown {
            identifier: &self.identifier,
            workflow: &self.workflow,
            workflow_version: self.workflow_version,
            status: self.status,
            result: self.result,
            created_at: &self.created_at,
            finished_at: self.finished_at.as_deref(),
            trigger: &self.trigger,
            node_runs: &self.node_runs,
            outputs: self.outputs(),
        }
        .serialize(serializer)
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
