//! The egress gate: the only code in Airlock that opens sockets. Every request a node makes is
//! checked against the policy, resolved and vetted address by address, has its secret handles
//! swapped for values, and leaves exactly one audit record.

mod address;
mod check;
mod connector;
mod gate;
#[cfg(test)]
mod gate_tests;
mod pattern;
mod policy;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

pub use address::Restriction;
pub use check::{PolicyVerdict, check_url};
pub use gate::Gate;
pub use pattern::{Pattern, PatternError};
pub use policy::{AddressRefusal, Decision, DefaultRule, Policy};

/// Limits the gate enforces on every node run's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    pub timeout: Duration,
    pub max_response_bytes: u64,
    pub max_requests_per_node_run: u32,
}

impl Default for GateLimits {
    fn default() -> GateLimits {
        GateLimits {
            timeout: Duration::from_secs(30),
            max_response_bytes: 10 * 1024 * 1024,
            max_requests_per_node_run: 100,
        }
    }
}

/// Who is asking: identifies the node run in the audit log and carries its secret bindings.
#[derive(Debug)]
pub struct Caller {
    pub run: String,
    pub node_run: String,
    pub node: String,
    pub component: String,
    pub bindings: Arc<crate::secrets::Bindings>,
    pub requests_made: AtomicU32,
    /// A custom node's manifest allow list: a request must match it as well as the policy.
    /// `None` for built-in nodes, which the policy alone governs.
    pub node_allow: Option<Arc<Vec<Pattern>>>,
}

/// A request as the node sent it: secrets appear as handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: Option<u32>,
}

/// The response as the node sees it, with every echo of a secret value redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
}
