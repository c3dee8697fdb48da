//! The human-readable run summary.

use std::fmt::Write as _;

use crate::engine::{RunResult, WorkflowRun};

pub(crate) fn result_word(result: Option<RunResult>) -> &'static str {
    match result {
        Some(RunResult::Success) => "SUCCESS",
        Some(RunResult::Failed) => "FAILED",
        Some(RunResult::Cancelled) => "CANCELLED",
        None => "IN PROGRESS",
    }
}

pub(crate) fn summary(run: &WorkflowRun) -> String {
    let mut out = String::new();
    let result = result_word(run.result);
    let _ = writeln!(
        out,
        "run {}  workflow {}  {result}",
        run.identifier, run.workflow
    );
    let width = run
        .node_runs
        .iter()
        .map(|n| n.node.len())
        .max()
        .unwrap_or(4);
    for node in &run.node_runs {
        let mark = match node.result {
            Some(RunResult::Success) => "ok  ",
            Some(RunResult::Failed) => "FAIL",
            _ => "..  ",
        };
        let http = node
            .http_status()
            .map(|s| format!("HTTP {s}"))
            .unwrap_or_default();
        let _ = write!(
            out,
            "  {mark} {:<width$}  {:<18} {:>6} ms  {http}",
            node.node, node.node_type, node.duration_ms
        );
        if let Some(error) = &node.error {
            let _ = write!(out, "  {error}");
        }
        out.push('\n');
    }
    out
}
