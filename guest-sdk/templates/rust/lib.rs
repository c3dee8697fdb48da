//! The {{TYPE}} action node: GETs config.url and returns its status and body.

use airlock_guest::{Context, Node, Request, config_str, export_node, info};
use serde_json::{Value, json};

struct ThisNode;

impl Node for ThisNode {
    fn run(_ctx: Context, config: Value) -> Result<Value, String> {
        let url = config_str(&config, "url")?;
        let response = Request::get(url).send().map_err(|e| e.to_string())?;
        info(&format!("GET {url} -> HTTP {}", response.status));
        if !response.is_success() {
            return Err(format!("GET {url} answered HTTP {}", response.status));
        }
        let data = response.json().unwrap_or_else(|| Value::String(response.text()));
        Ok(json!({ "status": response.status, "data": data }))
    }
}

export_node!(ThisNode);
