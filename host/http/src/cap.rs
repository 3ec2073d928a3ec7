//! The `http` interface's view and host functions: `send` (assembled in
//! `splice.rs`, sent in `transport.rs`, lifted in `lift.rs`, scrubbed in
//! `scrub.rs`), credentials by name, digests and `forget`; the grant's link.

use secret_broker_runtime::bindings::WitError as Error;
use secret_broker_runtime::bindings::v0_2_0::secret_broker::provider0_2_0::http::{
    Host, Lift, Request, Response, add_to_linker as link,
};
use secret_broker_runtime::caps::{PACKAGE, not_granted};
use secret_broker_runtime::wasmtime::component::{HasData, Linker, Resource};
use secret_broker_runtime::{Grant, Granted, HostCalls, HostState, SecretValue, try_grant};

use crate::ctx::HttpCtx;

/// What the `http` host functions see: the grant's context and the call.
pub struct HttpView<'a> {
    /// The grant; `None` when the instance was not granted `http`.
    pub ctx: Option<&'a HttpCtx>,
    /// The call in progress.
    pub host: HostCalls<'a>,
}

struct HttpData;

impl HasData for HttpData {
    type Data<'a> = HttpView<'a>;
}

/// Links the `http` interface, reaching its view through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HttpView<'_>,
) -> secret_broker_runtime::wasmtime::Result<()> {
    link::<T, HttpData>(linker, view)
}

impl Grant for HttpCtx {
    fn name(&self) -> &str {
        "http"
    }

    fn import(&self) -> String {
        format!(
            "{PACKAGE}/http@{}",
            secret_broker_runtime::caps::HTTP_VERSION
        )
    }

    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
    ) -> secret_broker_runtime::wasmtime::Result<()> {
        add_to_linker(linker, |state| {
            let (ctx, host) = Granted::view::<HttpCtx>(state);
            HttpView { ctx, host }
        })
    }
}

pub(crate) type HostResult<T> = secret_broker_runtime::wasmtime::Result<Result<T, Error>>;

pub(crate) fn denied(message: String) -> Error {
    Error::AccessDenied(message)
}

impl<'a> HttpView<'a> {
    pub(crate) fn ctx(&self) -> Result<&'a HttpCtx, Error> {
        self.ctx.ok_or_else(|| denied(not_granted("http")))
    }

    pub(crate) fn clean(&self, error: Error) -> Error {
        self.host.clean_error(error)
    }
}

impl Host for HttpView<'_> {
    async fn send(&mut self, request: Request, lifts: Vec<Lift>) -> HostResult<Response> {
        self.send_checked(request, lifts).await
    }

    async fn has_credential(
        &mut self,
        name: String,
    ) -> secret_broker_runtime::wasmtime::Result<bool> {
        self.host.charge(name.len())?;
        Ok(self.ctx.is_some_and(|ctx| ctx.holds(&name)))
    }

    async fn credential(&mut self, name: String) -> HostResult<Resource<SecretValue>> {
        self.host.charge(name.len())?;
        let ctx = try_grant!(self.ctx());
        let Some(value) = ctx.credential(&name) else {
            return Ok(Err(denied(format!(
                "the http grant holds no credential `{name}`"
            ))));
        };
        Ok(Ok(self.host.new_handle(value)?))
    }

    async fn digest(
        &mut self,
        value: Resource<SecretValue>,
    ) -> secret_broker_runtime::wasmtime::Result<String> {
        let value = self.host.secret(&value)?;
        Ok(match self.ctx {
            Some(ctx) => ctx.digest(&value),
            None => String::new(),
        })
    }

    async fn forget(&mut self, name: String) -> secret_broker_runtime::wasmtime::Result<()> {
        self.host.charge(name.len())?;
        if let Some(ctx) = self.ctx {
            ctx.kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&name);
        }
        Ok(())
    }
}
