//! The route handlers: each takes its JSON request, calls the broker as the
//! authenticated caller, and answers JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secret_broker::broker::Caller;
use secret_broker::openmetadata::manager::{Entity, EntityKind};
use secret_broker_runtime::{PutOptions, SecretValue};
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
    config: Value,
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

pub(crate) async fn secret_get(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<IdRequest>,
) -> ApiResult {
    let value = s.broker.get(&caller, &req.id).await?;
    let missing = format!("no secret at {}", req.id);
    answer_value("id", req.id, value, missing)
}

pub(crate) async fn secret_resolve(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> ApiResult {
    let value = s.broker.resolve(&caller, &req.reference).await?;
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
    let outcome = s.broker.put(&caller, &id, &value, &options).await?;
    Ok(Json(json!({"id": id, "outcome": outcome})))
}

pub(crate) async fn secret_delete(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<IdRequest>,
) -> ApiResult {
    let deleted = s.broker.delete(&caller, &req.id).await?;
    Ok(Json(json!({"id": req.id, "deleted": deleted})))
}

pub(crate) async fn secret_list(
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

pub(crate) async fn entity_encrypt(
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

pub(crate) async fn entity_decrypt(
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

pub(crate) async fn entity_delete(
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

pub(crate) async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "provider": s.broker.provider_name()}))
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
