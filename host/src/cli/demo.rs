//! `airlock demo`: runs the bundled example workflow end to end against a local receiver that
//! this command starts (inbound only, on 127.0.0.1), then shows the node results and the audit
//! trail of the run, including the request the policy denied. Needs no network.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::args::{DemoArgs, RunArgs, WorkflowArgs};
use super::{Exit, failed, invalid, print, run_cmd};
use crate::audit::{self, AuditFilter};
use crate::engine::StateDir;

/// The example policy allows exactly this port range on 127.0.0.1.
const PORTS: std::ops::RangeInclusive<u16> = 8787..=8799;

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
    let (listener, addr) = bind_receiver().await.map_err(failed)?;
    println!("receiver listening on http://{addr}\n");
    tokio::spawn(serve(listener, Arc::new(expected_token)));

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

async fn bind_receiver() -> anyhow::Result<(TcpListener, SocketAddr)> {
    for port in PORTS {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            let addr = listener.local_addr()?;
            return Ok((listener, addr));
        }
    }
    Err(anyhow!(
        "ports {}-{} on 127.0.0.1 are all busy",
        PORTS.start(),
        PORTS.end()
    ))
}

async fn serve(listener: TcpListener, token: Arc<String>) {
    let counter = Arc::new(AtomicU32::new(0));
    while let Ok((stream, _)) = listener.accept().await {
        let (token, counter) = (token.clone(), counter.clone());
        tokio::spawn(async move {
            let service =
                service_fn(move |request| receive(request, token.clone(), counter.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn receive(
    request: Request<Incoming>,
    token: Arc<String>,
    counter: Arc<AtomicU32>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let auth = match request.headers().get("authorization") {
        Some(v) if v.as_bytes() == format!("Bearer {token}").as_bytes() => {
            "secret injected by the gate: valid token"
        }
        Some(_) => "wrong token",
        None => "no Authorization header",
    };
    let body = request.into_body().collect().await?.to_bytes();
    println!(
        "  receiver <- {method} {path}  {}  ({auth})",
        String::from_utf8_lossy(&body)
    );
    let reply = match path.as_str() {
        "/resources" => {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            let name = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|b| b.get("name").cloned());
            (201, json!({ "id": format!("res_{n:04}"), "name": name }))
        }
        _ => (200, json!({ "ok": true })),
    };
    let response = Response::builder()
        .status(reply.0)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(reply.1.to_string())))
        .unwrap_or_default();
    Ok(response)
}
