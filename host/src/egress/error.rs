//! Why a request got no answer, typed where the gate decides it and formatted once: the node
//! (through the egress import's text or wasi:http's `ErrorCode`), the audit log and the run
//! record all read the same value.

use std::net::SocketAddr;

use super::node_run::OverBudget;
use super::policy::AddressRefusal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("denied: {0}")]
    Denied(Denial),
    #[error("invalid request: {0}")]
    InvalidRequest(Invalid),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(ConnectionFailure),
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    #[error("cancelled: the node run ended before the request finished")]
    Cancelled,
}

/// A rule said no. Each variant names the rule or limit that decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The policy's URL rules: `rule` is the one that matched, or the default.
    #[error("{rule}")]
    Policy { rule: String },
    #[error("node manifest does not allow {origin}")]
    NodeManifest { origin: String },
    /// Only http and https are ever sent.
    #[error("scheme `{scheme}` is not allowed")]
    Scheme { scheme: String },
    /// A resolved address of an allowed name is refused.
    #[error(transparent)]
    Address(#[from] AddressRefusal),
    #[error("request limit of {limit} egress requests per node run exceeded")]
    RequestLimit { limit: u32 },
    /// A secret's handle in a request to a host outside the secret's scope.
    #[error("secret {secret} is not allowed for {host}")]
    SecretScope { secret: String, host: String },
    /// A secret's value itself (not its handle) in a request to a host outside its scope.
    #[error(
        "the value of secret {secret} (not its handle) is in the request {place}, and {secret} is not allowed for {host}"
    )]
    CarriedValue {
        secret: String,
        place: &'static str,
        host: String,
    },
    /// An earlier request of the node run carried a secret's value out of its scope.
    #[error(
        "no request is sent after one of this node run carried a secret's value where it may not go"
    )]
    AfterCarriedValue,
}

/// A request that cannot be sent as written, by the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{0}")]
    Method(String),
    #[error("{0}")]
    Url(String),
    #[error("URL of {bytes} bytes exceeds the URL length limit of {limit} bytes")]
    UrlTooLong { bytes: usize, limit: usize },
    #[error("{count} headers exceed the header count limit of {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("headers of {bytes} bytes exceed the header size limit of {limit} bytes")]
    HeadersTooLarge { bytes: usize, limit: usize },
    #[error("{0}")]
    Header(String),
    #[error("{0}")]
    Body(String),
}

/// The destination could not be reached, or the exchange broke off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionFailure {
    #[error("cannot resolve {host}: {reason}")]
    Unresolved { host: String, reason: String },
    #[error("{host} resolved to no addresses")]
    NoAddresses { host: String },
    #[error("connect to {addr} failed: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    /// The exchange failed after the connection was made.
    #[error("{0}")]
    Exchange(String),
    /// No answer reaches a node unless its record is written.
    #[error("the request could not be audited: {0}")]
    Unaudited(String),
}

impl EgressError {
    /// The same error with `scrub` applied to every text that came from the request or a
    /// server: what the node and the audit log are told must not carry a secret.
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> EgressError {
        match self {
            EgressError::Denied(denial) => EgressError::Denied(denial.scrubbed(scrub)),
            EgressError::InvalidRequest(invalid) => {
                EgressError::InvalidRequest(invalid.scrubbed(scrub))
            }
            EgressError::Connection(failure) => EgressError::Connection(failure.scrubbed(scrub)),
            other => other,
        }
    }
}

impl Denial {
    fn scrubbed(self, scrub: impl Fn(&str) -> String) -> Denial {
        match self {
            Denial::NodeManifest { origin } => Denial::NodeManifest {
                origin: scrub(&origin),
            },
            Denial::Scheme { scheme } => Denial::Scheme {
                scheme: scrub(&scheme),
            },
            Denial::SecretScope { secret, host } => Denial::SecretScope {
                secret,
                host: scrub(&host),
            },
            Denial::CarriedValue {
                secret,
                place,
                host,
            } => Denial::CarriedValue {
                secret,
                place,
                host: scrub(&host),
            },
            // Policy rules and addresses come from the policy file and the resolver.
            other @ (Denial::Policy { .. }
            | Denial::Address(_)
            | Denial::RequestLimit { .. }
            | Denial::AfterCarriedValue) => other,
        }
    }
}

impl Invalid {
    fn scrubbed(self, scrub: impl Fn(&str) -> String) -> Invalid {
        match self {
            Invalid::Method(text) => Invalid::Method(scrub(&text)),
            Invalid::Url(text) => Invalid::Url(scrub(&text)),
            Invalid::Header(text) => Invalid::Header(scrub(&text)),
            Invalid::Body(text) => Invalid::Body(scrub(&text)),
            sizes @ (Invalid::UrlTooLong { .. }
            | Invalid::TooManyHeaders { .. }
            | Invalid::HeadersTooLarge { .. }) => sizes,
        }
    }
}

impl ConnectionFailure {
    fn scrubbed(self, scrub: impl Fn(&str) -> String) -> ConnectionFailure {
        match self {
            ConnectionFailure::Unresolved { host, reason } => ConnectionFailure::Unresolved {
                host: scrub(&host),
                reason: scrub(&reason),
            },
            ConnectionFailure::NoAddresses { host } => {
                ConnectionFailure::NoAddresses { host: scrub(&host) }
            }
            ConnectionFailure::Connect { addr, reason } => ConnectionFailure::Connect {
                addr,
                reason: scrub(&reason),
            },
            ConnectionFailure::Tls { host, reason } => ConnectionFailure::Tls {
                host: scrub(&host),
                reason: scrub(&reason),
            },
            ConnectionFailure::Exchange(text) => ConnectionFailure::Exchange(scrub(&text)),
            ConnectionFailure::Unaudited(text) => ConnectionFailure::Unaudited(scrub(&text)),
        }
    }
}
