//! secret-broker: the secrets manager API a metadata server embeds.
//!
//! [`Broker`](broker::Broker) wraps one provider (a sandboxed Wasm component run
//! by `secret-broker-runtime`) with the role policy, the audit log and
//! OpenMetadata's semantics: service connections, bots, ingestion pipelines and
//! workflows, whose `format: password` fields become `secret:` references.
//!
//! ```
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use secret_broker::broker::{Broker, Caller};
//! use secret_broker::policy::{Policy, Role};
//! use secret_broker::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! let component = runtime.load_bytes("memory", secret_broker_builtin::MEMORY)?;
//! let provider = Arc::new(ProviderHost::new(&runtime, &component, Granted::new("demo")).await?);
//!
//! // The default role table: only admins read and write secrets.
//! let broker = Broker::new(provider, None, Policy::default(), None);
//! let admin = Caller { name: "om-server".into(), role: Role::Admin };
//! let viewer = Caller { name: "viewer".into(), role: Role::User };
//! let id = "/openmetadata/database/mysql_prod/password";
//! let value = SecretValue::from_string("s3cr3t".into());
//! broker.put(&admin, id, &value, &PutOptions::default()).await?;
//! assert!(broker.get(&admin, id).await?.is_some_and(|v| v.ct_eq(&value)));
//! assert!(broker.get(&viewer, id).await.is_err());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod broker;
pub mod fernet_import;
pub mod openmetadata;
pub mod policy;
pub mod wipe;

pub use secret_broker_runtime::{
    self as runtime, Granted, Limits, LoadError, LoadedComponent, ProviderError, ProviderHost,
    PutOptions, PutOutcome, Runtime, RuntimeOptions, SecretValue, conformance,
};
