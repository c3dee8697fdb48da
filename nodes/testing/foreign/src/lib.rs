//! Test node: implements the action-node world but also imports `acme:vault/keys`, which no
//! Airlock host provides, so loading it must fail naming that import.

use airlock_guest::{Context, Node, export_node};
use serde_json::{Value, json};

mod vault {
    wit_bindgen::generate!({
        inline: "
            package acme:vault;
            interface keys { get: func(name: string) -> string; }
            world extra { import keys; }
        ",
    });
}

struct Foreign;

impl Node for Foreign {
    fn run(_ctx: Context, _config: Value) -> Result<Value, String> {
        Ok(json!({ "key": vault::acme::vault::keys::get("root") }))
    }
}

export_node!(Foreign);
