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
            BrokerError::Manager(ManagerError::ForeignStored { .. }) => "foreign-stored",
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
            | ManagerError::ForeignStored { .. }
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

    /// Whether `caller` may run `op`; the refusal names what was refused.
    fn require(&self, caller: &Caller, op: &Op) -> Result<(), BrokerError> {
        let p = self.policy.of(caller.role);
        let (allowed, action) = match op.need {
            Need::Reveal => (p.reveal, "see secret values"),
            Need::Write => (p.write, "create, change or delete secrets"),
            Need::RevealOrWrite(action) => (p.reveal || p.write, action),
            Need::Nothing => (true, ""),
        };
        if allowed {
            Ok(())
        } else {
            Err(BrokerError::Denied {
                role: caller.role,
                action,
                operation: op.name,
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

    /// An event of the server itself (`server.start`, `server.stop`), under
    /// the actor `-`, synced before it returns: every entry queued before it is
    /// on the disk (or in the database) once it has.
    pub async fn audit_event(&self, operation: &str) -> Result<(), BrokerError> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let entry = Entry::new("-", None, operation, self.audit_label(), Outcome::Ok);
        Ok(log.write(&entry, Durability::Synced).await?)
    }

    /// The envelope every operation runs in: the role table first, then `body`
    /// (which logs an `attempt` entry through [`Call::intend`] before a write
    /// reaches the provider), then the outcome entry (synced to the disk before
    /// a write is acknowledged: [`Op::durability`]). A result whose entry cannot
    /// be written is withheld: the failure to write it is the operation's.
    /// `ids` are the ids the operation touches, as far as known before `body`
    /// runs; `value` is a value written, logged as its HMAC.
    async fn guarded<T>(
        &self,
        caller: &Caller,
        op: &Op,
        ids: &[&str],
        value: Option<&SecretValue>,
        body: impl AsyncFnOnce(&mut Call<'_>) -> Result<T, BrokerError>,
        outcome_ok: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, BrokerError> {
        // A write in progress: with enough of them, each entry's sync is shared.
        let _writing = match &self.audit {
            Some(log) if op.durability == Durability::Synced => Some(log.writing()),
            _ => None,
        };
        let mut call = Call {
            broker: self,
            caller,
            op: op.name,
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
            unlogged: false,
        };
        let result = match self.require(caller, op) {
            Ok(()) => body(&mut call).await,
            Err(e) => Err(e),
        };
        // An attempt entry that could not be written: the log refuses entries,
        // and the write never reached the provider.
        if call.unlogged {
            return result;
        }
        let Some(log) = &self.audit else {
            return result;
        };
        let (outcome, error) = match &result {
            Ok(t) => (outcome_ok(t), None),
            Err(e) => (outcome_of(e), Some(e.kind())),
        };
        let ids: Vec<&str> = call.ids.iter().map(String::as_str).collect();
        let entry = Entry {
            ids: log.hmac_ids(&ids),
            value: value.map(|v| log.salt().hmac(v.expose())),
            error,
            ..self.entry(caller, op.name, outcome)
        };
        log.write(&entry, op.durability).await?;
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
        self.guarded(
            caller,
            &GET,
            &[id],
            None,
            async |_| Ok(self.provider.get(id).await?),
            |v| found(v.is_some()),
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
        let written = (!masked).then_some(value);
        self.guarded(
            caller,
            &PUT,
            &[id],
            written,
            async |call| {
                if masked {
                    return self.masked_put(id).await;
                }
                call.intend().await?;
                Ok(match self.provider.put(id, value, options).await? {
                    PutOutcome::Created => Written::Created,
                    PutOutcome::Updated => Written::Updated,
                    PutOutcome::Unchanged => Written::Unchanged,
                })
            },
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
        self.guarded(
            caller,
            &CREATE,
            &[id],
            Some(value),
            async |call| {
                if value.expose() == MASK.as_bytes() {
                    return Err(BrokerError::MaskWithoutValue { id: id.to_owned() });
                }
                let slot = {
                    use std::hash::{Hash as _, Hasher as _};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    id.hash(&mut h);
                    (h.finish() % self.create_locks.len() as u64) as usize
                };
                let _queued = self.create_locks[slot].lock().await;
                if self.provider.get(id).await?.is_some() {
                    return Err(BrokerError::Exists { id: id.to_owned() });
                }
                call.intend().await?;
                self.provider.put(id, value, options).await?;
                Ok(Written::Created)
            },
            |_| Outcome::Ok,
        )
        .await
    }

    /// Whether `id` holds a value, without returning it; needs `reveal` or
    /// `write` (as listing does).
    pub async fn exists(&self, caller: &Caller, id: &str) -> Result<bool, BrokerError> {
        self.guarded(
            caller,
            &DESCRIBE,
            &[id],
            None,
            async |_| Ok(self.provider.get(id).await?.is_some()),
            |exists| found(*exists),
        )
        .await
    }

    /// Deletes `id`; needs `write`. True when it existed.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<bool, BrokerError> {
        self.guarded(
            caller,
            &DELETE,
            &[id],
            None,
            async |call| {
                call.intend().await?;
                Ok(self.provider.delete(id).await?)
            },
            |existed| found(*existed),
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
        self.guarded(
            caller,
            &LIST,
            &[prefix],
            None,
            async |_| Ok(self.provider.list(prefix, cursor, limit).await?),
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
        self.guarded(
            caller,
            &ENCRYPT,
            &[],
            None,
            async |call| {
                let manager = self.manager()?;
                let doc = manager.unmask(entity, name, doc, stored)?;
                call.ids = manager.ids(entity, name, &doc)?;
                call.intend().await?;
                Ok(manager.encrypt(entity, name, doc).await?)
            },
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
        let op = if reveal { &DECRYPT } else { &VIEW_MASKED };
        self.guarded(
            caller,
            op,
            &[],
            None,
            async |call| {
                let manager = self.manager()?;
                call.ids = manager.references(entity, &doc)?;
                if reveal {
                    Ok(manager.decrypt(entity, doc).await?)
                } else {
                    Ok(manager.mask(entity, doc)?)
                }
            },
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
        self.guarded(
            caller,
            &DELETE_ENTITY,
            &[],
            None,
            async |call| {
                let manager = self.manager()?;
                call.ids = manager.ids(entity, name, doc)?;
                call.intend().await?;
                Ok(manager.delete(entity, name, doc).await?)
            },
            |_| Outcome::Ok,
        )
        .await
    }
}

/// `Ok` when something was there, `NotFound` otherwise.
fn found(found: bool) -> Outcome {
    if found {
        Outcome::Ok
    } else {
        Outcome::NotFound
    }
}

/// What an operation needs of the caller's role.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// `reveal`: it returns values.
    Reveal,
    /// `write`: it creates, changes or deletes.
    Write,
    /// `reveal` or `write`: it tells what exists; what a refusal calls it.
    RevealOrWrite(&'static str),
    /// Nothing: what it returns is shaped by the role (a masked view).
    Nothing,
}

/// An operation as the audit log names it, what it needs, and how durable its
/// outcome entry must be before it is answered.
#[derive(Debug)]
struct Op {
    name: &'static str,
    need: Need,
    durability: Durability,
}

const fn read(name: &'static str, need: Need) -> Op {
    Op {
        name,
        need,
        durability: Durability::Written,
    }
}

const fn write(name: &'static str) -> Op {
    Op {
        name,
        need: Need::Write,
        durability: Durability::Synced,
    }
}

const GET: Op = read("secret.get", Need::Reveal);
const DESCRIBE: Op = read("secret.describe", Need::RevealOrWrite("look up secrets"));
const LIST: Op = read("secret.list", Need::RevealOrWrite("list secret ids"));
const DECRYPT: Op = read("entity.decrypt", Need::Nothing);
const VIEW_MASKED: Op = read("entity.view-masked", Need::Nothing);
const PUT: Op = write("secret.put");
const CREATE: Op = write("secret.create");
const DELETE: Op = write("secret.delete");
const ENCRYPT: Op = write("entity.encrypt");
const DELETE_ENTITY: Op = write("entity.delete");

/// One operation inside [`Broker::guarded`]: the ids its entries name.
struct Call<'a> {
    broker: &'a Broker,
    caller: &'a Caller,
    op: &'static str,
    /// The ids it touches (an entity operation finds them as it goes).
    ids: Vec<String>,
    /// The attempt entry could not be written.
    unlogged: bool,
}

impl Call<'_> {
    /// Before a write reaches the provider: an `attempt` entry, so that a write
    /// whose log cannot be written never happens, and one that happens is in the
    /// log even if the process dies before its outcome entry.
    async fn intend(&mut self) -> Result<(), BrokerError> {
        let Some(log) = &self.broker.audit else {
            return Ok(());
        };
        let ids: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        let entry = Entry {
            ids: log.hmac_ids(&ids),
            ..self.broker.entry(self.caller, self.op, Outcome::Attempt)
        };
        log.write(&entry, Durability::Written).await.map_err(|e| {
            self.unlogged = true;
            BrokerError::from(e)
        })
    }
}
