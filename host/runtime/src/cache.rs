//! On-disk cache of precompiled components, keyed by the engine's compatibility
//! hash and the component's sha256, so a provider is compiled once per engine
//! configuration and later loads are a `mmap`.

#![allow(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where precompiled artifacts live.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// A cache under `dir` (created on first write) for artifacts of `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        ArtifactCache {
            dir: dir.join(format!("{:016x}", hasher.finish())),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// The cached component for `sha256`, if present and loadable. A stale or
    /// damaged artifact is removed and reported as absent.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be an artifact this engine
        // produced. The cache directory is created by this process with mode 0700,
        // files are written atomically by `store` below under the name of the
        // sha256 of their source, and the engine compatibility hash is part of the
        // directory name; wasmtime also checks the header and engine settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable precompiled artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a precompiled artifact; failures only cost a recompile next time.
    pub fn store(&self, sha256: &str, artifact: &[u8]) {
        if let Err(e) = self.try_store(sha256, artifact) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache a precompiled component");
        }
    }

    fn try_store(&self, sha256: &str, artifact: &[u8]) -> std::io::Result<()> {
        crate::fs::private_dir(&self.dir)?;
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, artifact)?;
        std::fs::rename(&tmp, self.path(sha256))
    }
}
