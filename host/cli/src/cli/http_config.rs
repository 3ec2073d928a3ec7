//! The `[http]` table (the `http` grant of a provider of one's own) and the
//! `[openbao]` table with OpenMetadata-style `OM_SM_VAULT_*` variables (the
//! built-in `openbao` provider, `SECRET_MANAGER=openbao`). Credentials are read
//! from a file or a variable into the host; they never appear in the provider's
//! settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use secret_broker::SecretValue;
use secret_broker_http::HttpSettings;

/// Where a credential of the grant comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSource {
    /// A file holding the value (trailing newline removed).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An environment variable holding it.
    #[serde(default)]
    pub env: Option<String>,
    /// The origins it may be sent to (each one of the grant's); all of them
    /// when not given.
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    /// The value itself, when the host read it from elsewhere (a kubeconfig).
    #[serde(skip)]
    pub value: Option<SecretValue>,
}

/// A credential the host signs afresh at each use: an RS256 JWT assertion
/// (RFC 7523), as a Google service account logs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerSource {
    /// A PEM file holding the RSA private key (PKCS#8).
    #[serde(default, alias = "keyFile")]
    pub key_file: Option<PathBuf>,
    /// The key's id, written as the JWT's `kid`.
    #[serde(default, alias = "keyId")]
    pub key_id: Option<String>,
    /// Claims written into every assertion (`iss`, `aud`, `scope`, ...); the
    /// host adds `iat` and `exp`.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The assertion's life in seconds (default 3600, at most 3600).
    #[serde(default, alias = "lifetimeSecs")]
    pub lifetime_secs: Option<u64>,
    /// The origins it may be sent to (each one of the grant's); all of them
    /// when not given.
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    /// The key itself, when the host read it from elsewhere (a service
    /// account key file).
    #[serde(skip)]
    pub key: Option<SecretValue>,
}

impl SignerSource {
    fn signer(&self, name: &str) -> anyhow::Result<secret_broker_http::JwtSigner> {
        let key = match (&self.key, &self.key_file) {
            (Some(key), _) => key.clone(),
            (None, Some(path)) => SecretValue::new(
                zeroize::Zeroizing::new(std::fs::read(path).with_context(|| {
                    format!("http signer `{name}`: reading {}", path.display())
                })?)
                .to_vec(),
            ),
            (None, None) => bail!("http signer `{name}`: give `key_file`"),
        };
        Ok(secret_broker_http::JwtSigner::rs256(
            name,
            &key,
            self.key_id.clone(),
            serde_json::Value::Object(self.claims.clone()),
            Duration::from_secs(self.lifetime_secs.unwrap_or(3600)),
        )?)
    }
}

/// `[http]` (TOML) or `secretBroker.http` (YAML).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Origins requests may go to: `scheme://host[:port]`.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Allow loopback and private addresses.
    #[serde(default, alias = "allowPrivate")]
    pub allow_private: bool,
    /// Extra CA certificates (PEM), beside the system roots.
    #[serde(default, alias = "caFile")]
    pub ca_file: Option<PathBuf>,
    /// Connect timeout, ms (default 5000).
    #[serde(default, alias = "connectTimeoutMs")]
    pub connect_timeout_ms: Option<u64>,
    /// Request timeout, ms (default 30000).
    #[serde(default, alias = "timeoutMs")]
    pub timeout_ms: Option<u64>,
    /// Largest response body, KiB (default 1024).
    #[serde(default, alias = "maxResponseKib")]
    pub max_response_kib: Option<u64>,
    /// Requests per provider call (default 16).
    #[serde(default, alias = "maxRequestsPerCall")]
    pub max_requests_per_call: Option<u64>,
    /// Credentials by name.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSource>,
    /// Credentials the host signs at each use, by name.
    #[serde(default)]
    pub signers: BTreeMap<String, SignerSource>,
    /// CA certificates given inline (a kubeconfig's `certificate-authority-data`).
    #[serde(skip)]
    pub ca_pem: Option<Vec<u8>>,
    /// Values the provider keeps from responses (`keep-as`), by name, and the
    /// origins each may also go to besides the one that sent it: an OAuth
    /// token from the authority, for the API.
    #[serde(default, alias = "keptOrigins")]
    pub kept_origins: BTreeMap<String, Vec<String>>,
}

