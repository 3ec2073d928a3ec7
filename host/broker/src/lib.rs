//! secret-broker: the secrets manager API a metadata server embeds.
//!
//! [`Broker`](broker::Broker) wraps one provider (a sandboxed Wasm component run
//! by `secret-broker-runtime`) with the role policy, the audit log and
//! OpenMetadata's semantics: service connections, bots, ingestion pipelines and
//! workflows, whose `format: password` fields become `secret:` references.
//!
//! ```no_run
//! # async fn demo(provider: std::sync::Arc<secret_broker::ProviderHost>) -> anyhow::Result<()> {
//! use secret_broker::broker::{Broker, Caller};
//! use secret_broker::policy::{Policy, Role};
//! use secret_broker::{PutOptions, SecretValue};
//!
//! let broker = Broker::new(provider, None, Policy::default(), None);
//! let admin = Caller { name: "om-server".into(), role: Role::Admin };
//! let value = SecretValue::from_string("s3cr3t".into());
//! broker.put(&admin, "/openmetadata/database/mysql_prod/password", &value, &PutOptions::default()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod broker;
pub mod fernet_import;
pub mod openmetadata;
pub mod policy;

pub use secret_broker_runtime::{
    self as runtime, Granted, Limits, LoadError, LoadedComponent, ProviderError, ProviderHost,
    PutOptions, PutOutcome, Runtime, RuntimeOptions, SecretValue, conformance,
};
