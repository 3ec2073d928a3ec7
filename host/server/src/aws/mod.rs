//! The AWS Secrets Manager and SSM Parameter Store APIs, so a client built on an
//! AWS SDK (OpenMetadata's Java server and Python ingestion) uses the broker with
//! no code change: `POST /` with `X-Amz-Target: secretsmanager.<Op>` or
//! `AmazonSSM.<Op>`, JSON 1.1 in and out, signed with Signature Version 4 by an
//! access key from `token add --aws`.
//!
//! Every operation goes through the broker as the key's caller, so the role
//! policy and the audit log apply exactly as on `/v1`. Values live in the
//! provider; what only AWS has (descriptions, tags, version ids, dates, SSM
//! types and versions) lives in the deployment's record store, beside it.
//! Errors have AWS's shapes and codes (`{"__type", "message"}`) and never carry a
//! value.

mod meta;
mod ops;
mod request;
mod secrets_manager;
mod ssm;

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secret_broker::broker::{BrokerError, Caller};
use secret_broker::wipe::{Wiped, wipe_json};
use secret_broker_runtime::{ProviderError, SecretValue};
use serde_json::Value;
use zeroize::Zeroize;

pub use self::meta::AwsMetadata;
use crate::AppState;
use crate::sigv4::{self, SigError};

/// The account id in the ARNs the broker answers with.
pub const ACCOUNT: &str = "000000000000";

/// The content type of JSON 1.1.
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Which API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    SecretsManager,
    Ssm,
}

impl Api {
    /// The signing name of the service.
    fn service(self) -> &'static str {
        match self {
            Api::SecretsManager => "secretsmanager",
            Api::Ssm => "ssm",
        }
    }

    /// The prefix of its operations in `X-Amz-Target`.
    fn target_prefix(self) -> &'static str {
        match self {
            Api::SecretsManager => "secretsmanager",
            Api::Ssm => "AmazonSSM",
        }
    }

    /// The code of a bad parameter.
    fn invalid(self) -> &'static str {
        match self {
            Api::SecretsManager => "InvalidParameterException",
            Api::Ssm => "ValidationException",
        }
    }

    /// The code of a failure on the broker's side (SDKs retry it).
    fn internal(self) -> &'static str {
        match self {
            Api::SecretsManager => "InternalServiceError",
            Api::Ssm => "InternalServerError",
        }
    }
}

/// An error answer in AWS's JSON shape.
#[derive(Debug)]
pub(crate) struct AwsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AwsError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn internal(api: Api, message: impl Into<String>) -> AwsError {
        AwsError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: api.internal(),
            message: message.into(),
        }
    }

    /// A bad parameter, named.
    pub(crate) fn invalid(api: Api, message: impl Into<String>) -> AwsError {
        AwsError::new(api.invalid(), message)
    }

    /// A broker error as `api` says it.
    pub(crate) fn broker(api: Api, e: BrokerError) -> AwsError {
        let message = e.to_string();
        match &e {
            BrokerError::Denied { .. } => AwsError::new("AccessDeniedException", message),
            BrokerError::Exists { .. } => AwsError::new(
                match api {
                    Api::SecretsManager => "ResourceExistsException",
                    Api::Ssm => "ParameterAlreadyExists",
                },
                message,
            ),
            BrokerError::MaskWithoutValue { .. } => AwsError::invalid(api, message),
            BrokerError::Provider(p) => match p {
                ProviderError::InvalidId(_) | ProviderError::ValueTooLarge { .. } => {
                    AwsError::invalid(api, message)
                }
                ProviderError::Conflict(_) => AwsError::new(
                    match api {
                        Api::SecretsManager => "InvalidRequestException",
                        Api::Ssm => "TooManyUpdates",
                    },
                    message,
                ),
                ProviderError::AccessDenied(_) => AwsError::new("AccessDeniedException", message),
                // A backend that is down or throttling: SDKs back off and retry this one.
                ProviderError::Unavailable(_) | ProviderError::Timeout { .. } => {
                    AwsError::new("ThrottlingException", format!("{message}; retry later"))
                }
                _ => AwsError::internal(api, message),
            },
            _ => AwsError::internal(api, message),
        }
    }

    /// The answer.
    pub(crate) fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.code, "message": self.message});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        headers.insert("x-amzn-requestid", request_id());
        response
    }
}

