//! The `aws-secrets-manager` interface: an AWS Secrets Manager client scoped to the
//! grant's prefix. Every name is checked against the prefix before a request is
//! built; writes wait for the grant's rate limit; values go from handles straight
//! into requests and from responses straight into handles.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use crate::{AwsGrantBase, code_of, map_sdk_error};
use secret_broker_runtime::bindings::secret_broker::provider::aws_secrets_manager::{
    Host, add_to_linker as link,
};
use secret_broker_runtime::bindings::secret_broker::provider::types::{Error, Tag as WitTag};
use secret_broker_runtime::caps::not_granted;
use secret_broker_runtime::wasmtime;
use secret_broker_runtime::wasmtime::component::{HasData, Linker, Resource};
use secret_broker_runtime::{Grant, Granted, HostCalls, HostState, SecretValue, try_grant};

/// AWS Secrets Manager as granted to one instance.
pub struct SecretsManagerCtx {
    base: AwsGrantBase,
    client: Client,
}

impl SecretsManagerCtx {
    /// A client on `base`'s configuration.
    pub fn new(base: AwsGrantBase) -> Self {
        let client = Client::new(&base.sdk);
        SecretsManagerCtx { base, client }
    }
}

/// What the `aws-secrets-manager` host functions see: the grant's context and the call.
pub struct SecretsManagerView<'a> {
    /// The grant; `None` when the instance was not granted `aws-secrets-manager`.
    pub ctx: Option<&'a SecretsManagerCtx>,
    /// The call in progress.
    pub host: HostCalls<'a>,
}

struct SecretsManagerViewData;

impl HasData for SecretsManagerViewData {
    type Data<'a> = SecretsManagerView<'a>;
}

/// Links the `aws-secrets-manager` interface, reaching its view through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SecretsManagerView<'_>,
) -> wasmtime::Result<()> {
    link::<T, SecretsManagerViewData>(linker, view)
}

impl Grant for SecretsManagerCtx {
    fn name(&self) -> &str {
        "aws-secrets-manager"
    }

    /// The provider reads its scope as the `prefix` setting, so it never asks
    /// for names outside it.
    fn settings(&self) -> Vec<(String, String)> {
        vec![("prefix".into(), self.base.prefix.clone())]
    }

    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        add_to_linker(linker, |state| {
            let (ctx, host) = Granted::view::<SecretsManagerCtx>(state);
            SecretsManagerView { ctx, host }
        })
    }
}

fn tags(tags: Vec<WitTag>) -> Vec<Tag> {
    tags.into_iter()
        .map(|t| Tag::builder().key(t.key).value(t.value).build())
        .collect()
}

impl<'a> SecretsManagerView<'a> {
    fn secrets_manager(&self, name: &str) -> Result<(&'a SecretsManagerCtx, ()), Error> {
        let grant = self
            .ctx
            .ok_or_else(|| Error::AccessDenied(not_granted("aws-secrets-manager")))?;
        grant.base.in_scope(name)?;
        Ok((grant, ()))
    }
}

impl Host for SecretsManagerView<'_> {
    async fn create_secret(
        &mut self,
        name: String,
        value: Resource<SecretValue>,
        description: Option<String>,
        tag_list: Vec<WitTag>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.host
            .charge(name.len() + description.as_ref().map_or(0, String::len))?;
        let value = self.host.backend_value(&value)?;
        let (grant, ()) = try_grant!(self.secrets_manager(&name));
        grant.base.write_permit().await;
        let mut req = grant
            .client
            .create_secret()
            .name(&name)
            .set_description(description)
            .set_tags(Some(tags(tag_list)));
        req = match value.expose_str() {
            Some(text) => req.secret_string(text),
            None => req.secret_binary(Blob::new(value.expose())),
        };
        Ok(match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("ResourceExistsException") => Err(Error::Conflict(
                format!("create {name}: a secret with this name exists"),
            )),
            Err(e) => Err(self
                .host
                .clean_error(map_sdk_error(&format!("create {name}"), &e))),
        })
    }

    async fn update_secret(
        &mut self,
        name: String,
        value: Resource<SecretValue>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.host.charge(name.len())?;
        let value = self.host.backend_value(&value)?;
        let (grant, ()) = try_grant!(self.secrets_manager(&name));
        grant.base.write_permit().await;
        let mut req = grant.client.update_secret().secret_id(&name);
        req = match value.expose_str() {
            Some(text) => req.secret_string(text),
            None => req.secret_binary(Blob::new(value.expose())),
        };
        Ok(match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(self
                .host
                .clean_error(map_sdk_error(&format!("update {name}"), &e))),
        })
    }

    async fn get_secret_value(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Option<Resource<SecretValue>>, Error>> {
        self.host.charge(name.len())?;
        let (grant, ()) = try_grant!(self.secrets_manager(&name));
        let got = grant
            .client
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await;
        let value = match got {
            Ok(out) => match (out.secret_string, out.secret_binary) {
                (Some(text), _) => SecretValue::from_string(text),
                (None, Some(blob)) => SecretValue::new(blob.into_inner()),
                (None, None) => {
                    return Ok(Err(Error::Backend(format!(
                        "get {name}: AWS returned no value"
                    ))));
                }
            },
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => return Ok(Ok(None)),
            Err(e) => return Ok(Err(map_sdk_error(&format!("get {name}"), &e))),
        };
        Ok(Ok(Some(self.host.new_handle(value)?)))
    }

    async fn delete_secret(&mut self, name: String) -> wasmtime::Result<Result<bool, Error>> {
        self.host.charge(name.len())?;
        let (grant, ()) = try_grant!(self.secrets_manager(&name));
        grant.base.write_permit().await;
        let req = grant
            .client
            .delete_secret()
            .secret_id(&name)
            .force_delete_without_recovery(true);
        Ok(match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(map_sdk_error(&format!("delete {name}"), &e)),
        })
    }

    async fn list_secrets(
        &mut self,
        prefix: String,
        next_token: Option<String>,
        max_results: u32,
    ) -> wasmtime::Result<Result<(Vec<String>, Option<String>), Error>> {
        self.host
            .charge(prefix.len() + next_token.as_ref().map_or(0, String::len))?;
        let (grant, ()) = try_grant!(self.secrets_manager(&prefix));
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(&prefix)
            .build();
        let req = grant
            .client
            .list_secrets()
            .filters(filter)
            .max_results(max_results.clamp(1, 100) as i32)
            .set_next_token(next_token);
        Ok(match req.send().await {
            Ok(out) => {
                // The name filter matches prefixes of words too; keep true prefixes.
                let names = out
                    .secret_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| s.name)
                    .filter(|n| n.starts_with(&prefix))
                    .collect();
                Ok((names, out.next_token))
            }
            Err(e) => Err(map_sdk_error(&format!("list {prefix}"), &e)),
        })
    }
}
