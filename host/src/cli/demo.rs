//! `airlock demo`: runs the bundled example workflow end to end against a local receiver that
//! this command starts (inbound only, on 127.0.0.1), then shows the node results and the audit
//! trail of the run, including the request the policy denied. Needs no network.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};

use super::args::{DemoArgs, RunArgs, WorkflowArgs};
use super::{Exit, failed, invalid, print, run_cmd};
use crate::audit::{self, AuditFilter};
use crate::demo_receiver;
use crate::engine::StateDir;

pub(crate) async fn demo(args: DemoArgs) -> Result<u8, Exit> {
    let examples = &args.examples;
    let file = |name: &str| examples.join(name);
    if !file("deploy.json").exists() {
        return Err(invalid(anyhow!(
            "{}: not found; run the demo from the repository root or pass --examples DIR",
            file("deploy.json").display()
        )));
    }
    let expected_token = demo_token(&file("secrets.json")).map_err(invalid)?;
    let addr = demo_receiver::start(expected_token).await.map_err(failed)?;
    println!("receiver listening on http://{addr}\n");

    let mut inputs: Value = serde_json::from_str(
        &std::fs::read_to_string(file("inputs.json"))
            .context("reading examples/inputs.json")
            .map_err(invalid)?,
    )
    .context("examples/inputs.json")
    .map_err(invalid)?;
    inputs["receiver"] = json!(format!("http://{addr}"));
    let run_args = RunArgs {
        target: WorkflowArgs {
            workflow: file("deploy.json"),
            policy: Some(file("airlock.toml")),
            nodes: Vec::new(),
            state_dir: args.state_dir.clone(),
        },
        inputs: Some(inputs.to_string()),
        trigger: None,
        secrets: Some(file("secrets.json")),
        json: false,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let state_dir = args.state_dir.clone();
    let (run, code) = run_cmd::execute(run_args).await?;
    println!("\n{}", print::summary(&run));

    let filter = AuditFilter {
        run: Some(run.identifier.clone()),
        ..AuditFilter::default()
    };
    let audit_path = StateDir::new(&state_dir).audit();
    let records = audit::read(&audit_path, &filter).map_err(failed)?;
    println!("audit trail ({}, this run):", audit_path.display());
    print!("{}", audit::format_table(&records));
    let intact = audit::verify(&audit_path).map_err(failed)?;
    println!("\naudit chain intact: {intact} records (airlock audit verify)");
    Ok(code)
}

/// The demo secret, so the receiver can say whether the gate put it in (without printing it).
fn demo_token(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secrets: Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    secrets["receiver-token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{}: no \"receiver-token\" secret", path.display()))
}
