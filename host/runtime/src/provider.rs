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
use crate::scrub::{Remembered, Scrubber, printable};
use crate::secret::SecretValue;
use crate::state::{CallState, HostState, HostTrap, MemoryLimiter};
use secret_broker_idrules::IdRules;

/// Most instances a stateless provider runs at once.
const MAX_INSTANCES: usize = 16;
/// Bytes an export may return (ids of a list page, info strings).
const MAX_RESULT_BYTES: usize = 4 << 20;
/// The longest id a provider may declare, bytes.
pub const MAX_ID_LEN: u32 = 8192;
/// The largest value a provider may declare, bytes.
pub const MAX_VALUE_BYTES: u64 = 64 << 20;
/// Bytes of a provider's error message kept; the rest is cut.
const MAX_MESSAGE_BYTES: usize = 4096;
/// What replaces the text of a provider without `reveal` that held a value the
/// call handled: it cannot know such a value, so the text is a guess, and marking
/// where it matched would answer the guess.
const GUESS_WITHHELD: &str = "[provider text withheld: it held a value the call handled, which a \
                              provider without the `reveal` grant cannot know]";

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
    /// The instance asked for something its grants do not allow (comparing its
    /// own guess with a host-held value, storing a value it made); discarded.
    #[error("provider `{provider}` was stopped: {detail}; its instance was discarded")]
    Forbidden {
        /// Instance name.
        provider: String,
        /// What it tried.
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

/// Which instances a call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Gets and lists.
    Read,
    /// Everything else.
    Write,
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
    /// Instances writes may use (and every call of a stateful provider).
    permits: Semaphore,
    /// Instances reads of a stateless provider may use: a read never waits for
    /// an instance behind writes that wait for their backend (a held lock).
    read_permits: Semaphore,
    /// Whether the provider was granted `reveal`.
    may_reveal: bool,
    /// For a provider granted `reveal`: values it touched in earlier calls.
    remembered: Mutex<Remembered>,
}

/// The values a call handled, for cleaning what the provider said during it.
pub(crate) struct CallValues {
    values: Vec<SecretValue>,
    may_reveal: bool,
}

impl CallValues {
    fn scrubber(&self) -> Scrubber {
        Scrubber::new(&self.values)
    }

