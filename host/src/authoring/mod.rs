//! Authoring nodes in Rust, Python, JavaScript and C: `airlock node new` writes a ready project
//! (the sample node, the language's helper, the WIT contract, `node.toml`), and `airlock node
//! build` runs the language's own toolchain to turn it into the component the manifest names.
//! Nothing here touches wasmtime: loading what was built is the sandbox's job.

mod language;
mod scaffold;
mod toolchain;

use std::path::PathBuf;

use crate::config::ConfigError;

pub use language::Language;
pub use scaffold::{Scaffold, new_project};
pub use toolchain::build;

#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    #[error(
        "{dir}: already exists and is not empty; `airlock node new` needs a new or empty directory"
    )]
    NotEmpty { dir: PathBuf },
    #[error(
        "{dir}: no node type can be derived from the directory name `{name}`; pass --type UPPER_SNAKE_NAME"
    )]
    NoTypeName { dir: PathBuf, name: String },
    #[error("--type {node_type}: {reason}")]
    BadType { node_type: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir}: not a node project (found none of {markers}; `airlock node new` makes one)")]
    UnknownProject { dir: PathBuf, markers: String },
    /// `node.toml` is invalid.
    #[error(transparent)]
    Manifest(#[from] ConfigError),
    /// A Rust project's `Cargo.toml` has no readable `[package] name`.
    #[error("{path}: {reason}")]
    CargoToml { path: PathBuf, reason: String },
    /// The language's toolchain is not installed: the message says how to install it.
    #[error("building a {language} node needs `{tool}`, which is not installed: {install}")]
    MissingTool {
        language: Language,
        tool: String,
        install: String,
    },
    /// The toolchain ran and failed; its own output (already shown) says why.
    #[error("{dir}: `{command}` failed ({status})")]
    ToolFailed {
        dir: PathBuf,
        command: String,
        status: String,
    },
    #[error("{dir}: the build finished but wrote no {path}")]
    NoOutput { dir: PathBuf, path: PathBuf },
}

impl AuthoringError {
    /// Whether the input (arguments, directory, installed tools) was at fault, rather than the
    /// node's own source failing to build.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            AuthoringError::ToolFailed { .. } | AuthoringError::NoOutput { .. }
        )
    }
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuthoringError + '_ {
    move |source| AuthoringError::Io {
        path: path.to_path_buf(),
        source,
    }
}
