//! `airlock run`, `airlock validate` and `airlock runs`.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use super::args::{RunArgs, RunsArgs, ValidateArgs};
use super::setup;
use super::{Exit, failed, inputs, invalid, print};
use crate::api::{AdminToken, Api};
use crate::conductor::{Conductor, Unobserved};
use crate::engine::{self, Claimant, NodeManifest, Runtime, StateDir, WorkflowRun};
use crate::sandbox::Slots;
use crate::store::{RunFilter, SqliteStore, Store as _};
use crate::workflow::{Node, Workflow};

pub(crate) async fn run(args: RunArgs) -> Result<u8, Exit> {
    let json = args.json;
    let (run, code) = execute(args).await?;
    if json {
        let text = serde_json::to_string_pretty(&run)
            .context("printing the run")
            .map_err(failed)?;
        println!("{text}");
    } else {
        print!("{}", print::summary(&run));
    }
    Ok(code)
}

/// Checks everything, runs the workflow once and stores the run; returns it with its exit code.
pub(crate) async fn execute(args: RunArgs) -> Result<(WorkflowRun, u8), Exit> {
    // Everything that can be wrong with the input is checked before anything is sent.
    let policy = setup::load_policy(args.target.policy.as_deref())?;
    let secrets = setup::load_secrets(args.secrets.as_deref())?;
    let manifests = engine::load_dirs(&args.target.nodes).map_err(invalid)?;
    let workflow = load_workflow(&args.target.workflow, &manifests)?;
    let trigger = pick_trigger(&workflow, args.trigger.as_deref()).map_err(invalid)?;
    let mut payload = inputs::parse(args.inputs.as_deref()).map_err(invalid)?;
    if let Some(user_inputs) = trigger.user_inputs() {
        inputs::check_user_inputs(&trigger.identifier, user_inputs, &mut payload)
            .map_err(invalid)?;
    }
    // A secret that is not loaded would fail mid-run, after earlier nodes had sent requests.
    let origin = args.target.workflow.display().to_string();
    engine::check_defined(&workflow, |name| secrets.contains(name), &origin).map_err(invalid)?;

    let state = StateDir::new(&args.target.state_dir);
    // Held until the run is stored: a server must not start on this state dir meanwhile.
    let _claim = setup::claim(&state, Claimant::OneShotRun)?;
    // A run walks one path, one node run at a time (engine::execute).
    let slots = Slots::new(1);
    let mut runtime = setup::runtime(&state, policy, secrets, slots)?;
    runtime.add_custom_nodes(manifests).map_err(invalid)?;
    let store = SqliteStore::open(&state.runs()).map_err(failed)?;
    let run = runtime.new_run(&workflow, None, trigger, payload);
    let run = if workflow.nodes.iter().any(|node| node.callback.is_some()) {
        run_with_callbacks(args.listen, &state, runtime, store, workflow, run).await?
    } else {
        runtime.run_recorded(&workflow, run, &store).await
    };
    let code = if run.succeeded() { 0 } else { 1 };
    Ok((run, code))
}

/// Runs a workflow with asynchronous webhooks: takes their callbacks on `listen` (only the
/// callback routes; admin requests too when AIRLOCK_API_TOKEN is set) until the run completes.
async fn run_with_callbacks(
    listen: SocketAddr,
    state: &StateDir,
    mut runtime: Runtime,
    store: SqliteStore,
    workflow: Workflow,
    run: WorkflowRun,
) -> Result<WorkflowRun, Exit> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}"))
        .map_err(invalid)?;
    let address = listener.local_addr().map_err(failed)?;
    let base = format!("http://{address}");
    eprintln!(
        "airlock run: asynchronous webhooks call back at {base}/v1/workflows/nodes/runs/<node run>"
    );
    runtime.callback_base = Some(base);
    let conductor = Conductor::new(Arc::new(runtime), Arc::new(store), Arc::new(Unobserved));
    let workflow = Arc::new(workflow);
    conductor.add_file_workflow(workflow.clone());
    let admin = std::env::var("AIRLOCK_API_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
        .map(|token| AdminToken::new(&token));
    let api = Api::new(conductor.clone(), admin, state.audit(), Arc::default());
    let server = tokio::spawn(axum::serve(listener, api.callback_router()).into_future());
    let run = conductor
        .start_and_wait(workflow, run, None)
        .await
        .map_err(failed);
    server.abort();
    run
}

