//! The egress gate: the only code in Airlock that opens sockets. Every request a node makes is
//! checked against the policy, resolved and vetted address by address, has its secret handles
//! swapped for values, and leaves exactly one audit record.

mod address;
mod caps;
mod check;
mod connector;
mod error;
mod gate;
#[cfg(test)]
mod gate_tests;
mod node_run;
mod pattern;
mod platform;
mod policy;
mod reached;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

pub use address::Restriction;
pub use check::{PolicyVerdict, check_url};
pub use error::{ConnectionFailure, Denial, EgressError, Invalid};
pub use gate::{Gate, quoted_url};
pub use node_run::{BodyBudget, Flights, OverBudget, Reservation};
pub use pattern::{Pattern, PatternError};
pub use platform::{PLATFORM_API_RULE, PlatformApiError};
pub use policy::{AddressRefusal, Decision, DefaultRule, Policy};

/// Limits the gate enforces on every node run's requests. A breach names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    pub timeout: Duration,
    pub max_response_bytes: u64,
    pub max_requests_per_node_run: u32,
    pub max_url_bytes: usize,
    pub max_headers: usize,
    /// Names and values of all of a request's headers together.
    pub max_header_bytes: usize,
}

impl Default for GateLimits {
    fn default() -> GateLimits {
        GateLimits {
            timeout: Duration::from_secs(30),
            max_response_bytes: 10 * 1024 * 1024,
            max_requests_per_node_run: 100,
            max_url_bytes: 8 * 1024,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
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
    /// Bodies buffered for this node run, request and response, count against this budget.
    pub buffers: Arc<BodyBudget>,
    /// This node run's requests in flight; ended with the node run.
    pub flights: Arc<Flights>,
    /// Set when a request carried a secret's value where that secret may not go: no later
    /// request of the node run is sent. The check cannot help but answer "is the value among
    /// these?"; stopping at the first yes keeps a node from testing guesses request by request.
    pub carried_value: Arc<Mutex<bool>>,
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
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body's share of the node run's [`BodyBudget`], held until the body is dropped.
    pub held: Reservation,
}
