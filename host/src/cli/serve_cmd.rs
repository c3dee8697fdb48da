//! `airlock serve`: loads what `run` loads, opens the store, and serves the API until SIGINT or
//! SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;

use super::args::ServeArgs;
use super::{Exit, failed, invalid, setup};
use crate::api::{AdminToken, Api, Metrics, TokenSource};
use crate::conductor::{Conductor, Recovered};
use crate::engine::{self, Claimant, StateDir};
use crate::sandbox::Slots;
use crate::secrets::{KeySource, PlatformKey};
use crate::store::SqliteStore;

pub(crate) async fn serve(args: ServeArgs) -> Result<u8, Exit> {
    let policy = setup::load_policy(args.policy.as_deref())?;
    let secrets = setup::load_secrets(args.secrets.as_deref())?;
    let manifests = engine::load_dirs(&args.nodes).map_err(invalid)?;
    let state = StateDir::new(&args.state_dir);
    let claim = setup::claim(&state, Claimant::Server)?;
    // Held until the process exits: run tasks may go on until the runtime is dropped, after
    // this function has returned.
    std::mem::forget(claim);
    let mut runtime = setup::runtime(&state, policy, secrets, Slots::SERVER)?;
    runtime.add_custom_nodes(manifests).map_err(invalid)?;
    let store = SqliteStore::open(&state.runs()).map_err(failed)?;
    let (admin, source) =
        AdminToken::load(std::env::var("AIRLOCK_API_TOKEN").ok(), &state.0).map_err(failed)?;
    match source {
        TokenSource::Environment => eprintln!("airlock serve: admin token from AIRLOCK_API_TOKEN"),
        TokenSource::Generated(path) => eprintln!(
            "airlock serve: generated an admin token into {} (mode 0600)",
            path.display()
        ),
        TokenSource::File(path) => {
            eprintln!("airlock serve: admin token from {}", path.display())
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))
        .map_err(failed)?;
    let address = listener.local_addr().map_err(failed)?;
    let public_url = match args.public_url {
        Some(url) => url.to_string().trim_end_matches('/').to_owned(),
        None => format!("http://{address}"),
    };
    runtime.callback_base = Some(public_url.clone());
    let (key, key_source) = PlatformKey::load_or_create(&state.0).map_err(failed)?;
    if let KeySource::Generated(path) = key_source {
        eprintln!(
            "airlock serve: generated the run-token key into {} (mode 0600)",
            path.display()
        );
    }
    let base = url::Url::parse(&public_url)
        .with_context(|| format!("--public-url {public_url}"))
        .map_err(invalid)?;
    runtime.serve_platform_api(&base, key).map_err(invalid)?;
    let metrics = Arc::new(Metrics::default());
    let conductor = Conductor::new(Arc::new(runtime), Arc::new(store), metrics.clone());
    let recovered = conductor.recover().map_err(failed)?;
    if recovered != Recovered::default() {
        eprintln!(
            "airlock serve: resumed {} runs; {} wait for callbacks",
            recovered.resumed, recovered.waiting
        );
    }
    let api = Api::new(conductor, Some(admin), state.audit(), metrics);
    println!("airlock serve: listening on http://{address} (public URL {public_url})");
    axum::serve(listener, api.router())
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving the API")
        .map_err(failed)?;
    Ok(0)
}

async fn shutdown() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
