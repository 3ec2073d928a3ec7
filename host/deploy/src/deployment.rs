//! `Deployment`: what the commands build from [`Settings`]: the runtime, the
//! master keyring (loaded once and shared by every grant of the process, so a
//! reload reaches them all), the record store, grants, providers and the broker.
//! The grants a configuration may name are registered in one list, [`GRANTS`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use secret_broker::audit::{AuditFiles, AuditLog, AuditOptions, Salt};
use secret_broker::broker::{Broker, Caller};
use secret_broker::openmetadata::ids::IdStyle;
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::policy::Role;
use secret_broker::{Granted, ProviderHost, Runtime, RuntimeOptions};
use secret_broker_aws::{AwsGrantBase, SecretsManagerCtx, SsmCtx};
use secret_broker_http::HttpCtx;
use secret_broker_keyring::{Keyring, KeyringCtx};
use secret_broker_record_store::{RecordStore, RecordStoreCtx};
use secret_broker_runtime::SecretValue;
use secret_broker_runtime::caps::reveal::Reveal;

use crate::audit_secrets::AuditSecrets;
use crate::backends::http::HttpConfig;
use crate::backends::{self, Backend};
use crate::data_keys::{DataKeys, Kek};
use crate::settings::{ProviderConfig, Settings};

/// Every grant a configuration may name: adding a capability to the binary is
/// one entry here and one arm in [`Deployment::grant`].
pub const GRANTS: [&str; 6] = [
    "keyring",
    "record-store",
    "aws-secrets-manager",
    "aws-ssm",
    "http",
    "reveal",
];

/// The configured deployment.
pub struct Deployment {
    /// What it is configured with.
    pub settings: Settings,
    keyring: tokio::sync::OnceCell<Arc<Keyring>>,
    data_keys: tokio::sync::OnceCell<Option<Arc<DataKeys>>>,
    store: tokio::sync::OnceCell<Arc<RecordStore>>,
    audit_secrets: tokio::sync::OnceCell<Option<Arc<AuditSecrets>>>,
}

