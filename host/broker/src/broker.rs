//! The broker: the secrets manager API as callers use it, with the host's policy
//! and audit around every operation. The HTTP server and the CLI both go through
//! it, and so does a metadata server that embeds this crate. Providers never see
//! who asks: the role table and the audit log live here.

use std::sync::Arc;

use serde_json::Value;

use crate::audit::{AuditError, AuditLog, Durability, Entry, Outcome};
use crate::openmetadata::manager::{Entity, ManagerError, REFERENCE, SecretsManager};
use crate::policy::{MASK, Permissions, Policy, Role};
use secret_broker_runtime::SecretValue;
use secret_broker_runtime::provider::{
    ListPage, ProviderError, ProviderHost, PutOptions, PutOutcome,
};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// A token's name, or the OS user for the CLI.
    pub name: String,
    /// The caller's role.
    pub role: Role,
}

/// Why an operation failed. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The policy does not allow it.
    #[error("role `{role}` may not {action} (operation {operation})")]
    Denied {
        /// The caller's role.
        role: Role,
        /// What was refused, in words.
        action: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// Entity operations need the JSON Schemas.
    #[error(
        "entity operations need OpenMetadata's JSON Schemas: start with --schemas DIR \
         (or SECRET_BROKER_SCHEMAS)"
    )]
    NoSchemas,
    /// The entity layer refused or failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The provider refused or failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The mask was sent as the value of an id that holds none: there is no
    /// stored value for it to keep.
    #[error(
        "the value is the mask `*********`, which keeps a stored value, but {id} holds none: \
         send the real value"
    )]
    MaskWithoutValue {
        /// The id.
        id: String,
    },
    /// The audit entry could not be written; no value was returned.
    #[error("the audit log could not be written, so the result is withheld: {0}")]
    Audit(#[from] AuditError),
    /// A create found the id holding a value already; nothing was written.
    #[error("{id} holds a value already; nothing was written (update it instead)")]
    Exists {
        /// The id.
        id: String,
    },
}

impl BrokerError {
    /// A short kind for audit entries and metrics, never the message.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::Denied { .. } => "denied",
            BrokerError::NoSchemas => "no-schemas",
            BrokerError::Manager(ManagerError::Provider { source, .. })
            | BrokerError::Provider(source) => provider_kind(source),
            BrokerError::Manager(ManagerError::Dangling { .. }) => "dangling-reference",
            BrokerError::Manager(ManagerError::NotText { .. }) => "not-text",
            BrokerError::Manager(ManagerError::Collision { .. }) => "id-collision",
            BrokerError::Manager(ManagerError::Owners(_)) => "unavailable",
            BrokerError::Manager(_) => "invalid-config",
            BrokerError::MaskWithoutValue { .. } => "mask-without-value",
            BrokerError::Audit(_) => "audit",
            BrokerError::Exists { .. } => "exists",
        }
    }
}

fn provider_kind(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::InvalidId(_) => "invalid-id",
        ProviderError::ValueTooLarge { .. } => "value-too-large",
        ProviderError::AccessDenied(_) => "access-denied",
        ProviderError::Unavailable(_) => "unavailable",
        ProviderError::Conflict(_) => "conflict",
        ProviderError::Backend(_) => "backend",
        ProviderError::Timeout { .. } => "timeout",
        ProviderError::MemoryLimit { .. } => "memory-limit",
        ProviderError::DataLimit { .. } => "data-limit",
        ProviderError::Trapped { .. } => "trapped",
        ProviderError::Forbidden { .. } => "forbidden",
        _ => "provider",
    }
}

fn outcome_of(e: &BrokerError) -> Outcome {
    match e {
        BrokerError::Denied { .. } => Outcome::Denied,
        BrokerError::NoSchemas
        | BrokerError::MaskWithoutValue { .. }
        | BrokerError::Exists { .. }
        | BrokerError::Manager(
            ManagerError::Schema(_)
            | ManagerError::NotAConfig
            | ManagerError::NoServiceType
            | ManagerError::MaskWithoutStored { .. }
            | ManagerError::Collision { .. },
        )
        | BrokerError::Provider(
            ProviderError::InvalidId(_) | ProviderError::ValueTooLarge { .. },
        ) => Outcome::Invalid,
        _ => Outcome::Error,
    }
}

