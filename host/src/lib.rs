//! Airlock: runs Port-style workflow files whose action nodes are sandboxed WebAssembly
//! components. Each capability lives in its own module with a narrow interface; only `sandbox`
//! touches wasmtime and only `egress` opens sockets (`demo_receiver`, the demo's local
//! server, is the one exception).

pub mod api;
pub mod audit;
pub mod authoring;
pub mod cli;
pub mod conductor;
pub mod config;
pub mod demo_receiver;
pub mod egress;
pub mod engine;
pub mod sandbox;
pub mod secrets;
pub mod store;
mod sync;
pub mod template;
pub mod time;
pub mod workflow;
