//! The `[aws]` table and OpenMetadata's environment variables, which configure the
//! `aws-secrets-manager` and `aws-ssm` grants; env variables win over the file.
//! With `SECRET_MANAGER=managed-aws` (or `managed-aws-ssm`) and no config file the
//! broker runs the matching provider from the environment alone.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use secret_broker::SecretValue;
use secret_broker::aws::AwsSettings;

/// The `[aws]` table, in OpenMetadata's `parameters` spelling plus our additions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsConfig {
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    /// Not in OpenMetadata: for tests and VPC endpoints.
    endpoint: Option<String>,
    /// OpenMetadata's `prefix`: ids start with `/{prefix}/`; the grant's scope.
    prefix: Option<String>,
    max_attempts: Option<u32>,
    attempt_timeout_ms: Option<u64>,
    operation_timeout_ms: Option<u64>,
    writes_per_second: Option<u32>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The provider component a `SECRET_MANAGER` value selects.
pub fn provider_for(secret_manager: &str) -> anyhow::Result<(&'static str, &'static str)> {
    Ok(match secret_manager {
        "db" => ("builtin:db", ""),
        "managed-aws" | "aws" => ("builtin:aws-secrets-manager", "aws-secrets-manager"),
        "managed-aws-ssm" | "aws-ssm" => ("builtin:aws-ssm", "aws-ssm"),
        other => bail!(
            "SECRET_MANAGER={other:?} is not a secrets manager this broker knows: use db, managed-aws, \
             managed-aws-ssm, aws or aws-ssm"
        ),
    })
}

/// The scope of the grant: `/{prefix}/` when a prefix is set, else everything.
fn scope(prefix: Option<&str>) -> anyhow::Result<String> {
    let Some(prefix) = prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    else {
        return Ok("/".into());
    };
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_-".contains(*c)))
    {
        // OpenMetadata does not clean the prefix and then writes broken ids.
        bail!(
            "secrets manager prefix {prefix:?} contains {c:?}: use letters, digits, `_`, `-` and `/` only"
        );
    }
    Ok(format!("/{prefix}/"))
}

/// Settings for an AWS grant from the `[aws]` table and the environment.
pub fn settings(file: Option<&AwsConfig>, om_prefix: Option<&str>) -> anyhow::Result<AwsSettings> {
    let empty = AwsConfig::default();
    let file = file.unwrap_or(&empty);
    let prefix = env("SECRET_MANAGER_PREFIX")
        .or_else(|| file.prefix.clone())
        .or_else(|| om_prefix.map(str::to_owned));
    let mut s = AwsSettings::new(&scope(prefix.as_deref())?);
    // OpenMetadata's YAML writes unset parameters as empty strings.
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    s.region = env("OM_SM_REGION").or_else(|| set(&file.region));
    s.access_key_id = env("OM_SM_ACCESS_KEY_ID").or_else(|| set(&file.access_key_id));
    s.secret_access_key = env("OM_SM_ACCESS_KEY")
        .or_else(|| set(&file.secret_access_key))
        .map(SecretValue::from_string);
    s.endpoint = env("SECRET_BROKER_AWS_ENDPOINT").or_else(|| set(&file.endpoint));
    if let Some(n) = file.max_attempts {
        s.max_attempts = n;
    }
    if let Some(ms) = file.attempt_timeout_ms {
        s.attempt_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = file.operation_timeout_ms {
        s.operation_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = file.writes_per_second {
        s.writes_per_second = n;
    }
    Ok(s)
}

/// OpenMetadata's `SECRET_MANAGER_TAGS`: `[k1:v1,k2:v2]`. Malformed entries are
/// dropped with a warning, as OpenMetadata does; the rest are added to every put.
pub fn default_tags(configured: Option<&str>) -> Vec<(String, String)> {
    match env("SECRET_MANAGER_TAGS").or_else(|| configured.map(str::to_owned)) {
        Some(raw) => parse_tags(&raw),
        None => Vec::new(),
    }
}

fn parse_tags(raw: &str) -> Vec<(String, String)> {
    let inner = raw.trim().trim_start_matches('[').trim_end_matches(']');
    let mut tags = Vec::new();
    for entry in inner.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                tags.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            _ => tracing::warn!(
                entry,
                "SECRET_MANAGER_TAGS: dropping a malformed entry (expected key:value)"
            ),
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_like_openmetadata() {
        let tags = parse_tags("[team:data, env:prod,broken,:novalue,k:]");
        assert_eq!(
            tags,
            vec![
                ("team".into(), "data".into()),
                ("env".into(), "prod".into())
            ]
        );
        assert!(parse_tags("[]").is_empty());
    }

    #[test]
    fn prefixes_are_validated() {
        assert_eq!(scope(None).ok().as_deref(), Some("/"));
        assert_eq!(scope(Some("/prod/")).ok().as_deref(), Some("/prod/"));
        let err = scope(Some("my prefix"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("contains ' '"), "{err}");
    }
}