/// The secrets manager API with policy and audit.
pub struct Broker {
    provider: Arc<ProviderHost>,
    manager: Option<SecretsManager>,
    policy: Policy,
    audit: Option<Arc<AuditLog>>,
    /// How audit entries name the provider; its instance name by default.
    label: Option<String>,
    /// Creates of the same id queue on one of these (by a hash of the id), so
    /// two creates in this process cannot both find the id free.
    create_locks: Arc<[tokio::sync::Mutex<()>]>,
}

/// How many locks creates are spread over.
const CREATE_LOCKS: usize = 64;

/// What [`Broker::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Written {
    /// The id was new.
    Created,
    /// The id held another value.
    Updated,
    /// The id held this value, or the mask was sent back: nothing changed.
    Unchanged,
}

impl Broker {
    /// A broker on `provider`; `manager` (with the schemas) enables the entity
    /// operations; `audit` records every operation.
    pub fn new(
        provider: Arc<ProviderHost>,
        manager: Option<SecretsManager>,
        policy: Policy,
        audit: Option<Arc<AuditLog>>,
    ) -> Broker {
        Broker {
            provider,
            manager,
            policy,
            audit,
            label: None,
            create_locks: (0..CREATE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Names the provider `label` in audit entries (for example the
    /// `secretsManager` name a migration reads from or writes to).
    pub fn labelled(mut self, label: &str) -> Broker {
        self.label = Some(label.to_owned());
        self
    }

    /// The provider's instance name.
    pub fn provider_name(&self) -> &str {
        self.provider.name()
    }

    /// What `role` may do.
    pub fn permissions(&self, role: Role) -> Permissions {
        self.policy.of(role)
    }

    fn require(
        &self,
        caller: &Caller,
        operation: &'static str,
        reveal: bool,
    ) -> Result<(), BrokerError> {
        let p = self.policy.of(caller.role);
        let allowed = if reveal { p.reveal } else { p.write };
        if allowed {
            Ok(())
        } else {
            Err(BrokerError::Denied {
                role: caller.role,
                action: if reveal {
                    "see secret values"
                } else {
                    "create, change or delete secrets"
                },
                operation,
            })
        }
    }

    fn manager(&self) -> Result<&SecretsManager, BrokerError> {
        self.manager.as_ref().ok_or(BrokerError::NoSchemas)
    }

    /// How audit entries name the provider.
    fn audit_label(&self) -> &str {
        self.label.as_deref().unwrap_or(self.provider.name())
    }

    /// An entry of `operation` by `caller`, stamped now.
    fn entry<'a>(&'a self, caller: &'a Caller, operation: &'a str, outcome: Outcome) -> Entry<'a> {
        Entry::new(
            &caller.name,
            Some(caller.role),
            operation,
            self.audit_label(),
            outcome,
        )
    }

    /// Before a write reaches the provider: an `attempt` entry, so that a write
    /// whose log cannot be written never happens, and one that happens is in the
    /// log even if the process dies before its outcome entry.
    async fn intend(
        &self,
        caller: &Caller,
        operation: &str,
        ids: &[&str],
    ) -> Result<(), BrokerError> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let entry = Entry {
            ids: log.hmac_ids(ids),
            ..self.entry(caller, operation, Outcome::Attempt)
        };
        Ok(log.write(&entry, Durability::Written).await?)
    }

    /// A request that presented no valid token (answered 401): audited with the
    /// operation it tried, under the actor `-`.
    pub async fn audit_unauthenticated(&self, operation: &str) -> Result<(), BrokerError> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let entry = Entry {
            error: Some("unauthenticated"),
            ..Entry::new(
                "-",
                None,
                operation,
                self.audit_label(),
                Outcome::Unauthenticated,
            )
        };
        Ok(log.write(&entry, Durability::Written).await?)
    }

