//! Per-instance store data: locked-down WASI, the resource table, limits, the
//! capabilities granted to this instance and the bookkeeping of the current call.

use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::caps::{Granted, HostCalls};
use crate::output::OutputBuffer;
use crate::secret::SecretValue;

/// Limits applied to every instance.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory per instance, bytes.
    pub memory_bytes: usize,
    /// Wall time per call into a provider.
    pub call_timeout: std::time::Duration,
    /// Bytes a single host call may receive from the guest.
    pub host_call_bytes: usize,
    /// Bytes one export call may pass to the host in total (arguments of host
    /// calls, log lines and its result).
    pub call_bytes: usize,
    /// Secret handles one export call may create (constructor, clone, every
    /// capability that returns a handle).
    pub handles_per_call: usize,
    /// Log lines one export call may write, empty ones included.
    pub log_lines_per_call: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            call_timeout: std::time::Duration::from_secs(10),
            host_call_bytes: 1 << 20,
            call_bytes: 8 << 20,
            handles_per_call: 1_000,
            log_lines_per_call: 1_000,
        }
    }
}

/// Why the host stopped a call from inside a host function.
#[derive(Debug, thiserror::Error)]
pub enum HostTrap {
    /// One host call carried more data than allowed.
    #[error(
        "a host call passed {size} bytes, over the limit of {limit} bytes per host call \
         (configured as `limits.host_call_kib`)"
    )]
    HostCallData {
        /// Bytes passed.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The export call as a whole passed too much data.
    #[error(
        "the call passed {size} bytes to the host, over the limit of {limit} bytes per call \
         (configured as `limits.call_kib`)"
    )]
    CallData {
        /// Bytes passed so far.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The call created more secret handles than allowed.
    #[error(
        "the call created more than {limit} secret handles, the limit per call (configured as \
         `limits.handles_per_call`)"
    )]
    Handles {
        /// The limit.
        limit: usize,
    },
    /// The call wrote more log lines than allowed.
    #[error(
        "the call wrote more than {limit} log lines, the limit per call (configured as \
         `limits.log_lines_per_call`)"
    )]
    LogLines {
        /// The limit.
        limit: usize,
    },
    /// A handle that is not in the table.
    #[error("the provider used an invalid secret handle")]
    BadHandle,
    /// The provider asked for something its grants do not allow.
    #[error("{0}")]
    Refused(&'static str),
}

/// Bookkeeping for the export call in progress; reset before each call.
#[derive(Default)]
pub struct CallState {
    /// Secret values this call touched, each once: the scrubber removes them from
    /// any text the provider produces.
    pub touched: Vec<SecretValue>,
    /// The buffers of `touched`, so a value touched again is not recorded twice.
    pub touched_ids: std::collections::HashSet<usize>,
    /// Handles this call created.
    pub handles: usize,
    /// Log lines this call wrote.
    pub log_lines: usize,
    /// When the call must end: guest code traps at the first epoch tick after it.
    pub deadline: Option<std::time::Instant>,
    /// Bytes the guest passed to the host during this call.
    pub bytes_in: usize,
    /// Log lines buffered until the call ends, so they can be scrubbed of values the
    /// call touched after the line was written.
    pub logs: Vec<(tracing::Level, String)>,
    /// The touched values, registered for the scrubbing log writer.
    pub in_flight: crate::scrub::InFlight,
    /// Per-call budgets capabilities keep ([`HostCalls::count`](crate::HostCalls::count)).
    pub counters: std::collections::HashMap<&'static str, usize>,
}

/// Tracks memory growth so an out-of-memory trap can be told apart from others.
pub struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one provider instance's store.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) limits: Limits,
    pub(crate) granted: Arc<Granted>,
    pub(crate) call: CallState,
    pub(crate) stdout: Arc<Mutex<OutputBuffer>>,
    /// Whether the instance was granted `reveal` (it may compare any handles).
    pub(crate) may_reveal: bool,
}

impl HostState {
    /// The host side of the call in progress, for the interfaces linked for every
    /// provider.
    pub(crate) fn calls(&mut self) -> HostCalls<'_> {
        self.split().1
    }

    /// What was granted, beside the host side of the call: the two halves a
    /// capability's view borrows at once.
    pub(crate) fn split(&mut self) -> (&Granted, HostCalls<'_>) {
        let HostState {
            granted,
            table,
            call,
            limits,
            may_reveal,
            ..
        } = self;
        (granted, HostCalls::new(table, call, limits, *may_reveal))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
