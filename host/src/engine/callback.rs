//! What a callback (or the end of its wait) makes of an asynchronous webhook's node run.

use serde_json::{Value, json};

use super::Runtime;
use super::run::{NodeRun, RunResult, RunStatus};
use crate::workflow::{Node, OnFailure, OnTimeout};

/// How a waiting node run ends.
#[derive(Debug, Clone)]
pub enum Completion {
    /// A PATCH with `status: COMPLETED`: its result (SUCCESS or FAILED), output and logs.
    Reported {
        result: RunResult,
        output: Value,
        logs: Vec<Value>,
    },
    /// `timeoutMs` passed without a callback.
    TimedOut,
}

impl Runtime {
    /// `waiting` as `completion` ends it, following the node's `onTimeout` and `onFailure`.
    /// What the callback sent is stored and shown like any output: secret values in it are
    /// redacted.
    pub fn complete_waiting(
        &self,
        node: &Node,
        waiting: &NodeRun,
        completion: Completion,
    ) -> NodeRun {
        let mut done = waiting.clone();
        done.status = RunStatus::Completed;
        done.duration_ms = millis_since(&waiting.created_at);
        let (output, error) = match completion {
            Completion::Reported {
                result,
                output,
                logs,
            } => {
                done.logs
                    .extend(logs.into_iter().map(|l| self.secrets.redact_json(l)));
                let output = self.secrets.redact_json(output);
                match result {
                    RunResult::Success => (output, None),
                    _ => {
                        let error = failure_message(&output);
                        (output, Some(self.secrets.redact_str(&error).into_owned()))
                    }
                }
            }
            Completion::TimedOut => timed_out(node),
        };
        done.result = Some(if error.is_some() {
            RunResult::Failed
        } else {
            RunResult::Success
        });
        done.output = match &error {
            Some(message) if node.on_failure == OnFailure::Continue => {
                json!({ "error": { "message": message } })
            }
            _ => output,
        };
        done.error = error;
        done
    }
}

fn timed_out(node: &Node) -> (Value, Option<String>) {
    let callback = node.callback.unwrap_or_default();
    match callback.on_timeout {
        OnTimeout::Continue => (json!({ "timeout": true }), None),
        OnTimeout::Fail => (
            Value::Null,
            Some(format!(
                "no callback came within timeoutMs ({} ms)",
                callback.timeout_ms.unwrap_or_default()
            )),
        ),
    }
}

/// "the callback reported FAILED", with the message the output carries, if any.
fn failure_message(output: &Value) -> String {
    let said = output
        .pointer("/error/message")
        .or_else(|| output.get("error"))
        .or_else(|| output.get("message"))
        .and_then(Value::as_str);
    match said {
        Some(message) => format!("the callback reported FAILED: {message}"),
        None => "the callback reported FAILED".to_owned(),
    }
}

fn millis_since(rfc3339: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| (chrono::Utc::now() - at.to_utc()).num_milliseconds().max(0) as u64)
        .unwrap_or_default()
}
