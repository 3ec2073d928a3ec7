//! The `record-store` interface: versioned rows in the host's database, under the
//! provider instance's namespace. The guest names keys; the host picks the
//! namespace, so one instance never sees another's rows.

use std::sync::Arc;

use secret_broker_runtime::bindings::secret_broker::provider::record_store::{
    Condition, Host, Row, Write, add_to_linker as link,
};
use secret_broker_runtime::bindings::secret_broker::provider::types::Error;
use secret_broker_runtime::caps::not_granted;
use secret_broker_runtime::wasmtime::component::{HasData, Linker};
use secret_broker_runtime::{Grant, Granted, HostCalls, HostState, try_grant};

use crate::{self as store, RecordStore, StoreError};

/// Most rows one scan returns.
const MAX_SCAN: u32 = 1000;

/// The store as granted to one provider instance, with its namespace.
pub struct RecordStoreCtx {
    store: Arc<RecordStore>,
    namespace: String,
}

impl RecordStoreCtx {
    /// Grants `store` to the instance whose rows live under `namespace`.
    pub fn new(store: Arc<RecordStore>, namespace: &str) -> Self {
        RecordStoreCtx {
            store,
            namespace: namespace.to_owned(),
        }
    }
}

/// What the `record-store` host functions see: the grant's context and the call.
pub struct RecordStoreView<'a> {
    /// The grant; `None` when the instance was not granted the record store.
    pub ctx: Option<&'a RecordStoreCtx>,
    /// The call in progress.
    pub host: HostCalls<'a>,
}

impl RecordStoreView<'_> {
    fn records(&self) -> Result<(Arc<RecordStore>, String), Error> {
        match self.ctx {
            Some(g) => Ok((g.store.clone(), g.namespace.clone())),
            None => Err(Error::AccessDenied(not_granted("record-store"))),
        }
    }
}

struct RecordStoreData;

impl HasData for RecordStoreData {
    type Data<'a> = RecordStoreView<'a>;
}

/// Links the `record-store` interface, reaching its view through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> RecordStoreView<'_>,
) -> secret_broker_runtime::wasmtime::Result<()> {
    link::<T, RecordStoreData>(linker, view)
}

impl Grant for RecordStoreCtx {
    fn name(&self) -> &str {
        "record-store"
    }

    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
    ) -> secret_broker_runtime::wasmtime::Result<()> {
        add_to_linker(linker, |state| {
            let (ctx, host) = Granted::view::<RecordStoreCtx>(state);
            RecordStoreView { ctx, host }
        })
    }
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

type HostResult<T> = secret_broker_runtime::wasmtime::Result<Result<T, Error>>;

impl Host for RecordStoreView<'_> {
    async fn get(&mut self, key: String) -> HostResult<Option<Row>> {
        self.host.charge(key.len())?;
        let (store, ns) = try_grant!(self.records());
        Ok(store
            .get(&ns, &key)
            .await
            .map(|r| r.map(row))
            .map_err(wit_error))
    }

    async fn put(&mut self, key: String, value: Vec<u8>, cond: Condition) -> HostResult<u64> {
        self.host.charge(key.len() + value.len())?;
        let (store, ns) = try_grant!(self.records());
        Ok(store
            .put(&ns, &key, &value, condition(cond))
            .await
            .map_err(wit_error))
    }

    async fn remove(&mut self, key: String, cond: Condition) -> HostResult<bool> {
        self.host.charge(key.len())?;
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
    ) -> HostResult<Vec<Row>> {
        self.host
            .charge(prefix.len() + after.as_ref().map_or(0, String::len))?;
        let (store, ns) = try_grant!(self.records());
        let rows = store
            .scan(&ns, &prefix, after.as_deref(), limit.min(MAX_SCAN))
            .await;
        Ok(rows
            .map(|rs| rs.into_iter().map(row).collect())
            .map_err(wit_error))
    }

    async fn apply(&mut self, writes: Vec<Write>) -> HostResult<Vec<u64>> {
        let size = writes
            .iter()
            .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len))
            .sum();
        self.host.charge(size)?;
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
