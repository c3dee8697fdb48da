//! Builds every node component under `nodes/` for wasm32-wasip2 from source, so the binary can
//! embed the built-in WEBHOOK node and tests can load the others. Nothing built is committed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../guest-target/src/target.rs"]
mod target;

use target::GUEST_TARGET;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // Not all of nodes/: the examples under nodes/examples are built by `airlock node build`
    // (their build output must not make the host rebuild).
    for watched in [
        "wit",
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "nodes/Cargo.toml",
        "nodes/Cargo.lock",
        "nodes/webhook",
        "nodes/testing",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    // The airlock-guest-target crate did this at the start of the build; checking again is
    // cheap and covers a target removed since.
    target::ensure_from_build_script();
    // One cache for guest builds under the workspace target dir, outside OUT_DIR, so that
    // switching profiles or features does not rebuild the guests.
    let guest_target_dir = root.join("target").join("guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--release")
        .arg("--quiet")
        .args(["--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(root.join("nodes").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&guest_target_dir);
    // The outer build's flags are for the host, not for wasm guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("failed to run cargo for the node components");
    if !status.success() {
        panic!("building the node components under nodes/ for {GUEST_TARGET} failed (see above)");
    }

    let built = guest_target_dir.join(GUEST_TARGET).join("release");
    for name in node_crates(&root.join("nodes")) {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let from = built.join(&file);
        let to = out_dir.join(&file);
        std::fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
        let var = format!("AIRLOCK_NODE_{}", name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", to.display());
    }
}

/// Every crate directory under `nodes/` and `nodes/testing/` (those with a Cargo.toml and a
/// `[package]`).
fn node_crates(nodes: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for dir in [nodes.to_path_buf(), nodes.join("testing")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            if text.contains("[package]") {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
}
