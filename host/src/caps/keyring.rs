//! The `keyring` interface: seal and open handles with the deployment's master
//! keys. The host binds every ciphertext to the provider instance's namespace as
//! well as to the context the provider passes, so one instance cannot open what
//! another sealed; a foreign ciphertext is refused as outside the grant's scope.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::secret_broker::provider::keyring::{Host, add_to_linker as link};
use crate::bindings::secret_broker::provider::types::Error;
use crate::keyring::{Keyring, KeyringError};
use crate::secret::SecretValue;
use crate::state::HostState;

const TAG_LEN: usize = 8;

/// The keyring as granted to one instance.
pub struct KeyringGrant {
    keyring: Arc<Keyring>,
    namespace: String,
    tag: [u8; TAG_LEN],
}

impl KeyringGrant {
    /// Grants `keyring` to the instance whose rows live under `namespace`.
    pub fn new(keyring: Arc<Keyring>, namespace: &str) -> Self {
        let digest = Sha256::digest(namespace.as_bytes());
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&digest[..TAG_LEN]);
        KeyringGrant {
            keyring,
            namespace: namespace.to_owned(),
            tag,
        }
    }

    fn aad(&self, context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + self.namespace.len() + context.len());
        aad.extend_from_slice(&(self.namespace.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.namespace.as_bytes());
        aad.extend_from_slice(context);
        aad
    }

    /// Seals for this namespace: the namespace tag, then the keyring's envelope.
    pub fn seal(&self, value: &SecretValue, context: &[u8]) -> Vec<u8> {
        let mut out = self.tag.to_vec();
        out.extend(self.keyring.seal(value, &self.aad(context)));
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

    /// Opens what [`KeyringGrant::seal`] produced in the same namespace.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<SecretValue, Error> {
        if sealed.len() < TAG_LEN {
            return Err(Error::Backend(KeyringError::Malformed.to_string()));
        }
        if sealed[..TAG_LEN] != self.tag {
            return Err(Error::AccessDenied(
                "the ciphertext was sealed by another provider instance: outside this keyring grant's scope".into(),
            ));
        }
        self.keyring
            .open(&sealed[TAG_LEN..], &self.aad(context))
            .map_err(|e| Error::Backend(e.to_string()))
    }
}

/// Links the `keyring` interface.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl HostState {
    fn keyring_grant(&self) -> Result<&KeyringGrant, Error> {
        self.granted
            .keyring
            .as_ref()
            .ok_or_else(|| Error::AccessDenied("keyring is not granted".into()))
    }
}

impl Host for HostState {
    async fn seal(
        &mut self,
        value: Resource<SecretValue>,
        context: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        self.charge(context.len())?;
        let value = self.secret(&value)?;
        self.touch(&value);
        Ok(self
            .keyring_grant()
            .map(|grant| grant.seal(&value, &context)))
    }

    async fn reseal(
        &mut self,
        sealed: Vec<u8>,
        context: Vec<u8>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        self.charge(sealed.len() + context.len())?;
        Ok(self
            .keyring_grant()
            .and_then(|grant| grant.reseal(&sealed, &context)))
    }

    async fn open(
        &mut self,
        sealed: Vec<u8>,
        context: Vec<u8>,
    ) -> wasmtime::Result<Result<Resource<SecretValue>, Error>> {
        self.charge(sealed.len() + context.len())?;
        match self
            .keyring_grant()
            .and_then(|grant| grant.open(&sealed, &context))
        {
            Ok(value) => Ok(Ok(self.new_handle(value)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}
