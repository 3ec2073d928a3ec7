//! The OpenMetadata manager's id owner records on the record store's table, so
//! brokers that share a database share them. Here, where the broker and the
//! record store are assembled, so neither library depends on the other.

use std::sync::Arc;

use secret_broker::openmetadata::owners::{OwnerError, OwnerFuture, OwnerStore};
use secret_broker_record_store::{Condition, RecordStore, StoreError};

/// The namespace of the OpenMetadata manager's id owner records.
const OWNERS: &str = "broker/owners";

/// The owner records in a record store.
#[derive(Clone)]
pub struct RecordOwners(pub Arc<RecordStore>);

impl RecordOwners {
    /// The owner records of `store`, as an [`OwnerStore`] for
    /// [`Owners::new`](secret_broker::openmetadata::owners::Owners::new).
    pub fn shared(store: Arc<RecordStore>) -> Arc<dyn OwnerStore> {
        Arc::new(RecordOwners(store))
    }
}

impl OwnerStore for RecordOwners {
    fn insert_if_absent<'a>(&'a self, id: &'a str, owner: &'a [u8]) -> OwnerFuture<'a, bool> {
        Box::pin(async move {
            match self.0.put(OWNERS, id, owner, Condition::Absent).await {
                Ok(_) => Ok(true),
                Err(StoreError::Conflict(_)) => Ok(false),
                Err(e) => Err(owner_error(e)),
            }
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> OwnerFuture<'a, Option<(Vec<u8>, u64)>> {
        Box::pin(async move {
            Ok(self
                .0
                .get(OWNERS, id)
                .await
                .map_err(owner_error)?
                .map(|r| (r.value, r.version)))
        })
    }

    fn remove_at<'a>(&'a self, id: &'a str, version: u64) -> OwnerFuture<'a, ()> {
        Box::pin(async move {
            match self.0.remove(OWNERS, id, Condition::Version(version)).await {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(owner_error(e)),
            }
        })
    }
}

fn owner_error(e: StoreError) -> OwnerError {
    OwnerError(e.to_string())
}
