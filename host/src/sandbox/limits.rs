//! Per node run limits: their values (defaults, overridden by the policy's `[limits]`, its
//! `[limits.nodes.<node>]` tables and a custom node manifest's `[limits]`, which `config`
//! parses), and how a breach is explained.

use std::collections::HashMap;
use std::time::Duration;

use wasmtime::{ResourceLimiter, Trap, UpdateDeadline};

use crate::egress::Denial;

/// Resource limits for one node run. A breach fails that node run, with a message that names
/// the limit and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLimits {
    pub memory_bytes: usize,
    pub cpu_time: Duration,
    pub wall_time: Duration,
    pub max_output_bytes: usize,
    pub max_log_bytes: usize,
    pub max_requests: u32,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(5),
            wall_time: Duration::from_secs(60),
            max_output_bytes: 4 << 20,
            max_log_bytes: 1 << 20,
            max_requests: 100,
        }
    }
}

/// Why a node run failed: it said so, a limit stopped it, or it crashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeFailure {
    /// The node returned this error.
    #[error("{0}")]
    Reported(String),
    #[error(transparent)]
    Limit(#[from] Breach),
    /// It trapped: a crash, explained.
    #[error("{0}")]
    Crashed(String),
    #[error("the node returned output that is not valid JSON")]
    OutputNotJson,
}

/// A limit a node run went past, with the limit's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Breach {
    #[error("memory limit of {limit} bytes exceeded")]
    Memory { limit: usize },
    #[error("CPU time limit of {} ms exceeded", .limit.as_millis())]
    CpuTime { limit: Duration },
    #[error("wall-time limit of {} ms exceeded", .limit.as_millis())]
    WallTime { limit: Duration },
    #[error("log limit of {limit} bytes exceeded")]
    Logs { limit: usize },
    #[error("request limit of {limit} egress requests per node run exceeded")]
    Requests { limit: u32 },
    #[error("output of {bytes} bytes exceeds the output limit of {limit} bytes")]
    Output { bytes: usize, limit: usize },
}

/// The store's limiter: linear memory may grow up to the node's limit. Growing past it traps
/// with a [`Breach`], so the failure is recognised by its type.
pub(super) struct MemoryLimiter {
    limit: usize,
}

impl MemoryLimiter {
    pub(super) fn new(limits: &NodeLimits) -> MemoryLimiter {
        MemoryLimiter {
            limit: limits.memory_bytes,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(Breach::Memory { limit: self.limit }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// The limits a policy sets: defaults for every node run, and overrides per workflow node.
#[derive(Debug, Clone, Default)]
pub struct PolicyLimits {
    defaults: NodeLimits,
    nodes: HashMap<String, LimitOverrides>,
}

impl PolicyLimits {
    /// `defaults` over the built-in limits; `nodes` per workflow node identifier.
    pub fn new(defaults: LimitOverrides, nodes: HashMap<String, LimitOverrides>) -> PolicyLimits {
        PolicyLimits {
            defaults: defaults.apply(&NodeLimits::default()),
            nodes,
        }
    }

    /// The limits of a node run that nothing more specific sets.
    pub fn defaults(&self) -> &NodeLimits {
        &self.defaults
    }

    /// `base` (the defaults, or a custom node's limits) with the policy's
    /// `[limits.nodes.<node>]` overrides for the workflow node `node`, which win.
    pub fn for_node(&self, node: &str, base: &NodeLimits) -> NodeLimits {
        match self.nodes.get(node) {
            Some(overrides) => overrides.apply(base),
            None => base.clone(),
        }
    }

    /// The most egress requests any node run may make under this policy: the gate's own cap.
    pub fn max_requests(&self) -> u32 {
        self.nodes
            .values()
            .filter_map(|o| o.max_requests)
            .fold(self.defaults.max_requests, u32::max)
    }
}

/// The limits one `[limits]` table sets (checked by `config`); the others keep their base value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub memory_bytes: Option<usize>,
    pub cpu_time: Option<Duration>,
    pub wall_time: Option<Duration>,
    pub max_output_bytes: Option<usize>,
    pub max_log_bytes: Option<usize>,
    pub max_requests: Option<u32>,
}

impl LimitOverrides {
    pub fn apply(&self, base: &NodeLimits) -> NodeLimits {
        NodeLimits {
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            cpu_time: self.cpu_time.unwrap_or(base.cpu_time),
            wall_time: self.wall_time.unwrap_or(base.wall_time),
            max_output_bytes: self.max_output_bytes.unwrap_or(base.max_output_bytes),
            max_log_bytes: self.max_log_bytes.unwrap_or(base.max_log_bytes),
            max_requests: self.max_requests.unwrap_or(base.max_requests),
        }
    }
}

/// What the epoch callback decides: stop a node that has spent more than its CPU time running
/// (every moment it executes counts, requests pending or not; time it is blocked does not), and
/// otherwise yield, so that one busy node cannot hold a tokio worker.
pub(super) fn cpu_deadline(used: Duration, limits: &NodeLimits) -> UpdateDeadline {
    if used > limits.cpu_time {
        UpdateDeadline::Interrupt
    } else {
        UpdateDeadline::Yield(1)
    }
}

/// What stopped a node run that trapped or whose host call failed: a limit, recognised by its
/// error type, or a crash, explained.
pub(super) fn explain_trap(error: &wasmtime::Error, limits: &NodeLimits) -> NodeFailure {
    if let Some(breach) = error.downcast_ref::<Breach>() {
        return breach.clone().into();
    }
    if let Some(Denial::RequestLimit { limit }) = error.downcast_ref::<Denial>() {
        return Breach::Requests { limit: *limit }.into();
    }
    let crash = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return Breach::CpuTime {
                limit: limits.cpu_time,
            }
            .into();
        }
        Some(Trap::StackOverflow) => "stack overflow (recursion too deep)".into(),
        // Languages that keep a stack in linear memory (Rust, C) overflow it this way.
        Some(Trap::MemoryOutOfBounds) => {
            "the node crashed: out of bounds memory access (a bug, or its stack overflowing)".into()
        }
        Some(Trap::UnreachableCodeReached) => {
            "the node crashed (panic or unreachable code reached)".into()
        }
        Some(trap) => format!("the node trapped: {trap}"),
        None => format!("the node failed: {error:#}"),
    };
    NodeFailure::Crashed(crash)
}

/// The most bytes of a node's error message kept: an error is stored and handed to the next
/// node (`onFailure: continue`) like an output.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// How much of an over-long error message is kept, to show what it was.
const ERROR_EXCERPT_BYTES: usize = 512;

/// `message`, or, when it passes the error limit, a message naming the limit with its start.
/// Cut only after secrets are scrubbed: a cut must not leave part of a value unrecognised.
pub fn cap_error(message: &str) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message.to_string();
    }
    let mut end = ERROR_EXCERPT_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "error message of {} bytes exceeds the error limit of {MAX_ERROR_BYTES} bytes; it began: {}…",
        message.len(),
        &message[..end]
    )
}

