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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
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
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the bearer token is not valid",
        )
        .into_response(),
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
    let method = req.method().as_str().to_owned();
    let role = RoleSlot::default();
    req.extensions_mut().insert(role.clone());
    let limit = s.options.request_timeout;
    let response = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request did not finish within {limit:?}; the provider is slow or down, \
                 try again later"
            ),
        )
        .into_response(),
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
