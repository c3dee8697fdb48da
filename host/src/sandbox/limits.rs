//! Per node run limits: their values (defaults, the policy's `[limits]` table and its
//! `[limits.nodes.<node>]` overrides, a custom node manifest's `[limits]`), and how a breach is
//! explained.
//!
//! ```toml
//! [limits]
//! memory = "64 MiB"     # linear memory; sizes are bytes or "N B|KiB|MiB|GiB"
//! cpu_time_ms = 5000    # CPU time running (time blocked on egress does not count)
//! wall_time_ms = 60000  # the whole node run
//! output = "4 MiB"      # the node's JSON output
//! logs = "1 MiB"        # total log message bytes
//! requests = 100        # egress requests per node run
//! [limits.nodes.fetch]  # the workflow node "fetch" only
//! cpu_time_ms = 20000
//! ```

use std::collections::HashMap;
use std::time::Duration;

use wasmtime::{StoreContextMut, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};

use super::host::NodeState;

/// The keys a limits table may hold (besides the policy's `nodes`).
const KEYS: [&str; 6] = [
    "memory",
    "cpu_time_ms",
    "wall_time_ms",
    "output",
    "logs",
    "requests",
];
/// A wasm32 linear memory cannot exceed 4 GiB.
const MAX_MEMORY: u64 = 4 << 30;

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
    /// These limits with the keys of `table` (a `[limits]` table without `nodes`) replacing
    /// theirs. The error names the key and says why, e.g. `memory: unknown unit "MB" ...`.
    pub fn with_overrides(&self, table: &toml::Table) -> Result<NodeLimits, String> {
        Ok(Overrides::parse(table)?.apply(self))
    }

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
    nodes: HashMap<String, Overrides>,
}

/// A bad `[limits]` entry: the dotted key (`limits.nodes.fetch.memory`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct LimitsError {
    pub key: String,
    pub reason: String,
}

impl PolicyLimits {
    /// Reads a policy's `[limits]` table (`None`: the built-in defaults).
    pub fn from_table(table: Option<&toml::Table>) -> Result<PolicyLimits, LimitsError> {
        let Some(table) = table else {
            return Ok(PolicyLimits::default());
        };
        let mut own = table.clone();
        let nodes_table = own.remove("nodes");
        let defaults = NodeLimits::default()
            .with_overrides(&own)
            .map_err(|reason| dotted("limits", reason))?;
        let mut nodes = HashMap::new();
        match nodes_table {
            None => {}
            Some(toml::Value::Table(per_node)) => {
                for (node, value) in per_node {
                    let prefix = format!("limits.nodes.{node}");
                    let toml::Value::Table(table) = value else {
                        return Err(LimitsError {
                            key: prefix,
                            reason: format!("expected a table, got {}", value.type_str()),
                        });
                    };
                    let overrides =
                        Overrides::parse(&table).map_err(|reason| dotted(&prefix, reason))?;
                    nodes.insert(node, overrides);
                }
            }
            Some(other) => {
                return Err(LimitsError {
                    key: "limits.nodes".into(),
                    reason: format!(
                        "expected a table of [limits.nodes.<node>] tables, got {}",
                        other.type_str()
                    ),
                });
            }
        }
        Ok(PolicyLimits { defaults, nodes })
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

/// `with_overrides` says `key: reason`; name the key in full.
fn dotted(prefix: &str, message: String) -> LimitsError {
    match message.split_once(": ") {
        Some((key, reason)) => LimitsError {
            key: format!("{prefix}.{key}"),
            reason: reason.to_string(),
        },
        None => LimitsError {
            key: prefix.to_string(),
            reason: message,
        },
    }
}

/// A parsed limits table: the limits it sets, each checked.
#[derive(Debug, Clone, Default)]
struct Overrides {
    memory_bytes: Option<usize>,
    cpu_time: Option<Duration>,
    wall_time: Option<Duration>,
    max_output_bytes: Option<usize>,
    max_log_bytes: Option<usize>,
    max_requests: Option<u32>,
}

impl Overrides {
    /// Errors read `key: reason`.
    fn parse(table: &toml::Table) -> Result<Overrides, String> {
        let mut o = Overrides::default();
        for (key, value) in table {
            let set = match key.as_str() {
                "memory" => size(value, MAX_MEMORY).map(|v| o.memory_bytes = Some(v)),
                "cpu_time_ms" => millis(value).map(|v| o.cpu_time = Some(v)),
                "wall_time_ms" => millis(value).map(|v| o.wall_time = Some(v)),
                "output" => size(value, u64::MAX).map(|v| o.max_output_bytes = Some(v)),
                "logs" => size(value, u64::MAX).map(|v| o.max_log_bytes = Some(v)),
                "requests" => count(value).map(|v| o.max_requests = Some(v)),
                _ => Err(format!(
                    "unknown limit (the limits are {})",
                    KEYS.join(", ")
                )),
            };
            set.map_err(|reason| format!("{key}: {reason}"))?;
        }
        Ok(o)
    }

    fn apply(&self, base: &NodeLimits) -> NodeLimits {
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

/// A size: a whole number of bytes, or a string `"N B"`, `"N KiB"`, `"N MiB"`, `"N GiB"`.
fn size(value: &toml::Value, max: u64) -> Result<usize, String> {
    let bytes = match value {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative"))?,
        toml::Value::String(text) => parse_size(text)?,
        other => {
            return Err(format!(
                "expected a size such as 1048576 or \"1 MiB\", got {}",
                other.type_str()
            ));
        }
    };
    if bytes == 0 {
        return Err("must be greater than 0".into());
    }
    if bytes > max {
        return Err(format!("{bytes} bytes is more than the maximum of {max}"));
    }
    usize::try_from(bytes).map_err(|_| format!("{bytes} bytes is too large for this machine"))
}

fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"64 MiB\""))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use B, KiB, MiB or GiB)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration in whole milliseconds, more than zero.
fn millis(value: &toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::Integer(n) if *n > 0 => Ok(Duration::from_millis(n.unsigned_abs())),
        toml::Value::Integer(n) => Err(format!("{n} is not a positive number of milliseconds")),
        other => Err(format!(
            "expected a whole number of milliseconds, got {}",
            other.type_str()
        )),
    }
}

