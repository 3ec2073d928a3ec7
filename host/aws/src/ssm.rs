//! The `aws-ssm` interface: an SSM Parameter Store client scoped to the grant's
//! prefix, for SecureString parameters. Names are checked against the prefix
//! before any request; writes wait for the grant's rate limit.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterType, Tag};

use crate::{AwsGrantBase, code_of, map_sdk_error};
use secret_broker_runtime::bindings::secret_broker::provider::aws_ssm::{
    Host, add_to_linker as link,
};
use secret_broker_runtime::bindings::secret_broker::provider::types::{Error, Tag as WitTag};
use secret_broker_runtime::caps::not_granted;
use secret_broker_runtime::wasmtime;
use secret_broker_runtime::wasmtime::component::{HasData, Linker, Resource};
use secret_broker_runtime::{Grant, Granted, HostCalls, HostState, SecretValue, try_grant};

/// SSM Parameter Store as granted to one instance.
pub struct SsmCtx {
    base: AwsGrantBase,
    client: Client,
}

impl SsmCtx {
    /// A client on `base`'s configuration.
    pub fn new(base: AwsGrantBase) -> Self {
        let client = Client::new(&base.sdk);
        SsmCtx { base, client }
    }
}

/// What the `aws-ssm` host functions see: the grant's context and the call.
pub struct SsmView<'a> {
    /// The grant; `None` when the instance was not granted `aws-ssm`.
    pub ctx: Option<&'a SsmCtx>,
    /// The call in progress.
    pub host: HostCalls<'a>,
}

struct SsmViewData;

impl HasData for SsmViewData {
    type Data<'a> = SsmView<'a>;
}

/// Links the `aws-ssm` interface, reaching its view through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SsmView<'_>,
) -> wasmtime::Result<()> {
    link::<T, SsmViewData>(linker, view)
}

impl Grant for SsmCtx {
    fn name(&self) -> &str {
        "aws-ssm"
    }

    /// The provider reads its scope as the `prefix` setting, so it never asks
    /// for names outside it.
    fn settings(&self) -> Vec<(String, String)> {
        vec![("prefix".into(), self.base.prefix.clone())]
    }

    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        add_to_linker(linker, |state| {
            let (ctx, host) = Granted::view::<SsmCtx>(state);
            SsmView { ctx, host }
        })
    }
}

impl<'a> SsmView<'a> {
    fn ssm(&self, name: &str) -> Result<&'a SsmCtx, Error> {
        let grant = self
            .ctx
            .ok_or_else(|| Error::AccessDenied(not_granted("aws-ssm")))?;
        grant.base.in_scope(name)?;
        Ok(grant)
    }
}

impl Host for SsmView<'_> {
    async fn put_parameter(
        &mut self,
        name: String,
        value: Resource<SecretValue>,
        description: Option<String>,
        tags: Vec<WitTag>,
        overwrite: bool,
    ) -> wasmtime::Result<Result<u64, Error>> {
        self.host
            .charge(name.len() + description.as_ref().map_or(0, String::len))?;
        let value = self.host.backend_value(&value)?;
        let grant = try_grant!(self.ssm(&name));
        let Some(text) = value.expose_str() else {
            return Ok(Err(Error::Backend(format!(
                "put {name}: SSM parameters hold text; the value is not UTF-8"
            ))));
        };
        grant.base.write_permit().await;
        let mut req = grant
            .client
            .put_parameter()
            .name(&name)
            .value(text)
            .r#type(ParameterType::SecureString)
            .overwrite(overwrite)
            .set_description(description);
        if !overwrite && !tags.is_empty() {
            // AWS rejects tags together with Overwrite=true.
            let tags = tags
                .into_iter()
                .filter_map(|t| Tag::builder().key(t.key).value(t.value).build().ok())
                .collect();
            req = req.set_tags(Some(tags));
        }
        Ok(match req.send().await {
            Ok(out) => Ok(out.version.max(1) as u64),
            Err(e) if code_of(&e) == Some("ParameterAlreadyExists") => {
                Err(Error::Conflict(format!("put {name}: the parameter exists")))
            }
            Err(e) => Err(self
                .host
                .clean_error(map_sdk_error(&format!("put {name}"), &e))),
        })
    }

    async fn get_parameter(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Option<Resource<SecretValue>>, Error>> {
        self.host.charge(name.len())?;
        let grant = try_grant!(self.ssm(&name));
        let got = grant
            .client
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await;
        let value = match got {
            Ok(out) => match out.parameter.and_then(|p| p.value) {
                Some(text) => SecretValue::from_string(text),
                None => {
                    return Ok(Err(Error::Backend(format!(
                        "get {name}: AWS returned no value"
                    ))));
                }
            },
            Err(e) if code_of(&e) == Some("ParameterNotFound") => return Ok(Ok(None)),
            Err(e) => return Ok(Err(map_sdk_error(&format!("get {name}"), &e))),
        };
        Ok(Ok(Some(self.host.new_handle(value)?)))
    }

    async fn delete_parameter(&mut self, name: String) -> wasmtime::Result<Result<bool, Error>> {
        self.host.charge(name.len())?;
        let grant = try_grant!(self.ssm(&name));
        grant.base.write_permit().await;
        Ok(
            match grant.client.delete_parameter().name(&name).send().await {
                Ok(_) => Ok(true),
                Err(e) if code_of(&e) == Some("ParameterNotFound") => Ok(false),
                Err(e) => Err(map_sdk_error(&format!("delete {name}"), &e)),
            },
        )
    }

    async fn get_parameters_by_path(
        &mut self,
        path: String,
        next_token: Option<String>,
        max_results: u32,
    ) -> wasmtime::Result<Result<(Vec<String>, Option<String>), Error>> {
        self.host
            .charge(path.len() + next_token.as_ref().map_or(0, String::len))?;
        let grant = try_grant!(self.ssm(&path));
        let req = grant
            .client
            .get_parameters_by_path()
            .path(&path)
            .recursive(true)
            .with_decryption(false)
            .max_results(max_results.clamp(1, 10) as i32)
            .set_next_token(next_token);
        Ok(match req.send().await {
            Ok(out) => {
                let names = out
                    .parameters
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| p.name)
                    .collect();
                Ok((names, out.next_token))
            }
            Err(e) => Err(map_sdk_error(&format!("list {path}"), &e)),
        })
    }
}
