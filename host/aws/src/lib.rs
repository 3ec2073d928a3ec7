//! The AWS capabilities, `aws-secrets-manager` and `aws-ssm` (each behind its
//! feature), and what they share: settings (OpenMetadata's keys and env
//! variables plus an endpoint), the SDK configuration (credentials, region,
//! retries, timeouts), the write rate limit, the prefix scope, and the mapping of
//! SDK errors to the WIT error variant.

#![deny(missing_docs)]
// Without a client feature only the shared settings remain.
#![cfg_attr(
    not(any(feature = "secrets-manager", feature = "ssm", feature = "kms")),
    allow(dead_code)
)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use secret_broker_runtime::SecretValue;
use secret_broker_runtime::bindings::WitError as Error;

#[cfg(feature = "kms")]
mod kms;
#[cfg(feature = "secrets-manager")]
mod secrets_manager;
#[cfg(feature = "ssm")]
mod ssm;
#[cfg(feature = "kms")]
pub use kms::KmsKey;
#[cfg(feature = "secrets-manager")]
pub use secrets_manager::{
    SecretsManagerCtx, SecretsManagerView, add_to_linker as add_secrets_manager_to_linker,
};
#[cfg(feature = "ssm")]
pub use ssm::{SsmCtx, SsmView, add_to_linker as add_ssm_to_linker};

/// Settings of an AWS grant.
#[derive(Clone, Default)]
pub struct AwsSettings {
    /// Region; else the standard chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Static access key id; else the standard credential chain.
    pub access_key_id: Option<String>,
    /// Static secret access key, with `access_key_id`.
    pub secret_access_key: Option<SecretValue>,
    /// Endpoint URL (tests, VPC endpoints); `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
    /// Every name the provider touches must start with this.
    pub prefix: String,
    /// Attempts per request, retries of throttling and 5xx included (default 3).
    pub max_attempts: u32,
    /// Time for one attempt (default 5 s).
    pub attempt_timeout: Duration,
    /// Time for a request with all its retries (default 15 s).
    pub operation_timeout: Duration,
    /// Writes per second across the grant (OpenMetadata's default, 10).
    pub writes_per_second: u32,
    /// First retry delay; later ones back off exponentially with jitter (default 1 s).
    pub initial_backoff: Duration,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AwsSettings {
    /// Defaults: no region or credentials (the standard chain), 3 attempts, 5 s per
    /// attempt, 15 s per operation, 10 writes per second.
    pub fn new(prefix: &str) -> Self {
        AwsSettings {
            prefix: prefix.to_owned(),
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
            writes_per_second: 10,
            initial_backoff: Duration::from_secs(1),
            ..AwsSettings::default()
        }
    }
}

/// Why an AWS grant could not be set up. Names the missing key.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    /// No region anywhere.
    #[error(
        "no AWS region: set `region` in the provider's aws settings, OM_SM_REGION, or AWS_REGION"
    )]
    NoRegion,
    /// Half of a static key pair.
    #[error(
        "`{0}` is set without `{1}`: give both, or neither to use the standard credential chain"
    )]
    HalfCredentials(&'static str, &'static str),
    /// The chain found nothing.
    #[error(
        "no AWS credentials: set `accessKeyId` and `secretAccessKey` (OM_SM_ACCESS_KEY_ID, \
         OM_SM_ACCESS_KEY) or configure the standard AWS credential chain ({0})"
    )]
    NoCredentials(String),
    /// A setting out of range.
    #[error("aws setting `{0}`: {1}")]
    Invalid(&'static str, String),
}

