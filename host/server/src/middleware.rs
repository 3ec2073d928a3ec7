//! Middleware: bearer-token authentication, the request deadline with metrics,
//! and the answer to a handler that panicked.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::errors::ApiError;
use crate::metrics::RequestLabels;

/// Bearer token to caller; 401 without a valid one.
pub(crate) async fn authenticate(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let Some(presented) = presented else {
        unauthenticated(&s, operation(&req)).await;
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send `Authorization: Bearer <token>` (create one with `secret-broker token add`)",
        )
        .into_response();
    };
    match s.authenticate(presented) {
        Some(caller) => {
            if let Some(slot) = req.extensions().get::<RoleSlot>() {
                let _ = slot.0.set(caller.role);
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => {
            unauthenticated(&s, operation(&req)).await;
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the bearer token is not valid",
            )
            .into_response()
        }
    }
}

/// The token of an `Authorization` header: the scheme `Bearer` in any case
/// (RFC 9110: auth schemes are case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The operation a request tries, by its route (never anything else from the
/// request).
fn operation(req: &Request) -> &'static str {
    match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/v1/secrets/get") => "secret.get",
        Some("/v1/secrets/put") => "secret.put",
        Some("/v1/secrets/delete") => "secret.delete",
        Some("/v1/secrets/list") => "secret.list",
        Some("/v1/secrets/resolve") => "secret.resolve",
        Some("/v1/entities/encrypt") => "entity.encrypt",
        Some("/v1/entities/decrypt") => "entity.decrypt",
        Some("/v1/entities/delete") => "entity.delete",
        Some("/metrics") => "metrics",
        _ => "unknown",
    }
}

/// The audit entry of a request refused with 401.
async fn unauthenticated(s: &AppState, operation: &str) {
    if let Err(e) = s.broker.audit_unauthenticated(operation).await {
        tracing::error!(error = %e, "could not audit a request refused with 401");
    }
}

/// Where authentication leaves the caller's role for the metrics, so a token is
/// checked once per request.
#[derive(Clone, Default)]
struct RoleSlot(Arc<std::sync::OnceLock<secret_broker::policy::Role>>);

/// Deadline and metrics around every request.
pub(crate) async fn observe(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only methods HTTP defines become labels: a client cannot add series.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH" | "CONNECT"
        | "TRACE") => m,
        _ => "other",
    }
    .to_owned();
    let aws = is_aws(&req);
    let role = RoleSlot::default();
    req.extensions_mut().insert(role.clone());
    let limit = s.options.request_timeout;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > s.options.body_limit as u64) {
        // Refused before reading a byte of it: a client that declares more than
        // the limit is not waited for.
        too_large(aws)
    } else {
        match tokio::time::timeout(limit, next.run(req)).await {
            Ok(response) => response,
            Err(_) => timed_out(aws, limit),
        }
    };
    s.metrics.observe(
        RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
            role: role.0.get().map_or("anonymous", |r| r.name()).to_owned(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A handler that panicked: 500, without the panic's message (the panic hook
/// logs it, scrubbed).
pub(crate) fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has the details",
    )
    .into_response()
}

/// Whether a request is for the AWS APIs (its errors then take their shape).
fn is_aws(req: &Request) -> bool {
    #[cfg(feature = "aws-api")]
    return crate::aws::is_aws(req);
    #[cfg(not(feature = "aws-api"))]
    {
        let _ = req;
        false
    }
}

/// A body declared over the limit, answered in the shape of the request's API.
fn too_large(aws: bool) -> Response {
    #[cfg(feature = "aws-api")]
    if aws {
        return crate::aws::too_large();
    }
    let _ = aws;
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        "the request body is over the server's size limit (--body-limit-kib)",
    )
    .into_response()
}

/// A request past its deadline, answered in the shape of the request's API.
fn timed_out(aws: bool, limit: std::time::Duration) -> Response {
    #[cfg(feature = "aws-api")]
    if aws {
        return crate::aws::timed_out(limit);
    }
    let _ = aws;
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        format!(
            "the request did not finish within {limit:?}; the provider is slow or down, try \
             again later"
        ),
    )
    .into_response()
}
