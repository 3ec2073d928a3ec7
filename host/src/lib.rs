//! secret-broker: a secrets manager whose storage backends are sandboxed
//! WebAssembly components ("providers") that reach the outside world only through
//! the capabilities the host grants them.
//!
//! The library is what the `secret-broker` binary is built on and what a metadata
//! server embeds. Load a provider component, grant it capabilities, and call it:
//!
//! ```
//! # async fn demo() -> anyhow::Result<()> {
//! use secret_broker::{builtin, Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! let component = runtime.load_bytes("memory", builtin::MEMORY)?;
//! let granted = Granted { instance: "demo".into(), ..Granted::default() };
//! let provider = ProviderHost::new(&runtime, &component, granted).await?;
//!
//! let value = SecretValue::from_string("s3cr3t".into());
//! provider.put("/openmetadata/database/mysql_prod/password", &value, &PutOptions::default()).await?;
//! let back = provider.get("/openmetadata/database/mysql_prod/password").await?;
//! assert!(back.is_some_and(|v| v.ct_eq(&value)));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod aws;
mod bindings;
pub mod broker;
mod cache;
pub mod caps;
pub mod conformance;
pub mod fernet_import;
pub mod idrules;
pub mod keyring;
pub mod openmetadata;
mod output;
pub mod policy;
pub mod provider;
pub mod runtime;
pub mod scrub;
pub mod secret;
pub mod server;
pub mod state;
pub mod store;

pub use caps::{Capability, Granted};
pub use provider::{ListPage, ProviderError, ProviderHost, ProviderInfo, PutOptions, PutOutcome};
pub use runtime::{LoadError, LoadedComponent, Runtime, RuntimeOptions};
pub use secret::SecretValue;
pub use state::Limits;

/// Provider components built with this host and embedded in it.
pub mod builtin {
    /// The in-memory reference provider (persists nothing).
    pub const MEMORY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/memory.wasm"));
    /// The `db` provider: keyring-sealed rows in the record store (the embedded default).
    pub const DB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/db.wasm"));
    /// The `aws-secrets-manager` provider.
    pub const AWS_SECRETS_MANAGER: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/aws-secrets-manager.wasm"));
    /// The `aws-ssm` provider.
    pub const AWS_SSM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/aws-ssm.wasm"));
}
