//! `Settings`: everything a deployment is configured with, as one type. It is read
//! from a TOML file or from OpenMetadata's YAML (`secretsManagerConfiguration` plus
//! our `secretBroker` section), both parsed into the same [`FileSettings`], and then
//! overlaid by the environment in one place ([`Settings::overlay_env`]), so
//! OpenMetadata's variables (`SECRET_MANAGER`, `SECRET_MANAGER_PREFIX`,
//! `SECRET_MANAGER_TAGS`, `OM_SM_*`) and ours (`SECRET_BROKER_*`) win over any file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use secret_broker::Limits;
use secret_broker::audit::ReadSync;
use secret_broker::policy::Policy;

use crate::backends;
use crate::backends::aws::AwsConfig;
use crate::backends::azure::AzureConfig;
use crate::backends::gcp::GcpConfig;
use crate::backends::http::HttpConfig;
use crate::backends::kubernetes::KubernetesConfig;
use crate::backends::openbao::OpenBaoConfig;

/// A provider component of one's own: `[provider]` (TOML) or
/// `secretBroker.provider` (YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Path of the component, or `builtin:NAME`.
    pub component: String,
    /// Instance name; namespaces its rows and keyring context. Optional for a
    /// built-in component (`default`, shared with the built-in the secrets
    /// manager name selects); required for any other ([`ProviderConfig::instance`]).
    #[serde(default)]
    pub name: Option<String>,
    /// Capabilities granted, by name (`keyring`, `reveal`, ...).
    #[serde(default)]
    pub grants: Vec<String>,
    /// Settings the provider reads through its `config` import.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The component's SHA-256 (hex), pinned: a file with any other digest is
    /// refused before it is compiled. `provider verify` prints the line to add.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The instance name of the built-in provider a secrets manager name selects.
pub const BUILTIN_INSTANCE: &str = "default";

impl ProviderConfig {
    /// The instance name, checked. Rows and keyring contexts are namespaced by
    /// it, so a component that is not built in must be given a name of its own:
    /// without one, or named `default`, it would read the built-in provider's
    /// secrets in clear.
    pub fn instance(&self) -> anyhow::Result<String> {
        let builtin = self.component.starts_with("builtin:");
        let name = match (&self.name, builtin) {
            (Some(name), _) => name.clone(),
            (None, true) => return Ok(BUILTIN_INSTANCE.to_owned()),
            (None, false) => bail!(
                "the provider `{}` has no `name`: give it one of its own (letters, digits, `_`, \
                 `-`); the name namespaces its rows and keys, and without one it would share \
                 the built-in provider's",
                self.component
            ),
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("provider name {name:?}: use 1 to 64 letters, digits, `_` or `-`");
        }
        if name == BUILTIN_INSTANCE && !builtin {
            bail!(
                "provider name `{BUILTIN_INSTANCE}` belongs to the built-in providers: the \
                 component `{}` is not built in, so it cannot share their rows and keys; give \
                 it a name of its own",
                self.component
            );
        }
        Ok(name)
    }
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
    /// Secret handles one provider call may create (default 1000).
    #[serde(default, alias = "handlesPerCall")]
    pub handles_per_call: Option<u64>,
    /// Log lines one provider call may write (default 1000).
    #[serde(default, alias = "logLinesPerCall")]
    pub log_lines_per_call: Option<u64>,
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
        if let Some(n) = self.handles_per_call {
            limits.handles_per_call = check("handles_per_call", n, 1_000_000)? as usize;
        }
        if let Some(n) = self.log_lines_per_call {
            limits.log_lines_per_call = check("log_lines_per_call", n, 1_000_000)? as usize;
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

/// `[audit]` (TOML) or `secretBroker.audit` (YAML).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditTable {
    /// When entries of reads reach the disk: `always`, or within a duration
    /// (`1s`, the default). Entries of writes are synced before the write is
    /// acknowledged, always.
    #[serde(default, alias = "readSync")]
    pub read_sync: Option<String>,
    /// A signed checkpoint at most this many entries after the last (1000).
    #[serde(default, alias = "checkpointEvery")]
    pub checkpoint_every: Option<u64>,
    /// ... and at most this long after an entry no checkpoint covers (`1s`).
    #[serde(default, alias = "checkpointInterval")]
    pub checkpoint_interval: Option<String>,
    /// Where the chain lives: `database` (the shared record store's rows, the
    /// default on PostgreSQL and MariaDB, so replicas make one chain) or `file`
    /// (`audit.log` in the data dir, the default on SQLite).
    #[serde(default)]
    pub store: Option<String>,
    /// With the chain in the database, also append each entry this process
    /// commits to `audit.log` in the data dir (for a log shipper; the chain
    /// in the database is what `audit verify` proves). Default `false`.
    #[serde(default, alias = "copyToFile")]
    pub copy_to_file: Option<bool>,
}

/// How often the audit log signs a checkpoint of its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// At most this many entries after the last checkpoint.
    pub every: u64,
    /// At most this long after an entry no checkpoint covers.
    pub interval: std::time::Duration,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        let defaults = secret_broker::audit::AuditOptions::default();
        CheckpointSettings {
            every: defaults.checkpoint_every,
            interval: defaults.checkpoint_interval,
        }
    }
}

