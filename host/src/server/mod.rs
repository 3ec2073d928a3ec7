//! `secret-broker serve`: the secrets manager API over HTTP for the metadata
//! server, JSON in and out. Every `/v1` route needs a bearer token mapped to a role;
//! the broker applies the policy and writes the audit log. Bodies are size-limited,
//! every request has a deadline (a slow or broken provider answers 503 with a clear
//! body, never a hang), and errors never carry a secret value.

pub mod metrics;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::broker::{Broker, BrokerError, Caller};
use crate::openmetadata::manager::{Entity, ManagerError};
use crate::provider::{ProviderError, PutOptions};
use crate::secret::SecretValue;

use self::metrics::{Metrics, RequestLabels};
use self::tokens::Tokens;

/// The OpenAPI document, served at [`OPENAPI_PATH`].
pub const OPENAPI: &str = include_str!("openapi.json");
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request body accepted, bytes (413 above).
    pub body_limit: usize,
    /// Deadline of one request (503 after it).
    pub request_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: 256 << 10,
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// What the handlers share.
pub struct AppState {
    broker: Broker,
    tokens: std::sync::RwLock<Tokens>,
    metrics: Metrics,
    options: ServerOptions,
}

impl AppState {
    /// The caller a presented token stands for.
    fn authenticate(&self, presented: &str) -> Option<Caller> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .authenticate(presented)
    }

    /// Replaces the tokens (a reloaded tokens file).
    pub fn set_tokens(&self, tokens: Tokens) {
        *self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
    }

    /// State for [`router`].
    pub fn new(broker: Broker, tokens: Tokens, options: ServerOptions) -> Arc<AppState> {
        Arc::new(AppState {
            broker,
            tokens: std::sync::RwLock::new(tokens),
            metrics: Metrics::default(),
            options,
        })
    }
}

/// An error answer: `{"error": message, "kind": kind}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
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
            BrokerError::Manager(ManagerError::Dangling { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            BrokerError::Manager(ManagerError::Provider { source, .. })
            | BrokerError::Provider(source) => provider_status(source),
            BrokerError::Manager(_) => StatusCode::BAD_REQUEST,
            BrokerError::Audit(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.kind(), e.to_string())
    }
}

/// serde's messages quote the offending value (`invalid type: string "..."`);
/// a value sent in the wrong place may be a secret, so it is withheld.
fn without_values(message: &str) -> String {
    for marker in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(start) = message.find(marker) {
            let from = start + marker.len();
            if let Some(end) = message[from..].find(", expected") {
                return format!(
                    "{}(value withheld){}",
                    &message[..from],
                    &message[from + end..]
                );
            }
        }
    }
    message.to_owned()
}

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

/// Which entity a document is, as requests name it.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum EntityName {
    #[default]
    Connection,
    Bot,
    Pipeline,
    Workflow,
    ServerConnection,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntityRequest {
    #[serde(default)]
    entity: EntityName,
    #[serde(default)]
    service_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
    config: Value,
    #[serde(default)]
    stored: Option<Value>,
}

impl EntityRequest {
    fn entity(&self) -> Result<Entity<'_>, ApiError> {
        Ok(match self.entity {
            EntityName::Connection => Entity::Connection {
                service: self.service_type.as_deref().ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "`serviceType` is required when `entity` is `connection` (for example \"database\")",
                    )
                })?,
            },
            EntityName::Bot => Entity::Bot,
            EntityName::Pipeline => Entity::Pipeline,
            EntityName::Workflow => Entity::Workflow,
            EntityName::ServerConnection => Entity::ServerConnection,
        })
    }

    fn name(&self) -> Result<&str, ApiError> {
        self.name.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "`name` (the entity's name, used in its secret ids) is required",
            )
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdRequest {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    id: String,
    value: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRequest {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    reference: String,
}

type ApiResult = Result<Json<Value>, ApiError>;

fn value_text(value: &SecretValue) -> Result<String, ApiError> {
    value.expose_str().map(str::to_owned).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-text",
            "the secret is not UTF-8 text; read it with the CLI (`secret get`), which prints bytes",
        )
    })
}

