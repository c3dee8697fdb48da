//! The demo's stand-in for the outside world: a small HTTP server on 127.0.0.1 that the bundled
//! example workflow calls, reporting what it received. The one code outside `egress` that opens
//! a socket (a listening one); nothing else in the library uses it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The example policy allows exactly this port range on 127.0.0.1.
const PORTS: std::ops::RangeInclusive<u16> = 8787..=8799;

/// Starts the receiver on the first free port of [`PORTS`]. `token` is the demo secret, so it
/// can say whether the gate put it in (without printing it).
pub async fn start(token: String) -> std::io::Result<SocketAddr> {
    let (listener, addr) = bind().await?;
    tokio::spawn(serve(listener, Arc::new(token)));
    Ok(addr)
}

async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    for port in PORTS {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            let addr = listener.local_addr()?;
            return Ok((listener, addr));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "demo receiver: ports {}-{} on 127.0.0.1 are all busy",
            PORTS.start(),
            PORTS.end()
        ),
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
