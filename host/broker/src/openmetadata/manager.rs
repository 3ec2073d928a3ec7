//! The secrets manager API for entity configs: encrypt replaces every secret field
//! of an entity (a service connection config, a bot's authentication mechanism, an
//! ingestion pipeline, a workflow) by a `secret:` reference after storing its value
//! in the provider; decrypt resolves the references; delete removes an entity's
//! secrets. Behaves like OpenMetadata's secrets manager and fixes its bugs: a user
//! written `secret:` reference is kept as it is, an empty value deletes the secret
//! and nulls the field, the string `"null"` is never stored, and a config is
//! encrypted whole or not at all.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::ids::IdBuilder;
use super::owners::{Claim, Owner, OwnerError, Owners};
use super::schema::{SchemaError, SchemaSet, SecretField, Step};
use crate::policy::MASK;
use secret_broker_runtime::SecretValue;
use secret_broker_runtime::provider::{ProviderError, ProviderHost, PutOptions};

/// The schema of the OpenMetadata server connection in ingestion pipelines.
const SERVER_CONNECTION: &str = "entity/services/connections/metadata/openMetadataConnection.json";
/// The schema of a bot's authentication mechanism.
const AUTH_MECHANISM: &[&str] = &["entity/teams/authenticationMechanism.json"];
/// The schema of an ingestion pipeline's `sourceConfig`: upstream's files, then
/// schemas rendered from the generated models.
const SOURCE_CONFIG: &[&str] = &[
    "metadataIngestion/workflow.json#/definitions/sourceConfig",
    "metadataIngestion/workflow.json#/$defs/SourceConfig",
];

/// The prefix of a stored reference.
pub const REFERENCE: &str = "secret:";

/// Why an encrypt, decrypt or delete failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The config does not fit its schema, or the type is unknown.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A workflow whose test connection request names no service type.
    #[error(
        "the workflow's `request.serviceType` must name the service type (for example \"Database\")"
    )]
    NoServiceType,
    /// A secret field holds the mask, and there is no stored value to keep.
    #[error(
        "`{field}` holds the mask `*********` but no stored value was sent for it: send the \
         stored config as `stored`, or the real value"
    )]
    MaskWithoutStored {
        /// The field path.
        field: String,
    },
    /// A masked field's stored form refers to another id than the one this
    /// entity's field owns: keeping it would hand this entity another's secret.
    #[error(
        "`{field}` holds the mask `*********`, but its stored form refers to another secret \
         than this entity's own ({id}): nothing was stored. Send this entity's stored config \
         as `stored`, or the real value"
    )]
    ForeignStored {
        /// The field path.
        field: String,
        /// The id this entity's field owns.
        id: String,
    },
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
    /// The entity's id for a field is already another entity's: OpenMetadata's
    /// ids join names and field paths with `/`, so names holding `/` can meet.
    #[error(
        "`{field}` would be stored under {id}, which belongs to {owner}: nothing was \
         stored. Entity names that differ only by `/`, case or characters ids cannot \
         carry share ids; rename one of the two entities"
    )]
    Collision {
        /// The field path.
        field: String,
        /// The id both entities reach.
        id: String,
        /// The entity that holds it.
        owner: Owner,
    },
    /// The record of which entity owns which id could not be read or written;
    /// nothing was changed.
    #[error("the id owner records are unavailable, nothing was changed: {0}")]
    Owners(#[source] OwnerError),
    /// A secret field's value is not UTF-8 text, so it cannot go into a JSON
    /// document (replacement characters would corrupt it).
    #[error(
        "`{field}` refers to {id}, whose value is not UTF-8 text and cannot be put into a \
         JSON config; read it with `secret get`, which prints bytes"
    )]
    NotText {
        /// The field path.
        field: String,
        /// The id.
        id: String,
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
    owners: Owners,
    locks: IdLocks,
}

/// How many locks the ids are spread over.
const STRIPES: usize = 1024;

