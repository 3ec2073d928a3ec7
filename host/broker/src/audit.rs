//! The audit log: one JSON line per secret operation (who, role, operation,
//! provider, outcome, time), appended to a file opened append-only. Secret ids and
//! values never appear in clear: they are written as `hmac-sha256:<hex>` under a
//! per-deployment salt, as Vault's audit devices do, so an operator who knows an id
//! can find its entries (`secret-broker audit hmac ID`) and nobody can read the ids
//! or values back out of the log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use secret_broker_runtime::fs::{Mode, open_private, write_private};

use crate::policy::Role;

/// The salt file's size.
const SALT_BYTES: usize = 32;

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read, created or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The salt file holds something else than a salt.
    #[error(
        "audit salt {path} is not {SALT_BYTES} bytes of hex; restore it from backup (entries \
         written under another salt cannot be matched any more)"
    )]
    BadSalt {
        /// The file.
        path: String,
    },
}

/// The per-deployment salt and the HMAC it keys.
#[derive(Clone)]
pub struct Salt(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// Reads the salt file (hex), creating it (mode 0600) with a random salt when
    /// it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Salt, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| AuditError::BadSalt {
                    path: path.display().to_string(),
                })?;
                if bytes.len() != SALT_BYTES {
                    return Err(AuditError::BadSalt {
                        path: path.display().to_string(),
                    });
                }
                Ok(Salt(Zeroizing::new(bytes)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; SALT_BYTES];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                write_private(path, format!("{}\n", hex::encode(&bytes)).as_bytes()).map_err(io)?;
                Ok(Salt(Zeroizing::new(bytes)))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A salt from bytes (tests, embedders with their own key management).
    pub fn from_bytes(bytes: &[u8]) -> Salt {
        Salt(Zeroizing::new(bytes.to_vec()))
    }

    /// `hmac-sha256:<hex>` of `data` under this salt.
    pub fn hmac(&self, data: &[u8]) -> String {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(data);
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Done, and the secret did not exist.
    NotFound,
    /// Refused by the policy.
    Denied,
    /// Refused as bad input.
    Invalid,
    /// The provider failed.
    Error,
}

/// One entry, as written.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    /// The caller's name (a token's name, or the OS user for the CLI).
    pub actor: &'a str,
    /// The caller's role.
    pub role: Role,
    /// `secret.get`, `secret.put`, `entity.encrypt`...
    pub operation: &'a str,
    /// The provider instance.
    pub provider: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// The ids touched, HMAC'd.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The value written, HMAC'd (puts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The error's kind when the outcome is an error (never its text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// An append-only JSON-lines audit file.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    salt: Salt,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) `path` for appending.
    pub fn open(path: &Path, salt: Salt) -> Result<AuditLog, AuditError> {
        let file = open_private(path, Mode::Append).map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            salt,
        })
    }

    /// The salt, to HMAC ids and values.
    pub fn salt(&self) -> &Salt {
        &self.salt
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as a single write, so concurrent writers never interleave
    /// within a line. An operation whose entry cannot be written must fail.
    pub fn write(&self, entry: &Entry<'_>) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| AuditError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line).map_err(|source| AuditError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// The current time in RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_keyed_by_the_salt() {
        let a = Salt::from_bytes(&[1; 32]);
        let b = Salt::from_bytes(&[2; 32]);
        let id = b"/openmetadata/database/x/password";
        assert!(a.hmac(id).starts_with("hmac-sha256:"));
        assert_eq!(a.hmac(id).len(), "hmac-sha256:".len() + 64);
        assert_eq!(a.hmac(id), a.hmac(id));
        assert_ne!(a.hmac(id), b.hmac(id));
        assert_ne!(a.hmac(id), a.hmac(b"/other"));
    }

    #[test]
    fn the_salt_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.salt");
        let first = Salt::load_or_create(&path).unwrap();
        let again = Salt::load_or_create(&path).unwrap();
        assert_eq!(first.hmac(b"x"), again.hmac(b"x"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "nothex").unwrap();
        let err = Salt::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("not 32 bytes of hex"), "{err}");
    }
}
