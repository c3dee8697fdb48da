//! Makes sure the toolchain that builds Airlock can also build its node components, which are
//! compiled for `wasm32-wasip2` by `host/build.rs`.
//!
//! The work happens in this crate's build script, which has no dependencies and so runs at the
//! very start of a build: when the target is missing and rustup manages the toolchain, it is
//! installed (one line says so); otherwise the build stops right away with the command to run.
//! `host/build.rs` repeats the same check (it is cheap) through the same module.

pub mod target;
