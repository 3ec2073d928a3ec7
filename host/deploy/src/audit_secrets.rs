//! The audit log's secrets, its HMAC salt and its checkpoint signing key, kept
//! in the shared database sealed by the keyring, so that replicas on one
//! PostgreSQL or MariaDB need nothing but their configuration: each makes its
//! data dir's `audit.salt` and `audit.signing-key` match the database at start
//! (the database wins; a file the database lacks is published there, the first
//! replica's standing when two start at once). `audit key rotate` publishes
//! the new signing key; a replica started later takes it, and a running one
//! refuses to append until restarted (the chain names the new key, which its
//! file does not hold yet: fail-closed, never a checkpoint by the wrong key).
//!
//! Rows live in the namespace `broker/audit-secrets`: `salt` and `signing-key`,
//! each the file's bytes sealed by the keyring (associated data: the name).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use zeroize::Zeroizing;

use secret_broker::SecretValue;
use secret_broker::audit::{Salt, SigningKey};
use secret_broker_keyring::Keyring;
use secret_broker_record_store::{Condition, RecordStore, StoreError};

/// The namespace of the audit secrets' rows.
pub const NAMESPACE: &str = "broker/audit-secrets";

/// Which secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSecret {
    /// The HMAC salt (`audit.salt`).
    Salt,
    /// The checkpoint signing key (`audit.signing-key`).
    SigningKey,
}

impl AuditSecret {
    fn row(self) -> &'static str {
        match self {
            AuditSecret::Salt => "salt",
            AuditSecret::SigningKey => "signing-key",
        }
    }

    fn aad(self) -> Vec<u8> {
        format!("secret-broker audit secret {}", self.row()).into_bytes()
    }
}

/// The audit secrets of one data dir, kept in step with the database.
pub struct AuditSecrets {
    store: Arc<RecordStore>,
    keyring: Arc<Keyring>,
    salt: PathBuf,
    signing_key: PathBuf,
}

impl std::fmt::Debug for AuditSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSecrets")
            .field("salt", &self.salt)
            .field("signing_key", &self.signing_key)
            .finish_non_exhaustive()
    }
}

fn read_file(path: &Path) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl AuditSecrets {
    /// The secrets at `salt` and `signing_key`, kept in `store`, sealed by `keyring`.
    pub fn new(
        store: Arc<RecordStore>,
        keyring: Arc<Keyring>,
        salt: PathBuf,
        signing_key: PathBuf,
    ) -> Self {
        AuditSecrets {
            store,
            keyring,
            salt,
            signing_key,
        }
    }

    fn path(&self, which: AuditSecret) -> &Path {
        match which {
            AuditSecret::Salt => &self.salt,
            AuditSecret::SigningKey => &self.signing_key,
        }
    }

    /// Both secrets in step with the database ([`AuditSecrets::sync_one`]).
    pub async fn sync(&self) -> anyhow::Result<()> {
        self.sync_one(AuditSecret::Salt).await?;
        self.sync_one(AuditSecret::SigningKey).await?;
        Ok(())
    }

    /// Makes the file match the database: the database's copy is written over
    /// a file that differs (returns `true` then); a file the database lacks is
    /// published (created first when missing). Two replicas publishing at once:
    /// the first stands and the other takes it.
    pub async fn sync_one(&self, which: AuditSecret) -> anyhow::Result<bool> {
        let path = self.path(which);
        loop {
            if let Some(record) = self.store.get(NAMESPACE, which.row()).await? {
                let stored = self
                    .keyring
                    .open(&record.value, &which.aad())
                    .with_context(|| format!("opening the database's audit {}", which.row()))?;
                let local = read_file(path)?;
                if local.as_deref().map(Vec::as_slice) == Some(stored.expose()) {
                    return Ok(false);
                }
                secret_broker_runtime::fs::replace_private(path, stored.expose())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(true);
            }
            let local = match read_file(path)? {
                Some(bytes) => bytes,
                None => {
                    match which {
                        AuditSecret::Salt => drop(Salt::load_or_create(path)?),
                        AuditSecret::SigningKey => drop(SigningKey::create(path)?),
                    }
                    read_file(path)?.with_context(|| format!("{} vanished", path.display()))?
                }
            };
            let sealed = self
                .keyring
                .seal(&SecretValue::new(local.to_vec()), &which.aad());
            match self
                .store
                .put(NAMESPACE, which.row(), &sealed, Condition::Absent)
                .await
            {
                Ok(_) => return Ok(false),
                // Another replica published first: take its copy.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Publishes the file over the database's copy (after `audit key rotate`).
    pub async fn publish(&self, which: AuditSecret) -> anyhow::Result<()> {
        let path = self.path(which);
        let local = read_file(path)?.with_context(|| format!("{} is missing", path.display()))?;
        let sealed = self
            .keyring
            .seal(&SecretValue::new(local.to_vec()), &which.aad());
        self.store
            .put(NAMESPACE, which.row(), &sealed, Condition::Any)
            .await?;
        Ok(())
    }
}
