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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            call_timeout: std::time::Duration::from_secs(10),
            host_call_bytes: 1 << 20,
            call_bytes: 8 << 20,
        }
    }
}

/// Why the host stopped a call from inside a host function.
#[derive(Debug, thiserror::Error)]
pub enum HostTrap {
    /// One host call carried more data than allowed.
    #[error("a host call passed {size} bytes, over the limit of {limit} bytes per call")]
    HostCallData {
        /// Bytes passed.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The export call as a whole passed too much data.
    #[error("the call passed {size} bytes to the host, over the limit of {limit} bytes")]
    CallData {
        /// Bytes passed so far.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A handle that is not in the table.
    #[error("the provider used an invalid secret handle")]
    BadHandle,
}

/// Bookkeeping for the export call in progress; reset before each call.
#[derive(Default)]
pub struct CallState {
    /// Secret values this call touched: the scrubber removes them from any text the
    /// provider produces.
    pub touched: Vec<SecretValue>,
    /// Bytes the guest passed to the host during this call.
    pub bytes_in: usize,
    /// Log lines buffered until the call ends, so they can be scrubbed of values the
    /// call touched after the line was written.
    pub logs: Vec<(tracing::Level, String)>,
    /// The touched values, registered for the scrubbing log writer.
    pub in_flight: crate::scrub::InFlight,
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
            ..
        } = self;
        (granted, HostCalls::new(table, call, limits))
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
