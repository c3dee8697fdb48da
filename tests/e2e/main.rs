//! End-to-end tests: the real `airlock` binary, real HTTP servers on 127.0.0.1, real wasm
//! components built from source, a real SQLite store.

mod support;

mod flow;
mod invalid;
mod secrets;
mod spec_examples;
