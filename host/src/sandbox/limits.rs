//! Per node run limits: their values (defaults, overridden by the policy's `[limits]`, its
//! `[limits.nodes.<node>]` tables and a custom node manifest's `[limits]`, which `config`
//! parses), and how a breach is explained.

use std::collections::HashMap;
use std::time::Duration;

use wasmtime::{StoreContextMut, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};

use super::host::NodeState;

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

impl NodeLimits {
    pub(super) fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .trap_on_grow_failure(true)
            .build()
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

/// Epoch callback: traps once the node has spent more than its CPU time running (every moment
/// it executes counts, requests pending or not; time it is blocked does not), and otherwise
/// yields so that one busy node cannot hold a tokio worker.
pub(super) fn cpu_time_check(
    store: StoreContextMut<'_, NodeState>,
) -> wasmtime::Result<UpdateDeadline> {
    let state = store.data();
    if state.cpu.used() > state.limits.cpu_time {
        return Ok(UpdateDeadline::Interrupt);
    }
    Ok(UpdateDeadline::Yield(1))
}

/// Turns a trap or host error into a message naming the cause.
pub(super) fn explain_trap(error: &wasmtime::Error, state: &NodeState) -> String {
    let limits = &state.limits;
    if state.log_limit_hit {
        return format!("log limit of {} bytes exceeded", limits.max_log_bytes);
    }
    if state.request_limit_hit {
        return request_limit_message(limits);
    }
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return format!(
            "CPU time limit of {} ms exceeded",
            limits.cpu_time.as_millis()
        );
    }
    let text = format!("{error:#}");
    // A failed memory.grow with trap_on_grow_failure is not a `Trap`; recognise its message.
    if text.contains("forcing trap when growing memory") {
        return format!("memory limit of {} bytes exceeded", limits.memory_bytes);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow (recursion too deep)".into(),
        // Languages that keep a stack in linear memory (Rust, C) overflow it this way.
        Some(Trap::MemoryOutOfBounds) => {
            "the node crashed: out of bounds memory access (a bug, or its stack overflowing)".into()
        }
        Some(Trap::UnreachableCodeReached) => {
            "the node crashed (panic or unreachable code reached)".into()
        }
        Some(trap) => format!("the node trapped: {trap}"),
        None => format!("the node failed: {text}"),
    }
}

pub(super) fn wall_time_message(limits: &NodeLimits) -> String {
    format!(
        "wall-time limit of {} ms exceeded",
        limits.wall_time.as_millis()
    )
}

pub(super) fn request_limit_message(limits: &NodeLimits) -> String {
    format!(
        "request limit of {} egress requests per node run exceeded",
        limits.max_requests
    )
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

/// Rejects outputs that are too large or not JSON.
pub(super) fn check_output(output: String, limits: &NodeLimits) -> Result<String, String> {
    if output.len() > limits.max_output_bytes {
        return Err(format!(
            "output of {} bytes exceeds the output limit of {} bytes",
            output.len(),
            limits.max_output_bytes
        ));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(&output).is_err() {
        return Err("the node returned output that is not valid JSON".into());
    }
    Ok(output)
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
            err,
            "output of 12 bytes exceeds the output limit of 10 bytes"
        );
        assert!(
            check_output("{".into(), &NodeLimits::default())
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert_eq!(check_output("{}".into(), &limits), Ok("{}".into()));
        assert_eq!(
            wall_time_message(&NodeLimits::default()),
            "wall-time limit of 60000 ms exceeded"
        );
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
        assert_eq!(
            request_limit_message(&NodeLimits::default()),
            "request limit of 100 egress requests per node run exceeded"
        );
    }
}
