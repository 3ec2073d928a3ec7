//! Typed requests: each operation's members as a serde struct, named as AWS
//! names them, parsed from the request body by [`parse`]. A member of the wrong
//! type is refused naming the member (its path in the body) and what it
//! should be, never quoting a value; an array is never read as an object. Members an operation does not use are ignored, as AWS's own
//! endpoints ignore members newer SDKs send; a value is held as [`Text`],
//! wiped when dropped.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{Api, AwsError};

/// `body` as the request `T`, or `api`'s invalid-parameter error naming the
/// member that does not fit and how ([`crate::strict`]: an array is never read
/// as an object, and no part of the request appears in the message).
pub(crate) fn parse<T: DeserializeOwned>(api: Api, body: &Value) -> Result<T, AwsError> {
    crate::strict::from_value(body).map_err(|problem| {
        AwsError::invalid(
            api,
            format!("{problem} (see the operation's API reference)"),
        )
    })
}

/// A string that may be a secret: wiped when dropped.
pub(crate) struct Text(pub(crate) Zeroizing<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Text(Zeroizing::new(s)))
    }
}

/// A tag, `{"Key", "Value"}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) value: Option<String>,
}

/// A filter of ListSecrets, BatchGetSecretValue and DescribeParameters.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Filter {
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// `ParameterFilters` only: `Equals`, `BeginsWith`, `Recursive`, ...
    #[serde(default)]
    pub(crate) option: Option<String>,
    #[serde(default)]
    pub(crate) values: Option<Vec<String>>,
}

/// Secrets Manager's requests.
pub(crate) mod sm {
    use super::*;

    /// CreateSecret.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Create {
        pub(crate) name: Option<String>,
        pub(crate) description: Option<String>,
        pub(crate) secret_string: Option<Text>,
        pub(crate) secret_binary: Option<Text>,
        pub(crate) tags: Option<Vec<Tag>>,
        pub(crate) client_request_token: Option<String>,
        pub(crate) add_replica_regions: Option<Value>,
    }

    /// UpdateSecret and PutSecretValue.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Write {
        pub(crate) secret_id: Option<String>,
        pub(crate) description: Option<String>,
        pub(crate) secret_string: Option<Text>,
        pub(crate) secret_binary: Option<Text>,
        pub(crate) client_request_token: Option<String>,
        pub(crate) version_stages: Option<Vec<String>>,
    }

    /// GetSecretValue.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Get {
        pub(crate) secret_id: Option<String>,
        pub(crate) version_id: Option<String>,
        pub(crate) version_stage: Option<String>,
    }

    /// DescribeSecret.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Describe {
        pub(crate) secret_id: Option<String>,
    }

    /// BatchGetSecretValue and ListSecrets.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct List {
        pub(crate) secret_id_list: Option<Vec<String>>,
        pub(crate) filters: Option<Vec<Filter>>,
        pub(crate) max_results: Option<i64>,
        pub(crate) next_token: Option<String>,
    }

    /// DeleteSecret.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Delete {
        pub(crate) secret_id: Option<String>,
        pub(crate) force_delete_without_recovery: Option<bool>,
        pub(crate) recovery_window_in_days: Option<i64>,
    }

    /// TagResource and UntagResource.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Tagging {
        pub(crate) secret_id: Option<String>,
        pub(crate) tags: Option<Vec<Tag>>,
        pub(crate) tag_keys: Option<Vec<String>>,
    }
}

/// SSM Parameter Store's requests.
pub(crate) mod ssm {
    use super::*;

    /// PutParameter.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Put {
        pub(crate) name: Option<String>,
        pub(crate) value: Option<Text>,
        #[serde(rename = "Type")]
        pub(crate) kind: Option<String>,
        pub(crate) tier: Option<String>,
        pub(crate) description: Option<String>,
        pub(crate) overwrite: Option<bool>,
        pub(crate) tags: Option<Vec<Tag>>,
    }

    /// GetParameter, GetParameters, GetParametersByPath and DeleteParameter.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Read {
        pub(crate) name: Option<String>,
        pub(crate) names: Option<Vec<String>>,
        pub(crate) path: Option<String>,
        pub(crate) recursive: Option<bool>,
        pub(crate) with_decryption: Option<bool>,
        pub(crate) parameter_filters: Option<Value>,
        pub(crate) max_results: Option<i64>,
        pub(crate) next_token: Option<String>,
    }

    /// DescribeParameters.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Describe {
        pub(crate) filters: Option<Vec<Filter>>,
        pub(crate) parameter_filters: Option<Vec<Filter>>,
        pub(crate) max_results: Option<i64>,
        pub(crate) next_token: Option<String>,
    }

    /// AddTagsToResource and ListTagsForResource.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(crate) struct Tagging {
        pub(crate) resource_type: Option<String>,
        pub(crate) resource_id: Option<String>,
        pub(crate) tags: Option<Vec<Tag>>,
    }
}

/// A member that must be present and not empty.
pub(crate) fn required<'a>(
    api: Api,
    name: &str,
    value: Option<&'a str>,
) -> Result<&'a str, AwsError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AwsError::invalid(api, format!("{name} is required")))
}

/// An integer member within `range`.
pub(crate) fn within(
    api: Api,
    name: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, AwsError> {
    match value {
        Some(n) if !range.contains(&n) => Err(AwsError::invalid(
            api,
            format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
        other => Ok(other),
    }
}

/// Tags, checked as AWS checks them (at most 50; keys 1 to 128 characters,
/// values at most 256; a later key replaces an earlier one).
pub(crate) fn tags(
    api: Api,
    tags: Option<Vec<Tag>>,
) -> Result<Option<Vec<(String, String)>>, AwsError> {
    let Some(items) = tags else {
        return Ok(None);
    };
    if items.len() > 50 {
        return Err(AwsError::invalid(api, "Tags: at most 50 tags"));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for Tag { key, value } in items {
        let value = value.unwrap_or_default();
        if key.is_empty() || key.len() > 128 || value.len() > 256 {
            return Err(AwsError::invalid(
                api,
                "Tags: a key is 1 to 128 characters, a value at most 256",
            ));
        }
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-request-5b7e";

    #[test]
    fn a_member_of_the_wrong_type_is_named_never_quoted() {
        let body = serde_json::json!({
            "SecretId": "/a/b",
            "SecretString": {"nested": CANARY},
        });
        let e = parse::<sm::Write>(Api::SecretsManager, &body)
            .err()
            .map(|e| (e.code, e.message))
            .unwrap_or_default();
        assert_eq!(e.0, "InvalidParameterException");
        assert!(e.1.starts_with("SecretString:"), "{}", e.1);
        assert!(!e.1.contains(CANARY), "{}", e.1);
        let body = serde_json::json!({"Tags": [{"Key": 7, "Value": CANARY}]});
        let e = parse::<ssm::Tagging>(Api::Ssm, &body)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.starts_with("Tags[0].Key:"), "{e}");
        assert!(!e.contains(CANARY), "{e}");
    }

    #[test]
    fn members_an_operation_does_not_use_are_ignored() {
        let body = serde_json::json!({"SecretId": "/a/b", "KmsKeyId": "k", "Other": [1]});
        let req = parse::<sm::Get>(Api::SecretsManager, &body).ok();
        assert_eq!(req.and_then(|r| r.secret_id).as_deref(), Some("/a/b"));
    }
}
