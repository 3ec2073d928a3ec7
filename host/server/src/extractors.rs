//! Request extractors: JSON bodies whose rejections are the API's own errors, and
//! whose bytes are wiped once parsed (a body may carry a secret).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use zeroize::Zeroize;

use crate::errors::ApiError;
use crate::strict;
use serde_json::Value;

/// A JSON body whose rejections are JSON errors that name the field and never
/// echo a value or an unknown field's name: 400 for malformed JSON or a body that
/// does not fit, 413 for an oversized body, 415 without a JSON content type. The
/// body's bytes are zeroized once parsed.
pub struct ApiJson<T>(pub T);

fn json_content_type(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|ct| {
            ct.eq_ignore_ascii_case("application/json")
                || (ct.len() > 17
                    && ct[..12].eq_ignore_ascii_case("application/")
                    && ct.ends_with("+json"))
        })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(&req) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "the request body is over the server's size limit (--body-limit-kib)",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "the request body could not be read",
                )
            }
        })?;
        let parsed = serde_json::from_slice::<Value>(&bytes);
        // The buffer is this request's alone once read; wipe it.
        if let Ok(mut owned) = bytes.try_into_mut() {
            owned.as_mut().zeroize();
        }
        // Messages come from the error's kind and position, never its text.
        let body = parsed.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                format!(
                    "the request body is not valid JSON ({} at line {}, column {})",
                    match e.classify() {
                        serde_json::error::Category::Eof => "it ends too early",
                        _ => "a syntax error",
                    },
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let request = strict::from_value::<T>(&body);
        strict::wipe(body);
        request.map(ApiJson).map_err(|problem| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                format!("the request body does not fit this operation: {problem}"),
            )
        })
    }
}
