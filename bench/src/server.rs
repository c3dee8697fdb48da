//! The one local HTTP server both sides of every comparison talk to: hyper on 127.0.0.1,
//! keep-alive, 200 with a small JSON body. `/slow` answers after a delay, to hold requests in
//! flight for the memory measurement.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const BODY: &[u8] = br#"{"ok":true,"id":"r-1"}"#;
pub const FAST_PATH: &str = "/echo";
pub const SLOW_PATH: &str = "/slow";
/// The name of the server's threads, so that their CPU can be told apart from the sides'.
pub const SERVER_THREAD: &str = "bench-server";
pub const SLOW_DELAY: Duration = Duration::from_secs(2);

/// Counts `/slow` requests held at once, so a run can show its requests really overlapped.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

pub struct Server {
    pub base: String,
    pub port: u16,
    in_flight: Arc<InFlight>,
    // Its own runtime and thread: the server stands in for a remote service, so the engine's
    // tokio workers must not schedule it.
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start() -> anyhow::Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SERVER_THREAD)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let in_flight = Arc::new(InFlight::default());
        let counter = Arc::clone(&in_flight);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, Arc::clone(&counter)));
                    // A client closing its connection ends it; nothing to report.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Server {
            base: format!("http://127.0.0.1:{}", addr.port()),
            port: addr.port(),
            in_flight,
            _runtime: runtime,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The most `/slow` requests held at once since the last call; resets the peak.
    pub fn take_peak_in_flight(&self) -> usize {
        self.in_flight.peak.swap(0, Ordering::SeqCst)
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    in_flight: Arc<InFlight>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let slow = req.uri().path() == SLOW_PATH;
    // Read the body so that the connection stays reusable for the next request.
    let _ = req.into_body().collect().await;
    if slow {
        let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(SLOW_DELAY).await;
        in_flight.now.fetch_sub(1, Ordering::SeqCst);
    }
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
