//! The `aws-ssm` provider, with OpenMetadata's behaviour: PutParameter as a
//! SecureString with tags and Overwrite=false, and on ParameterAlreadyExists again
//! with Overwrite=true and no tags; GetParameter WithDecryption; DeleteParameter.
//! Name and size rules (standard tier) are checked before any request.

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, aws_ssm as ssm,
    collect_sorted, export_provider,
};

/// Standard tier: 4 KiB values; at most 15 levels; no `aws`/`ssm` prefix. The
/// name limit leaves room for the ARN AWS counts in its 1011 characters.
const MAX_NAME: u32 = 900;
const MAX_VALUE: u64 = 4096;
const MAX_LEVELS: u32 = 15;
const CHARSET: &str = "A-Za-z0-9/_.-";

struct Ssm;

fn rules() -> IdRules {
    IdRules {
        separator: "/".into(),
        allowed_chars: CHARSET.into(),
        leading_separator: false,
        max_id_len: MAX_NAME,
        max_levels: Some(MAX_LEVELS),
        forbidden_prefixes: vec!["aws".into(), "ssm".into()],
        max_value_bytes: MAX_VALUE,
    }
}

/// All names under `prefix`, sorted: GetParametersByPath on the deepest path that
/// contains the prefix, filtered to the prefix.
fn all_names(prefix: &str) -> Result<Vec<String>, Error> {
    collect_sorted(prefix, |query, token| {
        let path = match query.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &query[..i],
        };
        ssm::get_parameters_by_path(path, token, 10)
    })
}

impl Provider for Ssm {
    fn new() -> Result<Self, Error> {
        Ok(Ssm)
    }

    fn put(&self, id: &str, value: Secret, options: PutOptions) -> Result<PutOutcome, Error> {
        let existed = match ssm::get_parameter(id)? {
            Some(old) if old.equals(&value) => return Ok(PutOutcome::Unchanged),
            Some(_) => true,
            None => false,
        };
        match ssm::put_parameter(
            id,
            &value,
            options.description.as_deref(),
            &options.tags,
            false,
        ) {
            Ok(_) => Ok(if existed {
                PutOutcome::Updated
            } else {
                PutOutcome::Created
            }),
            Err(Error::Conflict(_)) => {
                ssm::put_parameter(id, &value, options.description.as_deref(), &[], true)?;
                Ok(PutOutcome::Updated)
            }
            Err(e) => Err(e),
        }
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        ssm::get_parameter(id)
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        ssm::delete_parameter(id)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        Ok(ListPage::from_sorted(all_names(prefix)?, cursor, limit))
    }
}

export_provider!(Ssm, name: "aws-ssm", rules: rules());
