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
use super::{ConnectionFailure, Denial, EgressError, Invalid};

/// The address a connection was opened to; the client puts it in each response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VettedPeer(pub SocketAddr);

/// Why the connector opened no connection, as the gate reports it. (hyper wraps it; the gate
/// finds it in the error's sources.)
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConnectError(pub EgressError);

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
                return Err(ConnectError(EgressError::Denied(Denial::Scheme {
                    scheme: other.to_string(),
                })));
            }
        };
        let invalid =
            |reason: String| ConnectError(EgressError::InvalidRequest(Invalid::Url(reason)));
        let host = uri
            .host()
            .ok_or_else(|| invalid("URL has no host".to_string()))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        // The gate decided on this URL already; deciding again here keeps the connector safe
        // on its own, whoever hands it a URI.
        let url = url::Url::parse(&format!("{scheme}://{host}:{port}/"))
            .map_err(|err| invalid(format!("invalid host: {err}")))?;
        let Vetted { addrs, .. } = vet_destination(&self.policy, &url)
            .await
            .map_err(|refusal| ConnectError(refusal.into()))?;
        let host = url.host_str().unwrap_or(host);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let (tcp, peer) = connect_any(&addrs).await?;
        if !tls {
            return Ok(VettedStream {
                peer,
                io: Io::Plain(tcp),
            });
        }
        let tls_failure = |reason: String| {
            ConnectError(EgressError::Connection(ConnectionFailure::Tls {
                host: host.to_string(),
                reason,
            }))
        };
        let name = ServerName::try_from(bare_host.to_string())
            .map_err(|err| tls_failure(format!("invalid TLS server name: {err}")))?;
        let stream = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|err| tls_failure(err.to_string()))?;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A rule (or the default) refused the URL; its host was not looked up.
    Rule(String),
    /// The name did not resolve to any address.
    Unresolved(ConnectionFailure),
    /// One of the resolved addresses is refused.
    Address {
        reason: AddressRefusal,
        addrs: Vec<IpAddr>,
    },
}

impl From<Refusal> for EgressError {
    fn from(refusal: Refusal) -> EgressError {
        match refusal {
            Refusal::Rule(rule) => EgressError::Denied(Denial::Policy { rule }),
            Refusal::Unresolved(failure) => EgressError::Connection(failure),
            Refusal::Address { reason, .. } => EgressError::Denied(Denial::Address(reason)),
        }
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
    let addrs = resolved.map_err(|err| {
        Refusal::Unresolved(ConnectionFailure::Unresolved {
            host: host.clone(),
            reason: err.to_string(),
        })
    })?;
    if addrs.is_empty() {
        return Err(Refusal::Unresolved(ConnectionFailure::NoAddresses { host }));
    }
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    let port = url.port_or_known_default().unwrap_or_default();
    policy
        .vet_addresses(url.scheme(), port, &ips)
        .map_err(|reason| Refusal::Address { reason, addrs: ips })?;
    Ok(Vetted { decision, addrs })
}

/// Tries the vetted addresses in the resolver's order; never looks the name up again.
/// `addrs` is not empty: vetting refuses an empty answer.
async fn connect_any(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut last_error = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are small and latency-bound; Nagle only delays them.
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Err(err) => {
                last_error = Some(ConnectionFailure::Connect {
                    addr,
                    reason: err.to_string(),
                });
            }
        }
    }
    let failure = last_error.unwrap_or_else(|| ConnectionFailure::NoAddresses {
        host: String::new(),
    });
    Err(ConnectError(EgressError::Connection(failure)))
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
