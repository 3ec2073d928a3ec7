//! OpenMetadata's configuration shape: a YAML file whose
//! `secretsManagerConfiguration` section (`secretsManager`, `prefix`, `tags`,
//! `parameters`) is read as OpenMetadata reads it, plus a `secretBroker` section
//! for what this project adds. Unknown keys are errors that name the key;
//! OpenMetadata's environment variables still win over the file.

use std::path::PathBuf;

use serde::Deserialize;

use crate::backends::aws::AwsConfig;
use crate::backends::azure::AzureConfig;
use crate::backends::gcp::GcpConfig;
use crate::backends::kubernetes::KubernetesConfig;
use crate::settings::{LimitsConfig, ProviderConfig};

/// The whole file: OpenMetadata's section, ours, and anything else of
/// `openmetadata.yaml`, which is ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OmFile {
    /// OpenMetadata's section.
    pub secrets_manager_configuration: SecretsManagerConfiguration,
    /// This project's additions.
    #[serde(default)]
    pub secret_broker: BrokerSection,
}

/// `secretsManagerConfiguration`, with OpenMetadata's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretsManagerConfiguration {
    /// `db`, `managed-aws`, `managed-aws-ssm`, `aws` or `aws-ssm`.
    #[serde(default)]
    pub secrets_manager: Option<String>,
    /// First segment of every id, and the AWS grants' scope.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `[k1:v1,k2:v2]` as a string, or a YAML list of `k:v`.
    #[serde(default)]
    pub tags: Option<Tags>,
    /// For AWS: `region`, `accessKeyId`, `secretAccessKey`, and our `endpoint`,
    /// retries...; for `kubernetes`: `namespace`, `kubeconfigPath`, `inCluster`;
    /// for `managed-azure-kv`: `vaultName`, `tenantId`, `clientId`,
    /// `clientSecret`, `expiresAfterDays`; for `gcp`: `projectId`.
    /// Read by [`SecretsManagerConfiguration::aws`] and
    /// [`SecretsManagerConfiguration::kubernetes`] once the manager is known.
    #[serde(default)]
    pub parameters: Option<serde_norway::Value>,
}

impl SecretsManagerConfiguration {
    fn parameters<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<Option<T>> {
        self.parameters
            .clone()
            .map(serde_norway::from_value)
            .transpose()
            .map_err(|e| anyhow::anyhow!("secretsManagerConfiguration.parameters: {e}"))
    }

    /// The parameters of the AWS managers (and of `db`, which has none).
    pub fn aws(&self) -> anyhow::Result<Option<AwsConfig>> {
        self.parameters()
    }

    /// The parameters of `kubernetes`.
    pub fn kubernetes(&self) -> anyhow::Result<Option<KubernetesConfig>> {
        self.parameters()
    }

    /// The parameters of `managed-azure-kv` and `azure-kv`.
    pub fn azure(&self) -> anyhow::Result<Option<AzureConfig>> {
        self.parameters()
    }

    /// The parameters of `gcp`.
    pub fn gcp(&self) -> anyhow::Result<Option<GcpConfig>> {
        self.parameters()
    }
}

/// OpenMetadata writes tags as one string; YAML users write lists.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    /// `"[k1:v1,k2:v2]"`.
    Text(String),
    /// `[k1:v1, k2:v2]`.
    List(Vec<String>),
}

impl Tags {
    /// The tags in OpenMetadata's string form.
    pub fn as_text(&self) -> String {
        match self {
            Tags::Text(t) => t.clone(),
            Tags::List(l) => format!("[{}]", l.join(",")),
        }
    }
}

/// `secretBroker`: where the embedded default keeps its files, a provider
/// component of one's own, and limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerSection {
    /// The data directory.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The record store URL for the `db` provider.
    #[serde(default)]
    pub store_url: Option<String>,
    /// The master key file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// A provider component of one's own, with its grants and settings, in place
    /// of the one `secretsManager` names.
    #[serde(default)]
    pub provider: Option<ProviderConfig>,
    /// What each provider instance may use.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The role table (`admin`, `user`, `bot`, each with `reveal` and `write`).
    #[serde(default)]
    pub policy: Option<secret_broker::policy::Policy>,
    /// The audit log: `readSync` (`always`, or a duration such as `1s`).
    #[serde(default)]
    pub audit: Option<crate::settings::AuditTable>,
    /// The `http` grant of a provider of one's own.
    #[serde(default)]
    pub http: Option<crate::backends::http::HttpConfig>,
    /// The built-in `openbao` provider (`address`, `mount`, `auth`, ...).
    #[serde(default)]
    pub openbao: Option<crate::backends::openbao::OpenBaoConfig>,
    /// The built-in `kubernetes` provider, when `secretsManager` is not
    /// `kubernetes` (else its `parameters` say the same).
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// The built-in `azure-key-vault` provider, when `secretsManager` is not
    /// `managed-azure-kv` (else its `parameters` say the same).
    #[serde(default)]
    pub azure: Option<AzureConfig>,
    /// The built-in `gcp-secret-manager` provider, when `secretsManager` is not
    /// `gcp` (else its `parameters` say the same).
    #[serde(default)]
    pub gcp: Option<GcpConfig>,
}

/// Parses the YAML text; errors name the key and the line.
pub fn parse(text: &str) -> anyhow::Result<OmFile> {
    serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
}
