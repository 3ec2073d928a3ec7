//! The `[http]` table: the `http` grant of a provider of one's own, and the form
//! every http backend's preset (openbao, kubernetes, azure, gcp) builds its grant
//! in. Credentials are read from a file or a variable into the host; they never
//! appear in the provider's settings.

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
