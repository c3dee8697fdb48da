//! `/metrics` counters (Prometheus text): runs by result, node runs by type and result, request
//! latency; egress decisions are counted from the audit log when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Api;
use crate::audit::{AuditRecord, Decision};
use crate::conductor::RunObserver;
use crate::engine::{NodeRun, RunResult, WorkflowRun};
use crate::sync::lock;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    runs: BTreeMap<&'static str, u64>,
    node_runs: BTreeMap<(String, &'static str), u64>,
    /// Per bucket (same order as BUCKETS), then sum and count.
    latency: Vec<u64>,
    latency_sum: f64,
    latency_count: u64,
}

fn result_label(result: Option<RunResult>) -> &'static str {
    match result {
        Some(RunResult::Success) => "SUCCESS",
        Some(RunResult::Failed) => "FAILED",
        Some(RunResult::Cancelled) => "CANCELLED",
        None => "NONE",
    }
}

impl RunObserver for Metrics {
    fn node_finished(&self, node_run: &NodeRun) {
        self.node_run(&node_run.node_type, node_run.result);
    }
    fn run_finished(&self, run: &WorkflowRun) {
        self.run(run.result);
    }
}

impl Metrics {
    pub fn run(&self, result: Option<RunResult>) {
        *lock(&self.counters)
            .runs
            .entry(result_label(result))
            .or_default() += 1;
    }

    pub fn node_run(&self, node_type: &str, result: Option<RunResult>) {
        *lock(&self.counters)
            .node_runs
            .entry((node_type.to_owned(), result_label(result)))
            .or_default() += 1;
    }

    fn request(&self, seconds: f64) {
        let mut counters = lock(&self.counters);
        if counters.latency.is_empty() {
            counters.latency = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                counters.latency[i] += 1;
            }
        }
        counters.latency_sum += seconds;
        counters.latency_count += 1;
    }

    pub fn render(&self, audit: &[AuditRecord]) -> String {
        let counters = lock(&self.counters);
        let mut out = String::new();
        out.push_str("# HELP airlock_runs_total Workflow runs that ended, by result.\n");
        out.push_str("# TYPE airlock_runs_total counter\n");
        for (result, count) in &counters.runs {
            let _ = writeln!(out, "airlock_runs_total{{result=\"{result}\"}} {count}");
        }
        out.push_str("# HELP airlock_node_runs_total Node runs that ended, by type and result.\n");
        out.push_str("# TYPE airlock_node_runs_total counter\n");
        for ((node_type, result), count) in &counters.node_runs {
            let _ = writeln!(
                out,
                "airlock_node_runs_total{{type=\"{}\",result=\"{result}\"}} {count}",
                escape(node_type)
            );
        }
        out.push_str("# HELP airlock_egress_decisions_total Egress attempts in the audit log, by decision.\n");
        out.push_str("# TYPE airlock_egress_decisions_total counter\n");
        for (label, decision) in [("allow", Decision::Allow), ("deny", Decision::Deny)] {
            let count = audit.iter().filter(|r| r.decision == decision).count();
            let _ = writeln!(
                out,
                "airlock_egress_decisions_total{{decision=\"{label}\"}} {count}"
            );
        }
        out.push_str("# HELP airlock_http_request_duration_seconds API request latency.\n");
        out.push_str("# TYPE airlock_http_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let count = counters.latency.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "airlock_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            counters.latency_count
        );
        let _ = writeln!(
            out,
            "airlock_http_request_duration_seconds_sum {}",
            counters.latency_sum
        );
        let _ = writeln!(
            out,
            "airlock_http_request_duration_seconds_count {}",
            counters.latency_count
        );
        out
    }
}

/// Label values are node types from workflow files: escape what Prometheus text reserves.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) async fn track_latency(
    State(api): State<Arc<Api>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    api.metrics.request(started.elapsed().as_secs_f64());
    response
}
