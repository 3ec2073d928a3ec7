//! The one table of the AWS operations this server answers, for both APIs:
//! dispatch, the broker operation a refused request is audited as, and the list
//! an unknown operation's error names all come from [`OPERATIONS`].

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::{Api, AwsError, Ctx, secrets_manager as sm, ssm};
use crate::AppState;

/// What an operation's handler returns.
type Answer<'a> = Pin<Box<dyn Future<Output = Result<Value, AwsError>> + Send + 'a>>;

/// An operation's handler.
type Handler = for<'a> fn(&'a AppState, &'a Ctx, &'a Value) -> Answer<'a>;

/// One operation of one API.
pub(crate) struct Operation {
    /// The API it belongs to.
    pub(crate) api: Api,
    /// Its name, as `X-Amz-Target` carries it after the service prefix.
    pub(crate) name: &'static str,
    /// The broker operation it performs, for the audit entry of a request whose
    /// signature was refused.
    pub(crate) audited_as: &'static str,
    /// Runs it.
    pub(crate) run: Handler,
}

macro_rules! op {
    ($api:ident, $name:literal, $audited:literal, $handler:path) => {
        Operation {
            api: Api::$api,
            name: $name,
            audited_as: $audited,
            run: |s, ctx, body| Box::pin($handler(s, ctx, body)),
        }
    };
}

/// Every operation this server answers.
pub(crate) static OPERATIONS: [Operation; 18] = [
    op!(SecretsManager, "CreateSecret", "secret.create", sm::create),
    op!(SecretsManager, "UpdateSecret", "secret.put", sm::update),
    op!(
        SecretsManager,
        "PutSecretValue",
        "secret.put",
        sm::put_value
    ),
    op!(
        SecretsManager,
        "GetSecretValue",
        "secret.get",
        sm::get_value
    ),
    op!(
        SecretsManager,
        "BatchGetSecretValue",
        "secret.get",
        sm::batch_get
    ),
    op!(
        SecretsManager,
        "DescribeSecret",
        "secret.describe",
        sm::describe
    ),
    op!(SecretsManager, "DeleteSecret", "secret.delete", sm::delete),
    op!(SecretsManager, "ListSecrets", "secret.list", sm::list),
    op!(SecretsManager, "TagResource", "secret.describe", sm::tag),
    op!(
        SecretsManager,
        "UntagResource",
        "secret.describe",
        sm::untag
    ),
    op!(Ssm, "PutParameter", "secret.put", ssm::put),
    op!(Ssm, "GetParameter", "secret.get", ssm::get),
    op!(Ssm, "GetParameters", "secret.get", ssm::get_many),
    op!(Ssm, "GetParametersByPath", "secret.get", ssm::by_path),
    op!(Ssm, "DeleteParameter", "secret.delete", ssm::delete),
    op!(Ssm, "DescribeParameters", "secret.list", ssm::describe),
    op!(Ssm, "AddTagsToResource", "secret.describe", ssm::add_tags),
    op!(
        Ssm,
        "ListTagsForResource",
        "secret.describe",
        ssm::list_tags
    ),
];

/// The operation `name` of `api`; an unknown one is AWS's
/// `UnknownOperationException` listing what this server answers.
pub(crate) fn find(api: Api, name: &str) -> Result<&'static Operation, AwsError> {
    if let Some(op) = lookup(api, name) {
        return Ok(op);
    }
    let known: Vec<&str> = OPERATIONS
        .iter()
        .filter(|o| o.api == api)
        .map(|o| o.name)
        .collect();
    Err(AwsError::new(
        "UnknownOperationException",
        format!(
            "{}.{name} is not an operation this server answers ({})",
            api.target_prefix(),
            known.join(", ")
        ),
    ))
}

/// The operation `name` of `api`, if this server answers it.
fn lookup(api: Api, name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.api == api && o.name == name)
}

/// The broker operation a request for `name` would perform (`secret.describe`
/// for an operation this server does not answer).
pub(crate) fn audited_as(api: Api, name: &str) -> &'static str {
    lookup(api, name).map_or("secret.describe", |op| op.audited_as)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_found_once_and_unknown_ones_list_their_api() {
        for op in &OPERATIONS {
            let found = find(op.api, op.name).ok().map(|o| o as *const Operation);
            assert_eq!(found, Some(op as *const Operation), "{}", op.name);
        }
        let e = find(Api::Ssm, "GetSecretValue").err().map(|e| e.message);
        let message = e.unwrap_or_default();
        assert!(
            message.starts_with("AmazonSSM.GetSecretValue is not an operation")
                && message.contains("PutParameter, GetParameter,")
                && !message.contains("CreateSecret"),
            "{message}"
        );
        assert_eq!(
            audited_as(Api::SecretsManager, "CreateSecret"),
            "secret.create"
        );
        assert_eq!(audited_as(Api::Ssm, "GetParametersByPath"), "secret.get");
        assert_eq!(audited_as(Api::Ssm, "Nope"), "secret.describe");
    }
}
