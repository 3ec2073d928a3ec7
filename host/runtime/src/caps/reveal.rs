//! The `reveal` interface: plaintext of a handle, linked only for providers whose
//! grant includes `reveal`. First-party providers never need it.

use wasmtime::component::{HasData, Linker, Resource};

use crate::bindings::secret_broker::provider::reveal::{Host, add_to_linker as link};
use crate::caps::{Grant, HostCalls};
use crate::secret::SecretValue;
use crate::state::HostState;

/// The `reveal` grant: the provider may read the plaintext of its handles.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reveal;

struct RevealData;

impl HasData for RevealData {
    type Data<'a> = HostCalls<'a>;
}

/// Links the `reveal` interface.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HostCalls<'_>,
) -> wasmtime::Result<()> {
    link::<T, RevealData>(linker, view)
}

impl Grant for Reveal {
    fn name(&self) -> &str {
        "reveal"
    }

    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        add_to_linker(linker, HostState::calls)
    }
}

impl Host for HostCalls<'_> {
    async fn reveal(&mut self, handle: Resource<SecretValue>) -> wasmtime::Result<Vec<u8>> {
        let value = self.secret(&handle)?;
        self.touch(&value);
        Ok(value.expose().to_vec())
    }
}
