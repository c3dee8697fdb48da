//! End-to-end tests: the real `airlock` binary, real HTTP servers on 127.0.0.1, real wasm
//! components built from source, a real SQLite store.

mod support;

mod adversarial;
mod async_webhooks;
mod audit_tamper;
mod authoring;
mod crash;
mod custom_nodes;
mod demo;
mod examples;
mod flow;
mod hostile;
mod invalid;
mod platform_auth;
mod policy_cli;
mod secret_containment;
mod secrets;
mod serve;
mod spec_examples;
mod wasi_http;
