//! Request extractors: JSON bodies whose rejections are the API's own errors.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::errors::{ApiError, without_values};

/// `Json` whose rejections are JSON errors that name the field and never echo a
/// value: 400 for malformed JSON, 413 for an oversized body, 415 without a JSON
/// content type.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let status = match &rejection {
                    // axum says 422; a body that does not fit is a bad request.
                    JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
                    other => other.status(),
                };
                let (kind, message) = match &rejection {
                    JsonRejection::JsonDataError(e) => (
                        "invalid-request",
                        format!(
                            "the request body does not fit this operation: {}",
                            without_values(e.body_text().trim_start_matches(
                                "Failed to deserialize the JSON body into the target type: "
                            ))
                        ),
                    ),
                    JsonRejection::JsonSyntaxError(e) => (
                        "malformed-json",
                        format!(
                            "the request body is not valid JSON: {}",
                            without_values(&e.body_text())
                        ),
                    ),
                    JsonRejection::MissingJsonContentType(_) => (
                        "content-type",
                        "send the body as JSON with `Content-Type: application/json`".into(),
                    ),
                    _ if status == StatusCode::PAYLOAD_TOO_LARGE => (
                        "too-large",
                        "the request body is over the server's size limit (--body-limit-kib)"
                            .into(),
                    ),
                    other => ("invalid-request", other.body_text()),
                };
                Err(ApiError::new(status, kind, message))
            }
        }
    }
}
