//! The `[openbao]` table (TOML) or `secretBroker.openbao` (YAML) with
//! OpenMetadata-style `OM_SM_VAULT_*` variables: the built-in `openbao` provider
//! (`SECRET_MANAGER=openbao`). The token and the AppRole secret id are read into
//! the host; they never appear in the provider's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

use secret_broker_names as names;

use super::http::{CredentialSource, HttpConfig};

/// `[openbao]` (TOML) or `secretBroker.openbao` (YAML), overlaid by `OM_SM_VAULT_*`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoConfig {
    /// The server's origin, `https://bao.example:8200`.
    #[serde(default)]
    pub address: Option<String>,
    /// The KV version 2 mount (default `secret`).
    #[serde(default)]
    pub mount: Option<String>,
    /// An OpenBao / Vault Enterprise namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `token` (default) or `approle`.
    #[serde(default)]
    pub auth: Option<String>,
    /// AppRole role id.
    #[serde(default, alias = "roleId")]
    pub role_id: Option<String>,
    /// A file holding the token (token auth).
    #[serde(default, alias = "tokenFile")]
    pub token_file: Option<PathBuf>,
    /// A file holding the AppRole secret id.
    #[serde(default, alias = "secretIdFile")]
    pub secret_id_file: Option<PathBuf>,
    /// Delete only the latest version (KV soft delete) instead of every version.
    #[serde(default, alias = "softDelete")]
    pub soft_delete: bool,
    /// Allow a loopback or private address.
    #[serde(default, alias = "allowPrivate")]
    pub allow_private: bool,
    /// Extra CA certificates (PEM).
    #[serde(default, alias = "caFile")]
    pub ca_file: Option<PathBuf>,
    /// The token itself, from `OM_SM_VAULT_TOKEN` only.
    #[serde(skip)]
    pub token_env: bool,
    /// The secret id itself, from `OM_SM_VAULT_SECRET_ID` only.
    #[serde(skip)]
    pub secret_id_env: bool,
}

impl OpenBaoConfig {
    /// The variables win over the file.
    pub fn overlay_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        for (name, field) in [
            ("OM_SM_VAULT_ADDRESS", &mut self.address),
            ("OM_SM_VAULT_MOUNT", &mut self.mount),
            ("OM_SM_VAULT_NAMESPACE", &mut self.namespace),
            ("OM_SM_VAULT_AUTH", &mut self.auth),
            ("OM_SM_VAULT_ROLE_ID", &mut self.role_id),
        ] {
            if let Some(v) = get(name) {
                *field = Some(v);
            }
        }
        for (name, field) in [
            ("OM_SM_VAULT_TOKEN_FILE", &mut self.token_file),
            ("OM_SM_VAULT_SECRET_ID_FILE", &mut self.secret_id_file),
            ("OM_SM_VAULT_CA_FILE", &mut self.ca_file),
        ] {
            if let Some(v) = get(name) {
                *field = Some(PathBuf::from(v));
            }
        }
        for (name, field) in [
            ("OM_SM_VAULT_SOFT_DELETE", &mut self.soft_delete),
            ("OM_SM_VAULT_ALLOW_PRIVATE", &mut self.allow_private),
        ] {
            if let Some(v) = get(name) {
                *field = v == "true";
            }
        }
        self.token_env = get("OM_SM_VAULT_TOKEN").is_some();
        self.secret_id_env = get("OM_SM_VAULT_SECRET_ID").is_some();
    }

    /// The provider's settings and its http grant.
    pub fn provider(&self) -> anyhow::Result<(BTreeMap<String, String>, HttpConfig)> {
        let Some(address) = self.address.as_deref().filter(|a| !a.trim().is_empty()) else {
            bail!(
                "the openbao provider needs the server's address: `[openbao] address` or \
                 OM_SM_VAULT_ADDRESS (for example https://bao.example:8200)"
            );
        };
        let origin = secret_broker_http::Origin::parse(address)
            .map_err(|e| anyhow::anyhow!("openbao address {address:?}: {e}"))?;
        let mut settings = BTreeMap::new();
        settings.insert(names::openbao::ADDRESS.to_owned(), origin.to_string());
        if let Some(m) = &self.mount {
            settings.insert(names::openbao::MOUNT.into(), m.clone());
        }
        if let Some(n) = &self.namespace {
            settings.insert(names::openbao::NAMESPACE.into(), n.clone());
        }
        if self.soft_delete {
            settings.insert(names::openbao::SOFT_DELETE.into(), "true".into());
        }
        let mut credentials = BTreeMap::new();
        let source = |file: &Option<PathBuf>, env: bool, var: &str| CredentialSource {
            file: if env { None } else { file.clone() },
            env: env.then(|| var.to_owned()),
            origins: None,
            value: None,
        };
        match self.auth.as_deref().unwrap_or("token") {
            "token" => {
                if self.token_file.is_none() && !self.token_env {
                    bail!(
                        "openbao token auth needs a token: `[openbao] token_file` or \
                         OM_SM_VAULT_TOKEN / OM_SM_VAULT_TOKEN_FILE"
                    );
                }
                credentials.insert(
                    names::openbao::TOKEN.into(),
                    source(&self.token_file, self.token_env, "OM_SM_VAULT_TOKEN"),
                );
            }
            "approle" => {
                let Some(role) = &self.role_id else {
                    bail!("openbao approle auth needs `role_id` (OM_SM_VAULT_ROLE_ID)");
                };
                if self.secret_id_file.is_none() && !self.secret_id_env {
                    bail!(
                        "openbao approle auth needs a secret id: `[openbao] secret_id_file` or \
                         OM_SM_VAULT_SECRET_ID / OM_SM_VAULT_SECRET_ID_FILE"
                    );
                }
                settings.insert(
                    names::openbao::AUTH.into(),
                    names::openbao::AUTH_APPROLE.into(),
                );
                settings.insert(names::openbao::ROLE_ID.into(), role.clone());
                credentials.insert(
                    names::openbao::SECRET_ID.into(),
                    source(
                        &self.secret_id_file,
                        self.secret_id_env,
                        "OM_SM_VAULT_SECRET_ID",
                    ),
                );
            }
            other => bail!("openbao auth {other:?}: use token or approle"),
        }
        let http = HttpConfig {
            origins: vec![origin.to_string()],
            allow_private: self.allow_private,
            ca_file: self.ca_file.clone(),
            credentials,
            ..HttpConfig::default()
        };
        Ok((settings, http))
    }
}
