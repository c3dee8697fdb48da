//! The validated, immutable shape of a workflow. Everything here is built only after
//! validation succeeded, so the engine never meets a half-checked definition.

use serde_json::Value;

use crate::template::{Expr, Template};

/// A loaded and validated workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub identifier: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub nodes: Vec<Node>,
    pub connections: Vec<Connection>,
    /// The file as given.
    pub source: Value,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub identifier: String,
    pub title: Option<String>,
    pub kind: NodeKind,
    /// The node's `config` object as written (including `type`).
    pub config: Value,
    /// `config` minus host-level keys, compiled. Only action nodes (WEBHOOK and custom types)
    /// send a config to a component; for triggers and CONDITION this is an empty object, because
    /// their config holds bare jq (outlets, event conditions) rather than `{{ }}` templates.
    pub config_template: Template,
    /// Compiled `variables`, in file order; when present they replace the node's output.
    pub variables: Option<Vec<(String, Expr)>>,
    pub on_failure: OnFailure,
    /// An asynchronous WEBHOOK (`synchronized: false`): after its request, the node run waits
    /// for a callback.
    pub callback: Option<Callback>,
    /// CONDITION only, in file order (the first true outlet wins).
    pub outlets: Vec<Outlet>,
}

impl Node {
    /// A SELF_SERVE_TRIGGER's `userInputs` schema (`{properties, required}`), if it declares one.
    pub fn user_inputs(&self) -> Option<&Value> {
        match self.kind {
            NodeKind::SelfServeTrigger => self.config.get("userInputs"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    SelfServeTrigger,
    EventTrigger,
    Condition,
    Webhook,
    /// A config type registered by a node manifest.
    Custom(String),
}

impl NodeKind {
    pub const SELF_SERVE_TRIGGER: &str = "SELF_SERVE_TRIGGER";
    pub const EVENT_TRIGGER: &str = "EVENT_TRIGGER";
    pub const CONDITION: &str = "CONDITION";
    pub const WEBHOOK: &str = "WEBHOOK";

    /// The built-in kind named `name`, if any (custom types are resolved by the caller).
    pub fn builtin(name: &str) -> Option<NodeKind> {
        match name {
            Self::SELF_SERVE_TRIGGER => Some(NodeKind::SelfServeTrigger),
            Self::EVENT_TRIGGER => Some(NodeKind::EventTrigger),
            Self::CONDITION => Some(NodeKind::Condition),
            Self::WEBHOOK => Some(NodeKind::Webhook),
            _ => None,
        }
    }

    pub fn is_trigger(&self) -> bool {
        matches!(self, NodeKind::SelfServeTrigger | NodeKind::EventTrigger)
    }

    /// Nodes whose config is rendered and handed to a component.
    pub fn is_action(&self) -> bool {
        matches!(self, NodeKind::Webhook | NodeKind::Custom(_))
    }

    pub fn type_name(&self) -> &str {
        match self {
            NodeKind::SelfServeTrigger => Self::SELF_SERVE_TRIGGER,
            NodeKind::EventTrigger => Self::EVENT_TRIGGER,
            NodeKind::Condition => Self::CONDITION,
            NodeKind::Webhook => Self::WEBHOOK,
            NodeKind::Custom(name) => name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    #[default]
    Terminate,
    Continue,
}

/// How an asynchronous WEBHOOK waits for the PATCH that completes its node run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Callback {
    /// `timeoutMs`: how long to wait for the callback; None waits as long as it takes.
    pub timeout_ms: Option<u64>,
    pub on_timeout: OnTimeout,
}

/// `onTimeout`: what a callback that never came means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// The node run fails (and `onFailure` decides what follows).
    #[default]
    Fail,
    /// The node run succeeds with the output `{"timeout": true}`.
    Continue,
}

#[derive(Debug, Clone)]
pub struct Outlet {
    pub identifier: String,
    pub title: Option<String>,
    pub expression: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub source: String,
    pub target: String,
    pub outlet: Option<String>,
    pub fallback: bool,
    pub description: Option<String>,
}
