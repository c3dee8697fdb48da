//! The only code that touches wasmtime. One [`Sandbox`] (one `Engine`) per process; a node's
//! component is compiled once, cached on disk by digest, and pre-linked (`InstancePre`); each
//! node run gets a fresh `Store` with WASI granting nothing, its own limits, and the egress gate
//! as its only way out.

mod cache;
mod cpu;
mod host;
mod http;
mod inspect;
mod limits;
mod logs;
mod pool;

use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

pub use inspect::{ComponentReport, ImportReport};
pub use limits::{Breach, LimitOverrides, NodeFailure, NodeLimits, PolicyLimits, cap_error};
pub use logs::{LogLevel, LogLine};
pub use pool::Slots;

use crate::egress::{Caller, Gate};
use host::NodeState;

wasmtime::component::bindgen!({
    world: "action-node",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// How often the epoch ticks; the CPU-time limit is checked at this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what}: not a WebAssembly component this host can run: {reason}")]
    NotAComponent { what: String, reason: String },
    #[error("{what}: does not implement the airlock:node/action-node world: {reason}")]
    WrongWorld { what: String, reason: String },
    /// The component imports an interface this host does not provide: it cannot run here.
    #[error(
        "{what}: imports `{import}`, which this host does not provide (`airlock node inspect` lists what a component imports and what the host provides)"
    )]
    UnsupportedImport { what: String, import: String },
    #[error("setting up the WebAssembly engine: {0:#}")]
    Engine(#[source] wasmtime::Error),
    #[error("component cache {path}: {reason}")]
    Cache { path: String, reason: String },
}

/// The process's WebAssembly engine with its linker and compile cache.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<NodeState>,
    cache: cache::CompileCache,
    /// One permit per instance slot: a node run beyond the pool's capacity waits for a slot
    /// rather than failing to instantiate (and without the pool, as many hold an instance).
    slots: Semaphore,
}

/// A loaded node component, ready to instantiate cheaply for each node run.
#[derive(Clone)]
pub struct NodeComponent {
    digest: String,
    pre: ActionNodePre<NodeState>,
}

impl NodeComponent {
    /// `sha256:<hex>` of the component's bytes; recorded in every audit record it causes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// One node run's input.
pub struct Invocation {
    pub workflow: String,
    pub node: String,
    /// The node's rendered config, as JSON text.
    pub config: String,
    /// Identity and secret bindings the egress gate needs for this node run.
    pub caller: Caller,
    pub limits: NodeLimits,
}

/// What a node run produced: its output or the reason it failed, and its logs.
pub struct NodeOutcome {
    /// The node's output, checked against its limits and parsed as JSON.
    pub result: Result<serde_json::Value, NodeFailure>,
    pub logs: Vec<LogLine>,
}

impl Sandbox {
    /// `cache_dir` holds compiled components (files this host wrote, keyed by content digest
    /// and engine compatibility hash); `slots` is how many node runs may hold an instance at once.
    pub fn new(cache_dir: &Path, slots: Slots) -> Result<Sandbox, SandboxError> {
        let engine = pool::new_engine(slots).map_err(SandboxError::Engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(SandboxError::Engine)?;
        // A node's standard HTTP client (wasi:http) is served by the egress gate too.
        http::add_to_linker(&mut linker).map_err(SandboxError::Engine)?;
        ActionNode::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(SandboxError::Engine)?;
        spawn_epoch_ticker(&engine);
        let cache = cache::CompileCache::new(cache_dir, &engine)?;
        Ok(Sandbox {
            engine,
            linker,
            cache,
            slots: Semaphore::new(slots.count() as usize),
        })
    }

    /// Compiles (or loads from the cache) and pre-links a component. `what` names it in errors.
    pub fn load(&self, what: &str, bytes: &[u8]) -> Result<NodeComponent, SandboxError> {
        let digest = digest(bytes);
        let component = self
            .cache
            .load_or_compile(&self.engine, what, &digest, bytes)?;
        let pre = self.prelink(what, &component)?;
        Ok(NodeComponent { digest, pre })
    }

    /// Links a compiled component against what the host provides: refused when it imports
    /// anything else, or does not export the action node's `run`.
    fn prelink(
        &self,
        what: &str,
        component: &Component,
    ) -> Result<ActionNodePre<NodeState>, SandboxError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| inspect::link_error(what, &e))?;
        ActionNodePre::new(instance_pre).map_err(|e| SandboxError::WrongWorld {
            what: what.into(),
            reason: format!("{e:#}"),
        })
    }

    /// Runs one node run in a fresh store. Never panics or errors: whatever the node does, the
    /// outcome says what happened.
    pub async fn run(
        &self,
        component: &NodeComponent,
        gate: Arc<Gate>,
        call: Invocation,
    ) -> NodeOutcome {
        let limits = call.limits.clone();
        let context = Context {
            workflow: call.workflow,
            run: call.caller.run.clone(),
            node_run: call.caller.node_run.clone(),
            node: call.node,
        };
        // Never closed, so acquiring cannot fail; the permit is held until the store is gone.
        let _slot = self.slots.acquire().await;
        let state = NodeState::new(gate, call.caller, limits.clone());
        let clock = Arc::clone(&state.cpu);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| {
            let state = store.data();
            Ok(limits::cpu_deadline(state.cpu.used(), &state.limits))
        });

        let attempt = {
            let node_run = pin!(async {
                let node = component.pre.instantiate_async(&mut store).await?;
                node.call_run(&mut store, &context, &call.config).await
            });
            tokio::time::timeout(limits.wall_time, clock.meter(node_run)).await
        };
        let result = match attempt {
            Err(_) => Err(Breach::WallTime {
                limit: limits.wall_time,
            }
            .into()),
            Ok(Err(trap)) => Err(limits::explain_trap(&trap, &limits)),
            Ok(Ok(Err(message))) => Err(NodeFailure::Reported(message)),
            Ok(Ok(Ok(output))) => limits::check_output(output, &limits),
        };
        // The engine scrubs the result and logs of secrets, with everything else a node run
        // leaves behind.
        let state = store.into_data();
        let outcome = NodeOutcome {
            result,
            logs: state.logs.take(),
        };
        // The node run is over: requests it left in flight are cut short, wasi:http requests
        // whose bodies were never finished are dropped, and all of them are audited first.
        let flights = Arc::clone(&state.caller.flights);
        flights.end();
        drop(state);
        flights.landed().await;
        outcome
    }
}

/// `sha256:<hex>` of a component's bytes.
fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Drives epoch interruption for every store of this engine. A plain thread: it must keep
/// ticking even when every tokio worker is busy running guests.
fn spawn_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("airlock-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}
