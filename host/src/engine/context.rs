//! The template context a node's templates see (README, "Templates").

use serde_json::{Map, Value, json};

/// `.outputs`, `.secrets` (handles, never values), `.workflow`, `.workflowRun`, `.workflowNodeRun`.
pub(super) fn template_context(
    workflow: &Value,
    run: &Value,
    outputs: &Map<String, Value>,
    secret_handles: Value,
    node_run_id: &str,
    node_run_created_at: &str,
) -> Value {
    json!({
        "outputs": outputs,
        "secrets": secret_handles,
        "workflow": workflow,
        "workflowRun": run,
        "workflowNodeRun": { "identifier": node_run_id, "createdAt": node_run_created_at },
    })
}
