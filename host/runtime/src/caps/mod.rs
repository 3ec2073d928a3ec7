//! Capabilities: the host interfaces a provider may import, and the shape every
//! capability crate follows.
//!
//! `types`, `log` and `config` are linked for every provider and live here, as
//! does `reveal`, which is about handles alone. Every other capability lives in a
//! crate of its own (`secret-broker-keyring`, `secret-broker-record-store`,
//! `secret-broker-aws`, or an embedder's) in wasmtime's WASI-crate shape: a
//! context (`KeyringCtx`), a view borrowing that context plus the call's
//! [`HostCalls`] (`KeyringView<'a>`), the WIT host trait implemented for the view,
//! and an `add_to_linker(linker, |state| view)`. The context implements [`Grant`],
//! which is how a [`Granted`] set links exactly what was granted.

pub mod config;
pub mod log;
pub mod reveal;
pub mod types;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Linker, Resource, ResourceTable};

use crate::secret::SecretValue;
use crate::state::{CallState, HostState, HostTrap, Limits};

/// The WIT package every first-party capability and the provider interface belong to.
pub const PACKAGE: &str = "secret-broker:provider";

/// The version of that package this host serves: read from the WIT files the
/// bindings are generated from, so it is defined in one place.
pub const VERSION: &str = package_version(include_str!("../../../../wit/v0.1.0/types.wit"));

/// The version in a WIT file's `package NAME@VERSION;` line.
const fn package_version(wit: &str) -> &str {
    let bytes = wit.as_bytes();
    let mut at = 0;
    while at < bytes.len() && bytes[at] != b'@' {
        at += 1;
    }
    let mut end = at;
    while end < bytes.len() && bytes[end] != b';' {
        end += 1;
    }
    if at + 1 >= end {
        panic!("the WIT file has no `package NAME@VERSION;` line");
    }
    let (_, rest) = bytes.split_at(at + 1);
    let (version, _) = rest.split_at(end - at - 1);
    match std::str::from_utf8(version) {
        Ok(v) => v,
        Err(_) => panic!("the WIT package version is not UTF-8"),
    }
}

/// The version of the package that adds `http` (contract 0.2.0, `wit/v0.2.0`).
pub const HTTP_VERSION: &str = package_version(include_str!("../../../../wit/v0.2.0/http.wit"));

/// Every version of the package this host serves: a component may import each
/// interface at the version that defines it (the 0.1.0 interfaces are unchanged in
/// 0.2.0 and keep their version).
pub const VERSIONS: [&str; 2] = [VERSION, HTTP_VERSION];

/// Interfaces of the package linked for every provider.
pub const ALWAYS_LINKED: [&str; 3] = ["types", "log", "config"];

/// The fully qualified import name of `interface` in this host's package.
pub fn import_name(interface: &str) -> String {
    format!("{PACKAGE}/{interface}@{VERSION}")
}

/// A capability's context as granted to one provider instance (shared by every
/// Wasm instance of that provider). Implemented by each capability crate's
/// `...Ctx` type; [`Granted::grant`] takes it.
pub trait Grant: Any + Send + Sync {
    /// The grant's key in configuration, which is also its WIT interface name
    /// (`keyring`, `aws-ssm`).
    fn name(&self) -> &str;

    /// The import this grant satisfies, as it appears in a component. First-party
    /// capabilities are interfaces of this host's package; an embedder's own
    /// capability names its own package here.
    fn import(&self) -> String {
        import_name(self.name())
    }

    /// Settings the provider should read through `config` (for example the
    /// scope of an AWS grant as `prefix`).
    fn settings(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Links the capability's interface for the provider's instances.
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()>;
}

/// What one provider instance was granted: its name, its settings, and the
/// capability contexts that are linked for it. Nothing else is linked.
///
/// ```
/// use secret_broker_runtime::{Granted, caps::reveal::Reveal};
///
/// let granted = Granted::new("main").with(Reveal);
/// assert_eq!(granted.names(), ["reveal"]);
/// assert!(granted.get::<Reveal>().is_some());
/// ```
#[derive(Default)]
pub struct Granted {
    /// The instance name: it namespaces rows and keyring contexts, and names the
    /// provider in logs and errors.
    pub instance: String,
    /// Settings readable through the `config` interface.
    pub settings: BTreeMap<String, String>,
    grants: Vec<Arc<dyn Grant>>,
}

impl Granted {
    /// Nothing granted yet to the instance `instance`.
    pub fn new(instance: &str) -> Self {
        Granted {
            instance: instance.to_owned(),
            ..Granted::default()
        }
    }

    /// Grants `grant` (replacing a grant of the same name) and returns the set.
    pub fn with(mut self, grant: impl Grant) -> Self {
        self.grant(grant);
        self
    }