/// Striped locks over secret ids. An entity write (encrypt, or delete) holds the
/// stripes of every id it touches until it ends, so two writes of one entity, or
/// of entities sharing an id (the pipelines' server connection), never
/// interleave: a failing write's undo cannot put back an old value over what a
/// concurrent write stored and acknowledged.
struct IdLocks {
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl IdLocks {
    fn new() -> Self {
        IdLocks {
            stripes: (0..STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    /// Locks the stripes of `ids`, in ascending order (so two writers cannot
    /// deadlock), and holds them until the guards drop.
    async fn lock<'i>(
        &self,
        ids: impl Iterator<Item = &'i str>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut stripes: Vec<usize> = ids
            .map(|id| {
                let mut h = DefaultHasher::new();
                id.hash(&mut h);
                (h.finish() % STRIPES as u64) as usize
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].clone().lock_owned().await);
        }
        guards
    }
}

/// The kinds of entity whose secrets the manager keeps, as OpenMetadata names them
/// in secret ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity<'a> {
    /// A service connection config of a service type (`database`, `dashboard`...).
    Connection {
        /// The service type.
        service: &'a str,
    },
    /// A bot's authentication mechanism (`{"authType": "JWT", "config": {...}}`).
    Bot,
    /// An ingestion pipeline: its `sourceConfig` under `pipeline`, its
    /// `openMetadataServerConnection` under `serverconnection`.
    Pipeline,
    /// A workflow (test connection): `request.connection.config` under `workflow`,
    /// its `openMetadataServerConnection` under `serverconnection`.
    Workflow,
    /// The ingestion pipelines' OpenMetadata server connection on its own.
    ServerConnection,
}

/// The kinds of entity, as HTTP requests (`"entity": "server-connection"`) and
/// the CLI (`--entity server-connection`) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityKind {
    /// A service connection config (needs a service type).
    #[default]
    Connection,
    /// A bot's authentication mechanism.
    Bot,
    /// An ingestion pipeline (`sourceConfig`, `openMetadataServerConnection`).
    Pipeline,
    /// A workflow (test connection request, `openMetadataServerConnection`).
    Workflow,
    /// The ingestion pipelines' OpenMetadata server connection.
    ServerConnection,
}

impl EntityKind {
    /// Every kind.
    pub const ALL: [EntityKind; 5] = [
        EntityKind::Connection,
        EntityKind::Bot,
        EntityKind::Pipeline,
        EntityKind::Workflow,
        EntityKind::ServerConnection,
    ];

    /// The name requests and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Connection => "connection",
            EntityKind::Bot => "bot",
            EntityKind::Pipeline => "pipeline",
            EntityKind::Workflow => "workflow",
            EntityKind::ServerConnection => "server-connection",
        }
    }

    /// The entity; a connection needs its service type and is `None` without one.
    pub fn entity(self, service_type: Option<&str>) -> Option<Entity<'_>> {
        Some(match self {
            EntityKind::Connection => Entity::Connection {
                service: service_type?,
            },
            EntityKind::Bot => Entity::Bot,
            EntityKind::Pipeline => Entity::Pipeline,
            EntityKind::Workflow => Entity::Workflow,
            EntityKind::ServerConnection => Entity::ServerConnection,
        })
    }
}

impl std::str::FromStr for EntityKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EntityKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown entity kind {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// One secret field of an entity document, with the id it is stored under.
struct Target {
    id: String,
    field: SecretField,
    /// Stored under an id other entities share (the server connection): deleting
    /// one pipeline leaves it for the others.
    shared: bool,
    /// The entity that owns the id (none for shared ids, and when the document's
    /// entity name is not known).
    owner: Option<Owner>,
}

/// A secret field's value as found in a config.
/// (A `secret:` reference a user wrote is left as it is, and is no work.)
enum Found {
    Empty,
    Plain(SecretValue),
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
    /// A manager on `provider`, reading schemas from `schema_dir`, recording which
    /// entity owns each id in `owners`.
    pub fn new(
        provider: Arc<ProviderHost>,
        schema_dir: &Path,
        ids: IdBuilder,
        owners: Owners,
    ) -> Result<Self, ManagerError> {
        Ok(SecretsManager::with_schemas(
            provider,
            SchemaSet::load(schema_dir)?,
            ids,
            owners,
        ))
    }

