//! The `config` interface: the instance's settings from the host configuration.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::secret_broker::provider::config::{Host, add_to_linker as link};
use crate::state::HostState;

/// Links the `config` interface.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.calls().charge(key.len())?;
        Ok(self.granted.settings.get(&key).cloned())
    }

    async fn get_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .granted
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
