//! Write an Airlock action node in a few lines of Rust.
//!
//! A node is a type implementing [`Node`], exported with [`export_node!`]. It receives its
//! config (every template already rendered by the host) as JSON and returns its output as JSON.
//! Its only way to reach the network is [`Request::send`], which goes through the host's egress
//! gate: the gate checks the destination against the operator's policy, swaps secret handles
//! for their values (the node never sees a secret), and audits the attempt.
//!
//! ```no_run
//! use airlock_guest::{Context, Node, Request};
//! use serde_json::{json, Value};
//!
//! struct Ping;
//! impl Node for Ping {
//!     fn run(_ctx: Context, config: Value) -> Result<Value, String> {
//!         let url = airlock_guest::config_str(&config, "url")?;
//!         let response = Request::get(url).send().map_err(|e| e.to_string())?;
//!         Ok(json!({ "status": response.status }))
//!     }
//! }
//! airlock_guest::export_node!(Ping);
//! ```

mod log;
mod request;

pub use log::{debug, error, info, warn};
pub use request::{EgressError, Request, Response};
pub use serde_json;

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        world: "action-node",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_action_node",
        default_bindings_module: "airlock_guest::bindings",
    });
}

use serde_json::Value;

/// Where this node run sits: the workflow, the run, this node run and the node's identifier.
pub type Context = bindings::Context;

/// An action node. `config` is the node's `config` object from the workflow file with every
/// template rendered; the returned value becomes the node's output.
pub trait Node {
    fn run(ctx: Context, config: Value) -> Result<Value, String>;
}

/// Reads a required string field of the config, with an error that names the field.
pub fn config_str<'a>(config: &'a Value, field: &str) -> Result<&'a str, String> {
    match config.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "config.{field} must be a string, got {}",
            type_name(other)
        )),
        None => Err(format!("config.{field} is required")),
    }
}

/// The JSON type name of a value, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[doc(hidden)]
pub fn __run<N: Node>(ctx: Context, config: String) -> Result<String, String> {
    let config: Value =
        serde_json::from_str(&config).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let output = N::run(ctx, config)?;
    serde_json::to_string(&output).map_err(|e| format!("output is not serialisable: {e}"))
}

/// Exports a [`Node`] implementation as the component's `run` function.
#[macro_export]
macro_rules! export_node {
    ($node:ty) => {
        const _: () = {
            struct AirlockExport;
            impl $crate::bindings::Guest for AirlockExport {
                fn run(
                    ctx: $crate::bindings::Context,
                    config: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::__run::<$node>(ctx, config)
                }
            }
    $crate::bindings::__export_action_node!(AirlockExport with_types_in $crate::bindings);
        };
    };
}