    /// The same, with schemas already read (embedded in the binary, say).
    pub fn with_schemas(
        provider: Arc<ProviderHost>,
        schemas: SchemaSet,
        ids: IdBuilder,
        owners: Owners,
    ) -> Self {
        SecretsManager {
            provider,
            schemas: Arc::new(schemas),
            ids,
            owners,
            locks: IdLocks::new(),
        }
    }

    /// The provider behind this manager.
    pub fn provider(&self) -> &Arc<ProviderHost> {
        &self.provider
    }

    fn connection_fields(
        &self,
        service: &str,
        config: &Value,
    ) -> Result<Vec<SecretField>, ManagerError> {
        let kind = config
            .get("type")
            .and_then(Value::as_str)
            .ok_or(ManagerError::NotAConfig)?;
        let file = self.schemas.connection_schema(service, kind)?;
        Ok(self.schemas.secret_fields(&file, config)?)
    }

    /// Every secret field of `doc`, with its id. `name` is the entity's name.
    fn targets(
        &self,
        entity: Entity<'_>,
        name: Option<&str>,
        doc: &Value,
    ) -> Result<Vec<Target>, ManagerError> {
        let mut out = Vec::new();
        let mut add = |entity_type: &str, name: Option<&str>, under: &[&str], fields: Vec<_>| {
            let shared = entity_type == "serverconnection";
            for SecretField {
                location,
                field_path,
            } in fields
            {
                let location = under
                    .iter()
                    .map(|k| Step::Key((*k).to_owned()))
                    .chain(location)
                    .collect();
                // The server connection's ids start at its own root, wherever it sits.
                let prefix = if shared { &[][..] } else { under };
                let field_path: Vec<String> = prefix
                    .iter()
                    .map(|k| (*k).to_owned())
                    .chain(field_path)
                    .collect();
                out.push(Target {
                    id: self.ids.id(entity_type, name, &field_path),
                    shared,
                    owner: name.filter(|_| !shared).map(|name| Owner {
                        entity_type: entity_type.to_owned(),
                        name: name.to_owned(),
                    }),
                    field: SecretField {
                        location,
                        field_path,
                    },
                });
            }
        };
        let server = "openMetadataServerConnection";
        match entity {
            Entity::Connection { service } => {
                add(service, name, &[], self.connection_fields(service, doc)?);
            }
            Entity::ServerConnection => add(
                "serverconnection",
                None,
                &[],
                self.schemas
                    .secret_fields(Path::new(SERVER_CONNECTION), doc)?,
            ),
            Entity::Bot => add(
                "bot",
                name,
                &[],
                self.schemas.secret_fields_at(
                    AUTH_MECHANISM,
                    "a bot's authentication mechanism",
                    doc,
                )?,
            ),
            Entity::Pipeline | Entity::Workflow => {
                if entity == Entity::Pipeline {
                    if let Some(source) = doc.get("sourceConfig").filter(|v| !v.is_null()) {
                        let fields = self.schemas.secret_fields_at(
                            SOURCE_CONFIG,
                            "an ingestion pipeline's sourceConfig",
                            source,
                        )?;
                        add("pipeline", name, &["sourceConfig"], fields);
                    }
                } else if let Some(config) = doc.pointer("/request/connection/config") {
                    let service = doc
                        .pointer("/request/serviceType")
                        .and_then(Value::as_str)
                        .ok_or(ManagerError::NoServiceType)?
                        .to_ascii_lowercase();
                    let fields = self.connection_fields(&service, config)?;
                    add(
                        "workflow",
                        name,
                        &["request", "connection", "config"],
                        fields,
                    );
                }
                if let Some(conn) = doc.get(server).filter(|v| !v.is_null()) {
                    let fields = self
                        .schemas
                        .secret_fields(Path::new(SERVER_CONNECTION), conn)?;
                    add("serverconnection", None, &[server], fields);
                }
            }
        }
        Ok(out)
    }

    /// Stores every secret field of an entity document and returns it with
    /// `secret:` references in their place. `name` is the entity's name (ignored
    /// for the server connection). On any failure, every write this call made is
    /// undone and the error returned: a document is stored whole or not at all.
    pub async fn encrypt(
        &self,
        entity: Entity<'_>,
        name: &str,
        doc: Value,
    ) -> Result<Value, ManagerError> {
        let targets = self.targets(entity, Some(name), &doc)?;
        let _held = self.locks.lock(targets.iter().map(|t| t.id.as_str())).await;
        self.encrypt_targets(&targets, doc).await
    }

