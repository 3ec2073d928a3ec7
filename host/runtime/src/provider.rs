//! `ProviderHost`: one configured provider instance, called through a pool of
//! sandboxed instances. Every call checks the id rules first, runs under the
//! memory, time and data limits, scrubs what the provider says of the values the
//! call touched, and discards an instance that trapped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime::component::Resource;
use wasmtime_wasi::WasiCtx;

use crate::bindings::{
    ProviderWorld, ProviderWorldPre, WitError, WitListPage, WitPutOptions, WitPutOutcome, WitTag,
};
use crate::caps::{self, Granted};
use crate::output::{CapturedOutput, OutputBuffer};
use crate::runtime::{EPOCH_TICK, LoadedComponent, Runtime};
use crate::scrub::scrub;
use crate::secret::SecretValue;
use crate::state::{CallState, HostState, HostTrap, MemoryLimiter};
use secret_broker_idrules::IdRules;

/// Most instances a stateless provider runs at once.
const MAX_INSTANCES: usize = 16;
/// Bytes an export may return (ids of a list page, info strings).
const MAX_RESULT_BYTES: usize = 4 << 20;

/// Why a provider call failed. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The id breaks the provider's declared rules (checked by the host).
    #[error("invalid secret id: {0}")]
    InvalidId(String),
    /// The value is over the provider's limit.
    #[error("the value is {size} bytes, over the provider's limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the value.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Refused by the backend or by a grant's scope.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The backend is unreachable or throttling; retry later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// A concurrent change or a state forbidding the operation.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Any other backend failure.
    #[error("backend error: {0}")]
    Backend(String),
    /// The call ran past its deadline; the instance was discarded.
    #[error("provider `{provider}` did not answer within {limit:?}; its instance was discarded")]
    Timeout {
        /// Instance name.
        provider: String,
        /// The deadline.
        limit: Duration,
    },
    /// The instance hit its memory limit; it was discarded.
    #[error(
        "provider `{provider}` exceeded its memory limit of {limit} bytes; its instance was discarded"
    )]
    MemoryLimit {
        /// Instance name.
        provider: String,
        /// The limit.
        limit: usize,
    },
    /// The instance passed or returned more data than allowed; it was discarded.
    #[error("provider `{provider}` broke a data limit: {detail}; its instance was discarded")]
    DataLimit {
        /// Instance name.
        provider: String,
        /// Which limit.
        detail: String,
    },
    /// The instance trapped (a panic, for example); it was discarded.
    #[error("provider `{provider}` crashed: {detail}; its instance was discarded")]
    Trapped {
        /// Instance name.
        provider: String,
        /// The trap, scrubbed.
        detail: String,
    },
    /// The provider imports a capability its configuration does not grant.
    #[error(
        "provider `{provider}` imports `{import}`, which its configuration does not grant: add \
         `{grant}` to the provider's grants (`grants = [\"{grant}\"]`) if it should have it"
    )]
    NotGranted {
        /// Instance name.
        provider: String,
        /// The import.
        import: String,
        /// The grant key.
        grant: String,
    },
    /// Instantiation failed for another reason.
    #[error("instantiating provider `{provider}`: {detail}")]
    Instantiate {
        /// Instance name.
        provider: String,
        /// What failed.
        detail: String,
    },
}

impl ProviderError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable(_) | ProviderError::Timeout { .. }
        )
    }
}

/// How a put changed the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PutOutcome {
    /// The id was new.
    Created,
    /// The id held another value.
    Updated,
    /// The id held this value already.
    Unchanged,
}

/// Description and tags for a put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// A description, where the backend keeps one.
    pub description: Option<String>,
    /// Tags, where the backend keeps them.
    pub tags: Vec<(String, String)>,
}

/// One page of ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Ids in ascending order.
    pub ids: Vec<String>,
    /// The cursor for the next page.
    pub next_cursor: Option<String>,
}

/// What a provider says about itself.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    /// Short name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Id and size rules.
    pub id_rules: IdRules,
    /// Whether it keeps state in its instance.
    pub stateful: bool,
}

struct Slot {
    store: Store<HostState>,
    bindings: ProviderWorld,
}

/// A configured provider instance, ready for calls. Share it behind an `Arc`.
pub struct ProviderHost {
    name: String,
    runtime: Runtime,
    pre: ProviderWorldPre<HostState>,
    granted: Arc<Granted>,
    info: ProviderInfo,
    idle: Mutex<Vec<Slot>>,
    permits: Semaphore,
}

