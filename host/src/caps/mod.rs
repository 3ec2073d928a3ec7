//! Capabilities: the host interfaces a provider may import. One module per WIT
//! interface. `types`, `log` and `config` are linked for every provider; each
//! other interface only when the provider's configuration grants it.

/// Inside a host function returning `wasmtime::Result<Result<T, Error>>`: the
/// value of an `Ok`, or the guest-visible error returned as is.
macro_rules! try_grant {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

pub mod aws_secrets_manager;
pub mod aws_ssm;
pub mod config;
pub mod keyring;
pub mod log;
pub mod record_store;
pub mod reveal;
pub mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use wasmtime::component::Linker;

use crate::state::HostState;

/// The WIT package every capability and the provider interface belong to.
pub const PACKAGE: &str = "secret-broker:provider";
/// The version of that package this host serves.
pub const VERSION: &str = "0.1.0";

/// A capability that must be granted explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// `keyring`: seal and open values with the deployment's master keys.
    Keyring,
    /// `record-store`: versioned rows in the host's database.
    RecordStore,
    /// `aws-secrets-manager`: an AWS Secrets Manager client scoped to a prefix.
    AwsSecretsManager,
    /// `aws-ssm`: an AWS SSM Parameter Store client scoped to a prefix.
    AwsSsm,
    /// `reveal`: plaintext of secret handles.
    Reveal,
}

impl Capability {
    /// Every grantable capability.
    pub const ALL: [Capability; 5] = [
        Capability::Keyring,
        Capability::RecordStore,
        Capability::AwsSecretsManager,
        Capability::AwsSsm,
        Capability::Reveal,
    ];

    /// The WIT interface name, which is also the grant's key in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Keyring => "keyring",
            Capability::RecordStore => "record-store",
            Capability::AwsSecretsManager => "aws-secrets-manager",
            Capability::AwsSsm => "aws-ssm",
            Capability::Reveal => "reveal",
        }
    }

    /// Looks a capability up by its interface name.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The fully qualified import name, as it appears in a component.
    pub fn import_name(self) -> String {
        format!("{PACKAGE}/{}@{VERSION}", self.name())
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Interfaces of the package linked for every provider.
pub const ALWAYS_LINKED: [&str; 3] = ["types", "log", "config"];

/// What one provider instance was granted, resolved from its configuration.
#[derive(Default)]
pub struct Granted {
    /// The instance name, for logs.
    pub instance: String,
    /// Settings readable through the `config` interface.
    pub settings: BTreeMap<String, String>,
    /// The keyring, with this instance's namespace.
    pub keyring: Option<keyring::KeyringGrant>,
    /// AWS Secrets Manager, scoped to a prefix.
    pub aws_secrets_manager: Option<aws_secrets_manager::SecretsManagerGrant>,
    /// AWS SSM Parameter Store, scoped to a prefix.
    pub aws_ssm: Option<aws_ssm::SsmGrant>,
    /// The record store, with this instance's namespace.
    pub records: Option<record_store::RecordStoreGrant>,
    /// Whether `reveal` is granted.
    pub reveal: bool,
}

impl Granted {
    /// Grants AWS Secrets Manager on `base`, and tells the provider its scope in
    /// the `prefix` setting so it never asks for names outside it.
    pub fn grant_aws_secrets_manager(&mut self, base: crate::aws::AwsGrantBase) {
        self.settings.insert("prefix".into(), base.prefix.clone());
        self.aws_secrets_manager = Some(aws_secrets_manager::SecretsManagerGrant::new(base));
    }

    /// Grants SSM Parameter Store on `base`, with its scope in the `prefix` setting.
    pub fn grant_aws_ssm(&mut self, base: crate::aws::AwsGrantBase) {
        self.settings.insert("prefix".into(), base.prefix.clone());
        self.aws_ssm = Some(aws_ssm::SsmGrant::new(base));
    }

    /// The capabilities this grant links.
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut caps = Vec::new();
        if self.keyring.is_some() {
            caps.push(Capability::Keyring);
        }
        if self.records.is_some() {
            caps.push(Capability::RecordStore);
        }
        if self.aws_secrets_manager.is_some() {
            caps.push(Capability::AwsSecretsManager);
        }
        if self.aws_ssm.is_some() {
            caps.push(Capability::AwsSsm);
        }
        if self.reveal {
            caps.push(Capability::Reveal);
        }
        caps
    }
}

/// Builds the linker for one grant: locked-down WASI, the always-linked
/// interfaces, and exactly the granted capabilities.
pub fn linker(
    engine: &wasmtime::Engine,
    granted: &Arc<Granted>,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    types::add_to_linker(&mut linker)?;
    log::add_to_linker(&mut linker)?;
    config::add_to_linker(&mut linker)?;
    for cap in granted.capabilities() {
        match cap {
            Capability::Keyring => keyring::add_to_linker(&mut linker)?,
            Capability::Reveal => reveal::add_to_linker(&mut linker)?,
            Capability::RecordStore => record_store::add_to_linker(&mut linker)?,
            Capability::AwsSecretsManager => aws_secrets_manager::add_to_linker(&mut linker)?,
            Capability::AwsSsm => aws_ssm::add_to_linker(&mut linker)?,
        }
    }
    Ok(linker)
}
