//! The keyring's data keys kept in the record store, each wrapped by a
//! key-encryption key (KEK), so that replicas on one PostgreSQL or MariaDB share
//! one keyring and a rotation on one reaches all of them.
//!
//! The KEK is either derived from the master keys (`SECRET_BROKER_MASTER_KEY`
//! or the key file: HKDF-Expand with each master key as the pseudorandom key, so
//! a master key never wraps a copy of itself), or a key held by AWS KMS
//! (`[keyring] kms_key_id`, `SECRET_BROKER_KMS_KEY_ID`): then no replica holds
//! any key at rest.
//!
//! Rows live in the namespace `broker/keyring`: `key/<version, 10 digits>` holds
//! the wrapped key, the id of the KEK that wrapped it and whether it is active;
//! `rotation` holds the progress of `keyring rotate`. A rotation adds its
//! version inactive (insert-if-absent, so two rotations at once add one version,
//! never two), waits [`PROPAGATION`] so that every replica, which re-reads the
//! rows every [`REFRESH`], holds the key, and only then activates it: no
//! replica meets a value sealed under a key it has not loaded.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use secret_broker::SecretValue;
use secret_broker_aws::KmsKey;
use secret_broker_keyring::{KeyBytes, Keyring};
use secret_broker_record_store::{Condition, RecordStore, StoreError};

/// The namespace of the keyring's rows.
pub const NAMESPACE: &str = "broker/keyring";

/// How often a server re-reads the data keys.
pub const REFRESH: Duration = Duration::from_millis(500);

/// How long a rotation waits between adding a key and sealing with it: two
/// refreshes and a margin, so every live replica holds the key first.
pub const PROPAGATION: Duration = Duration::from_millis(1300);

const ROTATION: &str = "rotation";
const KEY_PREFIX: &str = "key/";

#[derive(Debug, Serialize, Deserialize)]
struct Row {
    /// Which KEK wrapped it.
    kek: String,
    /// The wrapped key, standard base64.
    wrapped: String,
    /// Whether values are sealed with it (the newest active version seals).
    active: bool,
    /// When it was added (seconds since the epoch).
    created: u64,
}

/// How far `keyring rotate` has come: every id up to `done_through` is
/// re-sealed under `target_version`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RotationProgress {
    /// The version values are re-sealed under.
    pub target_version: u32,
    /// The last id re-sealed, in list order.
    pub done_through: Option<String>,
}

/// The key-encryption key.
pub enum Kek {
    /// Derived from the master keys, one KEK per master key version; the newest
    /// wraps, any unwraps what it wrapped.
    Local {
        /// KEK id → KEK.
        keys: Vec<(String, KeyBytes)>,
    },
    /// A key in AWS KMS.
    Kms(KmsKey),
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

/// The context a data key is wrapped in: its version.
fn context(version: u32) -> Vec<u8> {
    format!("secret-broker data key v{version}").into_bytes()
}

impl Kek {
    /// KEKs derived from every version of `master`.
    pub fn local(master: &Keyring) -> Kek {
        let keys = master
            .key_material()
            .into_iter()
            .map(|(version, key)| {
                let kek = derive(&key);
                let fingerprint = hex::encode(&Sha256::digest(kek.as_ref())[..4]);
                (format!("master-key-v{version}-{fingerprint}"), kek)
            })
            .collect();
        Kek::Local { keys }
    }

    /// The id of the KEK that wraps new keys.
    pub fn id(&self) -> String {
        match self {
            Kek::Local { keys } => keys
                .last()
                .map(|(id, _)| id.clone())
                .unwrap_or_else(|| "master-key-none".into()),
            Kek::Kms(kms) => format!("kms:{}", kms.key_id()),
        }
    }

    async fn wrap(&self, version: u32, key: &KeyBytes) -> anyhow::Result<(String, Vec<u8>)> {
        let plain = SecretValue::new(key.to_vec());
        match self {
            Kek::Local { keys } => {
                let (id, kek) = keys.last().context("no master key to wrap with")?;
                let ring = Keyring::single(**kek);
                Ok((id.clone(), ring.seal(&plain, &context(version))))
            }
            Kek::Kms(kms) => {
                let version = version.to_string();
                let wrapped = kms
                    .wrap(
                        &plain,
                        &[("purpose", "secret-broker data key"), ("version", &version)],
                    )
                    .await?;
                Ok((self.id(), wrapped))
            }
        }
    }