impl std::fmt::Debug for ProviderHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderHost")
            .field("name", &self.name)
            .field("info", &self.info)
            .finish()
    }
}

impl ProviderHost {
    /// Links `component` with exactly the capabilities in `granted`, instantiates it
    /// once to read its info, and returns the host. Fails, naming the import and the
    /// grant, when the component needs a capability that is not granted.
    pub async fn new(
        runtime: &Runtime,
        component: &LoadedComponent,
        granted: Granted,
    ) -> Result<Self, ProviderError> {
        let name = granted.instance.clone();
        if let Some(missing) = component.needs.iter().find(|n| !granted.satisfies(n)) {
            return Err(not_granted(&name, missing));
        }
        let granted = Arc::new(granted);
        let inst_err = |e: wasmtime::Error| ProviderError::Instantiate {
            provider: name.clone(),
            detail: format!("{e:#}"),
        };
        let linker = caps::linker(&runtime.engine, &granted).map_err(inst_err)?;
        let pre = linker
            .instantiate_pre(&component.component)
            .map_err(inst_err)?;
        let pre = ProviderWorldPre::new(pre).map_err(inst_err)?;
        let placeholder = ProviderInfo {
            name: String::new(),
            version: String::new(),
            id_rules: IdRules::slash_separated(0, 0),
            stateful: true,
        };
        let mut host = ProviderHost {
            name,
            runtime: runtime.clone(),
            pre,
            granted,
            info: placeholder,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(1),
        };
        let (info, _) = host
            .call(|b, s| {
                Box::pin(async move { b.secret_broker_provider_provider().call_info(s).await })
            })
            .await?;
        check_info_size(&host.name, &info)?;
        host.info = ProviderInfo {
            name: info.name,
            version: info.version,
            id_rules: id_rules(info.id_rules),
            stateful: info.stateful,
        };
        if !host.info.stateful {
            host.permits = Semaphore::new(MAX_INSTANCES);
        }
        Ok(host)
    }

    /// The instance name from configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the provider declared about itself.
    pub fn info(&self) -> &ProviderInfo {
        &self.info
    }

