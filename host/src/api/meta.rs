//! `/healthz`, `/openapi.json`, `/metrics`, `/v1/audit`, and the answer for unknown routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::auth::Admin;
use super::{Api, ApiError};
use crate::audit::{self, AuditFilter, AuditRecord, Decision};

const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
}

pub(super) async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

pub(super) async fn no_route() -> ApiError {
    ApiError::NotFound("no such route (see /openapi.json)".into())
}

async fn read_audit(api: &Arc<Api>, filter: AuditFilter) -> Result<Vec<AuditRecord>, ApiError> {
    let path = api.audit_path.clone();
    tokio::task::spawn_blocking(move || audit::read(&path, &filter))
        .await
        .map_err(|e| ApiError::Internal(format!("reading the audit log: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub(super) async fn metrics(
    State(api): State<Arc<Api>>,
    _: Admin,
) -> Result<impl IntoResponse, ApiError> {
    let records = read_audit(&api, AuditFilter::default()).await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.metrics.render(&records),
    ))
}

pub(super) async fn audit(
    State(api): State<Arc<Api>>,
    _: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let decision = match params.get("decision").map(String::as_str) {
        None => None,
        Some("allow") => Some(Decision::Allow),
        Some("deny") => Some(Decision::Deny),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter decision={other}: expected allow or deny"
            )));
        }
    };
    let filter = AuditFilter {
        run: params.get("run").cloned(),
        node: params.get("node").cloned(),
        decision,
    };
    let records = read_audit(&api, filter).await?;
    Ok(Json(json!({ "ok": true, "records": records })))
}