    async fn unwrap(&self, version: u32, row: &Row) -> anyhow::Result<KeyBytes> {
        let refuse = |why: &str| {
            anyhow::anyhow!(
                "data key version {version} in the database is wrapped by the key-encryption key \
                 `{}`, which this process's KEK (`{}`) cannot unwrap ({why}): start it with the KEK \
                 that wrapped the keys (the same SECRET_BROKER_MASTER_KEY or key file as the other \
                 replicas, or SECRET_BROKER_KMS_KEY_ID); nothing was changed",
                row.kek,
                self.id()
            )
        };
        let wrapped = base64::engine::general_purpose::STANDARD
            .decode(&row.wrapped)
            .map_err(|_| refuse("the row is not base64"))?;
        let plain = match self {
            Kek::Local { keys } => {
                let (_, kek) = keys
                    .iter()
                    .find(|(id, _)| *id == row.kek)
                    .ok_or_else(|| refuse("no master key of this process derives it"))?;
                Keyring::single(**kek)
                    .open(&wrapped, &context(version))
                    .map_err(|_| refuse("integrity check failed"))?
            }
            Kek::Kms(kms) => {
                if row.kek != self.id() {
                    return Err(refuse("another KMS key or a local key wrapped it"));
                }
                let version = version.to_string();
                kms.unwrap(
                    &wrapped,
                    &[("purpose", "secret-broker data key"), ("version", &version)],
                )
                .await
                .map_err(|e| refuse(&format!("{e:#}")))?
            }
        };
        let bytes: [u8; 32] = plain
            .expose()
            .try_into()
            .map_err(|_| refuse("the unwrapped key is not 32 bytes"))?;
        Ok(Zeroizing::new(bytes))
    }
}

/// HKDF-Expand (RFC 5869) of one block, with the master key as the
/// pseudorandom key: the KEK a master key version stands for.
fn derive(master: &KeyBytes) -> KeyBytes {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"secret-broker key-encryption key\x01");
    let out: [u8; 32] = mac.finalize().into_bytes().into();
    Zeroizing::new(out)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn key_row(version: u32) -> String {
    format!("{KEY_PREFIX}{version:010}")
}

/// The data keys in a record store, wrapped by a KEK.
pub struct DataKeys {
    store: Arc<RecordStore>,
    kek: Kek,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("kek", &self.kek)
            .finish_non_exhaustive()
    }
}

impl DataKeys {
    /// The data keys in `store`, wrapped by `kek`.
    pub fn new(store: Arc<RecordStore>, kek: Kek) -> Self {
        DataKeys { store, kek }
    }

