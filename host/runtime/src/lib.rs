//! The secret-broker runtime: load provider components, link them with exactly
//! the capabilities granted, and call them under limits.
//!
//! This crate holds the engine and its artifact cache, component checks, the
//! provider host (instance pool, limits, deadlines, trap handling), secret
//! handles, the scrubber, and the shape every capability follows ([`caps`]). It
//! knows no backend: keyrings, record stores and AWS clients are capability
//! crates of their own, and an embedder adds its own the same way (see
//! `examples/embedder.rs`).
//!
//! ```
//! # async fn demo() -> anyhow::Result<()> {
//! use secret_broker_runtime::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! // Any provider component: here the in-memory one that ships with the binary.
//! let component = runtime.load_bytes("memory", secret_broker_builtin::MEMORY)?;
//! let provider = ProviderHost::new(&runtime, &component, Granted::new("demo")).await?;
//!
//! let value = SecretValue::from_string("s3cr3t".into());
//! provider.put("/openmetadata/database/mysql_prod/password", &value, &PutOptions::default()).await?;
//! let back = provider.get("/openmetadata/database/mysql_prod/password").await?;
//! assert!(back.is_some_and(|v| v.ct_eq(&value)));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
#![deny(missing_docs)]

#[allow(missing_docs)]
pub mod bindings;
mod cache;
pub mod caps;
pub mod conformance;
mod deadline;
pub mod fs;
mod output;
pub mod paging;
pub mod provider;
pub mod runtime;
pub mod scrub;
pub mod secret;
pub mod state;

pub use caps::{Grant, Granted, HostCalls, PACKAGE, VERSION};
pub use provider::{ListPage, ProviderError, ProviderHost, ProviderInfo, PutOptions, PutOutcome};
pub use runtime::{LoadError, LoadedComponent, Runtime, RuntimeOptions};
pub use secret::{SecretValue, WipingBuf};
pub use secret_broker_idrules::IdRules;
pub use state::{HostState, Limits};

/// Re-exported so capability crates and embedders link against the same wasmtime.
pub use wasmtime;