/// Whether a request is for the AWS APIs (its errors then take their shape).
pub(crate) fn is_aws(req: &Request) -> bool {
    req.headers().contains_key("x-amz-target")
}

/// A body over the server's limit, refused before it is read.
pub(crate) fn too_large() -> Response {
    AwsError::new(
        "SerializationException",
        "the request body is over the server's size limit (--body-limit-kib); nothing was \
         written",
    )
    .into_response()
}

/// A request that did not finish in time (SDKs retry it).
pub(crate) fn timed_out(limit: std::time::Duration) -> Response {
    AwsError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "ServiceUnavailable",
        message: format!(
            "the request did not finish within {limit:?}; the provider is slow or down, try \
             again later"
        ),
    }
    .into_response()
}

/// A request id, as AWS sends in `x-amzn-RequestId`.
fn request_id() -> HeaderValue {
    HeaderValue::from_str(&new_uuid()).unwrap_or(HeaderValue::from_static("-"))
}

/// A random (version 4) UUID.
pub(crate) fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Seconds since the epoch, as JSON 1.1 writes timestamps.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What an operation knows about its request.
pub(crate) struct Ctx {
    pub(crate) caller: Caller,
    pub(crate) region: String,
    pub(crate) api: Api,
}

fn parse_target(target: &str) -> Option<(Api, &str)> {
    let (prefix, op) = target.split_once('.')?;
    let api = [Api::SecretsManager, Api::Ssm]
        .into_iter()
        .find(|api| api.target_prefix() == prefix)?;
    (!op.is_empty() && op.bytes().all(|b| b.is_ascii_alphanumeric())).then_some((api, op))
}

/// `POST /`: one AWS API request.
pub(crate) async fn entry(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some((api, op)) = parse_target(target) else {
        return AwsError::new(
            "UnknownOperationException",
            "X-Amz-Target must be `secretsmanager.<Operation>` or `AmazonSSM.<Operation>`",
        )
        .into_response();
    };
    let op = op.to_owned();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, s.options.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return AwsError::new(
                "SerializationException",
                "the request body could not be read, or is over the server's size limit \
                 (--body-limit-kib)",
            )
            .into_response();
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let verified = s.aws_keys().verify(
        api.service(),
        &sigv4::Request {
            method: parts.method.as_str(),
            path_and_query,
            headers: &parts.headers,
            body: &bytes,
        },
        SystemTime::now(),
    );
    let verified = match verified {
        Ok(v) => {
            s.used(
                crate::CredentialKind::AwsKey,
                &v.caller.name,
                SystemTime::now(),
            );
            v
        }
        Err(e) => {
            wipe_bytes(bytes);
            return refused(&s, ops::audited_as(api, &op), e).await;
        }
    };
    let parsed = serde_json::from_slice::<Value>(&bytes).map(Wiped);
    wipe_bytes(bytes);
    let body = match parsed {
        Ok(body) if body.is_object() => body,
        _ => {
            return AwsError::new(
                "SerializationException",
                "the request body is not a JSON object (send JSON 1.1, as the AWS SDKs do)",
            )
            .into_response();
        }
    };
    let ctx = Ctx {
        caller: verified.caller,
        region: verified.region,
        api,
    };
    // On a task of its own: a client that hangs up does not stop a write halfway;
    // it runs to its end and is audited.
    let task = tokio::spawn(async move {
        let result = match ops::find(api, &op) {
            Ok(operation) => (operation.run)(&s, &ctx, &body).await,
            Err(e) => Err(e),
        };
        drop(body);
        result
    });
    match task.await {
        Ok(Ok(answer)) => answer_json(answer),
        Ok(Err(e)) => e.into_response(),
        Err(_) => AwsError::internal(api, "the operation failed unexpectedly").into_response(),
    }
}