/// The output as JSON, parsed once here; refused when too large or not JSON.
pub(super) fn check_output(
    output: String,
    limits: &NodeLimits,
) -> Result<serde_json::Value, NodeFailure> {
    if output.len() > limits.max_output_bytes {
        return Err(Breach::Output {
            bytes: output.len(),
            limit: limits.max_output_bytes,
        }
        .into());
    }
    serde_json::from_str(&output).map_err(|_| NodeFailure::OutputNotJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let limits = PolicyLimits::new(LimitOverrides::default(), HashMap::new());
        assert_eq!(limits.defaults(), &NodeLimits::default());
        assert_eq!(limits.max_requests(), 100);
        let fetch = LimitOverrides {
            cpu_time: Some(Duration::from_secs(9)),
            max_requests: Some(500),
            ..LimitOverrides::default()
        };
        let policy = PolicyLimits::new(
            LimitOverrides {
                memory_bytes: Some(16 << 20),
                ..LimitOverrides::default()
            },
            HashMap::from([("fetch".to_string(), fetch)]),
        );
        // A custom node's own limits are the base; the policy's node overrides still win.
        let manifest = LimitOverrides {
            cpu_time: Some(Duration::from_millis(100)),
            max_log_bytes: Some(10),
            ..LimitOverrides::default()
        }
        .apply(policy.defaults());
        let node = policy.for_node("fetch", &manifest);
        assert_eq!(node.memory_bytes, 16 << 20);
        assert_eq!(node.cpu_time, Duration::from_secs(9));
        assert_eq!(node.max_log_bytes, 10);
        assert_eq!(policy.for_node("other", &manifest), manifest);
        assert_eq!(policy.max_requests(), 500);
    }

    #[test]
    fn breach_messages_name_limit_and_value() {
        let limits = NodeLimits {
            max_output_bytes: 10,
            ..NodeLimits::default()
        };
        let err = check_output("\"0123456789\"".into(), &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "output of 12 bytes exceeds the output limit of 10 bytes"
        );
        assert_eq!(
            check_output("{".into(), &NodeLimits::default()),
            Err(NodeFailure::OutputNotJson)
        );
        assert_eq!(
            check_output(r#"{"a":[1]}"#.into(), &NodeLimits::default()),
            Ok(serde_json::json!({"a": [1]}))
        );
        let wall = Breach::WallTime {
            limit: NodeLimits::default().wall_time,
        };
        assert_eq!(wall.to_string(), "wall-time limit of 60000 ms exceeded");
        let huge = "é".repeat(3 << 20);
        let capped = cap_error(&huge);
        assert!(
            capped.starts_with(
                "error message of 6291456 bytes exceeds the error limit of 65536 bytes; it began: éé"
            ),
            "{}",
            &capped[..100]
        );
        assert!(capped.len() < 1024, "{}", capped.len());
        assert_eq!(cap_error("short"), "short");
        let requests = Breach::Requests { limit: 100 };
        assert_eq!(
            requests.to_string(),
            "request limit of 100 egress requests per node run exceeded"
        );
        let denial = Denial::RequestLimit { limit: 100 };
        assert_eq!(denial.to_string(), requests.to_string());
    }
}
