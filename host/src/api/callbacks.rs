//! What an external service calls back: `PATCH /v1/workflows/nodes/runs/{wfnr}` (and its alias
//! under the run) completes or logs an asynchronous webhook's node run; `POST …/logs` adds a log
//! line. Each is authorised by that node run's callback token, its run's run token, or the
//! admin token.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use super::auth::Bearer;
use super::{Api, ApiError};
use crate::engine::{Completion, RunResult, WorkflowRun};
use crate::secrets::PresentedToken;

const UPDATE_FIELDS: &[&str] = &["status", "result", "output", "logs"];
const LOG_FIELDS: &[&str] = &["logLevel", "log", "tags"];
const LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARN", "ERROR"];

/// A PATCH body: `status: COMPLETED` with a result (and output) ends the node run;
/// `status: IN_PROGRESS` only adds its logs.
enum Update {
    Completed(Completion),
    InProgress(Vec<Value>),
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))
}

/// What is stored of an update, with every echo of the caller's own token masked: the output
/// and the logs' text and tags, once parsed (a `\u0061`-style escape is decoded by then; any
/// other form `PresentedToken` reads is masked as it stands). The fields the API reads
/// (status, result, logLevel) are left as they were checked.
fn masked(bearer: &Bearer, update: Update) -> Update {
    let Some(token) = bearer.presented() else {
        return update;
    };
    let lines = |logs: Vec<Value>| logs.into_iter().map(|l| masked_line(&token, l)).collect();
    match update {
        Update::Completed(Completion::Reported {
            result,
            output,
            logs,
        }) => Update::Completed(Completion::Reported {
            result,
            output: token.redact_json(output),
            logs: lines(logs),
        }),
        Update::InProgress(logs) => Update::InProgress(lines(logs)),
        other @ Update::Completed(Completion::TimedOut) => other,
    }
}

fn masked_line(token: &PresentedToken, line: Value) -> Value {
    let Value::Object(mut fields) = line else {
        return line;
    };
    for name in ["log", "tags"] {
        if let Some(value) = fields.remove(name) {
            fields.insert(name.to_owned(), token.redact_json(value));
        }
    }
    Value::Object(fields)
}

fn object(value: Value, fields: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::field("$", "the body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(ApiError::field(
            &format!("$.{unknown}"),
            format!("unknown field; expected {}", fields.join(", ")),
        ));
    }
    Ok(map)
}

fn parse_update(body: Value) -> Result<Update, ApiError> {
    let mut map = object(body, UPDATE_FIELDS)?;
    let logs = match map.remove("logs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(lines)) => lines
            .iter()
            .enumerate()
            .map(|(i, line)| log_line(line, &format!("$.logs[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::field("$.logs", "must be an array")),
    };
    match map.get("status").and_then(Value::as_str) {
        Some("COMPLETED") => {}
        Some("IN_PROGRESS") => {
            if map.contains_key("result") || map.contains_key("output") {
                return Err(ApiError::field(
                    "$.status",
                    "IN_PROGRESS takes only logs; result and output come with COMPLETED",
                ));
            }
            return Ok(Update::InProgress(logs));
        }
        _ => {
            return Err(ApiError::field(
                "$.status",
                "must be \"COMPLETED\" or \"IN_PROGRESS\"",
            ));
        }
    }
    let result = match map.get("result").and_then(Value::as_str) {
        Some("SUCCESS") => RunResult::Success,
        Some("FAILED") => RunResult::Failed,
        _ => {
            return Err(ApiError::field(
                "$.result",
                "must be \"SUCCESS\" or \"FAILED\" when status is COMPLETED",
            ));
        }
    };
    let output = map.remove("output").unwrap_or(Value::Object(Map::new()));
    Ok(Update::Completed(Completion::Reported {
        result,
        output,
        logs,
    }))
}

/// A log line `{logLevel, log, tags?}`, as Port's node run logs.
fn log_line(line: &Value, path: &str) -> Result<Value, ApiError> {
    let Value::Object(fields) = line else {
        return Err(ApiError::field(path, "a log line must be an object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !LOG_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            &format!("{path}.{unknown}"),
            "unknown field; a log line has logLevel, log and tags",
        ));
    }
    let level = fields.get("logLevel").and_then(Value::as_str);
    if !level.is_some_and(|level| LOG_LEVELS.contains(&level)) {
        return Err(ApiError::field(
            &format!("{path}.logLevel"),
            format!("must be one of {}", LOG_LEVELS.join(", ")),
        ));
    }
    if !fields.get("log").is_some_and(Value::is_string) {
        return Err(ApiError::field(&format!("{path}.log"), "must be a string"));
    }
    if fields.get("tags").is_some_and(|tags| !tags.is_object()) {
        return Err(ApiError::field(
            &format!("{path}.tags"),
            "must be an object",
        ));
    }
    Ok(line.clone())
}

fn node_run_answer(run: &WorkflowRun, wfnr: &str) -> Json<Value> {
    let node_run = run.node_runs.iter().find(|n| n.identifier == wfnr);
    Json(
        json!({ "ok": true, "workflowNodeRun": node_run, "workflowRun": { "identifier": run.identifier, "status": run.status, "result": run.result } }),
    )
}

async fn apply(
    api: &Arc<Api>,
    bearer: Bearer,
    wfnr: &str,
    body: &Bytes,
) -> Result<Json<Value>, ApiError> {
    bearer.may_update(api, wfnr)?;
    let update = masked(&bearer, parse_update(body_json(body)?)?);
    let run = match update {
        Update::Completed(completion) => api.conductor.complete(wfnr, completion).await?,
        Update::InProgress(logs) => {
            api.conductor.append_logs(wfnr, &logs)?;
            owner_run(api, wfnr)?
        }
    };
    Ok(node_run_answer(&run, wfnr))
}

fn owner_run(api: &Api, wfnr: &str) -> Result<WorkflowRun, ApiError> {
    let owner = api
        .store
        .node_run_owner(wfnr)?
        .ok_or_else(|| ApiError::NotFound(format!("no node run {wfnr}")))?;
    Ok(api.conductor.stored_run(&owner)?)
}

pub(super) async fn update(
    State(api): State<Arc<Api>>,
    bearer: Bearer,
    Path(wfnr): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    apply(&api, bearer, &wfnr, &body).await
}

/// The same update, addressed under its run; a node run of another run is not found.
pub(super) async fn update_in_run(
    State(api): State<Arc<Api>>,
    bearer: Bearer,
    Path((wfr, wfnr)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    bearer.may_update(&api, &wfnr)?;
    if api.store.node_run_owner(&wfnr)?.as_deref() != Some(wfr.as_str()) {
        return Err(ApiError::NotFound(format!(
            "run {wfr} has no node run {wfnr}"
        )));
    }
    apply(&api, bearer, &wfnr, &body).await
}

pub(super) async fn logs(
    State(api): State<Arc<Api>>,
    bearer: Bearer,
    Path(wfnr): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    bearer.may_update(&api, &wfnr)?;
    let line = Value::Object(object(body_json(&body)?, LOG_FIELDS)?);
    let line = log_line(&line, "$")?;
    let line = match bearer.presented() {
        Some(token) => masked_line(&token, line),
        None => line,
    };
    api.conductor.append_logs(&wfnr, &[line])?;
    Ok(node_run_answer(&owner_run(&api, &wfnr)?, &wfnr))
}