/// A refused signature: audited as the operation it tried, answered with AWS's
/// code.
async fn refused(s: &AppState, audited_as: &str, e: SigError) -> Response {
    if let Err(audit) = s.broker.audit_unauthenticated(audited_as).await {
        tracing::error!(error = %audit, "could not audit a request whose signature was refused");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    AwsError {
        status,
        code: e.code(),
        message: e.to_string(),
    }
    .into_response()
}

fn wipe_bytes(bytes: Bytes) {
    if let Ok(mut owned) = bytes.try_into_mut() {
        owned.as_mut().zeroize();
    }
}

/// A JSON 1.1 answer, written into buffers that are wiped (it may hold a value).
fn answer_json(doc: Value) -> Response {
    let Some(body) = crate::handlers::wiped_json_body(doc) else {
        return AwsError::internal(Api::SecretsManager, "the answer could not be written")
            .into_response();
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    headers.insert("x-amzn-requestid", request_id());
    response
}

/// Tags as AWS writes them.
pub(crate) fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// A value sent as text (`SecretString`, an SSM `Value`) or as base64 bytes
/// (`SecretBinary`), each named for errors, at most `limit` bytes; `None` when
/// neither was sent.
pub(crate) fn secret_value(
    api: Api,
    text: (&str, Option<request::Text>),
    binary: Option<(&str, Option<request::Text>)>,
    limit: usize,
) -> Result<Option<SecretValue>, AwsError> {
    use base64::Engine as _;
    let (text_field, text) = text;
    let binary = binary.and_then(|(field, b)| b.map(|b| (field, b)));
    let value = match (text, binary) {
        (Some(_), Some((field, _))) => {
            return Err(AwsError::invalid(
                api,
                format!("send either {text_field} or {field}, not both"),
            ));
        }
        (Some(t), None) => SecretValue::new(t.0.as_bytes().to_vec()),
        (None, Some((field, b))) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.0.as_bytes())
                .map_err(|_| AwsError::invalid(api, format!("{field} is not base64")))?;
            SecretValue::new(bytes)
        }
        (None, None) => return Ok(None),
    };
    if value.len() > limit {
        return Err(AwsError::invalid(
            api,
            format!("{text_field} is over {limit} bytes; nothing was written"),
        ));
    }
    Ok(Some(value))
}

/// Paging tokens: opaque to clients, base64 of the provider's cursor and which
/// of several prefixes it belongs to.
pub(crate) fn encode_token(index: usize, cursor: Option<&str>) -> String {
    use base64::Engine as _;
    let doc = serde_json::json!({"i": index, "c": cursor});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// A token from [`encode_token`].
pub(crate) fn decode_token(api: Api, token: &str) -> Result<(usize, Option<String>), AwsError> {
    use base64::Engine as _;
    let bad = || {
        AwsError::new(
            match api {
                Api::SecretsManager => "InvalidNextTokenException",
                Api::Ssm => "InvalidNextToken",
            },
            "NextToken is not one this server gave out",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let index = doc
        .get("i")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(bad)?;
    let cursor = match doc.get("c") {
        Some(Value::String(c)) => Some(c.clone()),
        Some(Value::Null) | None => None,
        Some(_) => return Err(bad()),
    };
    Ok((index, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_service_and_an_operation() {
        assert_eq!(
            parse_target("secretsmanager.GetSecretValue"),
            Some((Api::SecretsManager, "GetSecretValue"))
        );
        assert_eq!(
            parse_target("AmazonSSM.GetParameter"),
            Some((Api::Ssm, "GetParameter"))
        );
        for bad in [
            "",
            "secretsmanager.",
            "secretsmanager",
            "AmazonS3.GetObject",
            "secretsmanager.Get/../x",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn paging_tokens_round_trip_and_foreign_ones_are_refused() {
        let t = encode_token(2, Some("/a/b"));
        assert_eq!(
            decode_token(Api::Ssm, &t).unwrap(),
            (2, Some("/a/b".to_owned()))
        );
        let e = decode_token(Api::SecretsManager, "not a token").unwrap_err();
        assert_eq!(e.code, "InvalidNextTokenException");
    }

    #[test]
    fn uuids_have_the_version_4_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]), "{u}");
        assert_ne!(u, new_uuid());
    }
}
