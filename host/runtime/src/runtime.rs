//! The runtime: one wasmtime engine (pooling allocator, epoch interruption), the
//! precompiled-artifact cache, and loading plus checking of provider components.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::ArtifactCache;
use crate::caps::{ALWAYS_LINKED, PACKAGE, VERSION, VERSIONS};
use crate::deadline::Deadlines;
use crate::state::Limits;

/// How often the epoch advances; call deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a component could not be loaded as a provider.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("{0} is not a WebAssembly file (no `\\0asm` header)")]
    NotWasm(String),
    /// A core module rather than a component.
    #[error(
        "{0} is a core WebAssembly module, not a component: build it for `wasm32-wasip2` \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule(String),
    /// wasmtime rejected it.
    #[error("{path} is not a valid component: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// wasmtime's message.
        message: String,
    },
    /// It does not export the provider interface.
    #[error(
        "{path} does not export `{PACKAGE}/provider@{VERSION}`, so it is not a secret-broker \
         provider (it exports: {exports})"
    )]
    WrongWorld {
        /// The file.
        path: String,
        /// What it does export.
        exports: String,
    },
    /// It targets another version of the contract.
    #[error(
        "{path} targets `{found}`, but this host serves `{PACKAGE}/provider@{VERSION}`: rebuild \
         the provider against secret-broker-guest-sdk {VERSION}"
    )]
    IncompatibleVersion {
        /// The file.
        path: String,
        /// The interface it names.
        found: String,
    },
    /// It imports something no host provides.
    #[error("{path} imports `{import}`, which this host does not provide")]
    UnknownImport {
        /// The file.
        path: String,
        /// The import.
        import: String,
    },
}

/// Options for the engine.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where precompiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator (fast instantiation).
    pub pooling: bool,
    /// Limits applied to every instance.
    pub limits: Limits,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            pooling: true,
            limits: Limits::default(),
        }
    }
}

/// A wasmtime engine set up for providers. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    cache: Option<ArtifactCache>,
    pub(crate) limits: Limits,
    /// Calls waiting with a deadline, woken by the epoch thread when late.
    pub(crate) deadlines: Arc<Deadlines>,
    _ticker: Arc<EpochTicker>,
}

/// A component loaded and checked against the provider world.
#[derive(Clone)]
pub struct LoadedComponent {
    pub(crate) component: Component,
    /// Where it came from, for messages.
    pub source: String,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    /// Whether it came from the precompiled cache.
    pub from_cache: bool,
    /// The capabilities it imports (full import names), each of which needs a grant.
    pub needs: Vec<String>,
    /// The WASI interfaces it imports (linked locked down).
    pub wasi_imports: Vec<String>,
}

impl LoadedComponent {
    /// The grants it needs, by name: an interface of this host's package by its
    /// interface name (`keyring`), any other import by its full name.
    pub fn grant_names(&self) -> Vec<String> {
        self.needs.iter().map(|n| grant_name(n)).collect()
    }

    /// The newest version of the contract it imports from: the world it targets
    /// (`0.2.0` for a provider that imports `http`). A component that imports only
    /// 0.1.0 interfaces is a 0.1.0 provider, whichever SDK built it.
    pub fn world_version(&self) -> &'static str {
        VERSIONS
            .iter()
            .rev()
            .find(|v| {
                let suffix = format!("@{v}");
                self.needs.iter().any(|n| n.ends_with(&suffix))
            })
            .copied()
            .unwrap_or(VERSION)
    }
}

/// The grant name of an import: `keyring` for `secret-broker:provider/keyring@0.1.0`.
pub fn grant_name(import: &str) -> String {
    import
        .strip_prefix(&format!("{PACKAGE}/"))
        .and_then(|rest| rest.split_once('@'))
        .map_or_else(|| import.to_owned(), |(iface, _)| iface.to_owned())
}

