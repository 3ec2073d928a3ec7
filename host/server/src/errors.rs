//! Error answers: one JSON shape (`{"error", "kind"}`), the status each broker
//! and provider error maps to, and serde messages stripped of the values they
//! would quote.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secret_broker::broker::BrokerError;
use secret_broker::openmetadata::manager::ManagerError;
use secret_broker_runtime::ProviderError;
use serde_json::json;

/// An error answer: `{"error": message, "kind": kind}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.message, "kind": self.kind})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"secret-broker\""),
            );
        }
        response
    }
}

fn provider_status(e: &ProviderError) -> StatusCode {
    match e {
        ProviderError::InvalidId(_) | ProviderError::ValueTooLarge { .. } => {
            StatusCode::BAD_REQUEST
        }
        ProviderError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        let status = match &e {
            BrokerError::Denied { .. } => StatusCode::FORBIDDEN,
            BrokerError::NoSchemas => StatusCode::NOT_IMPLEMENTED,
            BrokerError::Manager(ManagerError::Dangling { .. } | ManagerError::NotText { .. }) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            BrokerError::Manager(ManagerError::Collision { .. }) => StatusCode::CONFLICT,
            BrokerError::Manager(ManagerError::Owners(_)) => StatusCode::SERVICE_UNAVAILABLE,
            BrokerError::Manager(ManagerError::Provider { source, .. })
            | BrokerError::Provider(source) => provider_status(source),
            BrokerError::Manager(_) | BrokerError::MaskWithoutValue { .. } => {
                StatusCode::BAD_REQUEST
            }
            BrokerError::Audit(_) => StatusCode::SERVICE_UNAVAILABLE,
            BrokerError::Exists { .. } => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.kind(), e.to_string())
    }
}
