//! The `aws-ssm` provider, with OpenMetadata's behaviour: PutParameter as a
//! SecureString with tags and Overwrite=false, and on ParameterAlreadyExists again
//! with Overwrite=true and no tags; GetParameter WithDecryption; DeleteParameter.
//! Name and size rules (standard tier) are checked before any request.

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, SizeLimit,
    aws_ssm as ssm, collect_sorted, export_provider,
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

fn check(id: &str, value: Option<&Secret>) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_NAME as usize {
        return Err(Error::InvalidId(format!(
            "SSM parameter names are 1 to {MAX_NAME} characters here"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_.-".contains(*c)))
    {
        return Err(Error::InvalidId(format!(
            "SSM parameter names may not contain {c:?} (allowed: {CHARSET})"
        )));
    }
    let body = id.strip_prefix('/').unwrap_or(id);
    let levels = body.split('/').count() as u32;
    if levels > MAX_LEVELS {
        return Err(Error::InvalidId(format!(
            "SSM allows {MAX_LEVELS} levels; this name has {levels}"
        )));
    }
    let lower = body.to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return Err(Error::InvalidId(
            "SSM parameter names may not start with `aws` or `ssm`".into(),
        ));
    }
    if let Some(size) = value.map(Secret::len).filter(|&s| s > MAX_VALUE) {
        return Err(Error::ValueTooLarge(SizeLimit {
            size,
            limit: MAX_VALUE,
        }));
    }
    Ok(())
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
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "aws-ssm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            id_rules: rules(),
            stateful: false,
        }
    }

    fn put(id: String, value: Secret, options: PutOptions) -> Result<PutOutcome, Error> {
        check(&id, Some(&value))?;
        let existed = match ssm::get_parameter(&id)? {
            Some(old) if old.equals(&value) => return Ok(PutOutcome::Unchanged),
            Some(_) => true,
            None => false,
        };
        match ssm::put_parameter(
            &id,
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
                ssm::put_parameter(&id, &value, options.description.as_deref(), &[], true)?;
                Ok(PutOutcome::Updated)
            }
            Err(e) => Err(e),
        }
    }

    fn get(id: String) -> Result<Option<Secret>, Error> {
        check(&id, None)?;
        ssm::get_parameter(&id)
    }

    fn delete(id: String) -> Result<bool, Error> {
        check(&id, None)?;
        ssm::delete_parameter(&id)
    }

    fn list(prefix: String, cursor: Option<String>, limit: u32) -> Result<ListPage, Error> {
        Ok(ListPage::from_sorted(
            all_names(&prefix)?,
            cursor.as_deref(),
            limit,
        ))
    }
}

export_provider!(Ssm);
