//! `airlock serve`'s HTTP API (axum): Port's workflow paths over the [`Store`] and the
//! [`Conductor`]. Every run is committed to the store before the request that made it gets its
//! answer, and every state change of the run is committed before the engine acts on it.

mod auth;
mod callbacks;
mod error;
mod meta;
mod metrics;
mod runs;
mod workflows;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, patch, post};

use crate::conductor::Conductor;
use crate::engine::Runtime;
use crate::store::Store;

pub use auth::{AdminToken, TokenError, TokenSource};
pub use error::ApiError;
pub use metrics::Metrics;

pub struct Api {
    conductor: Arc<Conductor>,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    /// None: no admin routes work (a one-shot run's callback listener without
    /// AIRLOCK_API_TOKEN); callbacks still take their own tokens.
    admin: Option<AdminToken>,
    audit_path: PathBuf,
    metrics: Arc<Metrics>,
}

impl Api {
    pub fn new(
        conductor: Arc<Conductor>,
        admin: Option<AdminToken>,
        audit_path: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Arc<Api> {
        Arc::new(Api {
            runtime: conductor.runtime.clone(),
            store: conductor.store.clone(),
            conductor,
            admin,
            audit_path,
            metrics,
        })
    }

    /// Every route of `airlock serve`.
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
            .merge(self.callback_routes())
            .fallback(meta::no_route)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                metrics::track_latency,
            ))
            .with_state(self.clone())
    }

    /// Only the routes an external service uses to complete and log node runs (a one-shot
    /// `airlock run`'s callback listener).
    pub fn callback_router(self: &Arc<Self>) -> Router {
        self.callback_routes()
            .fallback(meta::no_route)
            .with_state(self.clone())
    }

    fn callback_routes(self: &Arc<Self>) -> Router<Arc<Api>> {
        Router::new()
            .route("/v1/workflows/nodes/runs/{wfnr}", patch(callbacks::update))
            .route(
                "/v1/workflows/runs/{wfr}/nodes/{wfnr}",
                patch(callbacks::update_in_run),
            )
            .route(
                "/v1/workflows/nodes/runs/{wfnr}/logs",
                post(callbacks::logs),
            )
    }
}
