//! The connector under the pooled HTTP client: resolve once, vet every address, connect only to
//! a vetted address, then TLS. Because the check lives here, every pooled connection was vetted
//! when it was opened.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::policy::{AddressRefusal, Decision, Policy};

/// The address a connection was opened to; the client puts it in each response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VettedPeer(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The policy refused the destination or one of its addresses.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct VettedConnector {
    policy: Arc<Policy>,
    tls: TlsConnector,
}

impl VettedConnector {
    pub fn new(policy: Arc<Policy>) -> VettedConnector {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports rustls' default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The client speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        VettedConnector {
            policy,
            tls: TlsConnector::from(Arc::new(config)),
        }
    }
}

impl tower_service::Service<http::Uri> for VettedConnector {
    type Response = TokioIo<VettedStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(uri).await.map(TokioIo::new) })
    }
}

impl VettedConnector {
    async fn connect(self, uri: http::Uri) -> Result<VettedStream, ConnectError> {
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let tls = match scheme.as_str() {
            "http" => false,
            "https" => true,
            other => {
                return Err(ConnectError::Denied(format!(
                    "scheme `{other}` is not allowed"
                )));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| ConnectError::Failed("URL has no host".to_string()))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        // The gate decided on this URL already; deciding again here keeps the connector safe
        // on its own, whoever hands it a URI.
        let url = url::Url::parse(&format!("{scheme}://{host}:{port}/"))
            .map_err(|err| ConnectError::Failed(format!("invalid host: {err}")))?;
        let Vetted { addrs, .. } =
            vet_destination(&self.policy, &url)
                .await
                .map_err(|refusal| {
                    if refusal.is_denial() {
                        ConnectError::Denied(refusal.to_string())
                    } else {
                        ConnectError::Failed(refusal.to_string())
                    }
                })?;
        let host = url.host_str().unwrap_or(host);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let (tcp, peer) = connect_any(&addrs).await?;
        if !tls {
            return Ok(VettedStream {
                peer,
                io: Io::Plain(tcp),
            });
        }
        let name = ServerName::try_from(bare_host.to_string()).map_err(|err| {
            ConnectError::Failed(format!("invalid TLS server name {host}: {err}"))
        })?;
        let stream = self.tls.connect(name, tcp).await.map_err(|err| {
            ConnectError::Failed(format!("TLS handshake with {host} failed: {err}"))
        })?;
        Ok(VettedStream {
            peer,
            io: Io::Tls(Box::new(stream)),
        })
    }
}

/// A destination the policy allows: the URL decision and its vetted addresses, in the
/// resolver's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Vetted {
    pub decision: Decision,
    pub addrs: Vec<SocketAddr>,
}

/// Why a destination was refused before any connection was opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    /// A rule (or the default) refused the URL; its host was not looked up.
    #[error("{0}")]
    Rule(String),
    #[error("cannot resolve {host}: {reason}")]
    Unresolved { host: String, reason: String },
    #[error("{host} resolved to no addresses")]
    NoAddresses { host: String },
    /// One of the resolved addresses is refused.
    #[error("{reason}")]
    Address {
        reason: AddressRefusal,
        addrs: Vec<IpAddr>,
    },
}

impl Refusal {
    /// The policy said no (as opposed to the name not resolving).
    pub(super) fn is_denial(&self) -> bool {
        matches!(self, Refusal::Rule(_) | Refusal::Address { .. })
    }
}

/// Decides on the URL, resolves its host once, and vets every address: the decision the
/// connector acts on and `airlock policy test` reports, so the two cannot disagree.
pub(super) async fn vet_destination(policy: &Policy, url: &url::Url) -> Result<Vetted, Refusal> {
    let decision = policy.decide(url);
    if !decision.allowed {
        return Err(Refusal::Rule(decision.rule));
    }
    // `decide` refuses URLs without a host; http and https have default ports.
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let resolved = tokio::net::lookup_host((bare_host, port))
        .await
        .map(Iterator::collect);
    vet_resolved(policy, url, decision, resolved)
}

/// The part of [`vet_destination`] after the lookup: `resolved` is the resolver's answer.
pub(super) fn vet_resolved(
    policy: &Policy,
    url: &url::Url,
    decision: Decision,
    resolved: io::Result<Vec<SocketAddr>>,
) -> Result<Vetted, Refusal> {
    let host = url.host_str().unwrap_or_default().to_string();
    let addrs = resolved.map_err(|err| Refusal::Unresolved {
        host: host.clone(),
        reason: err.to_string(),
    })?;
    if addrs.is_empty() {
        return Err(Refusal::NoAddresses { host });
    }
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    let port = url.port_or_known_default().unwrap_or_default();
    policy
        .vet_addresses(url.scheme(), port, &ips)
        .map_err(|reason| Refusal::Address { reason, addrs: ips })?;
    Ok(Vetted { decision, addrs })
}

/// Tries the vetted addresses in the resolver's order; never looks the name up again.
async fn connect_any(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut last_error = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are small and latency-bound; Nagle only delays them.
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Err(err) => last_error = Some(format!("connect to {addr} failed: {err}")),
        }
    }
    Err(ConnectError::Failed(
        last_error.unwrap_or_else(|| "no address to connect to".to_string()),
    ))
}

pub struct VettedStream {
    peer: SocketAddr,
    io: Io,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for VettedStream {
    fn connected(&self) -> Connected {
        Connected::new().extra(VettedPeer(self.peer))
    }
}

impl AsyncRead for VettedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for VettedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