impl Runtime {
    /// Builds the engine.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        if options.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(256)
                .total_core_instances(1024)
                .total_memories(512)
                .total_tables(512)
                .total_stacks(256)
                .max_memories_per_component(4)
                .max_tables_per_component(8)
                .max_core_instances_per_component(32)
                .max_memory_size(options.limits.memory_bytes);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)
            .map_err(|e| anyhow::anyhow!("creating the wasmtime engine: {e:#}"))?;
        let cache = options
            .cache_dir
            .as_deref()
            .map(|dir| ArtifactCache::new(dir, &engine));
        // Without the ticker no call could ever time out: refuse to run at all.
        let deadlines = Arc::new(Deadlines::default());
        let ticker = Arc::new(EpochTicker::start(&engine, deadlines.clone()).map_err(|e| {
            anyhow::anyhow!("starting the epoch thread that bounds every provider call: {e}")
        })?);
        Ok(Runtime {
            engine,
            cache,
            limits: options.limits,
            deadlines,
            _ticker: ticker,
        })
    }

    /// The limits every instance runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Loads and checks the component at `path`.
    pub fn load_file(&self, path: &Path) -> Result<LoadedComponent, LoadError> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source_err| LoadError::Read {
            path: source.clone(),
            source: source_err,
        })?;
        self.load_bytes(&source, &bytes)
    }

    /// Loads and checks a component from memory; `source` names it in messages.
    pub fn load_bytes(&self, source: &str, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        check_header(source, bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => self.compile(source, &sha256, bytes)?,
        };
        let (needs, wasi_imports) = check_world(&self.engine, source, &component)?;
        Ok(LoadedComponent {
            component,
            source: source.to_owned(),
            sha256,
            from_cache,
            needs,
            wasi_imports,
        })
    }

    fn compile(&self, source: &str, sha256: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            path: source.to_owned(),
            message: format!("{e:#}"),
        };
        match &self.cache {
            Some(cache) => {
                let artifact = self.engine.precompile_component(bytes).map_err(invalid)?;
                cache.store(sha256, &artifact);
                cache
                    .load(&self.engine, sha256)
                    .map_or_else(|| Component::new(&self.engine, bytes).map_err(invalid), Ok)
            }
            None => Component::new(&self.engine, bytes).map_err(invalid),
        }
    }
}

fn check_header(source: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm(source.to_owned()));
    }
    // Core modules have version 1, layer 0; components a layer of 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule(source.to_owned()));
    }
    Ok(())
}

/// Checks the exports name the provider interface at this host's version and
/// sorts the imports into capabilities and WASI.
fn check_world(
    engine: &wasmtime::Engine,
    source: &str,
    component: &Component,
) -> Result<(Vec<String>, Vec<String>), LoadError> {
    let ty = component.component_type();
    let wanted = format!("{PACKAGE}/provider@{VERSION}");
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if !exports.contains(&wanted) {
        if let Some(other) = exports
            .iter()
            .find(|e| e.starts_with(&format!("{PACKAGE}/provider@")))
        {
            return Err(LoadError::IncompatibleVersion {
                path: source.to_owned(),
                found: other.clone(),
            });
        }
        let exports = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        return Err(LoadError::WrongWorld {
            path: source.to_owned(),
            exports,
        });
    }
    let mut needs = Vec::new();
    let mut wasi = Vec::new();
    for (name, item) in ty.imports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Err(LoadError::UnknownImport {
                path: source.to_owned(),
                import: name.to_owned(),
            });
        }
        if name.starts_with("wasi:") {
            wasi.push(name.to_owned());
            continue;
        }
        // Imports of other packages are an embedder's own capabilities: granted
        // or refused when the provider is instantiated.
        if let Some(rest) = name.strip_prefix(&format!("{PACKAGE}/")) {
            let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if !VERSIONS.contains(&version) {
                return Err(LoadError::IncompatibleVersion {
                    path: source.to_owned(),
                    found: name.to_owned(),
                });
            }
            if version == VERSION && ALWAYS_LINKED.contains(&iface) {
                continue;
            }
        }
        needs.push(name.to_owned());
    }
    needs.sort();
    Ok((needs, wasi))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine, deadlines: Arc<Deadlines>) -> std::io::Result<Self> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("secret-broker-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                    deadlines.tick(std::time::Instant::now());
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
