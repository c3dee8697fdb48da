//! GITHUB_DISPATCH: starts GitHub Actions workflows by sending a `repository_dispatch` event
//! (`POST /repos/{owner}/{repo}/dispatches`). The token is a secret handle: the gate puts the
//! value into the Authorization header, and only towards the hosts the secret's scope allows.

use airlock_guest::{Context, Node, Request, config_str, export_node, info};
use serde_json::{Value, json};

struct GithubDispatch;

impl Node for GithubDispatch {
    fn run(_ctx: Context, config: Value) -> Result<Value, String> {
        let api = config.get("api").and_then(Value::as_str).unwrap_or("https://api.github.com");
        let repository = config_str(&config, "repository")?;
        let event_type = config_str(&config, "event_type")?;
        let token = config_str(&config, "token")?;
        let payload = config.get("client_payload").cloned().unwrap_or(json!({}));
        let response = Request::post(format!("{api}/repos/{repository}/dispatches"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "airlock-github-dispatch")
            .json(&json!({ "event_type": event_type, "client_payload": payload }))
            .send()
            .map_err(|e| e.to_string())?;
        info(&format!("dispatched {event_type} to {repository}: HTTP {}", response.status));
        if response.status != 204 {
            return Err(format!("GitHub answered HTTP {}: {}", response.status, response.text()));
        }
        Ok(json!({ "dispatched": true, "repository": repository, "event_type": event_type }))
    }
}

export_node!(GithubDispatch);
