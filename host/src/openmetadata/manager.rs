//! The secrets manager API for entity configs: encrypt replaces every secret field
//! of a service connection config by a `secret:` reference after storing its value
//! in the provider; decrypt resolves the references; delete removes an entity's
//! secrets. Behaves like OpenMetadata's secrets manager and fixes its bugs: a user
//! written `secret:` reference is kept as it is, an empty value deletes the secret
//! and nulls the field, the string `"null"` is never stored, and a config is
//! encrypted whole or not at all.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::ids::IdBuilder;
use super::schema::{SchemaError, SchemaSet, SecretField, Step};
use crate::provider::{ProviderError, ProviderHost, PutOptions};
use crate::secret::SecretValue;

/// The schema of the OpenMetadata server connection in ingestion pipelines.
const SERVER_CONNECTION: &str = "entity/services/connections/metadata/openMetadataConnection.json";

/// The prefix of a stored reference.
pub const REFERENCE: &str = "secret:";

/// Why an encrypt, decrypt or delete failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The config does not fit its schema, or the type is unknown.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The config is not a JSON object with a string `type`.
    #[error(
        "the connection config must be a JSON object with a string `type` (for example \"Mysql\")"
    )]
    NotAConfig,
    /// A reference to a secret the provider does not have.
    #[error("`{field}` refers to {id}, which does not exist in provider `{provider}`")]
    Dangling {
        /// The field path.
        field: String,
        /// The referenced id.
        id: String,
        /// The provider.
        provider: String,
    },
    /// The provider failed; everything this call wrote was undone.
    #[error("storing `{field}` failed, nothing was changed: {source}")]
    Provider {
        /// The field path.
        field: String,
        /// The provider's error.
        source: ProviderError,
    },
}

/// Secrets of entity configs, kept in one provider.
pub struct SecretsManager {
    provider: Arc<ProviderHost>,
    schemas: Arc<SchemaSet>,
    ids: IdBuilder,
}

/// A secret field's value as found in a config.
enum Found {
    Reference,
    Empty,
    Plain(String),
}