    /// The KEK.
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    async fn rows(&self) -> Result<Vec<(u32, u64, Row)>, anyhow::Error> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(NAMESPACE, KEY_PREFIX, after.as_deref(), 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let full = page.len() == 500;
            for record in page {
                let version: u32 = record.key[KEY_PREFIX.len()..]
                    .parse()
                    .with_context(|| format!("keyring row `{}`: not a version", record.key))?;
                let row: Row = serde_json::from_slice(&record.value)
                    .with_context(|| format!("keyring row `{}`: not a data key", record.key))?;
                rows.push((version, record.version, row));
            }
            if !full {
                break;
            }
        }
        Ok(rows)
    }

    /// Whether the store holds any data key yet.
    pub async fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(self.rows().await?.is_empty())
    }

    /// The keyring of the stored data keys. When the store holds none, `seed`'s
    /// keys (the master keys of an earlier single-machine layout, so what they
    /// sealed stays readable) or else one fresh random key become the data keys,
    /// all active. Fails, changing nothing, when the KEK cannot unwrap a key.
    pub async fn load(&self, seed: Option<&Keyring>) -> anyhow::Result<Keyring> {
        let mut rows = self.rows().await?;
        if rows.is_empty() {
            let keys = match seed {
                Some(ring) => ring.key_material(),
                None => {
                    let mut key = Zeroizing::new([0u8; 32]);
                    rand::rngs::OsRng.fill_bytes(key.as_mut());
                    vec![(1, key)]
                }
            };
            for (version, key) in keys {
                // Another replica seeding at once: the first one's keys stand.
                match self.insert(version, &key, true).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            rows = self.rows().await?;
        }
        let mut keys = Vec::new();
        let mut active = 0;
        for (version, _, row) in &rows {
            keys.push((*version, self.kek.unwrap(*version, row).await?));
            if row.active {
                active = active.max(*version);
            }
        }
        if active == 0 {
            bail!(
                "the database's keyring has no active data key (rows: {})",
                rows.len()
            );
        }
        Ok(Keyring::with_keys(keys, active)?)
    }

    async fn insert(&self, version: u32, key: &KeyBytes, active: bool) -> Result<(), StoreError> {
        let (kek, wrapped) =
            self.kek
                .wrap(version, key)
                .await
                .map_err(|e| StoreError::Database {
                    url: "kms".into(),
                    message: format!("wrapping data key version {version}: {e:#}"),
                })?;
        let row = Row {
            kek,
            wrapped: base64::engine::general_purpose::STANDARD.encode(wrapped),
            active,
            created: now(),
        };
        let bytes = serde_json::to_vec(&row).unwrap_or_default();
        self.store
            .put(NAMESPACE, &key_row(version), &bytes, Condition::Absent)
            .await
            .map(drop)
    }

    /// Adds to `ring` the data keys other processes added since it was loaded and
    /// makes the newest active one seal; returns the versions added.
    pub async fn refresh(&self, ring: &Keyring) -> anyhow::Result<Vec<u32>> {
        let held = ring.versions();
        let mut fresh = Vec::new();
        let mut active = 0;
        for (version, _, row) in self.rows().await? {
            if row.active {
                active = active.max(version);
            }
            if !held.contains(&version) {
                fresh.push((version, self.kek.unwrap(version, &row).await?));
            }
        }
        Ok(ring.merge(fresh, active))
    }

    /// Starts a rotation, or joins the one under way: when a rotation's
    /// progress is saved, or the newest data key is not active yet, returns that
    /// version (`false`: not added by this call). Otherwise adds a fresh random
    /// data key, inactive, as the version after the newest, and saves the
    /// rotation's progress at once so that a rotation started a moment later
    /// joins this one; two that add at the same instant meet on the row's
    /// insert-if-absent, and the second joins. So rotations at once add one
    /// version, never two.
    pub async fn begin_rotation(&self) -> anyhow::Result<(u32, bool)> {
        let rows = self.rows().await?;
        let newest = rows.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
        if let Some(progress) = self.rotation().await?
            && rows.iter().any(|(v, _, _)| *v == progress.target_version)
        {
            return Ok((progress.target_version, false));
        }
        if let Some((version, _, row)) = rows.iter().find(|(v, _, _)| *v == newest)
            && !row.active
        {
            return Ok((*version, false));
        }
        let version = newest + 1;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        match self.insert(version, &key, false).await {
            Ok(()) => {
                self.save_rotation(&RotationProgress {
                    target_version: version,
                    done_through: None,
                })
                .await?;
                Ok((version, true))
            }
            Err(StoreError::Conflict(_)) => Ok((version, false)),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether values are sealed with `version` (false when it is not stored).
    pub async fn is_active(&self, version: u32) -> anyhow::Result<bool> {
        Ok(self
            .rows()
            .await?
            .iter()
            .any(|(v, _, row)| *v == version && row.active))
    }

    /// Makes `version` active (values are sealed with it from the next refresh
    /// of every replica). Idempotent.
    pub async fn activate(&self, version: u32) -> anyhow::Result<()> {
        loop {
            let record = self
                .store
                .get(NAMESPACE, &key_row(version))
                .await?
                .with_context(|| format!("data key version {version} is not in the database"))?;
            let mut row: Row = serde_json::from_slice(&record.value)
                .with_context(|| format!("keyring row `{}`: not a data key", record.key))?;
            if row.active {
                return Ok(());
            }
            row.active = true;
            let bytes = serde_json::to_vec(&row).unwrap_or_default();
            match self
                .store
                .put(
                    NAMESPACE,
                    &record.key,
                    &bytes,
                    Condition::Version(record.version),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The saved progress of a rotation, if one is under way.
    pub async fn rotation(&self) -> anyhow::Result<Option<RotationProgress>> {
        match self.store.get(NAMESPACE, ROTATION).await? {
            Some(record) => Ok(Some(
                serde_json::from_slice(&record.value).context("the saved rotation progress")?,
            )),
            None => Ok(None),
        }
    }

    /// Saves the progress of a rotation.
    pub async fn save_rotation(&self, progress: &RotationProgress) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(progress)?;
        self.store
            .put(NAMESPACE, ROTATION, &bytes, Condition::Any)
            .await?;
        Ok(())
    }

    /// Removes the saved progress: the rotation is complete.
    pub async fn finish_rotation(&self) -> anyhow::Result<()> {
        self.store
            .remove(NAMESPACE, ROTATION, Condition::Any)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<RecordStore>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = RecordStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, Arc::new(store))
    }

    fn master(byte: u8) -> Keyring {
        Keyring::single([byte; 32])
    }

    #[tokio::test]
    async fn replicas_share_rotations_and_a_wrong_kek_changes_nothing() -> anyhow::Result<()> {
        let (_dir, store) = store().await;
        let seed = master(5);
        let a = DataKeys::new(store.clone(), Kek::local(&seed));
        let ring_a = a.load(Some(&seed)).await?;
        // The seed's key is data key 1: what it sealed before stays readable.
        let old = seed.seal(&SecretValue::new(b"before".to_vec()), b"c");
        assert_eq!(ring_a.open(&old, b"c")?.expose(), b"before");
        // The row holds no key in clear.
        let raw = store.get(NAMESPACE, &key_row(1)).await?.context("row")?;
        let b64 = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        assert!(!String::from_utf8_lossy(&raw.value).contains(&b64));

        let b = DataKeys::new(store.clone(), Kek::local(&seed));
        let ring_b = b.load(None).await?;
        // Two rotations at once add one version.
        let (x, y) = tokio::join!(a.begin_rotation(), b.begin_rotation());
        let ((vx, added_x), (vy, added_y)) = (x?, y?);
        assert_eq!((vx, vy), (2, 2));
        assert!(added_x ^ added_y, "exactly one added it");
        // One started a moment later joins it too.
        assert_eq!(b.begin_rotation().await?, (2, false));
        assert!(!a.is_active(2).await?);
        // Announced, not active: B holds it after a refresh but still seals with 1.
        assert_eq!(b.refresh(&ring_b).await?, vec![2]);
        assert_eq!(ring_b.current_version(), 1);
        a.activate(2).await?;
        a.activate(2).await?;
        a.refresh(&ring_a).await?;
        b.refresh(&ring_b).await?;
        assert_eq!((ring_a.current_version(), ring_b.current_version()), (2, 2));
        let sealed = ring_a.seal(&SecretValue::new(b"after".to_vec()), b"c");
        assert_eq!(ring_b.open(&sealed, b"c")?.expose(), b"after");

        // Another master key derives another KEK: refused, naming both ids.
        let wrong = DataKeys::new(store.clone(), Kek::local(&master(6)));
        let err = format!(
            "{:#}",
            wrong
                .load(Some(&master(6)))
                .await
                .err()
                .context("refused")?
        );
        assert!(
            err.contains(&Kek::local(&seed).id()) && err.contains(&Kek::local(&master(6)).id()),
            "{err}"
        );
        assert_eq!(a.rows().await?.len(), 2, "nothing was added");

        // Rotation progress round-trips; once removed, the next rotation adds a
        // version of its own.
        let progress = RotationProgress {
            target_version: 2,
            done_through: Some("/a".into()),
        };
        a.save_rotation(&progress).await?;
        assert_eq!(b.rotation().await?, Some(progress));
        assert_eq!(
            b.begin_rotation().await?,
            (2, false),
            "resumes the saved one"
        );
        b.finish_rotation().await?;
        assert_eq!(a.rotation().await?, None);
        assert_eq!(b.begin_rotation().await?, (3, true));
        Ok(())
    }
}