/// The origin (`scheme://host:port`) and the path (without a trailing `/`) of
/// an http(s) URL; errors say it is not one, naming `what` it is.
pub fn origin_and_path(what: &str, url: &str) -> anyhow::Result<(String, String)> {
    let url = url.trim();
    let not_url = || format!("{what} {url:?} is not an http(s) URL");
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(not_url)?;
    let scheme = &url[..url.len() - rest.len()];
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if host.is_empty() {
        bail!("{}", not_url());
    }
    let origin = secret_broker_http::Origin::parse(&format!("{scheme}{host}"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", not_url()))?;
    Ok((origin.to_string(), path.trim_end_matches('/').to_owned()))
}

fn read_credential(name: &str, source: &CredentialSource) -> anyhow::Result<SecretValue> {
    if let Some(value) = &source.value {
        return Ok(value.clone());
    }
    match (&source.file, &source.env) {
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(SecretValue::from_string(v)),
            _ => bail!("http credential `{name}`: the variable {var} is not set"),
        },
        _ => bail!("http credential `{name}`: give exactly one of `file` or `env`"),
    }
}

impl HttpConfig {
    /// The grant's settings; `digest_key` keeps the grant's digests stable.
    pub fn settings(&self, digest_key: SecretValue) -> anyhow::Result<HttpSettings> {
        let mut s = HttpSettings::new(&self.origins)?;
        s.allow_private = self.allow_private;
        s.ca_file = self.ca_file.clone();
        s.ca_pem = self.ca_pem.clone();
        if let Some(ms) = self.connect_timeout_ms {
            s.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.timeout_ms {
            s.timeout = Duration::from_millis(ms);
        }
        if let Some(kib) = self.max_response_kib {
            s.max_response_bytes = (kib.min(1 << 22) << 10) as usize;
        }
        if let Some(n) = self.max_requests_per_call {
            s.max_requests_per_call = n.min(1 << 20) as usize;
        }
        s.digest_key = Some(digest_key);
        for (name, source) in &self.credentials {
            s = match (&source.value, &source.file) {
                // Read again whenever the file changes: a rotation needs no restart.
                (None, Some(path)) if source.env.is_none() => s
                    .credential_file(name, path)
                    .with_context(|| format!("http credential `{name}`"))?,
                _ => s.credential(name, read_credential(name, source)?)?,
            };
            if let Some(origins) = &source.origins {
                s = s.bind_credential(name, origins)?;
            }
        }
        for (name, source) in &self.signers {
            if self.credentials.contains_key(name) {
                bail!("http: `{name}` is both a configured credential and a signer: rename one");
            }
            s = s.signer(name, source.signer(name)?)?;
            if let Some(origins) = &source.origins {
                s = s.bind_credential(name, origins)?;
            }
        }
        for (name, origins) in &self.kept_origins {
            if self.credentials.contains_key(name) || self.signers.contains_key(name) {
                bail!(
                    "http: `{name}` is both a configured credential and a kept one: \
                     bind a credential's origins under `credentials`"
                );
            }
            s = s.bind_credential(name, origins)?;
        }
        s.check()?;
        Ok(s)
    }
}

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
        settings.insert("address".to_owned(), origin.to_string());
        if let Some(m) = &self.mount {
            settings.insert("mount".into(), m.clone());
        }
        if let Some(n) = &self.namespace {
            settings.insert("namespace".into(), n.clone());
        }
        if self.soft_delete {
            settings.insert("soft-delete".into(), "true".into());
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
                    "token".into(),
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
                settings.insert("auth".into(), "approle".into());
                settings.insert("role-id".into(), role.clone());
                credentials.insert(
                    "secret-id".into(),
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
