//! The `types` interface: the host side of the `secret` resource. Handles index
//! `SecretValue`s in the store's resource table; the bytes never enter the guest.

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::secret_broker::provider::types::{Host, HostSecret, add_to_linker as link};
use crate::secret::SecretValue;
use crate::state::{HostState, HostTrap};

/// Links the `types` interface.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl HostState {
    /// The value behind a guest's handle.
    pub(crate) fn secret(&self, handle: &Resource<SecretValue>) -> wasmtime::Result<SecretValue> {
        self.table
            .get(handle)
            .cloned()
            .map_err(|_| wasmtime::Error::new(HostTrap::BadHandle))
    }

    /// A new guest handle for `value`.
    pub(crate) fn new_handle(
        &mut self,
        value: SecretValue,
    ) -> wasmtime::Result<Resource<SecretValue>> {
        self.touch(&value);
        Ok(self.table.push(value)?)
    }
}

impl Host for HostState {}

impl HostSecret for HostState {
    async fn new(&mut self, value: Vec<u8>) -> wasmtime::Result<Resource<SecretValue>> {
        self.charge(value.len())?;
        self.new_handle(SecretValue::new(value))
    }

    async fn len(&mut self, handle: Resource<SecretValue>) -> wasmtime::Result<u64> {
        Ok(self.secret(&handle)?.len() as u64)
    }

    async fn clone(
        &mut self,
        handle: Resource<SecretValue>,
    ) -> wasmtime::Result<Resource<SecretValue>> {
        let value = self.secret(&handle)?;
        self.new_handle(value)
    }

    async fn equals(
        &mut self,
        handle: Resource<SecretValue>,
        other: Resource<SecretValue>,
    ) -> wasmtime::Result<bool> {
        Ok(self.secret(&handle)?.ct_eq(&self.secret(&other)?))
    }

    async fn drop(&mut self, handle: Resource<SecretValue>) -> wasmtime::Result<()> {
        self.table
            .delete(handle)
            .map_err(|_| wasmtime::Error::new(HostTrap::BadHandle))?;
        Ok(())
    }
}
