//! Compiled components cached on disk, keyed by the component's digest and the engine's
//! compatibility hash. Only files this host wrote are ever deserialised.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::SandboxError;

pub(super) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub(super) fn new(dir: &Path, engine: &Engine) -> Result<CompileCache, SandboxError> {
        std::fs::create_dir_all(dir).map_err(|e| SandboxError::Cache {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    pub(super) fn load_or_compile(
        &self,
        engine: &Engine,
        what: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<Component, SandboxError> {
        let hex = digest.trim_start_matches("sha256:");
        let path = self.dir.join(format!("{hex}-{}.cwasm", self.engine_key));
        if path.exists() {
            // SAFETY: the file is under our state dir, named by the digest of the component
            // we compiled into it and by this engine's compatibility hash; we wrote it.
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(component);
            }
            // A damaged cache entry is rebuilt, not fatal.
        }
        let component = Component::new(engine, bytes).map_err(|e| SandboxError::NotAComponent {
            what: what.into(),
            reason: format!("{e:#}"),
        })?;
        let cache_err = |e: String| SandboxError::Cache {
            path: path.display().to_string(),
            reason: e,
        };
        let serialized = component
            .serialize()
            .map_err(|e| cache_err(format!("{e:#}")))?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serialized).map_err(|e| cache_err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| cache_err(e.to_string()))?;
        Ok(component)
    }
}
