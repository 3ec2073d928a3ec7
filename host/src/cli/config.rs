//! The CLI's configuration: a TOML file naming the provider component, its grants
//! and settings; or, without one, the embedded default in the data dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::aws_config::{self, AwsConfig};

use secret_broker::audit::{AuditLog, Salt};
use secret_broker::aws::AwsGrantBase;
use secret_broker::broker::{Broker, Caller};
use secret_broker::caps::record_store::RecordStoreGrant;
use secret_broker::keyring::Keyring;
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::policy::Policy;
use secret_broker::policy::Role;
use secret_broker::store::RecordStore;
use secret_broker::{Capability, Granted, Limits, ProviderHost, Runtime, RuntimeOptions, builtin};

/// The `[provider]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Path of the component, or `builtin:db` / `builtin:memory`.
    pub component: String,
    /// Instance name; namespaces its rows and keyring context.
    #[serde(default = "default_name")]
    pub name: String,
    /// Capabilities granted, by interface name (`keyring`, `reveal`, ...).
    #[serde(default)]
    pub grants: Vec<String>,
    /// Settings the provider reads through its `config` import.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

fn default_name() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    provider: ProviderConfig,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    store: Option<StoreConfig>,
    #[serde(default)]
    keyring: Option<KeyringConfig>,
    #[serde(default)]
    aws: Option<AwsConfig>,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    policy: Option<Policy>,
}

/// `[limits]` (TOML) or `secretBroker.limits` (YAML): what one provider instance
/// may use. Unset keys keep the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Linear memory per instance, MiB (1 to 4096; default 64).
    #[serde(default, alias = "memoryMb")]
    pub memory_mb: Option<u64>,
    /// Wall time per provider call, milliseconds (1 to 600000; default 10000).
    #[serde(default, alias = "callTimeoutMs")]
    pub call_timeout_ms: Option<u64>,
    /// Bytes one host call may receive from a provider, KiB (default 1024).
    #[serde(default, alias = "hostCallKib")]
    pub host_call_kib: Option<u64>,
    /// Bytes one provider call may pass to the host in all, KiB (default 8192).
    #[serde(default, alias = "callKib")]
    pub call_kib: Option<u64>,
}

impl LimitsConfig {
    /// The limits, checked; `section` names the table in errors.
    pub fn limits(&self, section: &str) -> anyhow::Result<Limits> {
        let mut limits = Limits::default();
        let check = |key: &str, value: u64, max: u64| -> anyhow::Result<u64> {
            if value == 0 || value > max {
                bail!("{section}.{key} = {value} is out of range: give 1 to {max}");
            }
            Ok(value)
        };
        if let Some(mb) = self.memory_mb {
            limits.memory_bytes = (check("memory_mb", mb, 4096)? << 20) as usize;
        }
        if let Some(ms) = self.call_timeout_ms {
            limits.call_timeout =
                std::time::Duration::from_millis(check("call_timeout_ms", ms, 600_000)?);
        }
        if let Some(kib) = self.host_call_kib {
            limits.host_call_bytes = (check("host_call_kib", kib, 1 << 20)? << 10) as usize;
        }
        if let Some(kib) = self.call_kib {
            limits.call_bytes = (check("call_kib", kib, 1 << 20)? << 10) as usize;
        }
        if limits.host_call_bytes > limits.call_bytes {
            bail!(
                "{section}.host_call_kib is larger than {section}.call_kib: one host call \
                 cannot carry more than the whole provider call"
            );
        }
        Ok(limits)
    }
}

/// The `[keyring]` table: where the master keys live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringConfig {
    /// A key file (`VERSION:BASE64` per line, mode 0600), created if missing.
    pub key_file: PathBuf,
}

/// The `[store]` table: the database behind the `record-store` grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH?mode=rwc`, `postgres://...` or `mysql://...`.
    pub url: String,
}

