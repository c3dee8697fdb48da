//! The two sides of every comparison: a workflow run through Airlock's engine (built as
//! `airlock run` builds it, audit included) and the same requests sent by plain reqwest.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use airlock::config::PolicyFile;
use airlock::engine::{Runtime, StateDir};
use airlock::sandbox::Slots;
use airlock::secrets::SecretStore;
use airlock::workflow::Workflow;
use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

/// The request body both sides send.
const BODY: &str = r#"{"n":1}"#;

/// One unit of work (a workflow run, or the plain requests it stands for), boxed so that the
/// measuring code is the same for both sides.
pub type Op =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// A process-wide runtime with its state dir (audit log, compile cache).
pub struct Engine {
    pub runtime: Arc<Runtime>,
    _state: tempfile::TempDir,
}

impl Engine {
    /// Builds the runtime like `airlock run` does, with a policy that allows only the local
    /// server. `state_in`: where the temporary state dir goes (None: the system temp dir).
    pub fn new(port: u16, state_in: Option<&Path>) -> anyhow::Result<Engine> {
        let state = match state_in {
            Some(dir) => tempfile::tempdir_in(dir)?,
            None => tempfile::tempdir()?,
        };
        let runtime = runtime_in(state.path(), port)?;
        Ok(Engine {
            runtime: Arc::new(runtime),
            _state: state,
        })
    }

    /// Runs `workflow` (from its `start` trigger) as one op; a failed run is an error.
    pub fn op(&self, workflow: &Arc<Workflow>) -> Op {
        runtime_op(&self.runtime, workflow)
    }
}

/// Runs `workflow` (from its `start` trigger) on `runtime` as one op; a failed run is an error.
pub fn runtime_op(runtime: &Arc<Runtime>, workflow: &Arc<Workflow>) -> Op {
    let runtime = Arc::clone(runtime);
    let workflow = Arc::clone(workflow);
    Arc::new(move || {
        let runtime = Arc::clone(&runtime);
        let workflow = Arc::clone(&workflow);
        Box::pin(async move { run_once(&runtime, &workflow).await })
    })
}

pub fn policy_text(port: u16) -> String {
    format!("[egress]\ndefault = \"deny\"\nallow = [\"http://127.0.0.1:{port}\"]\n")
}

fn runtime_in(state: &Path, port: u16) -> anyhow::Result<Runtime> {
    let policy = PolicyFile::parse(&policy_text(port), "policy")?;
    Ok(Runtime::open(
        &StateDir::new(state),
        policy,
        SecretStore::empty(),
        Slots::SERVER,
    )?)
}

async fn run_once(runtime: &Runtime, workflow: &Workflow) -> anyhow::Result<()> {
    let trigger = workflow
        .node("start")
        .context("the workflow has no start node")?;
    let run = runtime.run(workflow, trigger, json!({})).await;
    if !run.succeeded() {
        let why = run
            .node_runs
            .iter()
            .find_map(|n| n.error.clone())
            .unwrap_or_else(|| "no node run says why".into());
        bail!("workflow run failed: {why}");
    }
    Ok(())
}

/// The workflow file's JSON: a trigger followed by `hooks` WEBHOOK nodes in a chain, each
/// POSTing the same small JSON body to `url`.
pub fn workflow_json(url: &str, hooks: usize) -> String {
    let mut nodes = vec![json!({"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}})];
    let mut connections = Vec::new();
    let mut previous = "start".to_string();
    for i in 1..=hooks {
        let id = format!("hook{i}");
        nodes.push(json!({"identifier": id, "config": {
            "type": "WEBHOOK", "url": url, "method": "POST", "body": {"n": 1}
        }}));
        connections.push(json!({"sourceIdentifier": previous, "targetIdentifier": id}));
        previous = id;
    }
    json!({"identifier": "bench", "nodes": nodes, "connections": connections}).to_string()
}

pub fn workflow(url: &str, hooks: usize) -> anyhow::Result<Arc<Workflow>> {
    Ok(Arc::new(Workflow::from_json(
        &workflow_json(url, hooks),
        "bench workflow",
        &[],
    )?))
}

/// The baseline: one pooled reqwest client.
pub fn plain_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().build()?)
}

/// `requests` sequential POSTs to `url` as one op, reading and parsing each answer as the
/// WEBHOOK node does.
pub fn plain_op(client: &reqwest::Client, url: &str, requests: usize) -> Op {
    let client = client.clone();
    let url: Arc<str> = url.into();
    Arc::new(move || {
        let client = client.clone();
        let url = Arc::clone(&url);
        Box::pin(async move {
            for _ in 0..requests {
                let response = client
                    .post(&*url)
                    .header("content-type", "application/json")
                    .body(BODY)
                    .send()
                    .await?;
                ensure!(response.status().is_success(), "HTTP {}", response.status());
                let _: Value = serde_json::from_slice(&response.bytes().await?)?;
            }
            Ok(())
        })
    })
}
