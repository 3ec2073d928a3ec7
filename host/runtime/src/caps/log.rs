//! The `log` interface: guest log lines, buffered per call and written to the host
//! log through the scrubber when the call ends.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::secret_broker::provider::log::{Host, Level, add_to_linker as link};
use crate::state::HostState;

/// Links the `log` interface.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.calls().charge_log_line(message.len())?;
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.call.logs.push((level, message));
        Ok(())
    }
}