    /// Replaces every `secret:` reference among an entity document's secret fields
    /// by its value.
    pub async fn decrypt(&self, entity: Entity<'_>, doc: Value) -> Result<Value, ManagerError> {
        let targets = self.targets(entity, None, &doc)?;
        self.decrypt_targets(&targets, doc).await
    }

    /// Deletes every secret a stored entity document refers to under the entity's
    /// own ids (references a user wrote to other secrets are left alone). Returns
    /// how many were deleted.
    pub async fn delete(
        &self,
        entity: Entity<'_>,
        name: &str,
        doc: &Value,
    ) -> Result<usize, ManagerError> {
        let mut deleted = 0;
        let targets = self.targets(entity, Some(name), doc)?;
        let _held = self.locks.lock(targets.iter().map(|t| t.id.as_str())).await;
        for target in targets {
            if target.shared && entity != Entity::ServerConnection {
                continue;
            }
            let refers = value_ref(doc, &target.field.location)
                .and_then(Value::as_str)
                .is_some_and(|s| s.strip_prefix(REFERENCE) == Some(target.id.as_str()));
            if !refers {
                continue;
            }
            // Another entity's secret at this id is never this entity's to delete.
            if let Some(owner) = &target.owner {
                let held = self
                    .owners
                    .owner(&target.id)
                    .await
                    .map_err(ManagerError::Owners)?;
                if held.is_some_and(|held| held != *owner) {
                    continue;
                }
            }
            if self
                .provider
                .delete(&target.id)
                .await
                .map_err(|source| ManagerError::Provider {
                    field: target.field.field_path.join("/"),
                    source,
                })?
            {
                deleted += 1;
            }
            if let Some(owner) = &target.owner {
                self.owners
                    .release(&target.id, owner)
                    .await
                    .map_err(ManagerError::Owners)?;
            }
        }
        Ok(deleted)
    }

    /// The ids an entity document's secret fields are stored under.
    pub fn ids(
        &self,
        entity: Entity<'_>,
        name: &str,
        doc: &Value,
    ) -> Result<Vec<String>, ManagerError> {
        Ok(self
            .targets(entity, Some(name), doc)?
            .into_iter()
            .map(|t| t.id)
            .collect())
    }

    /// The ids a stored document's secret fields refer to.
    pub fn references(&self, entity: Entity<'_>, doc: &Value) -> Result<Vec<String>, ManagerError> {
        Ok(self
            .targets(entity, None, doc)?
            .into_iter()
            .filter_map(|t| {
                value_ref(doc, &t.field.location)
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix(REFERENCE))
                    .map(str::to_owned)
            })
            .collect())
    }

    /// The document as someone who may not see secrets sees it: every secret field
    /// that holds a value or a reference shows [`MASK`]. No provider call.
    pub fn mask(&self, entity: Entity<'_>, mut doc: Value) -> Result<Value, ManagerError> {
        for target in self.targets(entity, None, &doc)? {
            if let Some(slot) = value_at(&mut doc, &target.field.location)
                && slot.is_string()
            {
                *slot = Value::String(MASK.to_owned());
            }
        }
        Ok(doc)
    }

    /// Unmask on update: every secret field of `doc` that holds [`MASK`] takes the
    /// value of the same field in `stored` (the entity's stored form, as the
    /// metadata server keeps it), so a client that sends a masked config back
    /// keeps the stored secret, and a changed value replaces it.
    ///
    /// A stored form that refers to a secret other than the one this entity's
    /// field owns (`secret:<id>` of another entity) is refused: a caller who
    /// may write but not read could otherwise point this entity at another's
    /// secret.
    pub fn unmask(
        &self,
        entity: Entity<'_>,
        name: &str,
        mut doc: Value,
        stored: Option<&Value>,
    ) -> Result<Value, ManagerError> {
        for target in self.targets(entity, Some(name), &doc)? {
            let Some(slot) = value_at(&mut doc, &target.field.location) else {
                continue;
            };
            if slot.as_str() != Some(MASK) {
                continue;
            }
            let previous = stored
                .and_then(|s| value_ref(s, &target.field.location))
                .filter(|v| v.is_string() && v.as_str() != Some(MASK));
            match previous {
                Some(previous) => {
                    let referred = previous.as_str().and_then(|v| v.strip_prefix(REFERENCE));
                    if let Some(referred) = referred
                        && referred != target.id
                        && self.ids.style().fit(referred) != target.id
                        && self.ids.today(referred).as_ref() != Some(&target.id)
                    {
                        return Err(ManagerError::ForeignStored {
                            field: target.field.field_path.join("/"),
                            id: target.id,
                        });
                    }
                    *slot = previous.clone();
                }
                None => {
                    return Err(ManagerError::MaskWithoutStored {
                        field: target.field.field_path.join("/"),
                    });
                }
            }
        }
        Ok(doc)
    }