pub(crate) fn validate(args: ValidateArgs) -> Result<u8, Exit> {
    let policy = args
        .target
        .policy
        .as_deref()
        .map(|p| setup::load_policy(Some(p)))
        .transpose()?;
    let manifests = engine::load_dirs(&args.target.nodes).map_err(invalid)?;
    let workflow = load_workflow(&args.target.workflow, &manifests)?;
    if !manifests.is_empty() {
        let state = StateDir::new(&args.target.state_dir);
        engine::check_custom_nodes(&state, manifests).map_err(|err| {
            if err.is_bad_custom_node() {
                invalid(err)
            } else {
                failed(err)
            }
        })?;
    }
    println!(
        "{}: valid workflow \"{}\" ({} nodes, {} connections)",
        args.target.workflow.display(),
        workflow.identifier,
        workflow.nodes.len(),
        workflow.connections.len()
    );
    if let Some(policy) = policy {
        print!("{}", policy.egress.explain());
    }
    Ok(0)
}

pub(crate) fn runs(args: RunsArgs) -> Result<u8, Exit> {
    let state = StateDir::new(&args.state_dir);
    // Listing must not create a state dir: no store yet means no runs yet.
    if !state.runs().exists() {
        return match args.run {
            Some(id) => Err(invalid(anyhow!(
                "no run {id}: {} does not exist",
                state.runs().display()
            ))),
            None => {
                println!("no runs yet in {}", args.state_dir.display());
                Ok(0)
            }
        };
    }
    let store = SqliteStore::open(&state.runs()).map_err(failed)?;
    match args.run {
        Some(id) => {
            let run = store
                .run(&id)
                .map_err(failed)?
                .ok_or_else(|| invalid(anyhow!("no run {id} in {}", state.runs().display())))?;
            println!("{}", serde_json::to_string_pretty(&run).map_err(failed)?);
        }
        None => {
            let filter = RunFilter {
                limit: args.limit,
                ..RunFilter::default()
            };
            for run in store.runs(&filter).map_err(failed)? {
                println!(
                    "{}  {}  {:<8}  {}",
                    run.created_at,
                    run.identifier,
                    print::result_word(run.result),
                    run.workflow
                );
            }
        }
    }
    Ok(0)
}

/// Validates the workflow with the custom nodes' types, and their secrets against their
/// manifests.
fn load_workflow(path: &Path, manifests: &[NodeManifest]) -> Result<Workflow, Exit> {
    let types: Vec<String> = manifests.iter().map(|m| m.node_type.clone()).collect();
    let workflow = Workflow::load(path, &types).map_err(invalid)?;
    engine::check_manifests(manifests, &workflow, &path.display().to_string()).map_err(invalid)?;
    Ok(workflow)
}

fn pick_trigger<'w>(workflow: &'w Workflow, wanted: Option<&str>) -> anyhow::Result<&'w Node> {
    let triggers = workflow.triggers();
    let names = || {
        triggers
            .iter()
            .map(|t| t.identifier.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(id) => triggers
            .iter()
            .find(|t| t.identifier == id)
            .copied()
            .ok_or_else(|| anyhow!("--trigger {id}: no such trigger (triggers: {})", names())),
        None if triggers.len() == 1 => Ok(triggers[0]),
        None => Err(anyhow!(
            "the workflow has several triggers ({}): pick one with --trigger",
            names()
        )),
    }
}
