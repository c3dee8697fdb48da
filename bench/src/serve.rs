//! `airlock serve` as a process: runs of a one-webhook workflow started and awaited through
//! `POST /v1/workflows/{id}/runs?wait=true`, vs plain reqwest sending the same request.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::sides::{Op, policy_text, workflow_json};

const TOKEN: &str = "bench-admin-token";

/// A running `airlock serve` on a temporary state dir, with the bench workflow stored.
pub struct Serve {
    child: Child,
    base: String,
    _state: tempfile::TempDir,
}

impl Serve {
    pub async fn start(airlock: &Path, url: &str, port: u16) -> anyhow::Result<Serve> {
        let state = tempfile::tempdir()?;
        let policy = state.path().join("airlock.toml");
        std::fs::write(&policy, policy_text(port))?;
        let mut child = Command::new(airlock)
            .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
            .arg(&policy)
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .env("AIRLOCK_API_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} serve", airlock.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("serve's stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(base) = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        else {
            let _ = child.kill();
            bail!("airlock serve did not print its address: {line:?}");
        };
        let serve = Serve {
            base: base.to_string(),
            child,
            _state: state,
        };
        let created = client()?
            .post(format!("{}/v1/workflows", serve.base))
            .bearer_auth(TOKEN)
            .body(workflow_json(url, 1))
            .send()
            .await?;
        ensure!(
            created.status().as_u16() == 201,
            "creating the workflow: HTTP {}",
            created.status()
        );
        Ok(serve)
    }

    /// One run, started and awaited over HTTP; a run that did not succeed is an error.
    pub fn op(&self) -> anyhow::Result<Op> {
        let client = client()?;
        let url: Arc<str> = format!("{}/v1/workflows/bench/runs?wait=true", self.base).into();
        Ok(Arc::new(move || {
            let client = client.clone();
            let url = Arc::clone(&url);
            Box::pin(async move {
                let response = client
                    .post(&*url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await?;
                ensure!(
                    response.status().as_u16() == 201,
                    "HTTP {}",
                    response.status()
                );
                let answer: Value = serde_json::from_slice(&response.bytes().await?)?;
                let result = &answer["workflowRun"]["result"];
                ensure!(result == "SUCCESS", "run result {result}");
                Ok(())
            })
        }))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keep-alive, pooled: a client as a caller of the API would use.
fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?)
}