    /// Writes the audit entry of an operation (synced to disk first for writes:
    /// `durability`), and turns a failure to write it into the operation's
    /// failure.
    #[allow(clippy::too_many_arguments)]
    async fn audit<T>(
        &self,
        caller: &Caller,
        operation: &str,
        ids: &[&str],
        value: Option<&SecretValue>,
        durability: Durability,
        result: Result<T, BrokerError>,
        outcome_ok: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, BrokerError> {
        let Some(log) = &self.audit else {
            return result;
        };
        let (outcome, error) = match &result {
            Ok(t) => (outcome_ok(t), None),
            Err(e) => (outcome_of(e), Some(e.kind())),
        };
        let entry = Entry {
            ids: log.hmac_ids(ids),
            value: value.map(|v| log.salt().hmac(v.expose())),
            error,
            ..self.entry(caller, operation, outcome)
        };
        log.write(&entry, durability).await?;
        result
    }

    /// A put of the mask keeps the stored value, so there must be one.
    async fn masked_put(&self, id: &str) -> Result<Written, BrokerError> {
        match self.provider.get(id).await? {
            Some(_) => Ok(Written::Unchanged),
            None => Err(BrokerError::MaskWithoutValue { id: id.to_owned() }),
        }
    }

    /// The value of `id`; needs `reveal`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Option<SecretValue>, BrokerError> {
        let result = match self.require(caller, "secret.get", true) {
            Ok(()) => self.provider.get(id).await.map_err(BrokerError::from),
            Err(e) => Err(e),
        };
        self.audit(
            caller,
            "secret.get",
            &[id],
            None,
            Durability::Written,
            result,
            |v| {
                if v.is_some() {
                    Outcome::Ok
                } else {
                    Outcome::NotFound
                }
            },
        )
        .await
    }

