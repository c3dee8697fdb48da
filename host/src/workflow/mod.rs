//! Workflow files (Port's Workflows JSON): the model, loading, and validation that reports every
//! problem with its JSON path before anything runs.

mod config;
mod error;
mod fields;
mod graph;
mod identifier;
mod model;
mod node;
mod webhook;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

pub use config::HOST_KEYS;
pub use error::{Problem, WorkflowError};
pub use model::{Callback, Connection, Node, NodeKind, OnFailure, OnTimeout, Outlet, Workflow};
pub use node::TRIGGER_ALIAS;

use error::Problems;
use fields::Fields;

const WORKFLOW_KEYS: &[&str] = &[
    "identifier",
    "title",
    "icon",
    "description",
    "category",
    "allowAnyoneToViewRuns",
    "nodes",
    "connections",
];
const MAX_IDENTIFIER_LEN: usize = 60;

impl Workflow {
    /// Reads, parses and validates. `custom_types`: config types registered by node manifests.
    pub fn load(path: &Path, custom_types: &[String]) -> Result<Workflow, WorkflowError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WorkflowError::Read {
            origin: origin.clone(),
            source,
        })?;
        Workflow::from_json(&text, &origin, custom_types)
    }

    /// Parses and validates `text`; `origin` names it in errors (usually the file path).
    pub fn from_json(
        text: &str,
        origin: &str,
        custom_types: &[String],
    ) -> Result<Workflow, WorkflowError> {
        let source: Value = serde_json::from_str(text).map_err(|error| WorkflowError::Parse {
            origin: origin.to_owned(),
            line: error.line(),
            column: error.column(),
            message: parse_message(&error),
        })?;
        let mut problems = Problems::default();
        let workflow = validate(&source, custom_types, &mut problems);
        match workflow {
            Some((identifier, title, description, nodes, connections)) if problems.is_empty() => {
                Ok(Workflow {
                    identifier,
                    title,
                    description,
                    nodes,
                    connections,
                    source,
                })
            }
            _ => {
                if problems.is_empty() {
                    // Every path that leaves a part unbuilt records why; this only guards that.
                    problems.push("$", None, "the workflow is incomplete");
                }
                Err(WorkflowError::Invalid {
                    origin: origin.to_owned(),
                    problems: problems.into_vec(),
                })
            }
        }
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.identifier == id)
    }

    pub fn triggers(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|node| node.kind.is_trigger())
            .collect()
    }

    /// The single next node after a non-CONDITION node (validation forbids fan-out), if any.
    pub fn next(&self, from: &str) -> Option<&Node> {
        let connection = self
            .connections
            .iter()
            .find(|connection| connection.source == from)?;
        self.node(&connection.target)
    }

    /// For a CONDITION: the target of the connection for `outlet`, or of its fallback connection
    /// when `outlet` is None.
    pub fn next_from_condition(&self, from: &str, outlet: Option<&str>) -> Option<&Node> {
        let connection = self.connections.iter().find(|connection| {
            connection.source == from
                && match outlet {
                    Some(outlet) => connection.outlet.as_deref() == Some(outlet),
                    None => connection.fallback,
                }
        })?;
        self.node(&connection.target)
    }

    /// Every (node, secret name) pair the templates reference, so a run can fail before sending
    /// anything when a secret is missing.
    pub fn referenced_secrets(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for node in &self.nodes {
            for secret in node.config_template.referenced_secrets() {
                let pair = (node.identifier.clone(), secret);
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
        pairs
    }
}

/// serde_json appends " at line L column C"; the error already carries those separately.
fn parse_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

type Parts = (
    String,
    Option<String>,
    Option<String>,
    Vec<Node>,
    Vec<Connection>,
);

fn validate(source: &Value, custom_types: &[String], problems: &mut Problems) -> Option<Parts> {
    let Value::Object(map) = source else {
        problems.push("$", None, "a workflow must be a JSON object");
        return None;
    };
    let top = Fields::new(map, "$", None);
    top.reject_unknown(WORKFLOW_KEYS, "a workflow", problems);
    let identifier = top.required_string("identifier", problems).filter(|id| {
        let path = top.path_of("identifier");
        let length = id.chars().count();
        if length > MAX_IDENTIFIER_LEN {
            problems.push(
                path,
                None,
                format!(
                    "the identifier has {length} characters; the limit is {MAX_IDENTIFIER_LEN}"
                ),
            );
            return false;
        }
        identifier::check(id, &path, None, "workflow identifier", problems)
    });
    let title = top.string("title", problems);
    let description = top.string("description", problems);
    top.string("icon", problems);
    top.string("category", problems);
    top.bool("allowAnyoneToViewRuns", problems);

    let items = match top.array("nodes", problems) {
        Some(items) if !items.is_empty() => items.as_slice(),
        Some(_) => {
            problems.push("$.nodes", None, "the workflow has no nodes");
            &[]
        }
        None => {
            if top.get("nodes").is_none() {
                problems.push("$.nodes", None, "\"nodes\" is required");
            }
            &[]
        }
    };
    let drafts: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(i, item)| node::parse(i, item, custom_types, problems))
        .collect();
    duplicates(&drafts, problems);
    let connections = graph::check(top.get("connections"), &drafts, problems);

    let nodes = drafts
        .into_iter()
        .map(|draft| draft.node)
        .collect::<Option<Vec<_>>>()?;
    Some((
        identifier?.to_owned(),
        title.map(str::to_owned),
        description.map(str::to_owned),
        nodes,
        connections,
    ))
}

fn duplicates(drafts: &[node::NodeDraft], problems: &mut Problems) {
    let mut first: HashMap<&str, &str> = HashMap::new();
    for draft in drafts {
        let Some(id) = draft.id.as_deref() else {
            continue;
        };
        if let Some(earlier) = first.get(id) {
            problems.push(
                format!("{}.identifier", draft.path),
                Some(id),
                format!("duplicate node identifier \"{id}\": {earlier} has it too"),
            );
        } else {
            first.insert(id, &draft.path);
        }
    }
}

#[cfg(test)]
mod tests;