/// What a file's audit table says: read sync, checkpoints, chain in the
/// database, a copy of this process's entries in the file.
type AuditFields = (
    Option<ReadSync>,
    Option<CheckpointSettings>,
    Option<bool>,
    Option<bool>,
);

impl AuditTable {
    /// Every setting of `table`, checked; errors name `read_sync_key` or the
    /// key under `prefix`.
    pub(crate) fn fields(
        table: Option<&AuditTable>,
        read_sync_key: &str,
        prefix: &str,
    ) -> anyhow::Result<AuditFields> {
        let Some(table) = table else {
            return Ok((None, None, None, None));
        };
        Ok((
            table.read_sync(read_sync_key)?,
            Some(table.checkpoints(prefix)?),
            table.in_database(prefix)?,
            table.copy_to_file,
        ))
    }

    /// `store`, checked: whether the chain is in the database.
    pub(crate) fn in_database(&self, prefix: &str) -> anyhow::Result<Option<bool>> {
        match self.store.as_deref().map(str::trim) {
            None => Ok(None),
            Some("database") => Ok(Some(true)),
            Some("file") => Ok(Some(false)),
            Some(other) => anyhow::bail!(
                "{prefix}store {other:?}: use `database` (the record store's rows) or `file` \
                 (audit.log in the data dir)"
            ),
        }
    }

    /// The checkpoint settings; `prefix` names the table in errors.
    pub(crate) fn checkpoints(&self, prefix: &str) -> anyhow::Result<CheckpointSettings> {
        let mut out = CheckpointSettings::default();
        if let Some(every) = self.checkpoint_every {
            if every == 0 {
                anyhow::bail!(
                    "{prefix}checkpoint_every: 0 entries; use a count from 1 (1000 by default)"
                );
            }
            out.every = every;
        }
        if let Some(text) = &self.checkpoint_interval {
            out.interval = humantime::parse_duration(text.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{prefix}checkpoint_interval {text:?}: use a duration such as `1s` or \
                         `500ms`"
                    )
                })?;
        }
        Ok(out)
    }

    pub(crate) fn read_sync(&self, key: &str) -> anyhow::Result<Option<ReadSync>> {
        self.read_sync
            .as_deref()
            .map(|s| s.parse().map_err(|e: String| anyhow::anyhow!("{key}: {e}")))
            .transpose()
    }
}

