//! Assembling a secret-broker from its settings: the one place that knows how a
//! deployment is configured and built, so an embedder who wants "the broker
//! OpenMetadata's configuration describes" calls it instead of copying the
//! binary's wiring.
//!
//! - [`Settings`] reads a TOML file or OpenMetadata's YAML and overlays the
//!   environment (`SECRET_MANAGER`, `OM_SM_*`, `SECRET_BROKER_*`) in one place;
//! - [`backends`] is the registry of built-in backends: OpenMetadata's names,
//!   the provider component, the id style and a typed preset per backend;
//! - [`Deployment`] builds the runtime, keyring, record store, audit log, grants,
//!   providers and the [`Broker`](secret_broker::broker::Broker);
//! - [`server`] builds and runs the HTTP server with its tokens, AWS access keys
//!   and file watchers ([`Deployment::server`]).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use secret_broker_deploy::{Deployment, Settings};
//! use secret_broker_deploy::server::{ServeOptions, shutdown_signal};
//!
//! // The configuration file (if any) overlaid by the environment.
//! let deployment = Deployment::new(Settings::load(None, None)?);
//! let server = deployment.server(ServeOptions::default()).await?;
//! println!("listening on {}", server.address()?);
//! server.run(shutdown_signal()).await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod audit_secrets;
pub mod audit_store;
pub mod backends;
pub mod credentials;
pub mod data_keys;
mod deployment;
mod om_yaml;
mod owners;
pub mod schemas;
pub mod server;
mod settings;

pub use deployment::{Deployment, GRANTS, cli_caller, load_component, needed_grants};
pub use owners::RecordOwners;
pub use settings::{
    AuditTable, BUILTIN_INSTANCE, CheckpointSettings, FileSettings, LimitsConfig, ProviderConfig,
    Settings,
};
