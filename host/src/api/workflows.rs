//! `POST|GET /v1/workflows`, `GET|PUT|DELETE /v1/workflows/{id}`: every create or update is
//! validated as `airlock validate` would, and stored as a new version.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::auth::Admin;
use super::{Api, ApiError};
use crate::store::WorkflowRecord;
use crate::workflow::Workflow;

/// The workflow as given, with its version and times.
pub(super) fn view(record: &WorkflowRecord) -> Value {
    let mut view = record.source.clone();
    if let Value::Object(fields) = &mut view {
        fields.insert("version".into(), record.version.into());
        fields.insert("createdAt".into(), record.created_at.clone().into());
        fields.insert("updatedAt".into(), record.updated_at.clone().into());
    }
    view
}

/// Parses and validates a workflow body; nothing is stored when it fails.
fn validated(api: &Api, body: &Bytes) -> Result<(Workflow, Value), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))?;
    let workflow = Workflow::from_json(text, "body", &api.runtime.nodes.custom_types())?;
    let source = workflow.source.clone();
    Ok((workflow, source))
}

pub(super) async fn create(
    State(api): State<Arc<Api>>,
    _: Admin,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (workflow, source) = validated(&api, &body)?;
    let record = api.store.create_workflow(&workflow.identifier, &source)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ok": true, "workflow": view(&record) })),
    ))
}

pub(super) async fn list(State(api): State<Arc<Api>>, _: Admin) -> Result<Json<Value>, ApiError> {
    let workflows: Vec<Value> = api.store.workflows()?.iter().map(view).collect();
    Ok(Json(json!({ "ok": true, "workflows": workflows })))
}

pub(super) async fn read(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = api
        .store
        .workflow(&id, None)?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow \"{id}\"")))?;
    Ok(Json(json!({ "ok": true, "workflow": view(&record) })))
}

pub(super) async fn update(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (workflow, source) = validated(&api, &body)?;
    if workflow.identifier != id {
        return Err(ApiError::field(
            "$.identifier",
            format!(
                "the body's identifier \"{}\" differs from \"{id}\" in the path",
                workflow.identifier
            ),
        ));
    }
    let record = api.store.update_workflow(&id, &source)?;
    Ok(Json(json!({ "ok": true, "workflow": view(&record) })))
}

pub(super) async fn delete(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !api.store.delete_workflow(&id)? {
        return Err(ApiError::NotFound(format!("no workflow \"{id}\"")));
    }
    Ok(Json(json!({ "ok": true })))
}