/// What a configuration file says, whichever its format; every key optional.
#[derive(Debug, Default)]
pub struct FileSettings {
    /// The data directory.
    pub data_dir: Option<PathBuf>,
    /// A provider component of one's own.
    pub provider: Option<ProviderConfig>,
    /// OpenMetadata's `secretsManager`.
    pub secrets_manager: Option<String>,
    /// OpenMetadata's `prefix`.
    pub prefix: Option<String>,
    /// OpenMetadata's `tags`, as its `[k1:v1,k2:v2]` string.
    pub tags: Option<String>,
    /// OpenMetadata's `clusterName`, the second segment of every id.
    pub cluster_name: Option<String>,
    /// The record store URL.
    pub store_url: Option<String>,
    /// The master key file.
    pub key_file: Option<PathBuf>,
    /// The AWS KMS key that wraps the keyring's data keys.
    pub kms_key_id: Option<String>,
    /// The AWS grants' parameters.
    pub aws: Option<AwsConfig>,
    /// The limits, checked.
    pub limits: Limits,
    /// The role table.
    pub policy: Option<Policy>,
    /// When the audit entries of reads reach the disk.
    pub audit_read_sync: Option<ReadSync>,
    /// How often the audit log signs a checkpoint.
    pub audit_checkpoints: Option<CheckpointSettings>,
    /// Whether the audit chain is in the database (`None`: by the store).
    pub audit_in_database: Option<bool>,
    /// `[audit] copy_to_file`.
    pub audit_copy_to_file: Option<bool>,
    /// The `http` grant of a provider of one's own.
    pub http: Option<HttpConfig>,
    /// The built-in `openbao` provider's server and credentials.
    pub openbao: Option<OpenBaoConfig>,
    /// The built-in `kubernetes` provider's namespace and cluster.
    pub kubernetes: Option<KubernetesConfig>,
    /// The built-in `azure-key-vault` provider's vault and login.
    pub azure: Option<AzureConfig>,
    /// The built-in `gcp-secret-manager` provider's project and credentials.
    pub gcp: Option<GcpConfig>,
}

/// The TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    provider: ProviderConfig,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    store: Option<StoreTable>,
    #[serde(default)]
    keyring: Option<KeyringTable>,
    #[serde(default)]
    aws: Option<AwsConfig>,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    policy: Option<Policy>,
    #[serde(default)]
    audit: Option<AuditTable>,
    #[serde(default)]
    http: Option<HttpConfig>,
    #[serde(default)]
    openbao: Option<OpenBaoConfig>,
    #[serde(default)]
    kubernetes: Option<KubernetesConfig>,
    #[serde(default)]
    azure: Option<AzureConfig>,
    #[serde(default)]
    gcp: Option<GcpConfig>,
}

/// `[keyring]`: where the master keys live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringTable {
    /// A key file (`VERSION:BASE64` per line, mode 0600), created if missing.
    #[serde(default)]
    key_file: Option<PathBuf>,
    /// An AWS KMS key (id, ARN or `alias/NAME`) that wraps the data keys kept
    /// in the record store.
    #[serde(default)]
    kms_key_id: Option<String>,
}

/// `[store]`: the database behind the `record-store` grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreTable {
    /// `sqlite://PATH?mode=rwc`, `postgres://...` or `mysql://...`.
    url: String,
}

impl FileSettings {
    /// Reads `path`: OpenMetadata's YAML for `.yaml`/`.yml`, TOML otherwise.
    pub fn read(path: &Path) -> anyhow::Result<FileSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        let parsed = if yaml {
            Self::from_yaml(&text)
        } else {
            Self::from_toml(&text)
        };
        parsed.with_context(|| format!("in config {}", path.display()))
    }

    fn from_toml(text: &str) -> anyhow::Result<FileSettings> {
        let file: TomlFile = toml::from_str(text)?;
        let (audit_read_sync, audit_checkpoints, audit_in_database, audit_copy_to_file) =
            AuditTable::fields(file.audit.as_ref(), "audit.read_sync", "audit.")?;
        Ok(FileSettings {
            data_dir: file.data_dir,
            provider: Some(file.provider),
            store_url: file.store.map(|s| s.url),
            key_file: file.keyring.as_ref().and_then(|k| k.key_file.clone()),
            kms_key_id: file.keyring.as_ref().and_then(|k| k.kms_key_id.clone()),
            aws: file.aws,
            limits: file.limits.limits("limits")?,
            policy: file.policy,
            audit_read_sync,
            audit_checkpoints,
            audit_in_database,
            audit_copy_to_file,
            http: file.http,
            openbao: file.openbao,
            kubernetes: file.kubernetes,
            azure: file.azure,
            gcp: file.gcp,
            ..FileSettings::default()
        })
    }

    fn from_yaml(text: &str) -> anyhow::Result<FileSettings> {
        let file = crate::om_yaml::parse(text)?;
        let sm = file.secrets_manager_configuration;
        let broker = file.secret_broker;
        let secrets_manager = sm
            .secrets_manager
            .as_deref()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        let backend = secrets_manager
            .as_deref()
            .map(backends::for_secrets_manager)
            .transpose()
            .context("secretsManagerConfiguration.secretsManager")?;
        // OpenMetadata's `parameters` mean what the manager they configure reads.
        let (mut aws, mut kubernetes, mut azure, mut gcp) =
            (None, broker.kubernetes, broker.azure, broker.gcp);
        match backend.map(|b| b.provider) {
            Some("kubernetes") => kubernetes = sm.kubernetes()?.or(kubernetes),
            Some("azure-key-vault") => azure = sm.azure()?.or(azure),
            Some("gcp-secret-manager") => gcp = sm.gcp()?.or(gcp),
            _ => aws = sm.aws()?,
        }
        let (audit_read_sync, audit_checkpoints, audit_in_database, audit_copy_to_file) =
            AuditTable::fields(
                broker.audit.as_ref(),
                "secretBroker.audit.readSync",
                "secretBroker.audit.",
            )?;
        Ok(FileSettings {
            data_dir: broker.data_dir,
            provider: broker.provider,
            secrets_manager,
            prefix: sm.prefix.filter(|p| !p.trim().is_empty()),
            tags: sm.tags.map(|t| t.as_text()),
            cluster_name: file
                .cluster_name
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
            store_url: broker.store_url,
            key_file: broker.key_file,
            kms_key_id: broker.kms_key_id,
            aws,
            limits: broker.limits.limits("secretBroker.limits")?,
            policy: broker.policy,
            audit_read_sync,
            audit_checkpoints,
            audit_in_database,
            audit_copy_to_file,
            http: broker.http,
            openbao: broker.openbao,
            kubernetes,
            azure,
            gcp,
        })
    }
}

