//! What the AWS APIs say about a secret or parameter beside its value:
//! description, tags, version id or number, dates, SSM type and tier. Kept in the
//! deployment's record store, one row per name, JSON; never a value. A secret
//! written through `/v1` or the CLI has no row until the AWS API writes it, and
//! is answered without what is unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secret_broker_record_store::{Condition, RecordStore, StoreError};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The record store namespace of Secrets Manager's metadata.
pub(crate) const SECRETS: &str = "aws-api:secretsmanager";
/// The record store namespace of SSM's metadata.
pub(crate) const PARAMETERS: &str = "aws-api:ssm";

/// How long a row read is answered from memory. A write through this server
/// replaces it at once (a read racing that write may put back the older row);
/// one made through another server sharing the store shows after at most this
/// long. Values are never cached, only these rows.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Rows kept in memory at most (the cache is emptied when full).
const CACHED_ROWS: usize = 10_000;

type Cache = HashMap<(&'static str, String), (Instant, Option<Vec<u8>>)>;

/// Where the metadata lives.
#[derive(Clone)]
pub struct AwsMetadata {
    store: Arc<RecordStore>,
    /// Rows recently read or written: a read of a value does not wait for a
    /// second query.
    cache: Arc<Mutex<Cache>>,
}

impl AwsMetadata {
    /// Metadata kept in `store`.
    pub fn new(store: Arc<RecordStore>) -> AwsMetadata {
        AwsMetadata {
            store,
            cache: Arc::default(),
        }
    }

    fn cached(&self, ns: &'static str, name: &str) -> Option<Option<Vec<u8>>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(&(ns, name.to_owned()))
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, row)| row.clone())
    }

    fn remember(&self, ns: &'static str, name: &str, row: Option<Vec<u8>>) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_ROWS {
            cache.clear();
        }
        cache.insert((ns, name.to_owned()), (Instant::now(), row));
    }

    fn forget(&self, ns: &'static str, name: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.remove(&(ns, name.to_owned()));
    }

    /// The row of `name`, if any.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        ns: &'static str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let row = match self.cached(ns, name) {
            Some(row) => row,
            None => {
                let row = self.store.get(ns, name).await?.map(|r| r.value);
                self.remember(ns, name, row.clone());
                row
            }
        };
        // A row that no longer parses is treated as absent (and overwritten by
        // the next write).
        Ok(row.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// The row of `name`, where reading it fails is logged and answered as
    /// unknown: metadata never stands between a caller and a value.
    pub(crate) async fn get_or_unknown<T: DeserializeOwned>(
        &self,
        ns: &'static str,
        name: &str,
    ) -> Option<T> {
        match self.get(ns, name).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "AWS API metadata unreadable; answering without it");
                None
            }
        }
    }

    /// Changes the row of `name` with `change` (compare-and-set, retried when
    /// another writer got there first). Returns the row written.
    pub(crate) async fn update<T: DeserializeOwned + Serialize + Default>(
        &self,
        ns: &'static str,
        name: &str,
        mut change: impl FnMut(&mut T),
    ) -> Result<T, StoreError> {
        // Whatever happens, the next read goes to the store.
        self.forget(ns, name);
        for _ in 0..16 {
            let (mut row, condition) = match self.store.get(ns, name).await? {
                Some(record) => (
                    serde_json::from_slice(&record.value).unwrap_or_default(),
                    Condition::Version(record.version),
                ),
                None => (T::default(), Condition::Absent),
            };
            change(&mut row);
            let bytes = serde_json::to_vec(&row).unwrap_or_default();
            match self.store.put(ns, name, &bytes, condition).await {
                Ok(_) => {
                    self.remember(ns, name, Some(bytes));
                    return Ok(row);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(name.to_owned()))
    }

    /// Forgets `name`.
    pub(crate) async fn remove(&self, ns: &'static str, name: &str) -> Result<(), StoreError> {
        self.forget(ns, name);
        let removed = self
            .store
            .remove(ns, name, Condition::Any)
            .await
            .map(|_| ());
        self.forget(ns, name);
        removed
    }
}

/// A secret's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SecretMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) changed: Option<f64>,
    /// The version id of the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
}

/// A parameter's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ParameterMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) modified: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tier: Option<String>,
}

impl ParameterMeta {
    /// The type, `SecureString` unless the parameter was written as another.
    pub(crate) fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("SecureString")
    }

    /// The tier, `Standard` unless written as another.
    pub(crate) fn tier(&self) -> &str {
        self.tier.as_deref().unwrap_or("Standard")
    }

    /// The version, 1 for a parameter the SSM API never wrote.
    pub(crate) fn version(&self) -> u64 {
        self.version.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two servers on one store: each sees its own writes at once, and the
    /// other's once its cached row is older than [`FRESH_FOR`].
    #[tokio::test]
    async fn a_server_sees_its_own_writes_at_once_and_anothers_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let store = Arc::new(RecordStore::connect(&url).await.unwrap());
        let (one, two) = (AwsMetadata::new(store.clone()), AwsMetadata::new(store));
        let describe =
            |text: &'static str| move |m: &mut SecretMeta| m.description = Some(text.to_owned());
        let read = |m: &AwsMetadata| {
            let m = m.clone();
            async move {
                m.get::<SecretMeta>(SECRETS, "/a")
                    .await
                    .unwrap()
                    .and_then(|r| r.description)
            }
        };
        assert_eq!(read(&two).await, None);
        one.update(SECRETS, "/a", describe("first")).await.unwrap();
        assert_eq!(read(&one).await.as_deref(), Some("first"));
        // `two` cached the absence a moment ago.
        assert_eq!(read(&two).await, None);
        tokio::time::sleep(FRESH_FOR + Duration::from_millis(100)).await;
        assert_eq!(read(&two).await.as_deref(), Some("first"));
        two.update(SECRETS, "/a", describe("second")).await.unwrap();
        assert_eq!(read(&two).await.as_deref(), Some("second"));
        one.remove(SECRETS, "/a").await.unwrap();
        assert_eq!(read(&one).await, None);
    }
}
