//! The built-in `azure-key-vault` provider configured as OpenMetadata configures
//! its Azure Key Vault secrets manager: `SECRET_MANAGER=managed-azure-kv` (or
//! `azure-kv`) with `OM_SM_VAULT_NAME`, `OM_SM_TENANT_ID`, `OM_SM_CLIENT_ID`,
//! `OM_SM_CLIENT_SECRET` (or the `parameters` `vaultName`, `tenantId`,
//! `clientId`, `clientSecret`, `expiresAfterDays`; `[azure]` in TOML,
//! `secretBroker.azure` in YAML). The client secret reaches the provider only as
//! a credential it splices into the login request to the authority, and the
//! access token only as one it sends to the vault.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

use secret_broker_names as names;

use secret_broker::SecretValue;

use super::http::{CredentialSource, HttpConfig, origin_and_path};

/// Azure's public cloud authority.
const AUTHORITY: &str = "https://login.microsoftonline.com";
/// Requests one provider call may send: a listing reads every page of 25.
const REQUESTS_PER_CALL: u64 = 64;
/// Pages a listing may read in one call (one request is left for a login).
const LIST_PAGES: u64 = REQUESTS_PER_CALL - 4;

/// `[azure]`, OpenMetadata's `parameters` for `managed-azure-kv`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The vault's name: `https://{name}.vault.azure.net`.
    #[serde(default, alias = "vaultName")]
    pub vault_name: Option<String>,
    /// The vault's URL, for other clouds and private endpoints (not in
    /// OpenMetadata); wins over `vault_name`.
    #[serde(default, alias = "vaultUrl")]
    pub vault_url: Option<String>,
    /// The directory (tenant) id.
    #[serde(default, alias = "tenantId")]
    pub tenant_id: Option<String>,
    /// The application (client) id.
    #[serde(default, alias = "clientId")]
    pub client_id: Option<String>,
    /// The client secret itself, as OpenMetadata's YAML carries it.
    #[serde(default, alias = "clientSecret")]
    client_secret: Option<String>,
    /// A file holding the client secret (not in OpenMetadata).
    #[serde(default, alias = "clientSecretFile")]
    pub client_secret_file: Option<PathBuf>,
    /// The authority (default `https://login.microsoftonline.com`;
    /// `AZURE_AUTHORITY_HOST` as azure-identity reads it).
    #[serde(default, alias = "authorityHost")]
    pub authority_host: Option<String>,
    /// Days until a written secret expires (OpenMetadata's `expiresAfterDays`).
    #[serde(
        default,
        alias = "expiresAfterDays",
        deserialize_with = "number_or_text"
    )]
    pub expires_after_days: Option<String>,
    /// Keep deleted secrets in the vault's soft-delete state instead of purging.
    #[serde(default, alias = "noPurge")]
    pub no_purge: bool,
    /// Allow the vault or the authority on a private address (a private endpoint).
    #[serde(default, alias = "allowPrivate")]
    pub allow_private: bool,
    /// Extra CA certificates (PEM).
    #[serde(default, alias = "caFile")]
    pub ca_file: Option<PathBuf>,
    /// The client secret is in `OM_SM_CLIENT_SECRET`.
    #[serde(skip)]
    secret_env: bool,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("vault_name", &self.vault_name)
            .field("vault_url", &self.vault_url)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_secret_file", &self.client_secret_file)
            .field("authority_host", &self.authority_host)
            .finish_non_exhaustive()
    }
}

impl Clone for AzureConfig {
    fn clone(&self) -> Self {
        AzureConfig {
            vault_name: self.vault_name.clone(),
            vault_url: self.vault_url.clone(),
            tenant_id: self.tenant_id.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            client_secret_file: self.client_secret_file.clone(),
            authority_host: self.authority_host.clone(),
            expires_after_days: self.expires_after_days.clone(),
            no_purge: self.no_purge,
            allow_private: self.allow_private,
            ca_file: self.ca_file.clone(),
            secret_env: self.secret_env,
        }
    }
}

/// The client secret is wiped, not just freed.
impl Drop for AzureConfig {
    fn drop(&mut self) {
        if let Some(secret) = &mut self.client_secret {
            zeroize::Zeroize::zeroize(secret);
        }
    }
}

/// OpenMetadata writes numbers as text in its YAML (`expiresAfterDays: "90"`).
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Text(t)) => Some(t.trim().to_owned()).filter(|t| !t.is_empty()),
        None => None,
    })
}