/// Everything a deployment is configured with: the file, then the environment.
#[derive(Debug)]
pub struct Settings {
    /// The data directory (store, master key, compiled cache, audit log, tokens).
    pub data_dir: PathBuf,
    /// A provider component of one's own; `None` runs the built-in provider
    /// `secrets_manager` names.
    pub provider: Option<ProviderConfig>,
    /// OpenMetadata's secrets manager name (`db` unless configured).
    pub secrets_manager: String,
    /// OpenMetadata's prefix (first segment of every id; the AWS grants' scope).
    pub prefix: Option<String>,
    /// OpenMetadata's tags, `[k1:v1,k2:v2]`.
    pub tags: Option<String>,
    /// OpenMetadata's `clusterName` (`OPENMETADATA_CLUSTER_NAME`), the second
    /// segment of every id; `openmetadata` when unset.
    pub cluster_name: Option<String>,
    /// The record store URL; `None` means SQLite in the data dir.
    pub store_url: Option<String>,
    /// The key file; `None` means `master.key` in the data dir.
    pub key_file: Option<PathBuf>,
    /// The master keys themselves (`SECRET_BROKER_MASTER_KEY`), in place of a file.
    pub master_key: Option<String>,
    /// The AWS KMS key that wraps the keyring's data keys in the record store
    /// (`[keyring] kms_key_id`, `SECRET_BROKER_KMS_KEY_ID`).
    pub kms_key_id: Option<String>,
    /// The AWS grants' parameters.
    pub aws: AwsConfig,
    /// What each provider instance may use.
    pub limits: Limits,
    /// The role table.
    pub policy: Policy,
    /// When the audit entries of reads reach the disk.
    pub audit_read_sync: ReadSync,
    /// `SECRET_BROKER_AUDIT_READ_SYNC`, checked when the audit log opens.
    pub audit_read_sync_env: Option<String>,
    /// How often the audit log signs a checkpoint.
    pub audit_checkpoints: CheckpointSettings,
    /// `[audit] store`: whether the chain is in the database (`None`: there
    /// when the record store is PostgreSQL or MariaDB).
    pub audit_in_database: Option<bool>,
    /// `[audit] copy_to_file`: with the chain in the database, a copy of this
    /// process's entries in `audit.log` too.
    pub audit_copy_to_file: bool,
    /// The `http` grant of a provider of one's own (`[http]`).
    pub http: Option<HttpConfig>,
    /// The built-in `openbao` provider (`[openbao]`, `OM_SM_VAULT_*`).
    pub openbao: OpenBaoConfig,
    /// The built-in `kubernetes` provider (`[kubernetes]`, `OM_SM_NAMESPACE`,
    /// `OM_SM_KUBECONFIG_PATH`, `OM_SM_IN_CLUSTER`).
    pub kubernetes: KubernetesConfig,
    /// The built-in `azure-key-vault` provider (`[azure]`, `OM_SM_VAULT_NAME`,
    /// `OM_SM_TENANT_ID`, `OM_SM_CLIENT_ID`, `OM_SM_CLIENT_SECRET`).
    pub azure: AzureConfig,
    /// The built-in `gcp-secret-manager` provider (`[gcp]`, `OM_SM_PROJECT_ID`,
    /// `GOOGLE_APPLICATION_CREDENTIALS`, `OM_SM_GCP_TOKEN_FILE`).
    pub gcp: GcpConfig,
}