fn value_at<'v>(config: &'v mut Value, location: &[Step]) -> Option<&'v mut Value> {
    location.iter().try_fold(config, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

fn value_ref<'v>(config: &'v Value, location: &[Step]) -> Option<&'v Value> {
    location.iter().try_fold(config, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

impl SecretsManager {
    /// A manager on `provider`, reading schemas from `schema_dir`.
    pub fn new(
        provider: Arc<ProviderHost>,
        schema_dir: &Path,
        ids: IdBuilder,
    ) -> Result<Self, ManagerError> {
        Ok(SecretsManager {
            provider,
            schemas: Arc::new(SchemaSet::load(schema_dir)?),
            ids,
        })
    }

    fn fields(
        &self,
        service: &str,
        config: &Value,
    ) -> Result<(std::path::PathBuf, Vec<SecretField>), ManagerError> {
        let kind = config
            .get("type")
            .and_then(Value::as_str)
            .ok_or(ManagerError::NotAConfig)?;
        let file = self.schemas.connection_schema(service, kind)?;
        let fields = self.schemas.secret_fields(&file, config)?;
        Ok((file, fields))
    }

    /// Stores every secret field of a `service` connection config of entity `name`
    /// and returns the config with `secret:` references in their place. On any
    /// failure, every write this call made is undone and the error returned.
    pub async fn encrypt_connection(
        &self,
        service: &str,
        name: &str,
        config: Value,
    ) -> Result<Value, ManagerError> {
        let (_, fields) = self.fields(service, &config)?;
        self.encrypt_fields(service, Some(name), &fields, config)
            .await
    }

    /// The ingestion pipelines' OpenMetadata server connection, stored under the
    /// entity type `serverconnection` with no entity name, as OpenMetadata does.
    pub async fn encrypt_server_connection(&self, config: Value) -> Result<Value, ManagerError> {
        let fields = self
            .schemas
            .secret_fields(Path::new(SERVER_CONNECTION), &config)?;
        self.encrypt_fields("serverconnection", None, &fields, config)
            .await
    }

    /// Resolves the references of a stored server connection.
    pub async fn decrypt_server_connection(&self, config: Value) -> Result<Value, ManagerError> {
        let fields = self
            .schemas
            .secret_fields(Path::new(SERVER_CONNECTION), &config)?;
        self.decrypt_fields(&fields, config).await
    }

    async fn encrypt_fields(
        &self,
        entity_type: &str,
        name: Option<&str>,
        fields: &[SecretField],
        mut config: Value,
    ) -> Result<Value, ManagerError> {
        // What each id held before, to put back if a later field fails.
        let mut undo: Vec<(String, Option<SecretValue>)> = Vec::new();
        for field in fields {
            let id = self.ids.id(entity_type, name, &field.field_path);
            let Some(slot) = value_at(&mut config, &field.location) else {
                continue;
            };
            let found = match slot.as_str() {
                Some(s) if s.starts_with(REFERENCE) => Found::Reference,
                Some("") | Some("null") => Found::Empty,
                Some(s) => Found::Plain(s.to_owned()),
                None => continue,
            };
            let result = match found {
                Found::Reference => continue,
                Found::Empty => self.delete_one(&id, &mut undo).await.map(|()| Value::Null),
                Found::Plain(text) => {
                    let value = SecretValue::from_string(text);
                    self.put_one(&id, &value, &mut undo)
                        .await
                        .map(|()| Value::String(format!("{REFERENCE}{id}")))
                }
            };
            match result {
                Ok(stored) => *slot = stored,
                Err(source) => {
                    self.rollback(undo).await;
                    return Err(ManagerError::Provider {
                        field: field.field_path.join("/"),
                        source,
                    });
                }
            }
        }
        Ok(config)
    }

    async fn put_one(
        &self,
        id: &str,
        value: &SecretValue,
        undo: &mut Vec<(String, Option<SecretValue>)>,
    ) -> Result<(), ProviderError> {
        let before = self.provider.get(id).await?;
        self.provider.put(id, value, &PutOptions::default()).await?;
        undo.push((id.to_owned(), before));
        Ok(())
    }

    async fn delete_one(
        &self,
        id: &str,
        undo: &mut Vec<(String, Option<SecretValue>)>,
    ) -> Result<(), ProviderError> {
        let before = self.provider.get(id).await?;
        self.provider.delete(id).await?;
        undo.push((id.to_owned(), before));
        Ok(())
    }

    /// Puts back what this call changed, newest first.
    async fn rollback(&self, undo: Vec<(String, Option<SecretValue>)>) {
        for (id, before) in undo.into_iter().rev() {
            let restored = match &before {
                Some(value) => self
                    .provider
                    .put(&id, value, &PutOptions::default())
                    .await
                    .map(drop),
                None => self.provider.delete(&id).await.map(drop),
            };
            if let Err(e) = restored {
                tracing::error!(%id, error = %e, "could not undo a write of a failed encrypt");
            }
        }
    }

    /// Replaces every `secret:` reference among the secret fields by its value.
    pub async fn decrypt_connection(
        &self,
        service: &str,
        config: Value,
    ) -> Result<Value, ManagerError> {
        let (_, fields) = self.fields(service, &config)?;
        self.decrypt_fields(&fields, config).await
    }

    async fn decrypt_fields(
        &self,
        fields: &[SecretField],
        mut config: Value,
    ) -> Result<Value, ManagerError> {
        for field in fields {
            let Some(slot) = value_at(&mut config, &field.location) else {
                continue;
            };
            let Some(id) = slot
                .as_str()
                .and_then(|s| s.strip_prefix(REFERENCE))
                .map(str::to_owned)
            else {
                continue;
            };
            let value = self
                .resolve_id(&id)
                .await
                .map_err(|source| ManagerError::Provider {
                    field: field.field_path.join("/"),
                    source,
                })?;
            let Some(value) = value else {
                return Err(ManagerError::Dangling {
                    field: field.field_path.join("/"),
                    id,
                    provider: self.provider.name().to_owned(),
                });
            };
            *slot = Value::String(String::from_utf8_lossy(value.expose()).into_owned());
        }
        Ok(config)
    }

    /// The value behind a `secret:/...` reference (or a bare id).
    pub async fn resolve(&self, reference: &str) -> Result<Option<SecretValue>, ProviderError> {
        self.resolve_id(reference.strip_prefix(REFERENCE).unwrap_or(reference))
            .await
    }

    async fn resolve_id(&self, id: &str) -> Result<Option<SecretValue>, ProviderError> {
        self.provider.get(id).await
    }

    /// Deletes every secret the stored `config` refers to under this entity's ids
    /// (references a user wrote to other secrets are left alone). Returns how
    /// many were deleted.
    pub async fn delete_connection(
        &self,
        service: &str,
        name: &str,
        config: &Value,
    ) -> Result<usize, ManagerError> {
        let (_, fields) = self.fields(service, config)?;
        let mut deleted = 0;
        for field in &fields {
            let id = self.ids.id(service, Some(name), &field.field_path);
            let refers = value_ref(config, &field.location)
                .and_then(Value::as_str)
                .is_some_and(|s| s.strip_prefix(REFERENCE) == Some(id.as_str()));
            if refers
                && self
                    .provider
                    .delete(&id)
                    .await
                    .map_err(|source| ManagerError::Provider {
                        field: field.field_path.join("/"),
                        source,
                    })?
            {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
