//! Per node run limits and how a breach is explained.

use std::time::Duration;

use wasmtime::{StoreContextMut, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};

use super::host::NodeState;

/// Resource limits for one node run. A breach fails that node run, with a message that names
/// the limit and its value.
#[derive(Debug, Clone)]
pub struct NodeLimits {
    pub memory_bytes: usize,
    pub cpu_time: Duration,
    pub wall_time: Duration,
    pub max_output_bytes: usize,
    pub max_log_bytes: usize,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(5),
            wall_time: Duration::from_secs(60),
            max_output_bytes: 4 << 20,
            max_log_bytes: 1 << 20,
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

/// Epoch callback: traps once the node has spent more than its CPU time in wasm (time spent
/// waiting on the egress gate does not count), and otherwise yields so that one busy node
/// cannot hold a tokio worker.
pub(super) fn cpu_time_check(
    store: StoreContextMut<'_, NodeState>,
) -> wasmtime::Result<UpdateDeadline> {
    let state = store.data();
    let used = state.started.elapsed().saturating_sub(state.host_time);
    if used > state.limits.cpu_time {
        return Ok(UpdateDeadline::Interrupt);
    }
    Ok(UpdateDeadline::Yield(1))
}

/// Turns a trap or host error into a message naming the cause.
pub(super) fn explain_trap(
    error: &wasmtime::Error,
    state: &NodeState,
    elapsed: Duration,
) -> String {
    let limits = &state.limits;
    if state.log_limit_hit {
        return format!("log limit of {} bytes exceeded", limits.max_log_bytes);
    }
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return format!(
            "CPU time limit of {} ms exceeded (ran {} ms)",
            limits.cpu_time.as_millis(),
            elapsed.as_millis()
        );
    }
    let text = format!("{error:#}");
    // A failed memory.grow with trap_on_grow_failure is not a `Trap`; recognise its message.
    if text.contains("forcing trap when growing memory") {
        return format!("memory limit of {} bytes exceeded", limits.memory_bytes);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow (recursion too deep)".into(),
        Some(Trap::UnreachableCodeReached) => {
            "the node crashed (panic or unreachable code reached)".into()
        }
        Some(trap) => format!("the node trapped: {trap}"),
        None => format!("the node failed: {text}"),
    }
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