    /// Grants `grant`, replacing a grant of the same name; its settings are added.
    pub fn grant(&mut self, grant: impl Grant) {
        for (k, v) in grant.settings() {
            self.settings.insert(k, v);
        }
        self.grants.retain(|g| g.name() != grant.name());
        self.grants.push(Arc::new(grant));
    }

    /// The context of the grant of type `G`, if granted.
    pub fn get<G: Grant>(&self) -> Option<&G> {
        self.grants
            .iter()
            .find_map(|g| (g.as_ref() as &dyn Any).downcast_ref::<G>())
    }

    /// The names of the grants, in the order given.
    pub fn names(&self) -> Vec<&str> {
        self.grants.iter().map(|g| g.name()).collect()
    }

    /// The grant that satisfies the import `import`.
    pub fn satisfies(&self, import: &str) -> bool {
        self.grants.iter().any(|g| g.import() == import)
    }

    /// Splits the store data into the context of grant `G` and the call's host
    /// side: what a capability's `add_to_linker` projection hands its view.
    pub fn view<G: Grant>(state: &mut HostState) -> (Option<&G>, HostCalls<'_>) {
        let (granted, host) = state.split();
        (granted.get::<G>(), host)
    }

    pub(crate) fn link(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        for grant in &self.grants {
            grant.add_to_linker(linker)?;
        }
        Ok(())
    }
}

/// The host side of the call in progress, as a capability's view borrows it: the
/// resource table holding the call's secret handles, and the call's accounting.
pub struct HostCalls<'a> {
    table: &'a mut ResourceTable,
    call: &'a mut CallState,
    limits: &'a Limits,
    may_reveal: bool,
}

impl<'a> HostCalls<'a> {
    pub(crate) fn new(
        table: &'a mut ResourceTable,
        call: &'a mut CallState,
        limits: &'a Limits,
        may_reveal: bool,
    ) -> Self {
        HostCalls {
            table,
            call,
            limits,
            may_reveal,
        }
    }

    /// Counts `size` bytes received from the guest against the per-host-call and
    /// per-export-call limits; over either, the call traps.
    pub fn charge(&mut self, size: usize) -> wasmtime::Result<()> {
        if size > self.limits.host_call_bytes {
            return Err(wasmtime::Error::new(HostTrap::HostCallData {
                size,
                limit: self.limits.host_call_bytes,
            }));
        }
        self.call.bytes_in = self.call.bytes_in.saturating_add(size);
        if self.call.bytes_in > self.limits.call_bytes {
            return Err(wasmtime::Error::new(HostTrap::CallData {
                size: self.call.bytes_in,
                limit: self.limits.call_bytes,
            }));
        }
        Ok(())
    }

    /// The value behind a guest's handle; an unknown handle traps.
    pub fn secret(&self, handle: &Resource<SecretValue>) -> wasmtime::Result<SecretValue> {
        self.table
            .get(handle)
            .cloned()
            .map_err(|_| wasmtime::Error::new(HostTrap::BadHandle))
    }

    /// The value behind a guest's handle, to be written to a backend: the call
    /// now touches it. A value the provider made itself is refused unless it was
    /// granted `reveal`: written out and read back, it would come back as a value
    /// the host holds, and `equals` would become an oracle again.
    pub fn backend_value(
        &mut self,
        handle: &Resource<SecretValue>,
    ) -> wasmtime::Result<SecretValue> {
        let value = self.secret(handle)?;
        if value.is_guest_made() && !self.may_reveal {
            return Err(wasmtime::Error::new(HostTrap::Refused(
                "the provider passed a secret it made itself to a backend: without the `reveal` \
                 grant a provider may store only values the host handed it",
            )));
        }
        self.touch(&value);
        Ok(value)
    }

    /// Whether two handles hold the same bytes. A provider without `reveal` may not
    /// compare a value it made with one the host holds: that is a guessing oracle.
    pub fn equals(
        &self,
        a: &Resource<SecretValue>,
        b: &Resource<SecretValue>,
    ) -> wasmtime::Result<bool> {
        let (a, b) = (self.secret(a)?, self.secret(b)?);
        if a.is_guest_made() != b.is_guest_made() && !self.may_reveal {
            return Err(wasmtime::Error::new(HostTrap::Refused(
                "the provider compared a secret it made itself with one the host holds: \
                 without the `reveal` grant that comparison is refused, as it would let a \
                 provider guess plaintext",
            )));
        }
        Ok(a.ct_eq(&b))
    }

    /// A new guest handle for `value`, which the call now touches. Counts against
    /// the call's handle budget.
    pub fn new_handle(&mut self, value: SecretValue) -> wasmtime::Result<Resource<SecretValue>> {
        self.call.handles += 1;
        if self.call.handles > self.limits.handles_per_call {
            return Err(wasmtime::Error::new(HostTrap::Handles {
                limit: self.limits.handles_per_call,
            }));
        }
        self.touch(&value);
        Ok(self.table.push(value)?)
    }

