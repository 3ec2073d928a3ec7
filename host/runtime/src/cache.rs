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
    root: PathBuf,
    dir: PathBuf,
}

/// Why a path of the cache is not trusted: deserializing an artifact runs its
/// machine code, so only files no other user could have written are loaded.
fn untrusted(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(e.to_string()),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        Some("it is a symbolic link".into())
    } else if meta.uid() != me {
        Some(format!(
            "it is owned by uid {}, not this user (uid {me})",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "it is writable by group or others (mode {:o}): `chmod go-w` it",
            meta.mode() & 0o777
        ))
    } else {
        None
    }
}

impl ArtifactCache {
    /// A cache under `dir` (created on first write) for artifacts of `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        ArtifactCache {
            root: dir.to_path_buf(),
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
        for p in [&self.root, &self.dir, &path] {
            if let Some(why) = untrusted(p) {
                tracing::warn!(
                    path = %p.display(),
                    "not loading precompiled artifacts from the cache: {why}; compiling instead"
                );
                return None;
            }
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
        for p in [&self.root, &self.dir] {
            if let Some(why) = untrusted(p) {
                return Err(std::io::Error::other(format!("{}: {why}", p.display())));
            }
        }
        // Written whole under a name no other writer uses, mode 0600, then
        // renamed: a reader sees the old artifact, the new one, or none.
        crate::fs::replace_private(&self.path(sha256), artifact)
    }
}
