//! Which entity each secret id belongs to. OpenMetadata builds ids by joining the
//! entity name and the field path with `/`, and entity names may hold `/`: service
//! `prod/authtype` (field `password`) and service `prod` (field
//! `authType.password`) both get `/openmetadata/database/prod/authtype/password`.
//! The manager keeps OpenMetadata's ids and records the owner of every id it
//! writes here, so that the second entity to reach an id is refused instead of
//! overwriting (or, on delete, deleting) the first one's secret. Claims are rows
//! of the record store (namespace `broker/owners`), taken with an insert-if-absent,
//! so two brokers on one store cannot both win an id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A future the owner records return.
pub type OwnerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, OwnerError>> + Send + 'a>>;

/// Why the owner records could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OwnerError(pub String);

/// Where the owner records live: rows of `(id, owner bytes, version)` with an
/// insert that fails when the id is taken and a delete conditional on the
/// version. `secret-broker-record-store` implements it for its `RecordStore`
/// (SQLite, PostgreSQL, MariaDB), so brokers sharing a database share the
/// records.
pub trait OwnerStore: Send + Sync {
    /// Inserts `owner` at `id` unless a row is there; true when inserted.
    fn insert_if_absent<'a>(&'a self, id: &'a str, owner: &'a [u8]) -> OwnerFuture<'a, bool>;
    /// The row at `id`: its bytes and version.
    fn get<'a>(&'a self, id: &'a str) -> OwnerFuture<'a, Option<(Vec<u8>, u64)>>;
    /// Deletes the row at `id` if it is still at `version`.
    fn remove_at<'a>(&'a self, id: &'a str, version: u64) -> OwnerFuture<'a, ()>;
}

/// An entity, as the owner of ids: its type in ids (`database`, `bot`...) and its
/// exact name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The entity type as it appears in ids.
    pub entity_type: String,
    /// The entity's name, as sent (not cleaned).
    pub name: String,
}

impl Owner {
    fn encode(&self) -> Vec<u8> {
        format!("{}\n{}", self.entity_type, self.name).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Owner {
        let text = String::from_utf8_lossy(bytes);
        let (entity_type, name) = text.split_once('\n').unwrap_or(("", &text));
        Owner {
            entity_type: entity_type.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.entity_type, self.name)
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The id had no owner; it is now the caller's.
    New,
    /// The id was already the caller's.
    Held,
    /// The id belongs to another entity.
    Taken(Owner),
}

/// The owners of the ids the manager wrote.
#[derive(Clone)]
pub struct Owners {
    store: Arc<dyn OwnerStore>,
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owners").finish_non_exhaustive()
    }
}

impl Owners {
    /// Owners kept in `store`.
    pub fn new(store: Arc<dyn OwnerStore>) -> Self {
        Owners { store }
    }

    /// The owner of `id`, if one is recorded.
    pub async fn owner(&self, id: &str) -> Result<Option<Owner>, OwnerError> {
        Ok(self
            .store
            .get(id)
            .await?
            .map(|(bytes, _)| Owner::decode(&bytes)))
    }

    /// Claims `id` for `owner` unless another entity holds it.
    pub async fn claim(&self, id: &str, owner: &Owner) -> Result<Claim, OwnerError> {
        // Two tries: a claim that raced a release sees the row gone the second time.
        for _ in 0..2 {
            if self.store.insert_if_absent(id, &owner.encode()).await? {
                return Ok(Claim::New);
            }
            match self.owner(id).await? {
                Some(held) if &held == owner => return Ok(Claim::Held),
                Some(other) => return Ok(Claim::Taken(other)),
                None => continue,
            }
        }
        Err(OwnerError(format!(
            "the owner record of {id} kept changing"
        )))
    }

    /// Gives `id` up if `owner` holds it.
    pub async fn release(&self, id: &str, owner: &Owner) -> Result<(), OwnerError> {
        if let Some((bytes, version)) = self.store.get(id).await?
            && Owner::decode(&bytes) == *owner
        {
            self.store.remove_at(id, version).await?;
        }
        Ok(())
    }
}
