//! The `types` interface: the host side of the `secret` resource. Handles index
//! `SecretValue`s in the store's resource table; the bytes never enter the guest.

use wasmtime::component::{HasData, Linker, Resource};

use crate::bindings::secret_broker::provider::types::{Host, HostSecret, add_to_linker as link};
use crate::caps::HostCalls;
use crate::secret::SecretValue;

struct Types;

impl HasData for Types {
    type Data<'a> = HostCalls<'a>;
}

/// Links the `types` interface.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HostCalls<'_>,
) -> wasmtime::Result<()> {
    link::<T, Types>(linker, view)
}

impl Host for HostCalls<'_> {}

impl HostSecret for HostCalls<'_> {
    async fn new(&mut self, value: Vec<u8>) -> wasmtime::Result<Resource<SecretValue>> {
        self.charge(value.len())?;
        self.new_handle(SecretValue::made_by_guest(value))
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
        HostCalls::equals(self, &handle, &other)
    }

    async fn drop(&mut self, handle: Resource<SecretValue>) -> wasmtime::Result<()> {
        self.drop_handle(handle)
    }
}
