//! The `[aws]` table (OpenMetadata's `parameters`) and OpenMetadata's `OM_SM_*`
//! variables, which configure the `aws-secrets-manager` and `aws-ssm` grants;
//! the variables win over the file (applied by the settings' environment overlay).
//! With `SECRET_MANAGER=managed-aws` (or `managed-aws-ssm`) and no config file the
//! broker runs the matching provider from the environment alone.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use secret_broker::SecretValue;
use secret_broker_aws::AwsSettings;

/// The `[aws]` table, in OpenMetadata's `parameters` spelling plus our additions.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsConfig {
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    /// Not in OpenMetadata: for tests and VPC endpoints.
    endpoint: Option<String>,
    /// OpenMetadata's `prefix`: ids start with `/{prefix}/`; the grant's scope.
    pub prefix: Option<String>,
    max_attempts: Option<u32>,
    attempt_timeout_ms: Option<u64>,
    operation_timeout_ms: Option<u64>,
    writes_per_second: Option<u32>,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The secret access key is wiped, not just freed.
impl Drop for AwsConfig {
    fn drop(&mut self) {
        if let Some(key) = &mut self.secret_access_key {
            zeroize::Zeroize::zeroize(key);
        }
    }
}

impl AwsConfig {
    /// OpenMetadata's `OM_SM_*` variables (and our endpoint) over the file's values.
    pub fn overlay_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        for (name, field) in [
            ("OM_SM_REGION", &mut self.region),
            ("OM_SM_ACCESS_KEY_ID", &mut self.access_key_id),
            ("OM_SM_ACCESS_KEY", &mut self.secret_access_key),
            ("SECRET_BROKER_AWS_ENDPOINT", &mut self.endpoint),
        ] {
            if let Some(value) = get(name) {
                if let Some(old) = field {
                    zeroize::Zeroize::zeroize(old);
                }
                *field = Some(value);
            }
        }
    }
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
pub fn settings(file: &AwsConfig, om_prefix: Option<&str>) -> anyhow::Result<AwsSettings> {
    let prefix = file.prefix.clone().or_else(|| om_prefix.map(str::to_owned));
    let mut s = AwsSettings::new(&scope(prefix.as_deref())?);
    // OpenMetadata's YAML writes unset parameters as empty strings.
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    s.region = set(&file.region);
    s.access_key_id = set(&file.access_key_id);
    s.secret_access_key = set(&file.secret_access_key).map(SecretValue::from_string);
    s.endpoint = set(&file.endpoint);
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
    configured.map(parse_tags).unwrap_or_default()
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