    /// [`Self::encrypt`] for a `service` connection config of service `name`.
    pub async fn encrypt_connection(
        &self,
        service: &str,
        name: &str,
        config: Value,
    ) -> Result<Value, ManagerError> {
        self.encrypt(Entity::Connection { service }, name, config)
            .await
    }

    /// [`Self::decrypt`] for a `service` connection config.
    pub async fn decrypt_connection(
        &self,
        service: &str,
        config: Value,
    ) -> Result<Value, ManagerError> {
        self.decrypt(Entity::Connection { service }, config).await
    }

    /// [`Self::delete`] for a `service` connection config of service `name`.
    pub async fn delete_connection(
        &self,
        service: &str,
        name: &str,
        config: &Value,
    ) -> Result<usize, ManagerError> {
        self.delete(Entity::Connection { service }, name, config)
            .await
    }

    /// The ingestion pipelines' OpenMetadata server connection, stored under the
    /// entity type `serverconnection` with no entity name, as OpenMetadata does.
    pub async fn encrypt_server_connection(&self, config: Value) -> Result<Value, ManagerError> {
        self.encrypt(Entity::ServerConnection, "", config).await
    }

    /// Resolves the references of a stored server connection.
    pub async fn decrypt_server_connection(&self, config: Value) -> Result<Value, ManagerError> {
        self.decrypt(Entity::ServerConnection, config).await
    }

    async fn encrypt_targets(
        &self,
        targets: &[Target],
        mut config: Value,
    ) -> Result<Value, ManagerError> {
        let mut work = Vec::new();
        for target in targets {
            let found = match value_ref(&config, &target.field.location).and_then(Value::as_str) {
                Some(s) if s.starts_with(REFERENCE) => continue,
                Some("") | Some("null") => Found::Empty,
                Some(s) => Found::Plain(SecretValue::new(s.as_bytes().to_vec())),
                None => continue,
            };
            work.push((target, found));
        }
        let claimed = self.claim(&work).await?;
        // What each id held before, to put back if a later field fails.
        let mut undo: Vec<(String, Option<SecretValue>)> = Vec::new();
        for (Target { id, field, .. }, found) in &work {
            let result = match found {
                Found::Empty => self.delete_one(id, &mut undo).await.map(|()| Value::Null),
                Found::Plain(value) => self
                    .put_one(id, value, &mut undo)
                    .await
                    .map(|()| Value::String(format!("{REFERENCE}{id}"))),
            };
            match result {
                Ok(stored) => {
                    if let Some(slot) = value_at(&mut config, &field.location) {
                        // The plaintext it held is wiped, not just freed.
                        if let Value::String(plain) = slot {
                            zeroize::Zeroize::zeroize(plain);
                        }
                        *slot = stored;
                    }
                }
                Err(source) => {
                    self.rollback(undo).await;
                    self.release(&claimed).await;
                    return Err(ManagerError::Provider {
                        field: field.field_path.join("/"),
                        source,
                    });
                }
            }
        }
        // An emptied field gives its id up.
        let mut emptied = Vec::new();
        for (target, found) in &work {
            if let (Found::Empty, Some(owner)) = (found, &target.owner) {
                emptied.push((target.id.as_str(), owner));
            }
        }
        self.release(&emptied).await;
        Ok(config)
    }

