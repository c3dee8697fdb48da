//! Test node: returns what it was given, so tests can see exactly what a node sees.

use airlock_guest::{Context, Node, export_node};
use serde_json::{Value, json};

struct Echo;

impl Node for Echo {
    fn run(ctx: Context, config: Value) -> Result<Value, String> {
        if let Some(line) = config.get("log").and_then(Value::as_str) {
            airlock_guest::info(line);
        }
        if let Some(message) = config.get("fail").and_then(Value::as_str) {
            return Err(message.to_string());
        }
        Ok(json!({
            "config": config,
            "context": {"workflow": ctx.workflow, "run": ctx.run, "nodeRun": ctx.node_run, "node": ctx.node},
        }))
    }
}

export_node!(Echo);