/// `{key: name, "value": ...}`, or 404 with `missing`.
fn answer_value(key: &str, name: String, value: Option<SecretValue>, missing: String) -> ApiResult {
    match value {
        Some(value) => Ok(Json(json!({key: name, "value": value_text(&value)?}))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", missing)),
    }
}

async fn secret_get(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<IdRequest>,
) -> ApiResult {
    let value = s.broker.get(&caller, &req.id).await?;
    let missing = format!("no secret at {}", req.id);
    answer_value("id", req.id, value, missing)
}

async fn secret_resolve(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> ApiResult {
    let value = s.broker.resolve(&caller, &req.reference).await?;
    let missing = format!("{} refers to no secret", req.reference);
    answer_value("reference", req.reference, value, missing)
}

async fn secret_put(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<PutRequest>,
) -> ApiResult {
    let PutRequest {
        id,
        value,
        description,
    } = req;
    let value = SecretValue::from_string(value);
    let options = PutOptions {
        description,
        ..PutOptions::default()
    };
    let outcome = s.broker.put(&caller, &id, &value, &options).await?;
    Ok(Json(json!({"id": id, "outcome": outcome})))
}

async fn secret_delete(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<IdRequest>,
) -> ApiResult {
    let deleted = s.broker.delete(&caller, &req.id).await?;
    Ok(Json(json!({"id": req.id, "deleted": deleted})))
}

async fn secret_list(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ListRequest>,
) -> ApiResult {
    let limit = req.limit.unwrap_or(100).clamp(1, 1000);
    let page = s
        .broker
        .list(&caller, &req.prefix, req.cursor.as_deref(), limit)
        .await?;
    Ok(Json(json!({"ids": page.ids, "next": page.next_cursor})))
}

async fn entity_encrypt(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<EntityRequest>,
) -> ApiResult {
    let entity = req.entity()?;
    let name = req.name()?;
    let stored = s
        .broker
        .encrypt(
            &caller,
            entity,
            name,
            req.config.clone(),
            req.stored.as_ref(),
        )
        .await?;
    Ok(Json(json!({"config": stored})))
}

async fn entity_decrypt(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<EntityRequest>,
) -> ApiResult {
    let entity = req.entity()?;
    let masked = !s.broker.permissions(caller.role).reveal;
    let config = s
        .broker
        .decrypt(&caller, entity, req.config.clone())
        .await?;
    Ok(Json(json!({"config": config, "masked": masked})))
}

async fn entity_delete(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<EntityRequest>,
) -> ApiResult {
    let entity = req.entity()?;
    let name = req.name()?;
    let deleted = s
        .broker
        .delete_entity(&caller, entity, name, &req.config)
        .await?;
    Ok(Json(json!({"deleted": deleted})))
}

async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "provider": s.broker.provider_name()}))
}

async fn metrics_text(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Bearer token to caller; 401 without a valid one.
async fn authenticate(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
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

/// Deadline and metrics around every request.
/// Where authentication leaves the caller's role for the metrics, so a token is
/// checked once per request.
#[derive(Clone, Default)]
struct RoleSlot(Arc<std::sync::OnceLock<crate::policy::Role>>);

async fn observe(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
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
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has the details",
    )
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("no such route; the API is described at {OPENAPI_PATH}"),
    )
}

/// The HTTP API.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/secrets/get", post(secret_get))
        .route("/v1/secrets/put", post(secret_put))
        .route("/v1/secrets/delete", post(secret_delete))
        .route("/v1/secrets/list", post(secret_list))
        .route("/v1/secrets/resolve", post(secret_resolve))
        .route("/v1/entities/encrypt", post(entity_encrypt))
        .route("/v1/entities/decrypt", post(entity_decrypt))
        .route("/v1/entities/delete", post(entity_delete))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .route(OPENAPI_PATH, get(openapi))
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(DefaultBodyLimit::max(state.options.body_limit))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn serde_messages_lose_their_values() {
        let m = "value: invalid type: string \"hunter2\", expected u32 at line 1 column 9";
        let clean = without_values(m);
        assert!(!clean.contains("hunter2"), "{clean}");
        assert!(clean.contains("value: invalid type: (value withheld), expected u32"));
        assert_eq!(
            without_values("missing field `id` at line 1"),
            "missing field `id` at line 1"
        );
    }
}