impl Deployment {
    /// The deployment `settings` describe.
    pub fn new(settings: Settings) -> Self {
        Deployment {
            settings,
            keyring: tokio::sync::OnceCell::new(),
            data_keys: tokio::sync::OnceCell::new(),
            store: tokio::sync::OnceCell::new(),
            audit_secrets: tokio::sync::OnceCell::new(),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// The broker on `provider`, with the configured policy and the audit log in
    /// the data dir (`audit.log`, HMACs keyed by `audit.salt`).
    pub fn broker(
        &self,
        provider: Arc<ProviderHost>,
        manager: Option<SecretsManager>,
    ) -> anyhow::Result<Broker> {
        Ok(Broker::new(
            provider,
            manager,
            self.settings.policy,
            Some(self.audit()?),
        ))
    }

    /// The broker this deployment describes, in one call: the configured
    /// provider (started with its grants), the role table and the audit log.
    /// Entity operations need OpenMetadata's schemas: build a
    /// [`SecretsManager`] and call [`Deployment::broker`] for those.
    pub async fn open_broker(&self) -> anyhow::Result<Broker> {
        self.audit_secrets().await?;
        let runtime = self.runtime()?;
        let provider = self.provider(&runtime).await?;
        self.broker(provider, None)
    }

    /// OpenMetadata's cluster name, the second segment of every id:
    /// `clusterName` of the configuration (`OPENMETADATA_CLUSTER_NAME`), else
    /// `openmetadata`, OpenMetadata's default.
    pub fn cluster_name(&self) -> String {
        self.settings
            .cluster_name
            .clone()
            .unwrap_or_else(|| "openmetadata".into())
    }

    /// How audit entries name the configured provider: its instance name, or the
    /// secrets manager name of a built-in.
    pub fn settings_label(&self) -> String {
        match &self.settings.provider {
            Some(config) => config
                .instance()
                .unwrap_or_else(|_| config.component.clone()),
            None => self.settings.secrets_manager.clone(),
        }
    }

    /// The audit log in the data dir, with its writer running.
    pub fn audit(&self) -> anyhow::Result<Arc<AuditLog>> {
        let read_sync = match &self.settings.audit_read_sync_env {
            Some(text) => text
                .parse()
                .map_err(|e: String| anyhow::anyhow!("SECRET_BROKER_AUDIT_READ_SYNC: {e}"))?,
            None => self.settings.audit_read_sync,
        };
        let checkpoints = self.settings.audit_checkpoints;
        let options = AuditOptions {
            read_sync,
            checkpoint_every: checkpoints.every,
            checkpoint_interval: checkpoints.interval,
            ..AuditOptions::default()
        };
        let files = self.audit_files();
        let salt = self.audit_salt()?;
        Ok(Arc::new(match self.audit_chain_url() {
            Some(url) => {
                let lock = self.data_dir().join("audit.lock");
                let mut chain = crate::audit_store::RecordChain::new(&url, &lock)
                    .with_context(|| format!("opening {}", lock.display()))?;
                if self.settings.audit_copy_to_file {
                    chain = chain.with_copy(&files.log);
                }
                AuditLog::open_store(&files.log, &files.key, Box::new(chain), salt, options)?
            }
            None => AuditLog::open_with(&files, salt, options)?,
        }))
    }

    /// The audit salt and signing key kept in the database, sealed by the
    /// keyring, when both the chain and the data keys are there: the data dir's
    /// files are made to match it the first time this is called (see
    /// [`AuditSecrets::sync`]), so replicas share them without copying.
    pub async fn audit_secrets(&self) -> anyhow::Result<Option<Arc<AuditSecrets>>> {
        self.audit_secrets
            .get_or_try_init(|| {
                Box::pin(async {
                    if !self.keys_in_store() || self.audit_chain_url().is_none() {
                        return Ok(None);
                    }
                    let secrets = AuditSecrets::new(
                        self.record_store().await?,
                        self.keyring().await?,
                        self.data_dir().join("audit.salt"),
                        self.audit_files().key,
                    );
                    secrets.sync().await?;
                    anyhow::Ok(Some(Arc::new(secrets)))
                })
            })
            .await
            .cloned()
    }

    /// The database URL the audit chain lives in, when it is in one: by
    /// default when the record store is PostgreSQL or MariaDB (`[audit] store`
    /// says otherwise).
    pub fn audit_chain_url(&self) -> Option<String> {
        let url = self.settings.store_url.as_ref()?;
        let shared = ["postgres:", "postgresql:", "mysql:", "mariadb:"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        match self.settings.audit_in_database {
            Some(false) => None,
            Some(true) => Some(url.clone()),
            None => shared.then(|| url.clone()),
        }
    }

    /// The audit log's files: the log, its signed checkpoints, the head its
    /// writers share, and the checkpoint signing key.
    pub fn audit_files(&self) -> AuditFiles {
        AuditFiles::beside(&self.audit_log())
    }

    /// This deployment's audit salt (`audit.salt` in the data dir, created with
    /// the log; missing beside a log that has entries, an error).
    pub fn audit_salt(&self) -> anyhow::Result<Salt> {
        Ok(Salt::for_log(
            &self.data_dir().join("audit.salt"),
            &self.audit_log(),
        )?)
    }

    /// The audit log file.
    pub fn audit_log(&self) -> PathBuf {
        self.data_dir().join("audit.log")
    }

    /// The runtime, caching compiled components in the data dir.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        Runtime::new(RuntimeOptions {
            cache_dir: Some(self.data_dir().join("cache")),
            limits: self.settings.limits.clone(),
            ..RuntimeOptions::default()
        })
    }

    /// The engine without the artifact cache: writes nothing to the data dir.
    pub fn runtime_without_cache(&self) -> anyhow::Result<Runtime> {
        Runtime::new(RuntimeOptions {
            cache_dir: None,
            limits: self.settings.limits.clone(),
            ..RuntimeOptions::default()
        })
    }

    /// Whether the master keys come from `SECRET_BROKER_MASTER_KEY`.
    pub fn master_key_from_env(&self) -> bool {
        self.settings.master_key.is_some()
    }

