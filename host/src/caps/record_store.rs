//! The `record-store` interface: versioned rows in the host's database, under the
//! provider instance's namespace. The guest names keys; the host picks the
//! namespace, so one instance never sees another's rows.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::secret_broker::provider::record_store::{
    Condition, Host, Row, Write, add_to_linker as link,
};
use crate::bindings::secret_broker::provider::types::Error;
use crate::state::HostState;
use crate::store::{self, RecordStore, StoreError};

/// Most rows one scan returns.
const MAX_SCAN: u32 = 1000;

/// The store as granted to one instance.
pub struct RecordStoreGrant {
    store: Arc<RecordStore>,
    namespace: String,
}

impl RecordStoreGrant {
    /// Grants `store` to the instance whose rows live under `namespace`.
    pub fn new(store: Arc<RecordStore>, namespace: &str) -> Self {
        RecordStoreGrant {
            store,
            namespace: namespace.to_owned(),
        }
    }
}

/// Links the `record-store` interface.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link::<HostState, HasSelf<HostState>>(linker, |state| state)
}

fn condition(c: Condition) -> store::Condition {
    match c {
        Condition::Any => store::Condition::Any,
        Condition::Absent => store::Condition::Absent,
        Condition::Version(v) => store::Condition::Version(v),
    }
}

fn wit_error(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(_) => Error::Conflict(e.to_string()),
        StoreError::Unavailable { .. } => Error::Unavailable(e.to_string()),
        StoreError::BadUrl(..) | StoreError::Database { .. } => Error::Backend(e.to_string()),
    }
}

fn row(r: store::Record) -> Row {
    Row {
        key: r.key,
        value: r.value,
        version: r.version,
    }
}

impl HostState {
    fn records(&self) -> Result<(Arc<RecordStore>, String), Error> {
        match &self.granted.records {
            Some(g) => Ok((g.store.clone(), g.namespace.clone())),
            None => Err(Error::AccessDenied("record-store is not granted".into())),
        }
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Row>, Error>> {
        self.charge(key.len())?;
        let (store, ns) = try_grant!(self.records());
        Ok(store
            .get(&ns, &key)
            .await
            .map(|r| r.map(row))
            .map_err(wit_error))
    }

    async fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        cond: Condition,
    ) -> wasmtime::Result<Result<u64, Error>> {
        self.charge(key.len() + value.len())?;
        let (store, ns) = try_grant!(self.records());
        Ok(store
            .put(&ns, &key, &value, condition(cond))
            .await
            .map_err(wit_error))
    }

    async fn remove(
        &mut self,
        key: String,
        cond: Condition,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.charge(key.len())?;
        let (store, ns) = try_grant!(self.records());
        Ok(store
            .remove(&ns, &key, condition(cond))
            .await
            .map_err(wit_error))
    }

    async fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<Row>, Error>> {
        self.charge(prefix.len() + after.as_ref().map_or(0, String::len))?;
        let (store, ns) = try_grant!(self.records());
        let rows = store
            .scan(&ns, &prefix, after.as_deref(), limit.min(MAX_SCAN))
            .await;
        Ok(rows
            .map(|rs| rs.into_iter().map(row).collect())
            .map_err(wit_error))
    }

    async fn apply(&mut self, writes: Vec<Write>) -> wasmtime::Result<Result<Vec<u64>, Error>> {
        let size = writes
            .iter()
            .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len))
            .sum();
        self.charge(size)?;
        let (store, ns) = try_grant!(self.records());
        let writes: Vec<store::Write> = writes
            .into_iter()
            .map(|w| store::Write {
                key: w.key,
                value: w.value,
                condition: condition(w.condition),
            })
            .collect();
        Ok(store.apply(&ns, &writes).await.map_err(wit_error))
    }
}
