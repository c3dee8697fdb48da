//! API errors: `{ok: false, error, message}` (and `details` for an invalid workflow) with the
//! status that says whose fault it is.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::conductor::ConductorError;
use crate::store::StoreError;
use crate::workflow::{Problem, WorkflowError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The body or a query parameter cannot be read at all.
    #[error("{0}")]
    BadRequest(String),
    /// The request is readable but not acceptable; `details` locate each problem.
    #[error("{message}")]
    Unprocessable {
        message: String,
        details: Vec<Problem>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A server-side failure that is not the store's (reading the audit log).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A single problem at `path` (a JSON path into the body, or a query parameter).
    pub fn field(path: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::Unprocessable {
            message: format!("{path}: {message}"),
            details: vec![Problem {
                path: path.to_owned(),
                node: None,
                message,
            }],
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::Store(StoreError::WorkflowExists(_)) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Store(StoreError::NoWorkflow(_)) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Store(StoreError::NotInProgress(_)) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Store(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

impl From<ConductorError> for ApiError {
    fn from(error: ConductorError) -> ApiError {
        match error {
            ConductorError::NotFound(m) => ApiError::NotFound(m),
            ConductorError::Conflict(m) => ApiError::Conflict(m),
            ConductorError::Forbidden(m) => ApiError::Forbidden(m),
            ConductorError::Unauthorized(m) => ApiError::Unauthorized(m),
            ConductorError::Store(e) => ApiError::Store(e),
            ConductorError::Workflow(e) => e.into(),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> ApiError {
        match error {
            WorkflowError::Invalid { problems, .. } => ApiError::Unprocessable {
                message: format!("the workflow is invalid: {}", summary(&problems)),
                details: problems,
            },
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

fn summary(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        let mut body = json!({ "ok": false, "error": code, "message": self.to_string() });
        if let ApiError::Unprocessable { details, .. } = &self {
            body["details"] = details
                .iter()
                .map(|p| json!({ "path": p.path, "node": p.node, "message": p.message }))
                .collect::<Value>();
        }
        (status, Json(body)).into_response()
    }
}
