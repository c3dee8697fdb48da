//! Every file format Airlock reads, parsed in one place: the policy file (`airlock.toml`, with
//! its `[egress]`, `[secrets]` and `[limits]` sections) and custom node manifests (`node.toml`).
//!
//! Each section is a serde struct with `deny_unknown_fields`, parsed once into the typed values
//! the rest of the crate takes (`egress::Policy`, `sandbox::PolicyLimits`, `NodeManifest`). A
//! problem is a [`ConfigError`] naming the file, the line and the key. A new section (serve,
//! platform, signing) is one more struct here and one more field in its file's struct.

mod limits;
mod manifest;
mod policy;
mod spans;

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

pub use manifest::NodeManifest;
pub use policy::PolicyFile;

/// A problem in a config file: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based, when the problem has a place in the text.
    pub line: Option<usize>,
    /// The dotted key at fault, e.g. `limits.nodes.fetch.memory` or `egress.allow[1]`.
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A file's text and name, for parsing and for errors that point into it.
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// Reads `path`; the error names it.
    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: None,
            reason: format!("cannot read: {err}"),
        })
    }

    /// Deserializes the whole file; a type or syntax error names its line and key.
    fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|err| {
            let reason = err.message().trim().to_string();
            match err.span() {
                Some(span) => self.error_at(span, reason),
                None => self.error(None, reason),
            }
        })
    }

    /// An error about the text at `span`: its line and the key that holds it.
    pub fn error_at(&self, span: Range<usize>, reason: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: Some(spans::line_of(self.text, span.start)),
            key: spans::key_at(self.text, span.start),
            reason,
        }
    }

    /// An error about a key that has no single place in the text (e.g. a missing key).
    pub fn error(&self, key: Option<&str>, reason: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: None,
            key: key.map(str::to_owned),
            reason,
        }
    }
}
