//! The route handlers: each takes its JSON request, calls the broker as the
//! authenticated caller, and answers JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secret_broker::broker::Caller;
use secret_broker::openmetadata::manager::{Entity, EntityKind};
use secret_broker::wipe::{Wiped, wipe_json};
use secret_broker_runtime::{PutOptions, SecretValue, WipingBuf};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::extractors::ApiJson;
use crate::{AppState, OPENAPI, OPENAPI_PATH};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EntityRequest {
    #[serde(default)]
    entity: EntityKind,
    #[serde(default)]
    service_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// A config with plaintext secrets: wiped when the request is dropped.
    config: Wiped,
    #[serde(default)]
    stored: Option<Value>,
}

impl EntityRequest {
    fn entity(&self) -> Result<Entity<'_>, ApiError> {
        self.entity
            .entity(self.service_type.as_deref())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "`serviceType` is required when `entity` is `connection` (for example \"database\")",
                )
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
pub(crate) struct IdRequest {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutRequest {
    id: String,
    value: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListRequest {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveRequest {
    reference: String,
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Runs a broker operation on a task of its own. The request deadline and a
/// client that hangs up drop the handler, which stops waiting; the operation
/// itself runs to its end (an entity write completes or is undone) and is
/// audited either way.
async fn detached<T, F>(
    state: &Arc<AppState>,
    op: impl FnOnce(Arc<AppState>) -> F,
) -> Result<T, ApiError>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(op(state.clone())).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the operation failed unexpectedly; the server keeps serving",
        )
    })
}

fn value_text(value: &SecretValue) -> Result<String, ApiError> {
    value.expose_str().map(str::to_owned).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-text",
            "the secret is not UTF-8 text; read it with the CLI (`secret get`), which prints bytes",
        )
    })
}

/// The body of a JSON answer that may carry secret values: serialized into
/// buffers that are wiped, sent as a body that is wiped when dropped, the
/// document wiped too. `None` if it could not be written.
pub(crate) fn wiped_json_body(doc: Value) -> Option<Body> {
    let mut doc = Wiped(doc);
    let mut out = WipingBuf::default();
    serde_json::to_writer(&mut out, &*doc).ok()?;
    wipe_json(&mut doc);
    // The bytes are owned by the buffer, which wipes itself when the body drops.
    Some(Body::from(axum::body::Bytes::from_owner(out.into_inner())))
}

/// A JSON answer that carries secret values ([`wiped_json_body`]).
fn secret_response(doc: Value) -> Response {
    match wiped_json_body(doc) {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the answer could not be written",
        )
        .into_response(),
    }
}

/// `{key: name, "value": ...}`, or 404 with `missing`.
fn answer_value(
    key: &str,
    name: String,
    value: Option<SecretValue>,
    missing: String,
) -> Result<Response, ApiError> {
    match value {
        Some(value) => {
            let text = value_text(&value)?;
            Ok(secret_response(json!({key: name, "value": text})))
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", missing)),
    }
}

pub(crate) async fn secret_get(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<IdRequest>,
) -> Result<Response, ApiError> {
    let id = req.id.clone();
    let value = detached(&s, |s| async move { s.broker.get(&caller, &id).await }).await??;
    let missing = format!("no secret at {}", req.id);
    answer_value("id", req.id, value, missing)
}

pub(crate) async fn secret_resolve(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Response, ApiError> {
    let reference = req.reference.clone();
    let value = detached(&s, |s| async move {
        s.broker.resolve(&caller, &reference).await
    })
    .await??;
    let missing = format!("{} refers to no secret", req.reference);
    answer_value("reference", req.reference, value, missing)
}

pub(crate) async fn secret_put(
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
    let key = id.clone();
    let outcome = detached(&s, |s| async move {
        s.broker.put(&caller, &key, &value, &options).await
    })
    .await??;
    Ok(Json(json!({"id": id, "outcome": outcome})))
}

pub(crate) async fn secret_delete(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<IdRequest>,
) -> ApiResult {
    let id = req.id.clone();
    let deleted = detached(&s, |s| async move { s.broker.delete(&caller, &id).await }).await??;
    Ok(Json(json!({"id": req.id, "deleted": deleted})))
}

pub(crate) async fn secret_list(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ListRequest>,
) -> ApiResult {
    let limit = req.limit.unwrap_or(100).clamp(1, 1000);
    let page = detached(&s, |s| async move {
        s.broker
            .list(&caller, &req.prefix, req.cursor.as_deref(), limit)
            .await
    })
    .await??;
    Ok(Json(json!({"ids": page.ids, "next": page.next_cursor})))
}

pub(crate) async fn entity_encrypt(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(mut req): ApiJson<EntityRequest>,
) -> ApiResult {
    let stored = detached(&s, |s| async move {
        let doc = req.config.take();
        let (entity, name) = (req.entity()?, req.name()?);
        Ok::<_, ApiError>(
            s.broker
                .encrypt(&caller, entity, name, doc, req.stored.as_ref())
                .await?,
        )
    })
    .await??;
    Ok(Json(json!({"config": stored})))
}

pub(crate) async fn entity_decrypt(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(mut req): ApiJson<EntityRequest>,
) -> Result<Response, ApiError> {
    let masked = !s.broker.permissions(caller.role).reveal;
    let config = detached(&s, |s| async move {
        let doc = req.config.take();
        let entity = req.entity()?;
        Ok::<_, ApiError>(s.broker.decrypt(&caller, entity, doc).await?)
    })
    .await??;
    Ok(secret_response(json!({"config": config, "masked": masked})))
}

pub(crate) async fn entity_delete(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<EntityRequest>,
) -> ApiResult {
    let deleted = detached(&s, |s| async move {
        let (entity, name) = (req.entity()?, req.name()?);
        Ok::<_, ApiError>(
            s.broker
                .delete_entity(&caller, entity, name, &req.config)
                .await?,
        )
    })
    .await??;
    Ok(Json(json!({"deleted": deleted})))
}

pub(crate) async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "provider": s.broker.provider_name()}))
}

/// `/health/ready`: 200 when this replica can serve (its database reachable,
/// its keyring loaded, not shutting down), else 503 naming what is not ready.
/// A check that does not answer within 2 s counts as not ready.
pub(crate) async fn ready(State(s): State<Arc<AppState>>) -> Response {
    let checked = tokio::time::timeout(std::time::Duration::from_secs(2), s.ready()).await;
    match checked {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not-ready", "reason": why})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not-ready", "reason": "the readiness checks did not answer within 2 s"})),
        )
            .into_response(),
    }
}

pub(crate) async fn metrics_text(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("no such route; the API is described at {OPENAPI_PATH}"),
    )
}