    /// When the call in progress must end: a capability that waits on the outside
    /// world (an HTTP backend) stops waiting by then.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.call.deadline
    }

    /// Counts one more use of `what` in this call and returns the count so far: a
    /// capability's own per-call budget (HTTP requests per call).
    pub fn count(&mut self, what: &'static str) -> usize {
        let n = self.call.counters.entry(what).or_insert(0);
        *n += 1;
        *n
    }

    /// The value behind a guest's handle, to be spliced into a request the host
    /// writes: the call now touches it, so it is scrubbed from whatever comes back.
    /// A value the provider made itself may be spliced (it knows those bytes
    /// already).
    pub fn splice_value(
        &mut self,
        handle: &Resource<SecretValue>,
    ) -> wasmtime::Result<SecretValue> {
        let value = self.secret(handle)?;
        self.touch(&value);
        Ok(value)
    }

    /// A new guest handle for a value lifted out of a backend's answer to a request
    /// the provider shaped. It counts as made by the provider: the provider chose
    /// what the backend echoes, so comparing it with a value the host holds would
    /// be a guessing oracle.
    pub fn new_lifted_handle(
        &mut self,
        value: SecretValue,
    ) -> wasmtime::Result<Resource<SecretValue>> {
        self.new_handle(value.marked_guest_made())
    }

    /// A scrubber of every value this call touched so far, for a text or two.
    pub fn scrubber(&self) -> crate::scrub::Scrubber {
        crate::scrub::Scrubber::one_shot(&self.call.touched)
    }

    /// Counts one log line against the call's budget.
    pub fn charge_log_line(&mut self, size: usize) -> wasmtime::Result<()> {
        self.charge(size)?;
        self.call.log_lines += 1;
        if self.call.log_lines > self.limits.log_lines_per_call {
            return Err(wasmtime::Error::new(HostTrap::LogLines {
                limit: self.limits.log_lines_per_call,
            }));
        }
        Ok(())
    }

    /// Records `value` as touched by the call: the scrubber removes it from any
    /// text the provider produces, and from third-party log lines meanwhile. A
    /// value touched again (a clone) is recorded once.
    pub fn touch(&mut self, value: &SecretValue) {
        if self.call.touched_ids.insert(value.buffer_id()) {
            self.call.touched.push(value.clone());
            self.call.in_flight.add(value);
        }
    }

    /// A capability's error for the guest, its message scrubbed of every value the
    /// call touched: a backend that echoes a value in an error message (AWS
    /// validation errors do) must not hand it to the provider.
    pub fn clean_error(
        &self,
        error: crate::bindings::secret_broker::provider::types::Error,
    ) -> crate::bindings::secret_broker::provider::types::Error {
        use crate::bindings::secret_broker::provider::types::Error;
        if self.call.touched.is_empty() {
            return error;
        }
        let scrubber = crate::scrub::Scrubber::new(&self.call.touched);
        let clean = |m: String| scrubber.scrub(&m).into_owned();
        match error {
            Error::InvalidId(m) => Error::InvalidId(clean(m)),
            Error::AccessDenied(m) => Error::AccessDenied(clean(m)),
            Error::Unavailable(m) => Error::Unavailable(clean(m)),
            Error::Conflict(m) => Error::Conflict(clean(m)),
            Error::Backend(m) => Error::Backend(clean(m)),
            other @ Error::ValueTooLarge(_) => other,
        }
    }

    /// Drops a guest's handle.
    pub fn drop_handle(&mut self, handle: Resource<SecretValue>) -> wasmtime::Result<()> {
        self.table
            .delete(handle)
            .map_err(|_| wasmtime::Error::new(HostTrap::BadHandle))?;
        Ok(())
    }
}

/// Inside a host function returning `wasmtime::Result<Result<T, Error>>`: the
/// value of an `Ok`, or the guest-visible error returned as is.
#[macro_export]
macro_rules! try_grant {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

/// Builds the linker for one grant set: locked-down WASI, the always-linked
/// interfaces, and exactly the granted capabilities.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    granted: &Granted,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    types::add_to_linker(&mut linker, HostState::calls)?;
    log::add_to_linker(&mut linker)?;
    config::add_to_linker(&mut linker)?;
    granted.link(&mut linker)?;
    Ok(linker)
}

/// The message of the guest-visible error a capability's host function returns
/// when its grant is missing, shared by every capability.
pub fn not_granted(name: &str) -> String {
    format!("{name} is not granted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_wit_package_version() {
        assert_eq!(VERSION, "0.1.0");
        assert_eq!(
            import_name("keyring"),
            "secret-broker:provider/keyring@0.1.0"
        );
    }
}
