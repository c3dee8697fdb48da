//! Runs first in a build: installs the wasm32-wasip2 target through rustup when it is missing,
//! or stops the build with the exact command to run. See `src/target.rs`.

#[path = "src/target.rs"]
mod target;

fn main() {
    println!("cargo:rerun-if-changed=src/target.rs");
    target::ensure_from_build_script();
}
