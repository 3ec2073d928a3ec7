//! The `reveal` interface: plaintext of a handle, linked only for providers whose
//! grant says `reveal = true`. First-party providers never need it.

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::secret_broker::provider::reveal::{Host, add_to_linker as link};
use crate::secret::SecretValue;
use crate::state::HostState;

/// Links the `reveal` interface.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl Host for HostState {
    async fn reveal(&mut self, handle: Resource<SecretValue>) -> wasmtime::Result<Vec<u8>> {
        let value = self.secret(&handle)?;
        self.touch(&value);
        Ok(value.expose().to_vec())
    }
}
