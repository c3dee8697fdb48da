//! Runs: start one (`POST /v1/workflows/{id}/runs[?wait=true]`), list and read them in the shape
//! of `airlock run --json`, cancel one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::auth::{Admin, AdminOrRun};
use super::{Api, ApiError};
use crate::cli::inputs::check_user_inputs;
use crate::engine::{RunStatus, WorkflowRun};
use crate::store::RunFilter;
use crate::workflow::{Node, Problem, Workflow};

const DEFAULT_WAIT_MS: u64 = 30_000;
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1_000;

type Params = Query<HashMap<String, String>>;

/// The body of a run request: `{inputs?: object, trigger?: string}` (empty means `{}`).
struct RunRequest {
    inputs: Value,
    trigger: Option<String>,
}

impl RunRequest {
    fn parse(body: &Bytes) -> Result<RunRequest, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(RunRequest {
                inputs: Value::Object(Map::new()),
                trigger: None,
            });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(ApiError::field("$", "the body must be a JSON object"));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !["inputs", "trigger"].contains(&k.as_str()))
        {
            return Err(ApiError::field(
                &format!("$.{unknown}"),
                "unknown field; a run request has \"inputs\" and \"trigger\"",
            ));
        }
        let inputs = match fields.remove("inputs") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(inputs @ Value::Object(_)) => inputs,
            Some(_) => return Err(ApiError::field("$.inputs", "must be a JSON object")),
        };
        let trigger = match fields.remove("trigger") {
            None | Some(Value::Null) => None,
            Some(Value::String(trigger)) => Some(trigger),
            Some(_) => return Err(ApiError::field("$.trigger", "must be a string")),
        };
        Ok(RunRequest { inputs, trigger })
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true" | "") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "query parameter {name}={other}: expected true or false"
        ))),
    }
}

fn number(params: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "query parameter {name}={text}: expected a whole number"
            ))
        }),
    }
}

fn pick_trigger<'w>(workflow: &'w Workflow, wanted: Option<&str>) -> Result<&'w Node, ApiError> {
    let triggers = workflow.triggers();
    let names = triggers
        .iter()
        .map(|t| t.identifier.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match wanted {
        Some(id) => triggers
            .iter()
            .find(|t| t.identifier == id)
            .copied()
            .ok_or_else(|| {
                ApiError::field(
                    "$.trigger",
                    format!("no trigger \"{id}\" (triggers: {names})"),
                )
            }),
        None if triggers.len() == 1 => Ok(triggers[0]),
        None => Err(ApiError::field(
            "$.trigger",
            format!("the workflow has several triggers ({names}): name one"),
        )),
    }
}

/// A secret the templates reference but the server does not hold would fail the run midway.
fn require_secrets(api: &Api, workflow: &Workflow) -> Result<(), ApiError> {
    let details: Vec<Problem> = workflow
        .referenced_secrets()
        .into_iter()
        .filter(|(_, name)| !api.runtime.secrets.contains(name))
        .map(|(node, name)| Problem {
            path: "$.nodes".into(),
            message: format!("uses secret \"{name}\", which this server does not hold"),
            node: Some(node),
        })
        .collect();
    if details.is_empty() {
        return Ok(());
    }
    Err(ApiError::Unprocessable {
        message: format!(
            "the workflow needs secrets this server does not hold: {}",
            details
                .iter()
                .map(Problem::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        details,
    })
}

/// `{ok: true, workflowRun}`, serialised straight from the run: no `Value` built in between
/// (that copy was ~2% of `serve`'s CPU per run).
#[derive(Serialize)]
pub(super) struct RunAnswer {
    ok: bool,
    #[serde(rename = "workflowRun")]
    workflow_run: WorkflowRun,
}

fn answer(workflow_run: WorkflowRun) -> Json<RunAnswer> {
    Json(RunAnswer {
        ok: true,
        workflow_run,
    })
}

pub(super) async fn create(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<(StatusCode, Json<RunAnswer>), ApiError> {
    let wait = flag(&params, "wait")?;
    let wait_ms = number(&params, "waitTimeoutMs", DEFAULT_WAIT_MS)?;
    let request = RunRequest::parse(&body)?;
    let (workflow, version) = api
        .conductor
        .latest(&id)?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow \"{id}\"")))?;
    let trigger = pick_trigger(&workflow, request.trigger.as_deref())?;
    let mut payload = request.inputs;
    if let Some(user_inputs) = trigger.user_inputs() {
        check_user_inputs(&trigger.identifier, user_inputs, &mut payload)
            .map_err(|e| ApiError::field("$.inputs", e.to_string()))?;
    }
    require_secrets(&api, &workflow)?;
    let run = api
        .runtime
        .new_run(&workflow, Some(version), trigger, payload);
    if !wait {
        let run = api.conductor.start(workflow, run).await?;
        return Ok((StatusCode::CREATED, answer(run)));
    }
    let run = api
        .conductor
        .start_and_wait(workflow, run, Some(Duration::from_millis(wait_ms)))
        .await?;
    Ok((StatusCode::CREATED, answer(run)))
}

pub(super) async fn list(
    State(api): State<Arc<Api>>,
    _: Admin,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let status = match params.get("status").map(String::as_str) {
        None => None,
        Some("IN_PROGRESS") => Some(RunStatus::InProgress),
        Some("COMPLETED") => Some(RunStatus::Completed),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter status={other}: expected IN_PROGRESS or COMPLETED"
            )));
        }
    };
    let limit = number(&params, "limit", DEFAULT_LIMIT as u64)? as usize;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "query parameter limit={limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let filter = RunFilter {
        workflow: params.get("workflowIdentifier").cloned(),
        status,
        limit,
        offset: number(&params, "offset", 0)? as usize,
    };
    let runs = api.store.runs(&filter)?;
    Ok(Json(json!({ "ok": true, "workflowRuns": runs })))
}

pub(super) async fn read(
    State(api): State<Arc<Api>>,
    caller: AdminOrRun,
    Path(wfr): Path<String>,
) -> Result<Json<RunAnswer>, ApiError> {
    caller.may_read(&wfr)?;
    Ok(answer(api.conductor.stored_run(&wfr)?))
}

/// Without force, the run stops before its next node; with force, at once (the node run in
/// flight is abandoned and recorded CANCELLED).
pub(super) async fn cancel(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(wfr): Path<String>,
    Query(params): Params,
) -> Result<Json<RunAnswer>, ApiError> {
    let force = flag(&params, "force")?;
    Ok(answer(api.conductor.cancel(&wfr, force)?))
}