/// What every command needs: the data dir, the runtime, and the provider config.
pub struct Context {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The configured provider; `None` means the embedded default.
    pub provider: Option<ProviderConfig>,
    /// The store URL; `None` means SQLite in the data dir.
    pub store_url: Option<String>,
    /// The configured key file; `None` means `master.key` in the data dir.
    pub key_file: Option<PathBuf>,
    /// The `[aws]` table, or `parameters` of the YAML file.
    pub aws: Option<AwsConfig>,
    /// `secretsManager` from the YAML file (`SECRET_MANAGER` wins).
    pub manager: Option<String>,
    /// `prefix` from the YAML file (`SECRET_MANAGER_PREFIX` wins).
    pub om_prefix: Option<String>,
    /// `tags` from the YAML file (`SECRET_MANAGER_TAGS` wins).
    pub tags: Option<String>,
    /// What each provider instance may use.
    pub limits: Limits,
    /// The role table.
    pub policy: Policy,
    /// The master keyring once loaded: every grant of this process shares it, so
    /// a reload reaches them all.
    keyring: std::sync::OnceLock<Arc<Keyring>>,
}

impl Context {
    /// Reads the configuration file, if any, and settles the data dir.
    pub fn new(config: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(path) =
            config.filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        {
            return Self::from_yaml(path, data_dir);
        }
        let mut file = match config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config {}", path.display()))?;
                let parsed: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("in config {}", path.display()))?;
                Some(parsed)
            }
            None => None,
        };
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .or_else(|| file.as_ref().and_then(|f| f.data_dir.clone()))
            .unwrap_or_else(default_data_dir);
        let store_url = std::env::var("SECRET_BROKER_STORE_URL").ok().or_else(|| {
            file.as_ref()
                .and_then(|f| f.store.as_ref().map(|s| s.url.clone()))
        });
        let key_file = file
            .as_ref()
            .and_then(|f| f.keyring.as_ref().map(|k| k.key_file.clone()));
        let aws = file.as_mut().and_then(|f| f.aws.take());
        let limits = match &file {
            Some(f) => f.limits.limits("limits").with_context(|| {
                format!(
                    "in config {}",
                    config.map_or(Path::new(""), |p| p).display()
                )
            })?,
            None => Limits::default(),
        };
        let policy = file.as_ref().and_then(|f| f.policy).unwrap_or_default();
        Ok(Context {
            keyring: std::sync::OnceLock::new(),
            limits,
            policy,
            data_dir,
            provider: file.map(|f| f.provider),
            store_url,
            key_file,
            aws,
            manager: None,
            om_prefix: None,
            tags: None,
        })
    }

    /// A configuration in OpenMetadata's YAML shape.
    fn from_yaml(path: &Path, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let file = super::om_yaml::parse(&text)
            .with_context(|| format!("in config {}", path.display()))?;
        let sm = file.secrets_manager_configuration;
        if let Some(manager) = &sm.secrets_manager {
            aws_config::provider_for(manager.trim()).with_context(|| {
                format!(
                    "in config {}: secretsManagerConfiguration.secretsManager",
                    path.display()
                )
            })?;
        }
        let broker = file.secret_broker;
        let limits = broker
            .limits
            .limits("secretBroker.limits")
            .with_context(|| format!("in config {}", path.display()))?;
        Ok(Context {
            keyring: std::sync::OnceLock::new(),
            limits,
            policy: broker.policy.unwrap_or_default(),
            data_dir: data_dir
                .map(Path::to_path_buf)
                .or(broker.data_dir)
                .unwrap_or_else(default_data_dir),
            provider: broker.provider,
            store_url: std::env::var("SECRET_BROKER_STORE_URL")
                .ok()
                .or(broker.store_url),
            key_file: broker.key_file,
            aws: sm.parameters,
            manager: sm
                .secrets_manager
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty()),
            om_prefix: sm.prefix.filter(|p| !p.trim().is_empty()),
            tags: sm.tags.map(|t| t.as_text()),
        })
    }

    /// The broker on `provider`, with this context's policy and the audit log in
    /// the data dir (`audit.log`, HMACs keyed by `audit.salt`).
    pub fn broker(
        &self,
        provider: Arc<ProviderHost>,
        manager: Option<SecretsManager>,
    ) -> anyhow::Result<Broker> {
        let audit = AuditLog::open(&self.audit_log(), self.audit_salt()?)?;
        Ok(Broker::new(
            provider,
            manager,
            self.policy,
            Some(Arc::new(audit)),
        ))
    }

    /// This deployment's audit salt (`audit.salt` in the data dir, created once).
    pub fn audit_salt(&self) -> anyhow::Result<Salt> {
        Ok(Salt::load_or_create(&self.data_dir.join("audit.salt"))?)
    }

    /// The audit log file.
    pub fn audit_log(&self) -> PathBuf {
        self.data_dir.join("audit.log")
    }

    /// The runtime, caching compiled components in the data dir.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        Runtime::new(RuntimeOptions {
            cache_dir: Some(self.data_dir.join("cache")),
            limits: self.limits.clone(),
            ..RuntimeOptions::default()
        })
    }

    /// Whether the master keys come from `SECRET_BROKER_MASTER_KEY`.
    pub fn master_key_from_env(&self) -> bool {
        std::env::var_os("SECRET_BROKER_MASTER_KEY").is_some()
    }

    /// The key file used when the environment supplies no key: `[keyring] key_file`
    /// from the configuration, else `master.key` in the data dir.
    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The master keyring: `SECRET_BROKER_MASTER_KEY`, or the key file in the data
    /// dir, generated on first use with a warning.
    pub fn keyring(&self) -> anyhow::Result<Arc<Keyring>> {
        if let Some(ring) = self.keyring.get() {
            return Ok(ring.clone());
        }
        let ring = self.load_keyring()?;
        Ok(self.keyring.get_or_init(|| ring).clone())
    }

    /// The keyring, if a grant has loaded it.
    pub fn loaded_keyring(&self) -> Option<Arc<Keyring>> {
        self.keyring.get().cloned()
    }

    fn load_keyring(&self) -> anyhow::Result<Arc<Keyring>> {
        if let Ok(spec) = std::env::var("SECRET_BROKER_MASTER_KEY") {
            return Ok(Arc::new(
                Keyring::parse(&spec).context("in SECRET_BROKER_MASTER_KEY")?,
            ));
        }
        let path = self.key_file();
        let (ring, created) = Keyring::load_or_create(&path)?;
        if created && self.key_file.is_none() {
            tracing::warn!(
                path = %path.display(),
                "generated a new master key; production deployments should supply their own \
                 (SECRET_BROKER_MASTER_KEY) and keep it outside the data dir"
            );
        }
        Ok(Arc::new(ring))
    }

    /// The SQLite file of the embedded default.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("secrets.db")
    }

    /// The record store: the configured URL, or SQLite in the data dir.
    pub async fn record_store(&self) -> anyhow::Result<Arc<RecordStore>> {
        let url = match &self.store_url {
            Some(url) => url.clone(),
            None => {
                private_sqlite_file(&self.data_dir, &self.sqlite_path())?;
                format!("sqlite://{}?mode=rwc", self.sqlite_path().display())
            }
        };
        Ok(Arc::new(RecordStore::connect(&url).await?))
    }

    /// Builds the grants named in configuration.
    pub async fn grants(
        &self,
        instance: &str,
        names: &[String],
        settings: BTreeMap<String, String>,
    ) -> anyhow::Result<Granted> {
        let mut granted = Granted {
            instance: instance.to_owned(),
            settings,
            ..Granted::default()
        };
        for name in names {
            match Capability::from_name(name) {
                Some(Capability::Keyring) => {
                    let ns = format!("provider/{instance}");
                    granted.keyring = Some(secret_broker::caps::keyring::KeyringGrant::new(
                        self.keyring()?,
                        &ns,
                    ));
                }
                Some(Capability::Reveal) => granted.reveal = true,
                Some(Capability::RecordStore) => {
                    let store = self.record_store().await?;
                    granted.records = Some(RecordStoreGrant::new(
                        store,
                        &format!("provider/{instance}"),
                    ));
                }
                Some(cap @ (Capability::AwsSecretsManager | Capability::AwsSsm)) => {
                    let settings =
                        aws_config::settings(self.aws.as_ref(), self.om_prefix.as_deref())?;
                    let base = AwsGrantBase::new(&settings).await?;
                    if cap == Capability::AwsSsm {
                        granted.grant_aws_ssm(base);
                    } else {
                        granted.grant_aws_secrets_manager(base);
                    }
                }
                None => bail!(
                    "grants: unknown capability `{name}`; known: {}",
                    Capability::ALL.map(|c| c.name()).join(", ")
                ),
            }
        }
        Ok(granted)
    }

    /// The first-party provider a `SECRET_MANAGER` name selects (`db`,
    /// `managed-aws`, `managed-aws-ssm`, `aws`, `aws-ssm`), configured from this
    /// context.
    pub async fn provider_named(
        &self,
        runtime: &Runtime,
        manager: &str,
    ) -> anyhow::Result<Arc<ProviderHost>> {
        let (component, grant) = aws_config::provider_for(manager.trim())?;
        let (component, grants) = match grant {
            "" => (
                runtime.load_bytes(component, builtin::DB)?,
                vec!["keyring".to_owned(), "record-store".to_owned()],
            ),
            "aws-secrets-manager" => (
                runtime.load_bytes(component, builtin::AWS_SECRETS_MANAGER)?,
                vec![grant.to_owned()],
            ),
            _ => (
                runtime.load_bytes(component, builtin::AWS_SSM)?,
                vec![grant.to_owned()],
            ),
        };
        let granted = self.grants("default", &grants, BTreeMap::new()).await?;
        Ok(Arc::new(
            ProviderHost::new(runtime, &component, granted).await?,
        ))
    }

    /// The configured provider, ready for calls.
    pub async fn provider(&self, runtime: &Runtime) -> anyhow::Result<Arc<ProviderHost>> {
        let Some(cfg) = &self.provider else {
            let manager = std::env::var("SECRET_MANAGER")
                .ok()
                .filter(|m| !m.trim().is_empty())
                .or_else(|| self.manager.clone())
                .unwrap_or_else(|| "db".into());
            return self.provider_named(runtime, &manager).await;
        };
        let component = match cfg.component.as_str() {
            "builtin:memory" => {
                tracing::warn!(
                    "the in-memory provider persists nothing: values vanish when this process exits"
                );
                runtime.load_bytes("builtin:memory", builtin::MEMORY)?
            }
            "builtin:db" => runtime.load_bytes("builtin:db", builtin::DB)?,
            "builtin:aws-secrets-manager" => {
                runtime.load_bytes("builtin:aws-secrets-manager", builtin::AWS_SECRETS_MANAGER)?
            }
            "builtin:aws-ssm" => runtime.load_bytes("builtin:aws-ssm", builtin::AWS_SSM)?,
            path => runtime.load_file(Path::new(path))?,
        };
        let granted = self
            .grants(&cfg.name, &cfg.grants, cfg.settings.clone())
            .await?;
        Ok(Arc::new(
            ProviderHost::new(runtime, &component, granted).await?,
        ))
    }
}

/// The CLI's caller in the audit log: the OS user, as an admin (whoever runs the
/// CLI holds the data dir and the master key).
pub fn cli_caller() -> Caller {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Caller {
        name: format!("cli:{user}"),
        role: Role::Admin,
    }
}

/// Creates the data dir (0700) and an empty database file (0600) before SQLite
/// opens it, so the store and its WAL are private to this user from the start.
fn private_sqlite_file(dir: &Path, file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", file.display())),
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("secret-broker");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/secret-broker"),
        None => PathBuf::from(".secret-broker"),
    }
}