impl Settings {
    /// The configuration file at `config` (if any) overlaid by the environment;
    /// `data_dir` (the command line's) wins over both.
    pub fn load(config: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Settings> {
        let file = match config {
            Some(path) => FileSettings::read(path)?,
            None => FileSettings::default(),
        };
        Ok(Settings::with_env(file, data_dir))
    }

    /// Settings from the text of a TOML configuration file, overlaid by the
    /// environment, as [`Settings::load`] reads a file: for an embedder that
    /// keeps its configuration elsewhere.
    pub fn from_toml(text: &str, data_dir: Option<&Path>) -> anyhow::Result<Settings> {
        Ok(Settings::with_env(FileSettings::from_toml(text)?, data_dir))
    }

    /// `file` overlaid by the process environment, then `data_dir`.
    fn with_env(file: FileSettings, data_dir: Option<&Path>) -> Settings {
        let mut settings = Settings::from_file(file);
        settings.overlay_env(&|name| std::env::var(name).ok());
        if let Some(dir) = data_dir {
            settings.data_dir = dir.to_path_buf();
        }
        settings
    }

    fn from_file(file: FileSettings) -> Settings {
        Settings {
            data_dir: file.data_dir.unwrap_or_else(default_data_dir),
            provider: file.provider,
            secrets_manager: file.secrets_manager.unwrap_or_else(|| "db".into()),
            prefix: file.prefix,
            tags: file.tags,
            cluster_name: file.cluster_name,
            store_url: file.store_url,
            key_file: file.key_file,
            master_key: None,
            kms_key_id: file.kms_key_id,
            aws: file.aws.unwrap_or_default(),
            limits: file.limits,
            policy: file.policy.unwrap_or_default(),
            audit_read_sync: file.audit_read_sync.unwrap_or_default(),
            audit_read_sync_env: None,
            audit_checkpoints: file.audit_checkpoints.unwrap_or_default(),
            audit_in_database: file.audit_in_database,
            audit_copy_to_file: file.audit_copy_to_file.unwrap_or(false),
            http: file.http,
            openbao: file.openbao.unwrap_or_default(),
            kubernetes: file.kubernetes.unwrap_or_default(),
            azure: file.azure.unwrap_or_default(),
            gcp: file.gcp.unwrap_or_default(),
        }
    }

    /// The one environment overlay. Unset or blank variables change nothing
    /// (OpenMetadata's deployment files export empty ones).
    pub fn overlay_env(&mut self, var: &dyn Fn(&str) -> Option<String>) {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(m) = get("SECRET_MANAGER") {
            self.secrets_manager = m.trim().to_owned();
        }
        if let Some(p) = get("SECRET_MANAGER_PREFIX") {
            self.prefix = Some(p.clone());
            self.aws.prefix = Some(p);
        }
        if let Some(t) = get("SECRET_MANAGER_TAGS") {
            self.tags = Some(t);
        }
        if let Some(c) = get("OPENMETADATA_CLUSTER_NAME") {
            self.cluster_name = Some(c.trim().to_owned());
        }
        if let Some(url) = get("SECRET_BROKER_STORE_URL") {
            self.store_url = Some(url);
        }
        if let Some(key) = get("SECRET_BROKER_MASTER_KEY") {
            self.master_key = Some(key);
        }
        if let Some(id) = get("SECRET_BROKER_KMS_KEY_ID") {
            self.kms_key_id = Some(id.trim().to_owned());
        }
        if let Some(sync) = get("SECRET_BROKER_AUDIT_READ_SYNC") {
            self.audit_read_sync_env = Some(sync);
        }
        self.aws.overlay_env(&get);
        self.openbao.overlay_env(&get);
        self.kubernetes.overlay_env(&get);
        self.azure.overlay_env(&get);
        self.gcp.overlay_env(&get);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn toml_and_yaml_fill_the_same_settings() {
        let toml = FileSettings::from_toml(
            "[provider]\ncomponent = \"builtin:db\"\nname = \"main\"\ngrants = [\"keyring\"]\nsha256 = \"ab\"\n\
             [store]\nurl = \"sqlite://x.db\"\n[limits]\nmemory_mb = 32\n\
             [audit]\nstore = \"database\"\ncopy_to_file = true\ncheckpoint_every = 7\n",
        )
        .unwrap();
        let yaml = FileSettings::from_yaml(
            "secretsManagerConfiguration:\n  secretsManager: db\nsecretBroker:\n  storeUrl: sqlite://x.db\n  \
             provider:\n    component: builtin:db\n    name: main\n    grants: [keyring]\n    sha256: ab\n  limits:\n    memoryMb: 32\n  \
             audit:\n    store: database\n    copyToFile: true\n    checkpointEvery: 7\n",
        )
        .unwrap();
        for file in [toml, yaml] {
            let s = Settings::from_file(file);
            assert_eq!(s.store_url.as_deref(), Some("sqlite://x.db"));
            assert_eq!(
                s.provider.as_ref().map(|p| p.instance().unwrap()),
                Some("main".to_owned())
            );
            assert_eq!(s.limits.memory_bytes, 32 << 20);
            assert_eq!(
                s.provider.as_ref().and_then(|p| p.sha256.as_deref()),
                Some("ab")
            );
            assert_eq!(s.secrets_manager, "db");
            assert_eq!(s.audit_in_database, Some(true));
            assert!(s.audit_copy_to_file);
            assert_eq!(s.audit_checkpoints.every, 7);
        }
    }

    #[test]
    fn the_environment_wins_and_blank_variables_do_not() {
        let file = FileSettings::from_yaml(
            "secretsManagerConfiguration:\n  secretsManager: managed-aws\n  prefix: file\n  tags: \"[a:b]\"\n",
        )
        .unwrap();
        let mut s = Settings::from_file(file);
        s.overlay_env(&env(&[
            ("SECRET_MANAGER", "managed-aws-ssm"),
            ("SECRET_MANAGER_PREFIX", "env"),
            ("SECRET_MANAGER_TAGS", "  "),
        ]));
        assert_eq!(s.secrets_manager, "managed-aws-ssm");
        assert_eq!(s.prefix.as_deref(), Some("env"));
        assert_eq!(s.tags.as_deref(), Some("[a:b]"));
        // OpenMetadata's cluster name: the file's, then its variable's.
        let file = FileSettings::from_yaml(
            "clusterName: east\nsecretsManagerConfiguration:\n  secretsManager: noop\n",
        )
        .unwrap();
        let mut s = Settings::from_file(file);
        assert_eq!(s.cluster_name.as_deref(), Some("east"));
        s.overlay_env(&env(&[("OPENMETADATA_CLUSTER_NAME", "west")]));
        assert_eq!(s.cluster_name.as_deref(), Some("west"));
        let d = crate::Deployment::new(s);
        assert_eq!(d.cluster_name(), "west");
    }

    #[test]
    fn only_built_in_components_share_the_default_instance() {
        let config = |component: &str, name: Option<&str>| ProviderConfig {
            component: component.into(),
            name: name.map(str::to_owned),
            grants: Vec::new(),
            settings: BTreeMap::new(),
            sha256: None,
        };
        assert_eq!(config("builtin:db", None).instance().unwrap(), "default");
        assert_eq!(
            config("builtin:db", Some("default")).instance().unwrap(),
            "default"
        );
        assert_eq!(
            config("/p/x.wasm", Some("mine")).instance().unwrap(),
            "mine"
        );
        let err = config("/p/x.wasm", None)
            .instance()
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no `name`"), "{err}");
        let err = config("/p/x.wasm", Some("default"))
            .instance()
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to the built-in providers"), "{err}");
        let err = config("builtin:db", Some("../x"))
            .instance()
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 to 64 letters"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_limits_are_named() {
        let err = FileSettings::from_toml("[provider]\ncomponent = \"x\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let err =
            FileSettings::from_toml("[provider]\ncomponent = \"x\"\n[limits]\nmemory_mb = 0\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("limits.memory_mb = 0"), "{err}");
    }
}
