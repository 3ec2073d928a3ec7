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
    /// OpenMetadata's `clusterName`.
    #[serde(default)]
    pub cluster_name: Option<String>,
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
    /// The AWS KMS key that wraps the keyring's data keys in the record store.
    #[serde(default)]
    pub kms_key_id: Option<String>,
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

/// Parses the YAML text, its `${VAR:-default}` substituted from the process
/// environment first (as OpenMetadata's server does); errors name the key and
/// the line.
pub fn parse(text: &str) -> anyhow::Result<OmFile> {
    parse_with(text, &|name| std::env::var(name).ok())
}

/// [`parse`] with the environment given.
pub fn parse_with(text: &str, var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<OmFile> {
    let text = substitute(text, var)?;
    serde_norway::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The top-level keys of `openmetadata.yaml` this broker reads.
const READ: &[&str] = &["clusterName", "secretsManagerConfiguration", "secretBroker"];

/// Substitutes `${VAR}` and `${VAR:-default}` in `text` as Dropwizard's
/// environment substitutor does before OpenMetadata parses its YAML: the
/// variable's value when it is set (even empty), else the default, verbatim
/// (quotes, lists and all, for YAML to read); `$${` is a literal `${`. A variable
/// neither set nor defaulted is an error naming it and its line when it is in a
/// section this broker reads; elsewhere it is left as written (the server's
/// business, not ours), as in comments.
pub fn substitute(text: &str, var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut section = "";
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if let Some(first) = line.chars().next()
            && !first.is_whitespace()
            && first != '#'
            && first != '-'
        {
            section = line.split(':').next().unwrap_or("").trim();
        }
        let comment = line.trim_start().starts_with('#');
        let strict = READ.contains(&section) && !comment;
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
                continue;
            }
            let Some(body) = tail.strip_prefix("${") else {
                out.push('$');
                rest = &tail[1..];
                continue;
            };
            let Some(end) = closing_brace(body) else {
                anyhow::bail!(
                    "line {}: `${{` without its closing `}}`: write `${{VAR}}` or \
                     `${{VAR:-default}}`, or `$${{` for a literal `${{`",
                    n + 1
                );
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            match (var(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) if strict => anyhow::bail!(
                    "line {}: the environment variable {name} is not set and `${{{name}}}` \
                     has no default: set it, or write `${{{name}:-default}}`",
                    n + 1
                ),
                (None, None) => {
                    out.push_str("${");
                    out.push_str(inner);
                    out.push('}');
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Where the `}` closing a `${` is, nested braces counted.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            '\n' => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openmetadata.yaml` in the form OpenMetadata ships it: every value
    /// `${VAR:-default}`, quoted and list defaults, empty ones, comments.
    const SHIPPED: &str = r#"clusterName: ${OPENMETADATA_CLUSTER_NAME:-openmetadata}

server:
  rootPath: '/api/*'
  applicationConnectors:
    - type: http
      port: ${SERVER_PORT:-8585}
database:
  url: jdbc:${DB_SCHEME:-mysql}://${DB_HOST:-localhost}:${DB_PORT:-3306}/${OM_DATABASE:-openmetadata_db}?useSSL=${DB_USE_SSL:-false}
  password: ${DB_USER_PASSWORD}
authorizerConfiguration:
  adminPrincipals: ${AUTHORIZER_ADMIN_PRINCIPALS:-[admin]}
  principalDomain: ${AUTHORIZER_PRINCIPAL_DOMAIN:-"open-metadata.org"}
  allowedEmailRegistrationDomains: ${AUTHORIZER_ALLOWED_REGISTRATION_DOMAIN:-["all"]}
authenticationConfiguration:
  ldapConfiguration:
    host: ${AUTHENTICATION_LDAP_HOST:-}
fernetConfiguration:
  fernetKey: ${FERNET_KEY:-jJ/9sz0g0OHxsfxOoSfdFdmk3ysNmPRnH3TUAbz3IHA=}

secretsManagerConfiguration:
  secretsManager: ${SECRET_MANAGER:-noop} # Possible values are "noop", "managed-aws", "aws", "aws-ssm"
  prefix: ${SECRET_MANAGER_PREFIX:-""}
  tags: ${SECRET_MANAGER_TAGS:-[]}
# it will use the default auth provider for the secrets' manager service if parameters are not set
  parameters:
    region: ${OM_SM_REGION:-""}
    accessKeyId: ${OM_SM_ACCESS_KEY_ID:-""}
    secretAccessKey: ${OM_SM_ACCESS_KEY:-""}
    # endpoint: ${OM_SM_ENDPOINT}
"#;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_shipped_file_reads_with_its_defaults_and_with_the_environment() {
        let file = parse_with(SHIPPED, &env(&[])).unwrap();
        let sm = &file.secrets_manager_configuration;
        assert_eq!(sm.secrets_manager.as_deref(), Some("noop"));
        assert_eq!(
            crate::backends::for_secrets_manager("noop")
                .unwrap()
                .provider,
            "db"
        );
        assert_eq!(sm.prefix.as_deref(), Some(""));
        assert!(sm.aws().unwrap().is_some());
        let file = parse_with(
            SHIPPED,
            &env(&[
                ("SECRET_MANAGER", "managed-aws"),
                ("SECRET_MANAGER_PREFIX", "prod"),
                ("OM_SM_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        let sm = &file.secrets_manager_configuration;
        assert_eq!(sm.secrets_manager.as_deref(), Some("managed-aws"));
        assert_eq!(file.cluster_name.as_deref(), Some("openmetadata"));
        assert_eq!(sm.prefix.as_deref(), Some("prod"));
        let text = substitute(SHIPPED, &env(&[("OM_SM_REGION", "eu-west-1")])).unwrap();
        assert!(text.contains("region: eu-west-1\n"), "{text}");
        // Elsewhere, an unset variable without default stays as written.
        assert!(text.contains("password: ${DB_USER_PASSWORD}\n"), "{text}");
        assert!(text.contains("adminPrincipals: [admin]\n"));
        assert!(text.contains("principalDomain: \"open-metadata.org\"\n"));
    }

    #[test]
    fn an_unset_variable_without_default_in_a_section_read_is_named() {
        let text = "secretsManagerConfiguration:\n  secretsManager: ${SECRET_MANAGER}\n";
        let err = parse_with(text, &env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("SECRET_MANAGER is not set"),
            "{err}"
        );
        let file = parse_with(text, &env(&[("SECRET_MANAGER", "aws")])).unwrap();
        assert_eq!(
            file.secrets_manager_configuration
                .secrets_manager
                .as_deref(),
            Some("aws")
        );
        // Set but empty is set (the default is not used).
        let text = "secretsManagerConfiguration:\n  prefix: ${P:-x}\n";
        let file = parse_with(text, &env(&[("P", "")])).unwrap();
        assert_eq!(file.secrets_manager_configuration.prefix, None);
        // `$${` is a literal `${`.
        assert_eq!(substitute("a: $${X}\n", &env(&[])).unwrap(), "a: ${X}\n");
        let err = substitute("secretBroker:\n  dataDir: ${X\n", &env(&[])).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
