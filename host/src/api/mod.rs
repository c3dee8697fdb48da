//! `airlock serve`'s HTTP API (axum): Port's workflow paths over the [`Store`] and the engine.
//! Every run is committed to the store before the request that made it gets its answer, and
//! every state change of the run is committed before the engine acts on it.

mod auth;
mod error;
mod meta;
mod metrics;
mod runs;
mod workflows;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};
use tokio::task::{AbortHandle, JoinHandle};

use crate::engine::{NodeRun, RunJournal, Runtime, WorkflowRun};
use crate::store::{Store, StoreError, WorkflowRecord};
use crate::workflow::Workflow;

pub use auth::{AdminToken, TokenError, TokenSource};
pub use error::ApiError;
use metrics::Metrics;

pub struct Api {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    admin: AdminToken,
    audit_path: PathBuf,
    /// Runs this process is driving, by run id.
    live: Mutex<HashMap<String, LiveRun>>,
    /// Parsed workflows by (identifier, version): versions never change once stored.
    parsed: Mutex<HashMap<(String, u32), Arc<Workflow>>>,
    metrics: Metrics,
}

struct LiveRun {
    cancel: Arc<AtomicBool>,
    abort: AbortHandle,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Api {
    pub fn new(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        admin: AdminToken,
        audit_path: PathBuf,
    ) -> Arc<Api> {
        Arc::new(Api {
            runtime,
            store,
            admin,
            audit_path,
            live: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(meta::healthz))
            .route("/openapi.json", get(meta::openapi))
            .route("/metrics", get(meta::metrics))
            .route("/v1/audit", get(meta::audit))
            .route(
                "/v1/workflows",
                post(workflows::create).get(workflows::list),
            )
            .route("/v1/workflows/runs", get(runs::list))
            .route("/v1/workflows/runs/{wfr}", get(runs::read))
            .route("/v1/workflows/runs/{wfr}/cancel", post(runs::cancel))
            .route(
                "/v1/workflows/{id}",
                get(workflows::read)
                    .put(workflows::update)
                    .delete(workflows::delete),
            )
            .route("/v1/workflows/{id}/runs", post(runs::create))
            .fallback(meta::no_route)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                metrics::track_latency,
            ))
            .with_state(self.clone())
    }

    /// The workflow `identifier` at `record`'s version, parsed once per version.
    fn parse(&self, record: &WorkflowRecord) -> Result<Arc<Workflow>, ApiError> {
        let key = (record.identifier.clone(), record.version);
        if let Some(parsed) = lock(&self.parsed).get(&key) {
            return Ok(parsed.clone());
        }
        let origin = format!("workflow {} version {}", record.identifier, record.version);
        let workflow = Workflow::from_json(
            &record.source.to_string(),
            &origin,
            &self.runtime.nodes.custom_types(),
        )?;
        let workflow = Arc::new(workflow);
        lock(&self.parsed).insert(key, workflow.clone());
        Ok(workflow)
    }

    /// Commits `run` (new, IN_PROGRESS), then drives it on its own task.
    fn start(
        self: &Arc<Self>,
        workflow: Arc<Workflow>,
        run: WorkflowRun,
    ) -> Result<JoinHandle<WorkflowRun>, ApiError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let journal = Tracked {
            api: self.clone(),
            cancel: cancel.clone(),
        };
        journal.run_started(&run)?;
        let identifier = run.identifier.clone();
        let api = self.clone();
        // Held across the spawn, so the task cannot deregister before it is registered.
        let mut live = lock(&self.live);
        let task = tokio::spawn(async move {
            let run = api.runtime.drive(&workflow, run, &journal).await;
            lock(&api.live).remove(&run.identifier);
            run
        });
        live.insert(
            identifier,
            LiveRun {
                cancel,
                abort: task.abort_handle(),
            },
        );
        Ok(task)
    }
}

/// The store, plus what the server keeps in memory about a run it drives.
struct Tracked {
    api: Arc<Api>,
    cancel: Arc<AtomicBool>,
}

impl RunJournal for Tracked {
    fn run_started(&self, run: &WorkflowRun) -> Result<(), StoreError> {
        self.api.store.run_started(run)
    }
    fn node_started(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError> {
        self.api.store.node_started(run, node_run)
    }
    fn node_finished(&self, run: &WorkflowRun, node_run: &NodeRun) -> Result<(), StoreError> {
        self.api.store.node_finished(run, node_run)?;
        self.api
            .metrics
            .node_run(&node_run.node_type, node_run.result);
        Ok(())
    }
    fn run_finished(&self, run: &WorkflowRun) -> Result<(), StoreError> {
        self.api.store.run_finished(run)?;
        self.api.metrics.run(run.result);
        Ok(())
    }
    fn cancel_requested(&self, _run: &str) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}
