//! The grant's settings: origins, address policy, TLS roots, timeouts, limits
//! and credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secret_broker_runtime::SecretValue;

use crate::jwt::JwtSigner;

/// An allowed origin: scheme (`http` or `https`), host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal, lower case.
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` allowed); anything else (a
    /// path, a query, user info, another scheme) is refused with the reason.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme `{}`: use http or https", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("user info is not allowed in an origin".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(
                "an origin has no path, query or fragment: give scheme://host[:port]".into(),
            );
        }
        let host = url
            .host_str()
            .ok_or_else(|| "no host".to_owned())?
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "no port".to_owned())?;
        Ok(Origin {
            scheme: url.scheme().to_owned(),
            host,
            port,
        })
    }

    /// The origin of `url`.
    pub(crate) fn of(url: &url::Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Why settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// An origin that does not parse as one.
    #[error("http grant: origin {origin:?}: {reason}")]
    Origin {
        /// The text given.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No origin at all.
    #[error("http grant: no origins: list the backend's origin (scheme://host:port) in `origins`")]
    NoOrigins,
    /// The CA file could not be used.
    #[error("http grant: ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A number out of range.
    #[error("http grant: {key} = {value} is out of range: give 1 to {max}")]
    Range {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: u64,
        /// Its maximum.
        max: u64,
    },
    /// The client could not be built.
    #[error("http grant: building the HTTP client: {0}")]
    Client(String),
    /// A credential file that cannot be read.
    #[error("http grant: credential `{name}`: {path}: {reason}")]
    CredentialFile {
        /// The credential name.
        name: String,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A signer that cannot sign.
    #[error("http grant: signer `{name}`: {reason}")]
    Signer {
        /// The credential name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A credential name that is not a plain name.
    #[error("http grant: credential name {0:?}: use letters, digits, `-` and `_`")]
    CredentialName(String),
}

/// Settings of an `http` grant.
#[derive(Clone)]
pub struct HttpSettings {
    /// The origins requests may go to.
    pub origins: Vec<Origin>,
    /// Whether loopback and private addresses may be connected to.
    pub allow_private: bool,
    /// A PEM file of extra CA certificates, trusted beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Extra CA certificates given inline (PEM), as a kubeconfig's
    /// `certificate-authority-data` gives them.
    pub ca_pem: Option<Vec<u8>>,
    /// Time to connect (default 5 s).
    pub connect_timeout: Duration,
    /// Time for one request, body included (default 30 s); never past the call's
    /// deadline.
    pub timeout: Duration,
    /// Largest response body accepted (default 1 MiB).
    pub max_response_bytes: usize,
    /// Requests one provider call may send (default 16).
    pub max_requests_per_call: usize,
    /// Redirects followed within the origin (default 5).
    pub max_redirects: usize,
    /// Credentials the provider may splice by name but never read.
    pub credentials: BTreeMap<String, SecretValue>,
    /// Credentials read from files, by name: read again whenever the file
    /// changes (a Kubernetes service account token the kubelet rotates, an
    /// access token a sidecar refreshes), so a rotation needs no restart.
    pub credential_files: BTreeMap<String, PathBuf>,
    /// Credentials the host signs afresh each time the provider splices them
    /// (a service account's JWT assertion), by name; bound to origins like the
    /// others.
    pub signers: BTreeMap<String, JwtSigner>,
    /// The origins a credential may be sent to, by name; a configured credential
    /// not listed here may go to any of the grant's origins. A value the provider
    /// keeps from a response goes back to the origin that sent it, and also to
    /// the origins listed here under its name (an OAuth token, for the API).
    pub credential_origins: BTreeMap<String, Vec<Origin>>,
    /// The key of `digest` (32 bytes). Keep it stable across restarts (the CLI
    /// derives it from the deployment's salt and the instance name) so stored
    /// digests stay comparable; `None` draws one per process.
    pub digest_key: Option<SecretValue>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("origins", &self.origins)
            .field("allow_private", &self.allow_private)
            .field("ca_file", &self.ca_file)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_requests_per_call", &self.max_requests_per_call)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("credential_files", &self.credential_files)
            .field("signers", &self.signers)
            .finish()
    }
}

impl HttpSettings {
    /// Settings allowing `origins`, with the defaults for everything else.
    pub fn new<S: AsRef<str>>(origins: &[S]) -> Result<HttpSettings, SettingsError> {
        if origins.is_empty() {
            return Err(SettingsError::NoOrigins);
        }
        let origins = origins
            .iter()
            .map(|o| {
                Origin::parse(o.as_ref()).map_err(|reason| SettingsError::Origin {
                    origin: o.as_ref().to_owned(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpSettings {
            origins,
            allow_private: false,
            ca_file: None,
            ca_pem: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_response_bytes: 1 << 20,
            max_requests_per_call: 16,
            max_redirects: 5,
            credentials: BTreeMap::new(),
            credential_files: BTreeMap::new(),
            signers: BTreeMap::new(),
            credential_origins: BTreeMap::new(),
            digest_key: None,
        })
    }

    /// Adds the credential `name`.
    pub fn credential(
        mut self,
        name: &str,
        value: SecretValue,
    ) -> Result<HttpSettings, SettingsError> {
        check_name(name)?;
        self.credentials.insert(name.to_owned(), value);
        Ok(self)
    }

    /// Adds the credential `name`, read from the file `path` now (so a
    /// missing file is refused here) and again whenever the file changes.
    pub fn credential_file(
        mut self,
        name: &str,
        path: impl Into<PathBuf>,
    ) -> Result<HttpSettings, SettingsError> {
        check_name(name)?;
        let path = path.into();
        std::fs::metadata(&path).map_err(|e| SettingsError::CredentialFile {
            name: name.to_owned(),
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.credential_files.insert(name.to_owned(), path);
        Ok(self)
    }

    /// Adds the signed credential `name`.
    pub fn signer(mut self, name: &str, signer: JwtSigner) -> Result<HttpSettings, SettingsError> {
        check_name(name)?;
        self.signers.insert(name.to_owned(), signer);
        Ok(self)
    }

    /// Lets the credential `name` go only to `origins` (each one of the grant's);
    /// for a name the provider keeps from a response: also to `origins`.
    pub fn bind_credential<S: AsRef<str>>(
        mut self,
        name: &str,
        origins: &[S],
    ) -> Result<HttpSettings, SettingsError> {
        let mut bound = Vec::new();
        for o in origins {
            let origin = Origin::parse(o.as_ref()).map_err(|reason| SettingsError::Origin {
                origin: o.as_ref().to_owned(),
                reason,
            })?;
            if !self.origins.contains(&origin) {
                return Err(SettingsError::Origin {
                    origin: o.as_ref().to_owned(),
                    reason: format!(
                        "credential `{name}` is bound to it, but it is not in `origins`"
                    ),
                });
            }
            bound.push(origin);
        }
        self.credential_origins.insert(name.to_owned(), bound);
        Ok(self)
    }

    /// Checks the numbers are in range.
    pub fn check(&self) -> Result<(), SettingsError> {
        let range = |key: &'static str, value: u64, max: u64| {
            if value == 0 || value > max {
                Err(SettingsError::Range { key, value, max })
            } else {
                Ok(())
            }
        };
        range(
            "connect_timeout_ms",
            self.connect_timeout.as_millis() as u64,
            600_000,
        )?;
        range("timeout_ms", self.timeout.as_millis() as u64, 600_000)?;
        range(
            "max_response_kib",
            (self.max_response_bytes as u64).div_ceil(1024),
            1 << 20,
        )?;
        range(
            "max_requests_per_call",
            self.max_requests_per_call as u64,
            10_000,
        )?;
        Ok(())
    }
}

/// A credential name: letters, digits, `-`, `_`.
pub(crate) fn check_name(name: &str) -> Result<(), SettingsError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(SettingsError::CredentialName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_strictly() {
        let o = Origin::parse("http://127.0.0.1:8200").unwrap();
        assert_eq!(o.to_string(), "http://127.0.0.1:8200");
        assert_eq!(Origin::parse("https://Vault.Example/").unwrap().port, 443);
        for bad in [
            "ftp://x",
            "http://u:p@x",
            "http://x/v1",
            "http://x?q",
            "x:8200",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            HttpSettings::new::<&str>(&[]),
            Err(SettingsError::NoOrigins)
        ));
    }

    #[test]
    fn debug_never_prints_a_credential() {
        let s = HttpSettings::new(&["http://127.0.0.1:1"])
            .unwrap()
            .credential("token", SecretValue::from_string("canary-tok-77".into()))
            .unwrap();
        let printed = format!("{s:?}");
        assert!(printed.contains("token") && !printed.contains("canary-tok-77"));
    }
}