    /// The key file used when the environment supplies no key: `[keyring] key_file`
    /// from the configuration, else `master.key` in the data dir.
    pub fn key_file(&self) -> PathBuf {
        self.settings
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir().join("master.key"))
    }

    /// Whether the keyring's data keys live in the record store, wrapped by a
    /// key-encryption key: with a KMS key, or a record store that replicas share
    /// (PostgreSQL, MariaDB). Otherwise the master keys seal directly (SQLite's
    /// single-machine layout).
    pub fn keys_in_store(&self) -> bool {
        self.settings.kms_key_id.is_some()
            || self.settings.store_url.as_ref().is_some_and(|url| {
                ["postgres:", "postgresql:", "mysql:", "mariadb:"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme))
            })
    }

    /// The keyring: the data keys of the record store ([`Deployment::keys_in_store`]),
    /// else `SECRET_BROKER_MASTER_KEY` or the key file, generated on first use
    /// with a warning. Loaded once and shared by every grant of the process.
    pub async fn keyring(&self) -> anyhow::Result<Arc<Keyring>> {
        self.keyring
            // Boxed: the futures of the grants that await it stay small.
            .get_or_try_init(|| Box::pin(self.load_keyring()))
            .await
            .cloned()
    }

    /// The keyring, if a grant has loaded it.
    pub fn loaded_keyring(&self) -> Option<Arc<Keyring>> {
        self.keyring.get().cloned()
    }

    /// The data keys in the record store, when the keyring keeps them there.
    pub async fn data_keys(&self) -> anyhow::Result<Option<Arc<DataKeys>>> {
        self.data_keys
            .get_or_try_init(|| {
                Box::pin(async {
                    if !self.keys_in_store() {
                        return Ok(None);
                    }
                    let store = self.record_store().await?;
                    let kek = match &self.settings.kms_key_id {
                        Some(key_id) => {
                            let settings = secret_broker_aws::AwsSettings::new("");
                            Kek::Kms(
                                secret_broker_aws::KmsKey::connect(&settings, key_id)
                                    .await
                                    .with_context(|| format!("the KMS key {key_id}"))?,
                            )
                        }
                        None => {
                            let keys =
                                DataKeys::new(store.clone(), Kek::Local { keys: Vec::new() });
                            let master = self.master_keys(!keys.is_empty().await?)?;
                            Kek::local(&master)
                        }
                    };
                    anyhow::Ok(Some(Arc::new(DataKeys::new(store, kek))))
                })
            })
            .await
            .cloned()
    }

    /// The master keys: `SECRET_BROKER_MASTER_KEY`, or the key file, which is
    /// created (with a warning) unless `must_exist`.
    fn master_keys(&self, must_exist: bool) -> anyhow::Result<Keyring> {
        if let Some(spec) = &self.settings.master_key {
            return Keyring::parse(spec).context("in SECRET_BROKER_MASTER_KEY");
        }
        let path = self.key_file();
        if must_exist && !path.exists() {
            bail!(
                "the database holds the keyring's data keys, wrapped by a key-encryption key this \
                 process does not have: give it the other replicas' SECRET_BROKER_MASTER_KEY or key \
                 file ({}), or SECRET_BROKER_KMS_KEY_ID; nothing was changed",
                path.display()
            );
        }
        let (ring, created) = Keyring::load_or_create(&path)?;
        if created && self.settings.key_file.is_none() {
            tracing::warn!(
                path = %path.display(),
                "generated a new master key; production deployments should supply their own \
                 (SECRET_BROKER_MASTER_KEY) and keep it outside the data dir"
            );
        }
        Ok(ring)
    }

    async fn load_keyring(&self) -> anyhow::Result<Arc<Keyring>> {
        let Some(data_keys) = self.data_keys().await? else {
            return Ok(Arc::new(self.master_keys(false)?));
        };
        // The master keys of a single-machine layout become the first data keys,
        // so what they sealed stays readable.
        let seed = match (&data_keys.kek(), &self.settings.master_key) {
            (Kek::Local { .. }, _) => Some(self.master_keys(true)?),
            (Kek::Kms(_), Some(spec)) => {
                Some(Keyring::parse(spec).context("in SECRET_BROKER_MASTER_KEY")?)
            }
            (Kek::Kms(_), None) if self.key_file().exists() => Some(self.master_keys(true)?),
            (Kek::Kms(_), None) => None,
        };
        Ok(Arc::new(data_keys.load(seed.as_ref()).await?))
    }

    /// The SQLite file of the embedded default.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir().join("secrets.db")
    }

    /// The record store: the configured URL, or SQLite in the data dir;
    /// connected once, its pool shared by everything the process builds.
    pub async fn record_store(&self) -> anyhow::Result<Arc<RecordStore>> {
        self.store
            .get_or_try_init(|| Box::pin(self.connect_store()))
            .await
            .cloned()
    }

    async fn connect_store(&self) -> anyhow::Result<Arc<RecordStore>> {
        let url = match &self.settings.store_url {
            Some(url) => url.clone(),
            None => {
                let path = self.sqlite_path();
                // The store and its WAL are private to this user from the start.
                match secret_broker_runtime::fs::write_private(&path, b"") {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(e).with_context(|| format!("creating {}", path.display()));
                    }
                    _ => {}
                }
                format!("sqlite://{}?mode=rwc", path.display())
            }
        };
        Ok(Arc::new(RecordStore::connect(&url).await?))
    }

    /// Adds the grant `name` for `instance` to `granted`; `http` is the `http`
    /// grant's configuration, when the provider has one.
    async fn grant(
        &self,
        granted: &mut Granted,
        name: &str,
        http: Option<&HttpConfig>,
    ) -> anyhow::Result<()> {
        let namespace = format!("provider/{}", granted.instance);
        match name {
            "keyring" => granted.grant(KeyringCtx::new(self.keyring().await?, &namespace)),
            "record-store" => {
                granted.grant(RecordStoreCtx::new(self.record_store().await?, &namespace));
            }
            "aws-secrets-manager" => granted.grant(SecretsManagerCtx::new(self.aws().await?)),
            "aws-ssm" => granted.grant(SsmCtx::new(self.aws().await?)),
            "http" => {
                let config = http.ok_or_else(|| {
                    anyhow::anyhow!(
                        "the provider is granted `http` but no `[http]` table \
                         (`secretBroker.http`) lists its origins"
                    )
                })?;
                // Keyed per instance from the audit salt: digests a provider
                // stores beside values mean nothing to another instance.
                let digest_key = SecretValue::from_string(
                    self.audit_salt()?
                        .hmac(format!("http digest key/{}", granted.instance).as_bytes()),
                );
                granted.grant(HttpCtx::new(config.settings(digest_key)?)?);
            }
            "reveal" => granted.grant(Reveal),
            other => bail!(
                "grants: unknown capability `{other}`; known: {}",
                GRANTS.join(", ")
            ),
        }
        Ok(())
    }

    /// The `http` grant of the configured provider: `[http]` for a `[provider]`
    /// table; else the preset of the backend `SECRET_MANAGER` selects.
    pub fn configured_http(&self) -> anyhow::Result<Option<HttpConfig>> {
        if self.settings.provider.is_some() {
            return Ok(self.settings.http.clone());
        }
        let backend = backends::for_secrets_manager(&self.settings.secrets_manager)?;
        Ok((backend.preset)(&self.settings)?.http)
    }

    async fn aws(&self) -> anyhow::Result<AwsGrantBase> {
        let settings =
            backends::aws::settings(&self.settings.aws, self.settings.prefix.as_deref())?;
        Ok(AwsGrantBase::new(&settings).await?)
    }

    /// The grants named in configuration, for the instance `instance`, with
    /// the provider `settings`; `http` configures the `http` grant.
    pub async fn grants(
        &self,
        instance: &str,
        names: &[String],
        settings: &std::collections::BTreeMap<String, String>,
        http: Option<&HttpConfig>,
    ) -> anyhow::Result<Granted> {
        let mut granted = Granted::new(instance);
        granted.settings = settings.clone();
        for name in names {
            self.grant(&mut granted, name, http).await?;
        }
        Ok(granted)
    }

    /// The built-in provider of the backend a `SECRET_MANAGER` name selects
    /// (`db`, `managed-aws`, `openbao`, ...: [`backends::BACKENDS`]), configured
    /// by its preset from these settings.
    pub async fn provider_named(
        &self,
        runtime: &Runtime,
        manager: &str,
    ) -> anyhow::Result<Arc<ProviderHost>> {
        self.start_backend(runtime, backends::for_secrets_manager(manager)?)
            .await
    }

    /// Starts `backend`'s built-in provider, configured by its preset.
    pub async fn start_backend(
        &self,
        runtime: &Runtime,
        backend: &Backend,
    ) -> anyhow::Result<Arc<ProviderHost>> {
        let builtin = backend.builtin()?;
        let preset = (backend.preset)(&self.settings)?;
        let config = ProviderConfig {
            component: builtin.source(),
            name: None,
            grants: builtin.grants.iter().map(|g| (*g).to_owned()).collect(),
            settings: preset.settings,
            // Built into this binary: pinned by the build.
            sha256: None,
        };
        self.start(runtime, &config, preset.http.as_ref()).await
    }

    /// The backend the configuration selects: the one `SECRET_MANAGER` names,
    /// or the one whose built-in component the `[provider]` table runs.
    pub fn backend(&self) -> Option<&'static Backend> {
        match &self.settings.provider {
            Some(config) => backends::for_component(&config.component),
            None => backends::for_secrets_manager(&self.settings.secrets_manager).ok(),
        }
    }

    /// How OpenMetadata's ids are spelled for the configured provider: as
    /// OpenMetadata's manager for its backend spells them ([`Backend::id_style`]);
    /// `/`-joined for a component of one's own.
    pub fn id_style(&self) -> IdStyle {
        self.backend().map_or(IdStyle::Slash, |b| b.id_style)
    }

    /// The configured provider, ready for calls.
    pub async fn provider(&self, runtime: &Runtime) -> anyhow::Result<Arc<ProviderHost>> {
        match &self.settings.provider {
            Some(config) => {
                self.start(runtime, config, self.settings.http.as_ref())
                    .await
            }
            None => {
                self.provider_named(runtime, &self.settings.secrets_manager)
                    .await
            }
        }
    }

    /// Loads `config.component` (`builtin:NAME` or a path) and starts it with its
    /// grants.
    async fn start(
        &self,
        runtime: &Runtime,
        config: &ProviderConfig,
        http: Option<&HttpConfig>,
    ) -> anyhow::Result<Arc<ProviderHost>> {
        let instance = config.instance()?;
        let component = load_component(runtime, &config.component, config.sha256.as_deref())?;
        let granted = self
            .grants(&instance, &config.grants, &config.settings, http)
            .await?;
        Ok(Arc::new(
            ProviderHost::new(runtime, &component, granted).await?,
        ))
    }
}

