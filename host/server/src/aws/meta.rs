//! What the AWS APIs say about a secret or parameter beside its value:
//! description, tags, version id or number, dates, SSM type and tier. Kept in the
//! deployment's record store, one row per name, JSON; never a value. A secret
//! written through `/v1` or the CLI has no row until the AWS API writes it, and
//! is answered without what is unknown.

use std::sync::Arc;

use secret_broker_record_store::{Condition, RecordStore, StoreError};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The record store namespace of Secrets Manager's metadata.
pub(crate) const SECRETS: &str = "aws-api:secretsmanager";
/// The record store namespace of SSM's metadata.
pub(crate) const PARAMETERS: &str = "aws-api:ssm";

/// Where the metadata lives.
#[derive(Clone)]
pub struct AwsMetadata {
    store: Arc<RecordStore>,
}

impl AwsMetadata {
    /// Metadata kept in `store`.
    pub fn new(store: Arc<RecordStore>) -> AwsMetadata {
        AwsMetadata { store }
    }

    /// The row of `name`, if any.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let Some(record) = self.store.get(ns, name).await? else {
            return Ok(None);
        };
        // A row that no longer parses is treated as absent (and overwritten by
        // the next write).
        Ok(serde_json::from_slice(&record.value).ok())
    }

    /// The row of `name`, where reading it fails is logged and answered as
    /// unknown: metadata never stands between a caller and a value.
    pub(crate) async fn get_or_unknown<T: DeserializeOwned>(
        &self,
        ns: &str,
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
        ns: &str,
        name: &str,
        mut change: impl FnMut(&mut T),
    ) -> Result<T, StoreError> {
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
                Ok(_) => return Ok(row),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(name.to_owned()))
    }

    /// Forgets `name`.
    pub(crate) async fn remove(&self, ns: &str, name: &str) -> Result<(), StoreError> {
        self.store
            .remove(ns, name, Condition::Any)
            .await
            .map(|_| ())
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