/// A count (0 allowed: a node with `requests = 0` may send nothing).
fn count(value: &toml::Value) -> Result<u32, String> {
    match value {
        toml::Value::Integer(n) => {
            u32::try_from(*n).map_err(|_| format!("{n} is not a count between 0 and {}", u32::MAX))
        }
        other => Err(format!("expected a whole number, got {}", other.type_str())),
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

    fn table(text: &str) -> toml::Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn defaults_without_a_table() {
        let limits = PolicyLimits::from_table(None).unwrap();
        assert_eq!(limits.defaults(), &NodeLimits::default());
        assert_eq!(limits.max_requests(), 100);
    }

    #[test]
    fn reads_every_key_and_size_form() {
        let t = table(
            "memory = \"32 MiB\"\ncpu_time_ms = 250\nwall_time_ms = 1000\n\
             output = 2048\nlogs = \"4KiB\"\nrequests = 0",
        );
        let limits = PolicyLimits::from_table(Some(&t)).unwrap();
        assert_eq!(
            limits.defaults(),
            &NodeLimits {
                memory_bytes: 32 << 20,
                cpu_time: Duration::from_millis(250),
                wall_time: Duration::from_secs(1),
                max_output_bytes: 2048,
                max_log_bytes: 4096,
                max_requests: 0,
            }
        );
    }

    #[test]
    fn size_units() {
        assert_eq!(parse_size("7"), Ok(7));
        assert_eq!(parse_size("7 B"), Ok(7));
        assert_eq!(parse_size(" 3KiB "), Ok(3072));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(
            parse_size("1 MB")
                .unwrap_err()
                .contains("unknown unit \"MB\"")
        );
        assert!(parse_size("1.5 MiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(
            parse_size("99999999999999999 GiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn bad_values_name_the_key_and_reason() {
        let cases = [
            ("memory = \"64 MB\"", "limits.memory", "unknown unit"),
            ("memory = \"5 GiB\"", "limits.memory", "maximum"),
            ("memory = 0", "limits.memory", "greater than 0"),
            ("output = -1", "limits.output", "negative"),
            ("cpu_time_ms = 0", "limits.cpu_time_ms", "positive"),
            (
                "wall_time_ms = \"1s\"",
                "limits.wall_time_ms",
                "milliseconds",
            ),
            ("requests = -3", "limits.requests", "count"),
            ("requests = 1.5", "limits.requests", "whole number"),
            (
                "cpu = 5",
                "limits.cpu",
                "unknown limit (the limits are memory, cpu_time_ms",
            ),
            ("nodes = 3", "limits.nodes", "expected a table"),
            (
                "[nodes]\nfetch = 3",
                "limits.nodes.fetch",
                "expected a table",
            ),
            (
                "[nodes.fetch]\nmemroy = 1",
                "limits.nodes.fetch.memroy",
                "unknown limit",
            ),
            (
                "[nodes.fetch]\nlogs = true",
                "limits.nodes.fetch.logs",
                "got boolean",
            ),
        ];
        for (text, key, reason) in cases {
            let err = PolicyLimits::from_table(Some(&table(text))).unwrap_err();
            assert_eq!(err.key, key, "{text}");
            assert!(err.reason.contains(reason), "{text}: {}", err.reason);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn per_node_overrides_apply_on_top_of_a_base() {
        let t = table("memory = \"16 MiB\"\n[nodes.fetch]\ncpu_time_ms = 9000\nrequests = 500");
        let limits = PolicyLimits::from_table(Some(&t)).unwrap();
        let fetch = limits.for_node("fetch", limits.defaults());
        assert_eq!(fetch.memory_bytes, 16 << 20);
        assert_eq!(fetch.cpu_time, Duration::from_secs(9));
        assert_eq!(fetch.max_requests, 500);
        assert_eq!(
            limits.for_node("other", limits.defaults()),
            *limits.defaults()
        );
        // A custom node's own limits are the base; the policy's node overrides still win.
        let manifest = limits
            .defaults()
            .with_overrides(&table("cpu_time_ms = 100\nlogs = 10"))
            .unwrap();
        let fetch = limits.for_node("fetch", &manifest);
        assert_eq!(fetch.cpu_time, Duration::from_secs(9));
        assert_eq!(fetch.max_log_bytes, 10);
        assert_eq!(limits.max_requests(), 500);
    }

    #[test]
    fn with_overrides_rejects_nodes_and_names_the_key() {
        let err = NodeLimits::default()
            .with_overrides(&table("[nodes.x]\nmemory = 1"))
            .unwrap_err();
        assert!(err.starts_with("nodes: unknown limit"), "{err}");
        let err = NodeLimits::default()
            .with_overrides(&table("memory = \"lots\""))
            .unwrap_err();
        assert!(err.starts_with("memory: "), "{err}");
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