impl AzureConfig {
    /// OpenMetadata's variables win over the file.
    pub fn overlay_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        for (name, field) in [
            ("OM_SM_VAULT_NAME", &mut self.vault_name),
            ("OM_SM_AZURE_VAULT_URL", &mut self.vault_url),
            ("OM_SM_TENANT_ID", &mut self.tenant_id),
            ("OM_SM_CLIENT_ID", &mut self.client_id),
            ("AZURE_AUTHORITY_HOST", &mut self.authority_host),
        ] {
            if let Some(v) = get(name) {
                *field = Some(v.trim().to_owned());
            }
        }
        if let Some(path) = get("OM_SM_CLIENT_SECRET_FILE") {
            self.client_secret_file = Some(PathBuf::from(path));
        }
        if let Some(path) = get("OM_SM_AZURE_CA_FILE") {
            self.ca_file = Some(PathBuf::from(path));
        }
        if let Some(flag) = get("OM_SM_AZURE_ALLOW_PRIVATE") {
            self.allow_private = flag.trim().eq_ignore_ascii_case("true");
        }
        self.secret_env = get("OM_SM_CLIENT_SECRET").is_some();
    }

    /// The provider's settings and its http grant.
    pub fn provider(&self) -> anyhow::Result<(BTreeMap<String, String>, HttpConfig)> {
        let vault_url = match (&self.vault_url, &self.vault_name) {
            (Some(url), _) => url.clone(),
            (None, Some(name)) => {
                let name = name.trim();
                if !(3..=24).contains(&name.len())
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    bail!(
                        "vaultName {name:?}: a Key Vault name is 3 to 24 letters, digits and `-`"
                    );
                }
                format!("https://{name}.vault.azure.net")
            }
            (None, None) => bail!(
                "the azure-key-vault provider needs the vault: `vaultName` (OM_SM_VAULT_NAME), \
                 or `vault_url` (OM_SM_AZURE_VAULT_URL)"
            ),
        };
        let (Some(tenant), Some(client_id)) = (
            self.tenant_id.as_deref().filter(|t| !t.is_empty()),
            self.client_id.as_deref().filter(|c| !c.is_empty()),
        ) else {
            bail!(
                "the azure-key-vault provider logs in with a client secret: set `tenantId`, \
                 `clientId` and `clientSecret` (OM_SM_TENANT_ID, OM_SM_CLIENT_ID, \
                 OM_SM_CLIENT_SECRET); OpenMetadata's fallback to DefaultAzureCredential \
                 (managed identity, az login) is not supported"
            );
        };
        let secret = match (
            &self.client_secret,
            &self.client_secret_file,
            self.secret_env,
        ) {
            (_, _, true) => CredentialSource {
                file: None,
                env: Some("OM_SM_CLIENT_SECRET".into()),
                origins: None,
                value: None,
            },
            (_, Some(file), false) => CredentialSource {
                file: Some(file.clone()),
                env: None,
                origins: None,
                value: None,
            },
            (Some(text), None, false) if !text.is_empty() => CredentialSource {
                file: None,
                env: None,
                origins: None,
                value: Some(SecretValue::from_string(text.clone())),
            },
            _ => bail!(
                "the azure-key-vault provider needs the client secret: `clientSecret`, \
                 `client_secret_file`, OM_SM_CLIENT_SECRET or OM_SM_CLIENT_SECRET_FILE"
            ),
        };
        let (vault_origin, vault_path) = origin_and_path("the vault URL", &vault_url)?;
        let authority = self.authority_host.as_deref().unwrap_or(AUTHORITY);
        let authority = if authority.contains("://") {
            authority.to_owned()
        } else {
            format!("https://{authority}")
        };
        let (authority_origin, authority_path) = origin_and_path("the authority", &authority)?;
        if let Some(days) = &self.expires_after_days
            && days.parse::<u64>().is_err()
        {
            bail!("expiresAfterDays {days:?}: write a whole number of days");
        }
        let mut settings = BTreeMap::new();
        settings.insert(
            names::azure::VAULT_URL.to_owned(),
            format!("{vault_origin}{vault_path}"),
        );
        settings.insert(
            names::azure::AUTHORITY.into(),
            format!("{authority_origin}{authority_path}"),
        );
        settings.insert(names::azure::TENANT_ID.into(), tenant.to_owned());
        settings.insert(names::azure::CLIENT_ID.into(), client_id.to_owned());
        settings.insert(names::common::MAX_LIST_PAGES.into(), LIST_PAGES.to_string());
        if let Some(days) = &self.expires_after_days {
            settings.insert(names::azure::EXPIRES_AFTER_DAYS.into(), days.clone());
        }
        if self.no_purge {
            settings.insert(names::azure::PURGE.into(), "false".into());
        }
        let mut origins = vec![vault_origin.clone()];
        if authority_origin != vault_origin {
            origins.push(authority_origin.clone());
        }
        let mut credentials = BTreeMap::new();
        credentials.insert(
            names::azure::CLIENT_SECRET.to_owned(),
            CredentialSource {
                origins: Some(vec![authority_origin]),
                ..secret
            },
        );
        let mut kept_origins = BTreeMap::new();
        kept_origins.insert(names::common::ACCESS_TOKEN.to_owned(), vec![vault_origin]);
        let http = HttpConfig {
            origins,
            allow_private: self.allow_private,
            ca_file: self.ca_file.clone(),
            max_requests_per_call: Some(REQUESTS_PER_CALL),
            credentials,
            kept_origins,
            ..HttpConfig::default()
        };
        Ok((settings, http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> AzureConfig {
        let mut c = AzureConfig::default();
        c.overlay_env(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        c
    }

    #[test]
    fn openmetadata_variables_configure_the_vault_and_the_login() -> anyhow::Result<()> {
        let c = config(&[
            ("OM_SM_VAULT_NAME", "om-vault"),
            ("OM_SM_TENANT_ID", "tenant-1"),
            ("OM_SM_CLIENT_ID", "client-1"),
            ("OM_SM_CLIENT_SECRET", "never-in-settings"),
        ]);
        let (settings, http) = c.provider()?;
        assert_eq!(
            settings["vault-url"],
            "https://om-vault.vault.azure.net:443"
        );
        assert_eq!(
            settings["authority"],
            "https://login.microsoftonline.com:443"
        );
        assert_eq!(settings["tenant-id"], "tenant-1");
        assert!(!format!("{settings:?}{http:?}").contains("never-in-settings"));
        assert_eq!(
            http.origins,
            [
                "https://om-vault.vault.azure.net:443",
                "https://login.microsoftonline.com:443"
            ]
        );
        let secret = &http.credentials[names::azure::CLIENT_SECRET];
        assert_eq!(secret.env.as_deref(), Some("OM_SM_CLIENT_SECRET"));
        assert_eq!(
            secret.origins.as_deref(),
            Some(&["https://login.microsoftonline.com:443".to_owned()][..])
        );
        assert_eq!(
            http.kept_origins[names::common::ACCESS_TOKEN],
            ["https://om-vault.vault.azure.net:443"]
        );
        assert!(!http.allow_private);
        Ok(())
    }

    #[test]
    fn missing_or_bad_settings_say_what_to_set() {
        let err = |c: AzureConfig| {
            c.provider()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(config(&[])).contains("OM_SM_VAULT_NAME"));
        let e = err(config(&[("OM_SM_VAULT_NAME", "om-vault")]));
        assert!(
            e.contains("OM_SM_TENANT_ID") && e.contains("DefaultAzureCredential"),
            "{e}"
        );
        let e = err(config(&[
            ("OM_SM_VAULT_NAME", "om-vault"),
            ("OM_SM_TENANT_ID", "t"),
            ("OM_SM_CLIENT_ID", "c"),
        ]));
        assert!(e.contains("OM_SM_CLIENT_SECRET"), "{e}");
        let e = err(config(&[
            ("OM_SM_VAULT_NAME", "om_vault"),
            ("OM_SM_TENANT_ID", "t"),
            ("OM_SM_CLIENT_ID", "c"),
            ("OM_SM_CLIENT_SECRET", "s"),
        ]));
        assert!(e.contains("3 to 24 letters"), "{e}");
    }

    #[test]
    fn openmetadata_yaml_parameters_parse() -> anyhow::Result<()> {
        let c: AzureConfig = serde_norway::from_str(
            "vaultName: om-vault\ntenantId: t\nclientId: c\nclientSecret: canary-azure-yaml\nexpiresAfterDays: \"90\"\n",
        )?;
        let (settings, http) = c.provider()?;
        assert_eq!(settings["expires-after-days"], "90");
        assert!(
            http.credentials[names::azure::CLIENT_SECRET]
                .value
                .is_some()
        );
        assert!(!format!("{c:?}{http:?}").contains("canary-azure-yaml"));
        let bad: AzureConfig = serde_norway::from_str(
            "vaultName: v-1\ntenantId: t\nclientId: c\nclientSecret: s\nexpiresAfterDays: soon\n",
        )?;
        assert!(
            bad.provider()
                .err()
                .is_some_and(|e| e.to_string().contains("expiresAfterDays"))
        );
        Ok(())
    }
}
