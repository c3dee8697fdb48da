//! The host side of the WIT contract: what a node's imports do.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::airlock::node::{egress, log};
use super::cpu::CpuClock;
use super::http::{GateHooks, GatedHttp, note_failure};
use super::limits::{Breach, MemoryLimiter, NodeLimits};
use super::logs::{LogLevel, NodeLog};
use crate::egress::{Caller, Denial, EgressError, Gate, Request};

/// Per node run store data. Dropped with the store, so nothing outlives the node run.
pub struct NodeState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    /// wasi:http requests go to the same gate, as the same caller, as the egress import.
    http_hooks: GateHooks,
    pub(super) limiter: MemoryLimiter,
    pub(super) limits: NodeLimits,
    gate: Arc<Gate>,
    pub(super) caller: Arc<Caller>,
    pub(super) logs: NodeLog,
    log_bytes: usize,
    requests_started: u32,
    /// CPU time spent running (being polled), for the CPU-time limit.
    pub(super) cpu: Arc<CpuClock>,
}

impl NodeState {
    pub(super) fn new(gate: Arc<Gate>, caller: Caller, limits: NodeLimits) -> NodeState {
        let caller = Arc::new(caller);
        let logs = NodeLog::default();
        let http_hooks = GateHooks::new(Arc::clone(&gate), Arc::clone(&caller), logs.clone());
        NodeState {
            // Nothing granted: no preopened dirs, no environment, no sockets, no stdio.
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks,
            limiter: MemoryLimiter::new(&limits),
            limits,
            gate,
            caller,
            logs,
            log_bytes: 0,
            requests_started: 0,
            cpu: Arc::new(CpuClock::new()),
        }
    }
}

impl GatedHttp for NodeState {
    /// Counts a request the node starts (egress import or wasi:http). Past its cap a node is
    /// stopped, not answered: a loop ignoring denials would otherwise spin on them. (The gate's
    /// own cap is the policy's highest.) Counted here, when the node asks, because a wasi:http
    /// request reaches the gate only later and several can be in flight.
    /// `method` and `url` are what the node asked for: a refused attempt is audited too.
    fn start_request(&mut self, method: &str, url: &str) -> wasmtime::Result<()> {
        if self.requests_started >= self.limits.max_requests {
            let denial = Denial::RequestLimit {
                limit: self.limits.max_requests,
            };
            let refusal = EgressError::Denied(denial.clone());
            self.gate.record_unsent(&self.caller, method, url, refusal);
            return Err(wasmtime::Error::new(denial));
        }
        self.requests_started += 1;
        Ok(())
    }

    fn admit(&self, head: &Request) -> Result<(), EgressError> {
        self.gate.admit(&self.caller, head)
    }

    fn record_unsent(&self, method: &str, url: &str, err: EgressError) {
        self.gate.record_unsent(&self.caller, method, url, err);
    }

    fn note_failure(&self, method: &str, url: &str, err: &EgressError) {
        note_failure(&self.logs, &self.caller.bindings, method, url, err);
    }
}

impl WasiView for NodeState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for NodeState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl egress::Host for NodeState {
    async fn send(
        &mut self,
        request: egress::Request,
    ) -> wasmtime::Result<Result<egress::Response, egress::Error>> {
        self.start_request(&request.method, &request.url)?;
        let request = Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        let result = self.gate.send(&self.caller, request).await;
        Ok(match result {
            Ok(r) => Ok(egress::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(EgressError::Denied(why)) => Err(egress::Error::Denied(why.to_string())),
            Err(EgressError::InvalidRequest(why)) => {
                Err(egress::Error::InvalidRequest(why.to_string()))
            }
            Err(EgressError::Timeout) => Err(egress::Error::Timeout),
            Err(EgressError::Connection(why)) => Err(egress::Error::Connection(why.to_string())),
            Err(EgressError::TooLarge(limit)) => Err(egress::Error::TooLarge(limit)),
            Err(EgressError::OverBudget(over)) => Err(egress::Error::TooLarge(
                u64::try_from(over.limit).unwrap_or(u64::MAX),
            )),
            Err(err @ EgressError::Cancelled) => Err(egress::Error::Connection(err.to_string())),
        })
    }
}

impl log::Host for NodeState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(message.len());
        if self.log_bytes > self.limits.max_log_bytes {
            // A flood fails the node run rather than filling memory or the store.
            return Err(wasmtime::Error::new(Breach::Logs {
                limit: self.limits.max_log_bytes,
            }));
        }
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.logs.push(level, message);
        Ok(())
    }
}