    /// Claims every id `work` writes or deletes for its entity, before any write;
    /// returns the claims it made. An id another entity holds refuses the whole
    /// document (the claims made so far are given back).
    async fn claim<'t>(
        &self,
        work: &[(&'t Target, Found)],
    ) -> Result<Vec<(&'t str, &'t Owner)>, ManagerError> {
        let mut claimed = Vec::new();
        for (target, found) in work {
            let Some(owner) = &target.owner else {
                continue;
            };
            let outcome = match found {
                Found::Plain(_) => self.owners.claim(&target.id, owner).await,
                // Deleting needs the id to be unowned or ours, and claims nothing.
                Found::Empty => self.owners.owner(&target.id).await.map(|held| match held {
                    Some(other) if other != *owner => Claim::Taken(other),
                    _ => Claim::Held,
                }),
            };
            let error = match outcome {
                Ok(Claim::New) => {
                    claimed.push((target.id.as_str(), owner));
                    continue;
                }
                Ok(Claim::Held) => continue,
                Ok(Claim::Taken(other)) => ManagerError::Collision {
                    field: target.field.field_path.join("/"),
                    id: target.id.clone(),
                    owner: other,
                },
                Err(e) => ManagerError::Owners(e),
            };
            self.release(&claimed).await;
            return Err(error);
        }
        Ok(claimed)
    }

    /// Gives claims up; a failure is logged (the id stays claimed by this
    /// entity, which refuses other entities but loses nothing).
    async fn release(&self, claims: &[(&str, &Owner)]) {
        for &(id, owner) in claims {
            if let Err(e) = self.owners.release(id, owner).await {
                tracing::warn!(%id, error = %e, "could not give up an id's owner record");
            }
        }
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
        let (id, before) = self.locate(id).await?;
        self.provider.delete(&id).await?;
        undo.push((id, before));
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

    async fn decrypt_targets(
        &self,
        targets: &[Target],
        mut config: Value,
    ) -> Result<Value, ManagerError> {
        for Target { field, .. } in targets {
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
            let Some(text) = value.expose_str() else {
                return Err(ManagerError::NotText {
                    field: field.field_path.join("/"),
                    id,
                });
            };
            *slot = Value::String(text.to_owned());
        }
        Ok(config)
    }

    /// The value behind a `secret:/...` reference (or a bare id).
    pub async fn resolve(&self, reference: &str) -> Result<Option<SecretValue>, ProviderError> {
        self.resolve_id(reference.strip_prefix(REFERENCE).unwrap_or(reference))
            .await
    }

    async fn resolve_id(&self, id: &str) -> Result<Option<SecretValue>, ProviderError> {
        Ok(self.locate(id).await?.1)
    }

    /// Where the secret a reference names sits, and its value: at
    /// [`Self::backend_id`], or, when nothing is there, at today's spelling of a
    /// `/`-style reference under this deployment's prefix and cluster
    /// ([`IdBuilder::today`]), or where `migrate`s (or an older OpenMetadata
    /// server on Kubernetes) may have put it
    /// ([`super::ids::IdStyle::migrated_spellings`]); the
    /// backend id and `None` when it is nowhere.
    async fn locate(&self, id: &str) -> Result<(String, Option<SecretValue>), ProviderError> {
        let primary = self.backend_id(id);
        if let Some(value) = self.provider.get(&primary).await? {
            return Ok((primary, Some(value)));
        }
        let rules = &self.provider.info().id_rules;
        let today = self.ids.today(id).filter(|t| *t != primary);
        for candidate in today
            .into_iter()
            .chain(self.ids.style().migrated_spellings(id))
        {
            if rules.check(&candidate).is_ok()
                && let Some(value) = self.provider.get(&candidate).await?
            {
                return Ok((candidate, Some(value)));
            }
        }
        Ok((primary, None))
    }

    /// `id` as the backend takes it: itself when the provider's rules take it,
    /// else spelled in this deployment's style ([`super::ids::IdStyle::fit`]): a reference
    /// OpenMetadata stored before a `migrate` names the secret as its old
    /// backend spelled it.
    fn backend_id(&self, id: &str) -> String {
        if self.provider.info().id_rules.check(id).is_ok() {
            id.to_owned()
        } else {
            self.ids.style().fit(id)
        }
    }
}