/// The part of an AWS grant both capabilities share: the SDK config, the scope
/// and the write limiter.
pub struct AwsGrantBase {
    pub(crate) sdk: aws_config::SdkConfig,
    pub(crate) prefix: String,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl AwsGrantBase {
    /// Builds the SDK configuration. Fails before any request when the region or
    /// the credentials are missing.
    pub async fn new(settings: &AwsSettings) -> Result<Self, AwsConfigError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(settings.max_attempts.max(1))
                    .with_initial_backoff(settings.initial_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.attempt_timeout)
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(region) = settings.region.as_ref().filter(|r| !r.trim().is_empty()) {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => {
                let secret = secret.expose_str().ok_or_else(|| {
                    AwsConfigError::Invalid("secretAccessKey", "not valid UTF-8".into())
                })?;
                let creds = aws_credential_types::Credentials::new(
                    id,
                    secret,
                    None,
                    None,
                    "secret-broker-config",
                );
                loader = loader.credentials_provider(creds);
            }
            (Some(_), None) => {
                return Err(AwsConfigError::HalfCredentials(
                    "accessKeyId",
                    "secretAccessKey",
                ));
            }
            (None, Some(_)) => {
                return Err(AwsConfigError::HalfCredentials(
                    "secretAccessKey",
                    "accessKeyId",
                ));
            }
            (None, None) => {}
        }
        let sdk = loader.load().await;
        if sdk.region().is_none_or(|r| r.as_ref().trim().is_empty()) {
            return Err(AwsConfigError::NoRegion);
        }
        let Some(provider) = sdk.credentials_provider() else {
            return Err(AwsConfigError::NoCredentials(
                "no provider configured".into(),
            ));
        };
        use aws_credential_types::provider::ProvideCredentials;
        if let Err(e) = provider.provide_credentials().await {
            return Err(AwsConfigError::NoCredentials(e.to_string()));
        }
        let per_second = NonZeroU32::new(settings.writes_per_second).ok_or_else(|| {
            AwsConfigError::Invalid("writes_per_second", "must be at least 1".into())
        })?;
        let limiter = Arc::new(RateLimiter::direct(Quota::per_second(per_second)));
        Ok(AwsGrantBase {
            sdk,
            prefix: settings.prefix.clone(),
            limiter,
        })
    }

    /// Refuses a name outside the grant's prefix, before any request.
    pub(crate) fn in_scope(&self, name: &str) -> Result<(), Error> {
        if name.starts_with(&self.prefix) {
            Ok(())
        } else {
            Err(Error::AccessDenied(format!(
                "`{name}` is outside this grant's prefix `{}`: no request was sent",
                self.prefix
            )))
        }
    }

    /// Waits for the write rate limit.
    pub(crate) async fn write_permit(&self) {
        self.limiter.until_ready().await;
    }
}

/// Maps an SDK error to the WIT variant: throttling, 5xx and transport failures
/// are `unavailable` (retryable, after the SDK's own bounded retries), the rest
/// keep AWS's code and message. `what` names the operation and the name.
pub(crate) fn map_sdk_error<E>(what: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => {
            Error::Unavailable(format!("{what}: AWS did not answer in time"))
        }
        SdkError::DispatchFailure(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_io() {
                "connection failed"
            } else {
                "could not be sent"
            };
            Error::Unavailable(format!("{what}: the request {kind}"))
        }
        SdkError::ResponseError(_) => Error::Unavailable(format!(
            "{what}: AWS sent a response that could not be read"
        )),
        SdkError::ConstructionFailure(_) => {
            Error::Backend(format!("{what}: the request could not be built"))
        }
        _ => {
            let code = err.code().unwrap_or("unknown");
            let message = err.message().unwrap_or("");
            let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            if status >= 500 {
                return Error::Unavailable(format!(
                    "{what}: AWS answered HTTP {status} after retries ({code})"
                ));
            }
            let throttled = matches!(
                code,
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "ThrottledException"
                    | "RequestLimitExceeded"
            );
            if throttled
                || code.starts_with("InternalServiceError")
                || code == "InternalFailure"
                || code == "ServiceUnavailable"
            {
                Error::Unavailable(format!("{what}: {code} after retries: {message}"))
            } else if code.starts_with("AccessDenied")
                || code == "UnrecognizedClientException"
                || code == "InvalidSignatureException"
            {
                Error::AccessDenied(format!("{what}: {code}: {message}"))
            } else if [
                "marked for deletion",
                "marked deleted",
                "scheduled for deletion",
            ]
            .iter()
            .any(|m| message.contains(m))
            {
                Error::Conflict(format!(
                    "{what}: the name is scheduled for deletion in AWS Secrets Manager; restore it or wait until \
                     the deletion completes ({code})"
                ))
            } else {
                Error::Backend(format!("{what}: {code}: {message}"))
            }
        }
    }
}

/// The error code of a service error, for the cases a capability handles itself.
pub(crate) fn code_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(_) => err.code(),
        _ => None,
    }
}