    /// A provider's message made safe to show: cut to size, scrubbed (withheld
    /// whole if a provider without `reveal` guessed a value), escaped.
    fn clean(&self, mut message: String) -> String {
        if message.len() > MAX_MESSAGE_BYTES {
            let cut = message.len() - MAX_MESSAGE_BYTES;
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(&format!("… ({cut} more bytes cut)"));
        }
        let scrubber = self.scrubber();
        if !self.may_reveal && scrubber.matches(&message) {
            return GUESS_WITHHELD.to_owned();
        }
        printable(&scrubber.scrub(&message)).into_owned()
    }
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
        Self::build(runtime, component, granted, false).await
    }

    /// Instantiates `component` with nothing granted, every capability it imports
    /// linked as a trap, and reads its info: what `provider verify` shows. No
    /// store, no keys, no network: a component whose `info()` reaches for a
    /// capability traps instead of touching anything.
    pub async fn inspect(
        runtime: &Runtime,
        component: &LoadedComponent,
    ) -> Result<ProviderInfo, ProviderError> {
        let host = Self::build(runtime, component, Granted::new("verify"), true).await?;
        Ok(host.info)
    }

    async fn build(
        runtime: &Runtime,
        component: &LoadedComponent,
        granted: Granted,
        traps_for_the_rest: bool,
    ) -> Result<Self, ProviderError> {
        let name = granted.instance.clone();
        let may_reveal = granted.get::<caps::reveal::Reveal>().is_some();
        let granted = Arc::new(granted);
        let inst_err = |e: wasmtime::Error| ProviderError::Instantiate {
            provider: name.clone(),
            detail: format!("{e:#}"),
        };
        let mut linker = caps::linker(&runtime.engine, &granted).map_err(inst_err)?;
        if traps_for_the_rest {
            link_traps(&runtime.engine, &mut linker, component).map_err(inst_err)?;
        }
        let pre = linker
            .instantiate_pre(&component.component)
            .map_err(inst_err)?;
        let pre = ProviderWorldPre::new(pre).map_err(inst_err)?;
        let placeholder = ProviderInfo {
            name: String::new(),
            version: String::new(),
            id_rules: IdRules::slash_separated(1, 1),
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
            read_permits: Semaphore::new(1),
            may_reveal,
            remembered: Mutex::new(Remembered::default()),
        };
        let (info, _) = host
            .call(Lane::Write, |b, s| {
                Box::pin(async move { b.secret_broker_provider_provider().call_info(s).await })
            })
            .await?;
        host.info = check_info(&host.name, info)?;
        if !host.info.stateful {
            host.permits = Semaphore::new(MAX_INSTANCES);
            host.read_permits = Semaphore::new(MAX_INSTANCES);
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
            .call(Lane::Write, move |b, s| {
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
        self.call(Lane::Read, move |b, s| {
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
        self.call(Lane::Write, move |b, s| {
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
        self.call(Lane::Write, move |b, s| {
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
        let (owned_prefix, owned_cursor) = (prefix.to_owned(), cursor.map(str::to_owned));
        let page: WitListPage = self
            .call(Lane::Read, move |b, s| {
                Box::pin(async move {
                    b.secret_broker_provider_provider()
                        .call_list(s, &owned_prefix, owned_cursor.as_deref(), limit)
                        .await
                })
            })
            .await
            .and_then(finish)?;
        self.check_page(prefix, cursor, limit, &page)?;
        Ok(ListPage {
            ids: page.ids,
            next_cursor: page.next_cursor,
        })
    }

    /// A list page must keep the contract: at most `limit` ids, each under the
    /// prefix and within the declared id length, in strictly ascending order after
    /// the cursor given, and a next cursor that sorts after both: a walk then
    /// always advances and never repeats.
    fn check_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
        page: &WitListPage,
    ) -> Result<(), ProviderError> {
        let size: usize = page.ids.iter().map(String::len).sum::<usize>()
            + page.next_cursor.as_ref().map_or(0, String::len);
        let broke = |detail: String| ProviderError::DataLimit {
            provider: self.name.clone(),
            detail,
        };
        if size > MAX_RESULT_BYTES {
            return Err(broke(format!(
                "a list page of {size} bytes, over the limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        if page.ids.len() > limit.max(1) as usize {
            return Err(broke(format!(
                "a list page of {} ids, more than the {limit} asked for",
                page.ids.len()
            )));
        }
        let max_len = self.info.id_rules.max_id_len as usize;
        let mut previous = cursor;
        for id in &page.ids {
            if id.is_empty() || id.len() > max_len || !id.starts_with(prefix) {
                return Err(broke(format!(
                    "a listed id ({} bytes) is empty, longer than its declared {max_len} bytes, \
                     or outside the prefix asked for",
                    id.len()
                )));
            }
            if previous.is_some_and(|p| id.as_str() <= p) {
                return Err(broke(
                    "listed ids are not in strictly ascending order after the cursor".into(),
                ));
            }
            previous = Some(id);
        }
        if let Some(next) = &page.next_cursor {
            if cursor.is_some_and(|c| next.as_str() <= c) {
                return Err(broke(
                    "the next cursor does not advance past the cursor given: a listing must \
                     move forward"
                        .into(),
                ));
            }
            if next.len() > max_len.saturating_mul(2) || previous.is_some_and(|p| next.as_str() < p)
            {
                return Err(broke(
                    "the next cursor is too long or sorts before the last id of the page".into(),
                ));
            }
        }
        Ok(())
    }

    /// Creates a fresh instance and drops it: a health check of instantiation,
    /// and what the benchmarks time.
    pub async fn probe_instantiate(&self) -> Result<(), ProviderError> {
        let deadline = std::time::Instant::now() + self.runtime.limits.call_timeout;
        self.instantiate(deadline).await.map(drop)
    }

    fn check_id(&self, id: &str) -> Result<(), ProviderError> {
        self.info
            .id_rules
            .check(id)
            .map_err(ProviderError::InvalidId)
    }

    /// Runs `f` on an idle or fresh instance under the call deadline, then returns
    /// the instance to the pool unless the call failed at the Wasm level. The
    /// deadline covers everything: waiting for an instance, instantiating it,
    /// guest code (which yields to the executor every epoch tick and traps at the
    /// deadline) and host capabilities it awaits (a slow backend).
    async fn call<R, F>(&self, lane: Lane, f: F) -> Result<(R, CallValues), ProviderError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(
                &'a ProviderWorld,
                &'a mut Store<HostState>,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>,
            > + Send,
    {
        let limit = self.runtime.limits.call_timeout;
        let deadline = std::time::Instant::now() + limit;
        let run = async {
            let permits = match lane {
                Lane::Read if !self.info.stateful => &self.read_permits,
                _ => &self.permits,
            };
            let _permit = permits
                .acquire()
                .await
                .map_err(|_| self.trapped("the provider was shut down".into()))?;
            let popped = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut slot = match popped {
                Some(slot) => slot,
                None => self.instantiate(deadline).await?,
            };
            slot.store.data_mut().call = CallState {
                deadline: Some(deadline),
                ..CallState::default()
            };
            slot.store.data_mut().limiter.hit = false;
            slot.store.set_epoch_deadline(1);
            let outcome = f(&slot.bindings, &mut slot.store).await;
            let touched = std::mem::take(&mut slot.store.data_mut().call.touched);
            let in_flight = std::mem::take(&mut slot.store.data_mut().call.in_flight);
            let values = self.call_values(touched);
            // Released before the call's own lines are written: flush_logs scrubs
            // them of these values, and the log writer should not scrub them twice.
            drop(in_flight);
            self.flush_logs(&mut slot, &values);
            match outcome {
                Ok(value) => {
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.push(slot);
                    }
                    Ok((value, values))
                }
                Err(e) => Err(self.classify(&slot, e, &values)),
            }
        };
        // Guest code stops at the first tick after the deadline; the grace lets
        // that trap be the usual way a looping call ends.
        let deadlines = &self.runtime.deadlines;
        match deadlines.until(deadline + 2 * EPOCH_TICK, run).await {
            Some(result) => result,
            None => Err(ProviderError::Timeout {
                provider: self.name.clone(),
                limit,
            }),
        }
    }

    /// The values to scrub from what the provider says about a call: those it
    /// touched, and for a provider granted `reveal` those of earlier calls too.
    fn call_values(&self, touched: Vec<SecretValue>) -> CallValues {
        if !self.may_reveal {
            return CallValues {
                values: touched,
                may_reveal: false,
            };
        }
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        remembered.extend(&touched);
        CallValues {
            values: remembered.values().cloned().collect(),
            may_reveal: true,
        }
    }

    async fn instantiate(&self, deadline: std::time::Instant) -> Result<Slot, ProviderError> {
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
            call: CallState {
                deadline: Some(deadline),
                ..CallState::default()
            },
            stdout,
            may_reveal: self.may_reveal,
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every tick, guest code yields to the executor (so a looping guest never
        // holds a worker thread), and traps once the call's deadline has passed.
        store.epoch_deadline_callback(|ctx| {
            let late = ctx
                .data()
                .call
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d);
            Ok(if late {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);
        match self.pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(Slot { store, bindings }),
            Err(e) => Err(ProviderError::Instantiate {
                provider: self.name.clone(),
                detail: printable(&format!("{e:#}")).into_owned(),
            }),
        }
    }

    fn classify(&self, slot: &Slot, error: wasmtime::Error, values: &CallValues) -> ProviderError {
        let provider = self.name.clone();
        if slot.store.data().limiter.hit {
            return ProviderError::MemoryLimit {
                provider,
                limit: slot.store.data().limits.memory_bytes,
            };
        }
        match error.downcast_ref::<HostTrap>() {
            Some(HostTrap::Refused(detail)) => {
                return ProviderError::Forbidden {
                    provider,
                    detail: (*detail).to_owned(),
                };
            }
            Some(trap) => {
                return ProviderError::DataLimit {
                    provider,
                    detail: trap.to_string(),
                };
            }
            None => {}
        }
        if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
            return ProviderError::Timeout {
                provider,
                limit: self.runtime.limits.call_timeout,
            };
        }
        let detail = values.clean(format!("{error:#}"));
        tracing::warn!(provider = %self.name, %detail, "provider instance trapped and was discarded");
        ProviderError::Trapped { provider, detail }
    }

    fn trapped(&self, detail: String) -> ProviderError {
        ProviderError::Trapped {
            provider: self.name.clone(),
            detail,
        }
    }

    /// Writes the call's buffered log lines and output to the host log: scrubbed
    /// (every line withheld if a provider without `reveal` wrote a value the call
    /// handled) and escaped, so a line can neither leak a value nor forge an entry.
    fn flush_logs(&self, slot: &mut Slot, values: &CallValues) {
        let logs = std::mem::take(&mut slot.store.data_mut().call.logs);
        let (bytes, dropped) = match slot.store.data().stdout.lock() {
            Ok(mut out) => out.drain(),
            Err(_) => (Vec::new(), 0),
        };
        let provider = self.name.as_str();
        if dropped > 0 {
            tracing::warn!(
                provider,
                dropped,
                "provider output over the per-call limit was dropped"
            );
        }
        if logs.is_empty() && bytes.is_empty() {
            return;
        }
        let scrubber = values.scrubber();
        let output = String::from_utf8_lossy(&bytes);
        if !values.may_reveal
            && (scrubber.matches(&output) || logs.iter().any(|(_, l)| scrubber.matches(l)))
        {
            tracing::warn!(target: "provider", provider, "{GUESS_WITHHELD}");
            return;
        }
        for (level, line) in logs {
            let line = printable(&scrubber.scrub(&line)).into_owned();
            match level {
                tracing::Level::ERROR => tracing::error!(target: "provider", provider, "{line}"),
                tracing::Level::WARN => tracing::warn!(target: "provider", provider, "{line}"),
                tracing::Level::INFO => tracing::info!(target: "provider", provider, "{line}"),
                tracing::Level::DEBUG => tracing::debug!(target: "provider", provider, "{line}"),
                _ => tracing::trace!(target: "provider", provider, "{line}"),
            }
        }
        let text = scrubber.scrub(&output);
        for line in text.lines() {
            let line = printable(line);
            tracing::info!(target: "provider::stdout", provider, "{line}");
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

/// Links every capability `component` imports as functions that trap, naming the
/// capability: what `inspect` runs `info()` with. WASI and the always-linked
/// interfaces are linked as usual.
fn link_traps(
    engine: &wasmtime::Engine,
    linker: &mut wasmtime::component::Linker<HostState>,
    component: &LoadedComponent,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component.component_type();
    for name in &component.needs {
        let Some(ComponentItem::ComponentInstance(instance)) =
            ty.get_import(engine, name).map(|import| import.ty)
        else {
            continue;
        };
        let mut inner = linker.instance(name)?;
        for (export, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let message = format!(
                    "`{}#{export}` was called while the provider was being inspected, with \
                     nothing granted: info() must not use a capability",
                    printable(name)
                );
                inner.func_new(export, move |_, _, _, _| {
                    Err(wasmtime::Error::msg(message.clone()))
                })?;
            }
        }
    }
    Ok(())
}

/// Validates what a provider says about itself: short printable name and
/// version, and id rules within the host's own limits.
fn check_info(
    provider: &str,
    info: crate::bindings::WitProviderInfo,
) -> Result<ProviderInfo, ProviderError> {
    let bad = |detail: String| ProviderError::DataLimit {
        provider: provider.to_owned(),
        detail: format!("its info is not acceptable: {detail}"),
    };
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if !label_ok(&info.name) {
        return Err(bad(format!(
            "the name {} must be 1 to 64 characters of A-Z a-z 0-9 . _ - +",
            printable(&info.name.chars().take(80).collect::<String>())
        )));
    }
    if !label_ok(&info.version) {
        return Err(bad(format!(
            "the version {} must be 1 to 64 characters of A-Z a-z 0-9 . _ - +",
            printable(&info.version.chars().take(80).collect::<String>())
        )));
    }
    let rules = id_rules(info.id_rules);
    rules
        .validate(MAX_ID_LEN, MAX_VALUE_BYTES)
        .map_err(|e| bad(format!("its id rules: {e}")))?;
    Ok(ProviderInfo {
        name: info.name,
        version: info.version,
        id_rules: rules,
        stateful: info.stateful,
    })
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

/// Maps a provider's error variant; its message is cut to size, scrubbed of the
/// call's values and escaped.
fn finish<T>((result, values): (Result<T, WitError>, CallValues)) -> Result<T, ProviderError> {
    result.map_err(|e| map_wit_error(e, &values))
}

fn map_wit_error(e: WitError, values: &CallValues) -> ProviderError {
    let clean = |m: String| values.clean(m);
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
