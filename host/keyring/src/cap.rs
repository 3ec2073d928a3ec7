//! The `keyring` interface: seal and open handles with the deployment's master
//! keys. The host binds every ciphertext to the provider instance's namespace as
//! well as to the context the provider passes, so one instance cannot open what
//! another sealed; a foreign ciphertext is refused as outside the grant's scope.

use std::sync::Arc;

use secret_broker_runtime::bindings::secret_broker::provider::keyring::{
    Host, add_to_linker as link,
};
use secret_broker_runtime::bindings::secret_broker::provider::types::Error;
use secret_broker_runtime::caps::not_granted;
use secret_broker_runtime::wasmtime::component::{HasData, Linker, Resource};
use secret_broker_runtime::{Grant, Granted, HostCalls, HostState, SecretValue, try_grant};
use sha2::{Digest, Sha256};

use crate::{Keyring, KeyringError};

const TAG_LEN: usize = 8;
/// Prefix of the associated data of a value a provider made itself.
const GUEST_MADE: &[u8; 16] = b"\xffguest-made\0\0\0\0\0";

/// The keyring as granted to one provider instance: the shared master keys and
/// the instance's namespace.
pub struct KeyringCtx {
    keyring: Arc<Keyring>,
    namespace: String,
    tag: [u8; TAG_LEN],
}

impl KeyringCtx {
    /// Grants `keyring` to the instance whose ciphertexts live under `namespace`.
    pub fn new(keyring: Arc<Keyring>, namespace: &str) -> Self {
        let digest = Sha256::digest(namespace.as_bytes());
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&digest[..TAG_LEN]);
        KeyringCtx {
            keyring,
            namespace: namespace.to_owned(),
            tag,
        }
    }

    /// The key version a value this capability sealed names (after the
    /// namespace tag), if it is well formed: for tooling that checks how far a
    /// rotation has come.
    pub fn sealed_version(stored: &[u8]) -> Option<u32> {
        Keyring::sealed_version(stored.get(TAG_LEN..)?)
    }

    /// The associated data: namespace and context, and for a value the provider
    /// made itself a marker in front (never a valid namespace length), so that
    /// what it opens again is still known as its own making: sealing cannot
    /// launder a guess into a value `equals` would compare with the host's.
    fn aad(&self, context: &[u8], guest_made: bool) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.namespace.len() + context.len());
        if guest_made {
            aad.extend_from_slice(GUEST_MADE);
        }
        aad.extend_from_slice(&(self.namespace.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.namespace.as_bytes());
        aad.extend_from_slice(context);
        aad
    }

    /// Seals for this namespace: the namespace tag, then the keyring's envelope.
    pub fn seal(&self, value: &SecretValue, context: &[u8]) -> Vec<u8> {
        let mut out = self.tag.to_vec();
        out.extend(
            self.keyring
                .seal(value, &self.aad(context, value.is_guest_made())),
        );
        out
    }

    /// Re-seals under the current key what an older key sealed; `None` when current.
    pub fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let inner = sealed.get(TAG_LEN..).unwrap_or_default();
        if Keyring::sealed_version(inner) == Some(self.keyring.current_version())
            && sealed[..TAG_LEN] == self.tag
        {
            return Ok(None);
        }
        let value = self.open(sealed, context)?;
        Ok(Some(self.seal(&value, context)))
    }

    /// Opens what [`KeyringCtx::seal`] produced in the same namespace.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<SecretValue, Error> {
        if sealed.len() < TAG_LEN {
            return Err(Error::Backend(KeyringError::Malformed.to_string()));
        }
        if sealed[..TAG_LEN] != self.tag {
            return Err(Error::AccessDenied(
                "the ciphertext was sealed by another provider instance: outside this keyring grant's scope".into(),
            ));
        }
        let inner = &sealed[TAG_LEN..];
        match self.keyring.open(inner, &self.aad(context, false)) {
            Err(KeyringError::Integrity(_)) => self
                .keyring
                .open(inner, &self.aad(context, true))
                .map(SecretValue::marked_guest_made),
            other => other,
        }
        .map_err(|e| Error::Backend(e.to_string()))
    }
}

/// What the `keyring` host functions see: the grant's context and the call.
pub struct KeyringView<'a> {
    /// The grant; `None` when the instance was not granted the keyring.
    pub ctx: Option<&'a KeyringCtx>,
    /// The call in progress.
    pub host: HostCalls<'a>,
}

impl KeyringView<'_> {
    fn ctx(&self) -> Result<&KeyringCtx, Error> {
        self.ctx
            .ok_or_else(|| Error::AccessDenied(not_granted("keyring")))
    }
}

struct KeyringData;

impl HasData for KeyringData {
    type Data<'a> = KeyringView<'a>;
}

/// Links the `keyring` interface, reaching its view through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyringView<'_>,
) -> secret_broker_runtime::wasmtime::Result<()> {
    link::<T, KeyringData>(linker, view)
}

impl Grant for KeyringCtx {
    fn name(&self) -> &str {
        "keyring"
    }

    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
    ) -> secret_broker_runtime::wasmtime::Result<()> {
        add_to_linker(linker, |state| {
            let (ctx, host) = Granted::view::<KeyringCtx>(state);
            KeyringView { ctx, host }
        })
    }
}

type HostResult<T> = secret_broker_runtime::wasmtime::Result<Result<T, Error>>;

impl Host for KeyringView<'_> {
    async fn seal(
        &mut self,
        value: Resource<SecretValue>,
        context: Vec<u8>,
    ) -> HostResult<Vec<u8>> {
        self.host.charge(context.len())?;
        let value = self.host.secret(&value)?;
        self.host.touch(&value);
        Ok(self.ctx().map(|ctx| ctx.seal(&value, &context)))
    }

    async fn reseal(&mut self, sealed: Vec<u8>, context: Vec<u8>) -> HostResult<Option<Vec<u8>>> {
        self.host.charge(sealed.len() + context.len())?;
        Ok(self.ctx().and_then(|ctx| ctx.reseal(&sealed, &context)))
    }

    async fn open(
        &mut self,
        sealed: Vec<u8>,
        context: Vec<u8>,
    ) -> HostResult<Resource<SecretValue>> {
        self.host.charge(sealed.len() + context.len())?;
        let value = try_grant!(self.ctx().and_then(|ctx| ctx.open(&sealed, &context)));
        Ok(Ok(self.host.new_handle(value)?))
    }
}
