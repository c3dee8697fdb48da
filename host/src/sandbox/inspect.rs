//! What a component is, for `airlock node inspect` and for refusing at load what cannot run
//! here: its imports (and what the host does with each), its exports, and whether it links.

use super::{Sandbox, SandboxError, digest};

/// A component as this host sees it.
#[derive(Debug)]
pub struct ComponentReport {
    pub digest: String,
    pub size: usize,
    pub imports: Vec<ImportReport>,
    pub exports: Vec<String>,
    /// `Ok` when the component is an `airlock:node/action-node` whose every import this host
    /// provides; otherwise the reason it would be refused at load.
    pub runnable: Result<(), SandboxError>,
}

#[derive(Debug)]
pub struct ImportReport {
    pub name: String,
    /// What the host gives a node for this import; `None`: the host does not provide it.
    pub provided: Option<&'static str>,
}

/// What the host links for each interface a node may import, by package and interface.
const PROVIDED: &[(&str, &str)] = &[
    (
        "airlock:node/egress",
        "the egress gate (policy, secrets, audit)",
    ),
    ("airlock:node/log", "the node run's logs"),
    ("wasi:http/", "the egress gate (policy, secrets, audit)"),
    ("wasi:clocks/", "granted"),
    ("wasi:random/", "granted"),
    ("wasi:io/", "granted (streams of what is granted)"),
    ("wasi:cli/environment", "empty: no variables, no arguments"),
    ("wasi:cli/std", "discarded output, empty input"),
    ("wasi:cli/terminal", "no terminal"),
    ("wasi:cli/exit", "ends the node run"),
    ("wasi:filesystem/", "no files: nothing is preopened"),
    ("wasi:sockets/", "every address denied"),
];

impl Sandbox {
    /// Compiles (or loads from the cache) a component and reports on it. Errs only when the
    /// bytes are not a component at all.
    pub fn inspect(&self, what: &str, bytes: &[u8]) -> Result<ComponentReport, SandboxError> {
        let digest = digest(bytes);
        let component = self
            .cache
            .load_or_compile(&self.engine, what, &digest, bytes)?;
        let runnable = self.prelink(what, &component).map(|_| ());
        let missing = match &runnable {
            Err(SandboxError::UnsupportedImport { import, .. }) => Some(import.clone()),
            _ => None,
        };
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, _)| ImportReport {
                name: name.to_string(),
                provided: match missing.as_deref() {
                    Some(import) if import == name => None,
                    _ => provided(name),
                },
            })
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Ok(ComponentReport {
            digest,
            size: bytes.len(),
            imports,
            exports,
            runnable,
        })
    }
}

fn provided(import: &str) -> Option<&'static str> {
    PROVIDED
        .iter()
        .find(|(prefix, _)| import.starts_with(prefix))
        .map(|(_, what)| *what)
}

/// Explains why a component did not link: an import the host has no implementation for is
/// named as such; anything else (a type that differs from the contract) is the wrong world.
pub(super) fn link_error(what: &str, error: &wasmtime::Error) -> SandboxError {
    let reason = format!("{error:#}");
    // wasmtime: "component imports instance `NAME`, but a matching implementation was not
    // found in the linker: ... implementation is missing".
    let import = reason
        .strip_prefix("component imports ")
        .and_then(|rest| rest.split('`').nth(1));
    match import {
        Some(import) if reason.contains("implementation is missing") => {
            SandboxError::UnsupportedImport {
                what: what.into(),
                import: import.to_string(),
            }
        }
        _ => SandboxError::WrongWorld {
            what: what.into(),
            reason,
        },
    }
}