    /// The value behind a `secret:/...` reference (or a bare id); needs `reveal`.
    pub async fn resolve(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> Result<Option<SecretValue>, BrokerError> {
        let id = reference.strip_prefix(REFERENCE).unwrap_or(reference);
        self.get(caller, id).await
    }

    /// Stores `value` at `id`; needs `write`. The mask sent back keeps the stored
    /// value (unmask on update).
    pub async fn put(
        &self,
        caller: &Caller,
        id: &str,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<Written, BrokerError> {
        let masked = value.expose() == MASK.as_bytes();
        let result = match self.require(caller, "secret.put", false) {
            Err(e) => Err(e),
            Ok(()) if masked => self.masked_put(id).await,
            Ok(()) => {
                self.intend(caller, "secret.put", &[id]).await?;
                match self.provider.put(id, value, options).await {
                    Ok(PutOutcome::Created) => Ok(Written::Created),
                    Ok(PutOutcome::Updated) => Ok(Written::Updated),
                    Ok(PutOutcome::Unchanged) => Ok(Written::Unchanged),
                    Err(e) => Err(e.into()),
                }
            }
        };
        let written = (!masked).then_some(value);
        self.audit(
            caller,
            "secret.put",
            &[id],
            written,
            Durability::Synced,
            result,
            |_| Outcome::Ok,
        )
        .await
    }

    /// Stores `value` at `id` only if `id` holds no value; needs `write`.
    /// [`BrokerError::Exists`] otherwise, with nothing written. Creates in this
    /// process are serialized per id; a writer in another process that creates
    /// the same id at the same instant is not seen (the provider has no
    /// create-only write).
    pub async fn create(
        &self,
        caller: &Caller,
        id: &str,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<Written, BrokerError> {
        let result = match self.require(caller, "secret.create", false) {
            Err(e) => Err(e),
            Ok(()) if value.expose() == MASK.as_bytes() => {
                Err(BrokerError::MaskWithoutValue { id: id.to_owned() })
            }
            Ok(()) => {
                let slot = {
                    use std::hash::{Hash as _, Hasher as _};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    id.hash(&mut h);
                    (h.finish() % self.create_locks.len() as u64) as usize
                };
                let _queued = self.create_locks[slot].lock().await;
                match self.provider.get(id).await {
                    Err(e) => Err(e.into()),
                    Ok(Some(_)) => Err(BrokerError::Exists { id: id.to_owned() }),
                    Ok(None) => {
                        self.intend(caller, "secret.create", &[id]).await?;
                        match self.provider.put(id, value, options).await {
                            Ok(_) => Ok(Written::Created),
                            Err(e) => Err(e.into()),
                        }
                    }
                }
            }
        };
        self.audit(
            caller,
            "secret.create",
            &[id],
            Some(value),
            Durability::Synced,
            result,
            |_| Outcome::Ok,
        )
        .await
    }

    /// Whether `id` holds a value, without returning it; needs `reveal` or
    /// `write` (as listing does).
    pub async fn exists(&self, caller: &Caller, id: &str) -> Result<bool, BrokerError> {
        let p = self.policy.of(caller.role);
        let result = if p.reveal || p.write {
            self.provider
                .get(id)
                .await
                .map(|v| v.is_some())
                .map_err(BrokerError::from)
        } else {
            Err(BrokerError::Denied {
                role: caller.role,
                action: "look up secrets",
                operation: "secret.describe",
            })
        };
        self.audit(
            caller,
            "secret.describe",
            &[id],
            None,
            Durability::Written,
            result,
            |found| {
                if *found {
                    Outcome::Ok
                } else {
                    Outcome::NotFound
                }
            },
        )
        .await
    }

    /// Deletes `id`; needs `write`. True when it existed.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<bool, BrokerError> {
        let result = match self.require(caller, "secret.delete", false) {
            Ok(()) => {
                self.intend(caller, "secret.delete", &[id]).await?;
                self.provider.delete(id).await.map_err(BrokerError::from)
            }
            Err(e) => Err(e),
        };
        self.audit(
            caller,
            "secret.delete",
            &[id],
            None,
            Durability::Synced,
            result,
            |existed| {
                if *existed {
                    Outcome::Ok
                } else {
                    Outcome::NotFound
                }
            },
        )
        .await
    }

    /// One page of the ids under `prefix`; needs `reveal` or `write`.
    pub async fn list(
        &self,
        caller: &Caller,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, BrokerError> {
        let p = self.policy.of(caller.role);
        let result = if p.reveal || p.write {
            self.provider
                .list(prefix, cursor, limit)
                .await
                .map_err(BrokerError::from)
        } else {
            Err(BrokerError::Denied {
                role: caller.role,
                action: "list secret ids",
                operation: "secret.list",
            })
        };
        self.audit(
            caller,
            "secret.list",
            &[prefix],
            None,
            Durability::Written,
            result,
            |_| Outcome::Ok,
        )
        .await
    }

    /// Stores an entity document's secrets and returns its stored form; needs
    /// `write`. Secret fields that hold the mask keep the value of the same field
    /// in `stored` (the stored form the metadata server kept).
    pub async fn encrypt(
        &self,
        caller: &Caller,
        entity: Entity<'_>,
        name: &str,
        doc: Value,
        stored: Option<&Value>,
    ) -> Result<Value, BrokerError> {
        let mut ids = Vec::new();
        let result = async {
            self.require(caller, "entity.encrypt", false)?;
            let manager = self.manager()?;
            let doc = manager.unmask(entity, doc, stored)?;
            ids = manager.ids(entity, name, &doc)?;
            let named: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.intend(caller, "entity.encrypt", &named).await?;
            Ok(manager.encrypt(entity, name, doc).await?)
        }
        .await;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.audit(
            caller,
            "entity.encrypt",
            &ids,
            None,
            Durability::Synced,
            result,
            |_| Outcome::Ok,
        )
        .await
    }

    /// An entity document as `caller` may see it: resolved for roles with
    /// `reveal`, masked for everyone else (without reading any secret).
    pub async fn decrypt(
        &self,
        caller: &Caller,
        entity: Entity<'_>,
        doc: Value,
    ) -> Result<Value, BrokerError> {
        let reveal = self.policy.of(caller.role).reveal;
        let operation = if reveal {
            "entity.decrypt"
        } else {
            "entity.view-masked"
        };
        let mut ids = Vec::new();
        let result = async {
            let manager = self.manager()?;
            ids = manager.references(entity, &doc)?;
            if reveal {
                Ok(manager.decrypt(entity, doc).await?)
            } else {
                Ok(manager.mask(entity, doc)?)
            }
        }
        .await;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.audit(
            caller,
            operation,
            &ids,
            None,
            Durability::Written,
            result,
            |_| Outcome::Ok,
        )
        .await
    }

    /// Deletes an entity's secrets; needs `write`. Returns how many were deleted.
    pub async fn delete_entity(
        &self,
        caller: &Caller,
        entity: Entity<'_>,
        name: &str,
        doc: &Value,
    ) -> Result<usize, BrokerError> {
        let mut ids = Vec::new();
        let result = async {
            self.require(caller, "entity.delete", false)?;
            let manager = self.manager()?;
            ids = manager.ids(entity, name, doc)?;
            let named: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.intend(caller, "entity.delete", &named).await?;
            Ok(manager.delete(entity, name, doc).await?)
        }
        .await;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.audit(
            caller,
            "entity.delete",
            &ids,
            None,
            Durability::Synced,
            result,
            |_| Outcome::Ok,
        )
        .await
    }
}