    /// Stores `value` at `id`.
    pub async fn put(
        &self,
        id: &str,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<PutOutcome, ProviderError> {
        self.check_id(id)?;
        self.info
            .id_rules
            .check_value_len(value.len() as u64)
            .map_err(|t| ProviderError::ValueTooLarge {
                size: t.size,
                limit: t.limit,
            })?;
        self.put_inner(id, value, options).await
    }

    /// A put without the host's id and size checks, so the conformance suite can
    /// check that the provider enforces the rules it declares.
    pub(crate) async fn put_unchecked(
        &self,
        id: &str,
        value: &SecretValue,
    ) -> Result<PutOutcome, ProviderError> {
        self.put_inner(id, value, &PutOptions::default()).await
    }

    async fn put_inner(
        &self,
        id: &str,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<PutOutcome, ProviderError> {
        // The value is known before the call: third-party logs during it are
        // scrubbed of it from the start.
        let mut in_flight = crate::scrub::InFlight::default();
        in_flight.add(value);
        let (id, value) = (id.to_owned(), value.clone());
        let options = WitPutOptions {
            description: options.description.clone(),
            tags: options
                .tags
                .iter()
                .map(|(k, v)| WitTag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        };
        let outcome = self
            .call(move |b, s| {
                Box::pin(async move {
                    let handle = s.data_mut().calls().new_handle(value)?;
                    b.secret_broker_provider_provider()
                        .call_put(s, &id, handle, &options)
                        .await
                })
            })
            .await?;
        let outcome = finish(outcome)?;
        Ok(match outcome {
            WitPutOutcome::Created => PutOutcome::Created,
            WitPutOutcome::Updated => PutOutcome::Updated,
            WitPutOutcome::Unchanged => PutOutcome::Unchanged,
        })
    }

    /// The value at `id`, `None` when absent.
    pub async fn get(&self, id: &str) -> Result<Option<SecretValue>, ProviderError> {
        self.check_id(id)?;
        let id = id.to_owned();
        self.call(move |b, s| {
            Box::pin(async move {
                let got = b
                    .secret_broker_provider_provider()
                    .call_get(&mut *s, &id)
                    .await?;
                Ok(match got {
                    Ok(Some(handle)) => Ok(Some(take_handle(s, handle)?)),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                })
            })
        })
        .await
        .and_then(finish)
    }

    /// Deletes `id`; reports whether it existed.
    pub async fn delete(&self, id: &str) -> Result<bool, ProviderError> {
        self.check_id(id)?;
        let id = id.to_owned();
        self.call(move |b, s| {
            Box::pin(async move {
                b.secret_broker_provider_provider()
                    .call_delete(s, &id)
                    .await
            })
        })
        .await
        .and_then(finish)
    }

    /// Re-seals the value at `id` under the current master key; reports whether
    /// the provider rewrote it.
    pub async fn reseal(&self, id: &str) -> Result<bool, ProviderError> {
        self.check_id(id)?;
        let id = id.to_owned();
        self.call(move |b, s| {
            Box::pin(async move {
                b.secret_broker_provider_provider()
                    .call_reseal(s, &id)
                    .await
            })
        })
        .await
        .and_then(finish)
    }

    /// One page of the ids under `prefix`.
    pub async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, ProviderError> {
        let (prefix, cursor) = (prefix.to_owned(), cursor.map(str::to_owned));
        let page: WitListPage = self
            .call(move |b, s| {
                Box::pin(async move {
                    b.secret_broker_provider_provider()
                        .call_list(s, &prefix, cursor.as_deref(), limit)
                        .await
                })
            })
            .await
            .and_then(finish)?;
        let size: usize = page.ids.iter().map(String::len).sum::<usize>()
            + page.next_cursor.as_ref().map_or(0, String::len);
        if size > MAX_RESULT_BYTES {
            return Err(ProviderError::DataLimit {
                provider: self.name.clone(),
                detail: format!(
                    "a list page of {size} bytes, over the limit of {MAX_RESULT_BYTES} bytes"
                ),
            });
        }
        Ok(ListPage {
            ids: page.ids,
            next_cursor: page.next_cursor,
        })
    }

    /// Creates a fresh instance and drops it: a health check of instantiation,
    /// and what the benchmarks time.
    pub async fn probe_instantiate(&self) -> Result<(), ProviderError> {
        self.instantiate().await.map(drop)
    }

    fn check_id(&self, id: &str) -> Result<(), ProviderError> {
        self.info
            .id_rules
            .check(id)
            .map_err(ProviderError::InvalidId)
    }

    /// Runs `f` on an idle or fresh instance under the call deadline, then returns
    /// the instance to the pool unless the call failed at the Wasm level.
    async fn call<R, F>(&self, f: F) -> Result<(R, Vec<SecretValue>), ProviderError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(
                &'a ProviderWorld,
                &'a mut Store<HostState>,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>,
            > + Send,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.trapped("the provider was shut down".into()))?;
        let popped = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut slot = match popped {
            Some(slot) => slot,
            None => self.instantiate().await?,
        };
        let limit = self.runtime.limits.call_timeout;
        let ticks = (limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        slot.store.set_epoch_deadline(ticks);
        slot.store.data_mut().call = CallState::default();
        slot.store.data_mut().limiter.hit = false;
        // The epoch deadline stops guest code; the timeout also covers time spent
        // awaiting host capabilities (a slow backend).
        let outcome = tokio::time::timeout(
            limit + Duration::from_secs(1),
            f(&slot.bindings, &mut slot.store),
        )
        .await;
        let touched = std::mem::take(&mut slot.store.data_mut().call.touched);
        let in_flight = std::mem::take(&mut slot.store.data_mut().call.in_flight);
        self.flush_logs(&mut slot, &touched);
        drop(in_flight);
        match outcome {
            Ok(Ok(value)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(slot);
                }
                Ok((value, touched))
            }
            Ok(Err(e)) => Err(self.classify(&slot, e, &touched)),
            Err(_) => Err(ProviderError::Timeout {
                provider: self.name.clone(),
                limit,
            }),
        }
    }

    async fn instantiate(&self) -> Result<Slot, ProviderError> {
        let stdout = Arc::new(Mutex::new(OutputBuffer::default()));
        let mut wasi = WasiCtx::builder();
        wasi.stdout(CapturedOutput(stdout.clone()))
            .stderr(CapturedOutput(stdout.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let limits = self.runtime.limits.clone();
        let state = HostState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: limits.memory_bytes,
                hit: false,
            },
            limits,
            granted: self.granted.clone(),
            call: CallState::default(),
            stdout,
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let ticks =
            (self.runtime.limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        match self.pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(Slot { store, bindings }),
            Err(e) => Err(ProviderError::Instantiate {
                provider: self.name.clone(),
                detail: format!("{e:#}"),
            }),
        }
    }

    fn classify(
        &self,
        slot: &Slot,
        error: wasmtime::Error,
        touched: &[SecretValue],
    ) -> ProviderError {
        let provider = self.name.clone();
        if slot.store.data().limiter.hit {
            return ProviderError::MemoryLimit {
                provider,
                limit: slot.store.data().limits.memory_bytes,
            };
        }
        if let Some(trap) = error.downcast_ref::<HostTrap>() {
            return ProviderError::DataLimit {
                provider,
                detail: trap.to_string(),
            };
        }
        if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
            return ProviderError::Timeout {
                provider,
                limit: self.runtime.limits.call_timeout,
            };
        }
        let detail = scrub(&format!("{error:#}"), touched);
        tracing::warn!(provider = %self.name, %detail, "provider instance trapped and was discarded");
        ProviderError::Trapped { provider, detail }
    }

    fn trapped(&self, detail: String) -> ProviderError {
        ProviderError::Trapped {
            provider: self.name.clone(),
            detail,
        }
    }

    /// Writes the call's buffered log lines and output to the host log, scrubbed.
    fn flush_logs(&self, slot: &mut Slot, touched: &[SecretValue]) {
        let logs = std::mem::take(&mut slot.store.data_mut().call.logs);
        for (level, line) in logs {
            let line = scrub(&line, touched);
            let provider = self.name.as_str();
            match level {
                tracing::Level::ERROR => tracing::error!(target: "provider", provider, "{line}"),
                tracing::Level::WARN => tracing::warn!(target: "provider", provider, "{line}"),
                tracing::Level::INFO => tracing::info!(target: "provider", provider, "{line}"),
                tracing::Level::DEBUG => tracing::debug!(target: "provider", provider, "{line}"),
                _ => tracing::trace!(target: "provider", provider, "{line}"),
            }
        }
        let (bytes, dropped) = match slot.store.data().stdout.lock() {
            Ok(mut out) => out.drain(),
            Err(_) => return,
        };
        if !bytes.is_empty() {
            let text = scrub(&String::from_utf8_lossy(&bytes), touched);
            for line in text.lines() {
                tracing::info!(target: "provider::stdout", provider = %self.name, "{line}");
            }
        }
        if dropped > 0 {
            tracing::warn!(provider = %self.name, dropped, "provider output over the per-call limit was dropped");
        }
    }
}

fn take_handle(
    store: &mut Store<HostState>,
    handle: Resource<SecretValue>,
) -> wasmtime::Result<SecretValue> {
    store
        .data_mut()
        .table
        .delete(handle)
        .map_err(|_| wasmtime::Error::new(HostTrap::BadHandle))
}

fn check_info_size(
    provider: &str,
    info: &crate::bindings::WitProviderInfo,
) -> Result<(), ProviderError> {
    let size = info.name.len()
        + info.version.len()
        + info.id_rules.allowed_chars.len()
        + info.id_rules.separator.len();
    if size > 4096 {
        return Err(ProviderError::DataLimit {
            provider: provider.to_owned(),
            detail: format!("its info is {size} bytes, over the limit of 4096"),
        });
    }
    Ok(())
}

fn not_granted(provider: &str, import: &str) -> ProviderError {
    ProviderError::NotGranted {
        provider: provider.to_owned(),
        import: import.to_owned(),
        grant: crate::runtime::grant_name(import),
    }
}

fn id_rules(wit: crate::bindings::WitIdRules) -> IdRules {
    IdRules {
        separator: wit.separator,
        allowed_chars: wit.allowed_chars,
        leading_separator: wit.leading_separator,
        max_id_len: wit.max_id_len,
        max_levels: wit.max_levels,
        forbidden_prefixes: wit.forbidden_prefixes,
        max_value_bytes: wit.max_value_bytes,
    }
}

/// Maps a provider's error variant, scrubbing its message of the call's values.
fn finish<T>(
    (result, touched): (Result<T, WitError>, Vec<SecretValue>),
) -> Result<T, ProviderError> {
    result.map_err(|e| map_wit_error(e, &touched))
}

fn map_wit_error(e: WitError, touched: &[SecretValue]) -> ProviderError {
    let clean = |m: String| scrub(&m, touched);
    match e {
        WitError::InvalidId(m) => ProviderError::InvalidId(clean(m)),
        WitError::ValueTooLarge(l) => ProviderError::ValueTooLarge {
            size: l.size,
            limit: l.limit,
        },
        WitError::AccessDenied(m) => ProviderError::AccessDenied(clean(m)),
        WitError::Unavailable(m) => ProviderError::Unavailable(clean(m)),
        WitError::Conflict(m) => ProviderError::Conflict(clean(m)),
        WitError::Backend(m) => ProviderError::Backend(clean(m)),
    }
}