/// The grants `component` needs, by name; an import no registered grant
/// provides is an error naming it.
pub fn needed_grants(component: &secret_broker::LoadedComponent) -> anyhow::Result<Vec<String>> {
    let names = component.grant_names();
    for (name, import) in names.iter().zip(&component.needs) {
        if !GRANTS.contains(&name.as_str()) {
            bail!(
                "{} imports `{import}`, which this host does not provide (it provides: {})",
                component.source,
                GRANTS.join(", ")
            );
        }
    }
    Ok(names)
}

/// A component by how configuration names it: `builtin:NAME` or a path.
pub fn load_component(
    runtime: &Runtime,
    component: &str,
    pinned: Option<&str>,
) -> anyhow::Result<secret_broker::LoadedComponent> {
    let Some(name) = component.strip_prefix("builtin:") else {
        let path = Path::new(component);
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the provider component {component}"))?;
        check_pin(component, &bytes, pinned)?;
        return Ok(runtime.load_bytes(component, &bytes)?);
    };
    let Some(builtin) = secret_broker_builtin::lookup(name) else {
        let known: Vec<String> = secret_broker_builtin::ALL
            .iter()
            .map(|b| b.source())
            .collect();
        bail!(
            "there is no built-in provider `{name}`: use one of {}, or a path to a .wasm file",
            known.join(", ")
        );
    };
    if builtin.name == "memory" {
        tracing::warn!(
            "the in-memory provider persists nothing: values vanish when this process exits"
        );
    }
    check_pin(component, builtin.wasm, pinned)?;
    Ok(runtime.load_bytes(&builtin.source(), builtin.wasm)?)
}

/// Refuses `bytes` when the configuration pins another digest, naming both.
fn check_pin(component: &str, bytes: &[u8], pinned: Option<&str>) -> anyhow::Result<()> {
    use sha2::Digest as _;
    let Some(pinned) = pinned else {
        return Ok(());
    };
    let want = pinned
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "provider `sha256` for {component} is not a SHA-256 digest (64 hex digits); \
             `secret-broker provider verify {component}` prints the line to use"
        );
    }
    let actual = hex::encode(sha2::Sha256::digest(bytes));
    if actual != want {
        bail!(
            "the provider component {component} has sha256 {actual}, but the configuration \
             pins {want}: refusing to load it. If it was replaced on purpose, check it with \
             `secret-broker provider verify` and update `sha256`"
        );
    }
    Ok(())
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
