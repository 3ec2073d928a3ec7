//! The credentials of the HTTP server, bearer tokens and AWS access keys, kept in
//! the deployment's record store (SQLite in the data dir, or the PostgreSQL or
//! MariaDB every replica shares), so that a token added, revoked or expired on
//! one replica is known to every other within a second.
//!
//! Rows live in the namespace `broker/credentials` (providers' are
//! `provider/<instance>`): `token/<name>` holds a token's role, SHA-256 digest,
//! creation and expiry (never the token); `aws-key/<name>` an access key's role,
//! id, creation, expiry and its secret sealed by the keyring (bound to the key
//! id); `used/<kind>/<name>` when it was last accepted (written at most every
//! [`USE_RESOLUTION`] per replica, apart from the credential's row so that a
//! late "last used" never brings a revoked credential back).
//!
//! The tokens and access keys files of earlier releases are imported once and
//! renamed `*.imported`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use secret_broker::SecretValue;
use secret_broker::policy::Role;
use secret_broker_keyring::Keyring;
use secret_broker_record_store::{Condition, Record, RecordStore, StoreError, Write};
use secret_broker_server::CredentialKind;
use secret_broker_server::sigv4::{self, AwsKeys};
use secret_broker_server::tokens::{self, TokenEntry, Tokens};

/// The namespace of the credentials' rows.
pub const NAMESPACE: &str = "broker/credentials";

/// How often a replica writes a credential's "last used" at most.
pub const USE_RESOLUTION: Duration = Duration::from_secs(30);

/// What opens an access key's sealed secret (the keyring), bound to its key id.
pub type Opener<'a> = dyn Fn(&[u8], &[u8]) -> anyhow::Result<SecretValue> + Send + Sync + 'a;

/// Rows read per query when listing.
const PAGE: u32 = 500;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Row {
    Token {
        role: String,
        digest: String,
        created: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
    },
    AwsKey {
        role: String,
        access_key_id: String,
        sealed: String,
        created: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Used {
    at: u64,
}

/// What `token list` shows of a credential: never the token or the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    /// A bearer token or an AWS access key.
    pub kind: CredentialKind,
    /// Its name, as the audit log shows the caller.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The access key id (AWS keys only).
    pub access_key_id: Option<String>,
    /// When it was created.
    pub created: SystemTime,
    /// When it stops being accepted.
    pub expires: Option<SystemTime>,
    /// When a server last accepted it (to within [`USE_RESOLUTION`]).
    pub last_used: Option<SystemTime>,
}

impl CredentialInfo {
    /// Whether it is past its expiry at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// The credentials in a record store.
#[derive(Clone)]
pub struct Credentials {
    store: Arc<RecordStore>,
}

fn prefix(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Token => "token/",
        CredentialKind::AwsKey => "aws-key/",
    }
}

/// What the kind is called in messages.
pub fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Token => "token",
        CredentialKind::AwsKey => "access key",
    }
}

fn key(kind: CredentialKind, name: &str) -> String {
    format!("{}{name}", prefix(kind))
}

fn used_key(kind: CredentialKind, name: &str) -> String {
    format!("used/{}{name}", prefix(kind))
}

fn secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn role(name: &str, row_key: &str) -> anyhow::Result<Role> {
    Role::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("credential row {row_key}: unknown role {name:?} (admin, user or bot)")
    })
}

fn parse(record: &Record) -> anyhow::Result<Row> {
    serde_json::from_slice(&record.value)
        .with_context(|| format!("credential row {} does not read", record.key))
}

impl Credentials {
    /// The credentials kept in `store`.
    pub fn new(store: Arc<RecordStore>) -> Credentials {
        Credentials { store }
    }

    /// Every row of the namespace.
    async fn rows(&self) -> Result<Vec<Record>, StoreError> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(NAMESPACE, "", after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|r| r.key.clone());
            rows.extend(page);
            if !full {
                return Ok(rows);
            }
        }
    }

    /// Whether any AWS access key is stored (one row read).
    pub async fn has_aws_keys(&self) -> Result<bool, StoreError> {
        let first = self
            .store
            .scan(NAMESPACE, prefix(CredentialKind::AwsKey), None, 1)
            .await?;
        Ok(!first.is_empty())
    }

    /// What identifies the current set of credentials: their keys and
    /// versions (the "last used" rows left out), to rebuild only on a change.
    pub async fn fingerprint(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self
            .rows()
            .await?
            .into_iter()
            .filter(|r| !r.key.starts_with("used/"))
            .map(|r| (r.key, r.version))
            .collect())
    }

    /// Imports the tokens file and the access keys file of earlier releases
    /// (each line whose name is not taken yet), then renames each file
    /// `*.imported`. Returns how many were imported.
    pub async fn import_files(
        &self,
        tokens_file: &Path,
        keys_file: &Path,
    ) -> anyhow::Result<usize> {
        let mut imported = 0;
        if tokens_file.exists() {
            let created = secs(SystemTime::now());
            for entry in Tokens::load(tokens_file)?.entries() {
                let row = Row::Token {
                    role: entry.role.to_string(),
                    digest: hex::encode(entry.digest),
                    created,
                    expires: None,
                };
                if self
                    .insert(CredentialKind::Token, &entry.name, &row)
                    .await?
                {
                    imported += 1;
                }
            }
            retire(tokens_file)?;
        }
        if keys_file.exists() {
            let created = secs(SystemTime::now());
            for key in AwsKeys::load_sealed(keys_file)? {
                let row = Row::AwsKey {
                    role: key.role.to_string(),
                    access_key_id: key.access_key_id.clone(),
                    sealed: base64::engine::general_purpose::STANDARD.encode(&key.sealed),
                    created,
                    expires: None,
                };
                if self.insert(CredentialKind::AwsKey, &key.name, &row).await? {
                    imported += 1;
                }
            }
            retire(keys_file)?;
        }
        Ok(imported)
    }

    /// Writes a new credential's row; `false` when the name is taken.
    async fn insert(&self, kind: CredentialKind, name: &str, row: &Row) -> anyhow::Result<bool> {
        tokens::check_name(name)?;
        let bytes = serde_json::to_vec(row)?;
        match self
            .store
            .put(NAMESPACE, &key(kind, name), &bytes, Condition::Absent)
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A new bearer token named `name`: returned once, kept only as its digest.
    pub async fn add_token(
        &self,
        name: &str,
        role: Role,
        expires: Option<SystemTime>,
    ) -> anyhow::Result<Zeroizing<String>> {
        match self.try_add_token(name, role, expires).await? {
            Some(token) => Ok(token),
            None => bail!(
                "a token named {name:?} exists; revoke it first (`secret-broker token revoke \
                 {name}`) or pick another name"
            ),
        }
    }

    /// As [`Credentials::add_token`], `None` when the name is taken.
    pub async fn try_add_token(
        &self,
        name: &str,
        role: Role,
        expires: Option<SystemTime>,
    ) -> anyhow::Result<Option<Zeroizing<String>>> {
        let token = tokens::generate();
        let row = Row::Token {
            role: role.to_string(),
            digest: hex::encode(tokens::digest(token.as_bytes())),
            created: secs(SystemTime::now()),
            expires: expires.map(secs),
        };
        Ok(self
            .insert(CredentialKind::Token, name, &row)
            .await?
            .then_some(token))
    }

    /// A new AWS access key named `name`: its id and secret returned once, the
    /// secret kept sealed by `keyring`.
    pub async fn add_aws_key(
        &self,
        name: &str,
        role: Role,
        expires: Option<SystemTime>,
        keyring: &Keyring,
    ) -> anyhow::Result<(String, Zeroizing<String>)> {
        let (id, secret) = sigv4::generate();
        let sealed = keyring.seal(
            &SecretValue::from_string(secret.to_string()),
            &sigv4::seal_context(&id),
        );
        let row = Row::AwsKey {
            role: role.to_string(),
            access_key_id: id.clone(),
            sealed: base64::engine::general_purpose::STANDARD.encode(&sealed),
            created: secs(SystemTime::now()),
            expires: expires.map(secs),
        };
        if !self.insert(CredentialKind::AwsKey, name, &row).await? {
            bail!(
                "an access key named {name:?} exists; revoke it first (`secret-broker token \
                 revoke {name} --aws`) or pick another name"
            );
        }
        Ok((id, secret))
    }

    /// Removes a credential and its "last used"; every server refuses it within
    /// a second. An unknown name is an error naming the ones there are.
    pub async fn revoke(&self, kind: CredentialKind, name: &str) -> anyhow::Result<()> {
        let writes = [
            Write {
                key: key(kind, name),
                value: None,
                condition: Condition::Any,
            },
            Write {
                key: used_key(kind, name),
                value: None,
                condition: Condition::Any,
            },
        ];
        let versions = self.store.apply(NAMESPACE, &writes).await?;
        if versions.first().is_some_and(|&v| v > 0) {
            return Ok(());
        }
        let names: Vec<String> = self
            .list()
            .await?
            .into_iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.name)
            .collect();
        bail!(
            "no {} named {name:?}{}; `secret-broker token list` shows them (add --aws for an \
             access key)",
            kind_name(kind),
            if names.is_empty() {
                String::new()
            } else {
                format!(" (there are: {})", names.join(", "))
            }
        )
    }

    /// Every credential, tokens first, by name.
    pub async fn list(&self) -> anyhow::Result<Vec<CredentialInfo>> {
        let rows = self.rows().await?;
        let mut used: HashMap<&str, u64> = HashMap::new();
        for r in &rows {
            if let Some(k) = r.key.strip_prefix("used/")
                && let Ok(u) = serde_json::from_slice::<Used>(&r.value)
            {
                used.insert(k, u.at);
            }
        }
        let mut out = Vec::new();
        for r in rows.iter().filter(|r| !r.key.starts_with("used/")) {
            let last_used = used.get(r.key.as_str()).copied().map(time);
            out.push(match parse(r)? {
                Row::Token {
                    role: name,
                    created,
                    expires,
                    ..
                } => CredentialInfo {
                    kind: CredentialKind::Token,
                    name: r.key.trim_start_matches("token/").to_owned(),
                    role: role(&name, &r.key)?,
                    access_key_id: None,
                    created: time(created),
                    expires: expires.map(time),
                    last_used,
                },
                Row::AwsKey {
                    role: name,
                    access_key_id,
                    created,
                    expires,
                    ..
                } => CredentialInfo {
                    kind: CredentialKind::AwsKey,
                    name: r.key.trim_start_matches("aws-key/").to_owned(),
                    role: role(&name, &r.key)?,
                    access_key_id: Some(access_key_id),
                    created: time(created),
                    expires: expires.map(time),
                    last_used,
                },
            });
        }
        out.sort_by(|a, b| {
            (a.kind == CredentialKind::AwsKey, &a.name)
                .cmp(&(b.kind == CredentialKind::AwsKey, &b.name))
        });
        Ok(out)
    }

    /// The bearer tokens (digests) and the AWS access keys, their secrets
    /// opened by `open`. A row that does not read is skipped with an error in
    /// the log, so one bad row does not lock everybody out.
    pub async fn load(&self, open: &Opener<'_>) -> Result<(Tokens, AwsKeys), StoreError> {
        let mut entries = Vec::new();
        let mut keys = AwsKeys::default();
        for r in self.rows().await? {
            if r.key.starts_with("used/") {
                continue;
            }
            let loaded = parse(&r).and_then(|row| match row {
                Row::Token {
                    role: name,
                    digest,
                    expires,
                    ..
                } => {
                    let digest: [u8; 32] = hex::decode(&digest)
                        .ok()
                        .and_then(|d| d.try_into().ok())
                        .ok_or_else(|| {
                            anyhow::anyhow!("credential row {}: the digest is not 64 hex", r.key)
                        })?;
                    entries.push(TokenEntry {
                        name: r.key.trim_start_matches("token/").to_owned(),
                        role: role(&name, &r.key)?,
                        digest,
                        expires: expires.map(time),
                    });
                    Ok(())
                }
                Row::AwsKey {
                    role: name,
                    access_key_id,
                    sealed,
                    expires,
                    ..
                } => {
                    let sealed = base64::engine::general_purpose::STANDARD
                        .decode(&sealed)
                        .with_context(|| {
                            format!("credential row {}: the sealed secret is not base64", r.key)
                        })?;
                    let secret =
                        open(&sealed, &sigv4::seal_context(&access_key_id)).with_context(|| {
                            format!("credential row {}: the secret does not open", r.key)
                        })?;
                    keys.insert_expiring(
                        r.key.trim_start_matches("aws-key/"),
                        role(&name, &r.key)?,
                        &access_key_id,
                        secret,
                        expires.map(time),
                    );
                    Ok(())
                }
            });
            if let Err(e) = loaded {
                tracing::error!("skipping a credential: {e:#}");
            }
        }
        Ok((Tokens::from_entries(entries), keys))
    }

    /// Records when credentials were last accepted.
    pub async fn record_uses(
        &self,
        uses: &[(CredentialKind, String, SystemTime)],
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let writes: Vec<Write> = uses
            .iter()
            .filter_map(|(kind, name, at)| {
                Some(Write {
                    key: used_key(*kind, name),
                    value: Some(serde_json::to_vec(&Used { at: secs(*at) }).ok()?),
                    condition: Condition::Any,
                })
            })
            .collect();
        self.store.apply(NAMESPACE, &writes).await.map(|_| ())
    }

    /// Re-seals every access key's secret with `reseal` (`None`: already under
    /// the wanted key), each row compare-and-set on its version. Returns how
    /// many changed.
    pub async fn reseal(
        &self,
        reseal: impl Fn(&[u8], &[u8]) -> anyhow::Result<Option<Vec<u8>>>,
    ) -> anyhow::Result<usize> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut changed = 0;
        for r in self.rows().await? {
            if !r.key.starts_with("aws-key/") {
                continue;
            }
            let Row::AwsKey {
                role,
                access_key_id,
                sealed,
                created,
                expires,
            } = parse(&r)?
            else {
                continue;
            };
            let bytes = b64
                .decode(&sealed)
                .with_context(|| format!("credential row {}: not base64", r.key))?;
            let Some(new) = reseal(&bytes, &sigv4::seal_context(&access_key_id))? else {
                continue;
            };
            let row = Row::AwsKey {
                role,
                access_key_id,
                sealed: b64.encode(new),
                created,
                expires,
            };
            match self
                .store
                .put(
                    NAMESPACE,
                    &r.key,
                    &serde_json::to_vec(&row)?,
                    Condition::Version(r.version),
                )
                .await
            {
                Ok(_) => changed += 1,
                // Revoked meanwhile: nothing to re-seal.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(changed)
    }
}

/// Renames an imported file `NAME.imported`, so a credential revoked later is
/// not imported again.
fn retire(path: &Path) -> anyhow::Result<()> {
    let mut to = path.as_os_str().to_owned();
    to.push(".imported");
    std::fs::rename(path, &to)
        .with_context(|| format!("renaming {} after importing it", path.display()))?;
    tracing::info!(
        "imported {} into the record store; the file is kept as {}",
        path.display(),
        Path::new(&to).display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Credentials) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = RecordStore::connect(&url).await.unwrap();
        (dir, Credentials::new(Arc::new(store)))
    }

    fn no_keys(_: &[u8], _: &[u8]) -> anyhow::Result<SecretValue> {
        bail!("no keyring")
    }

    #[tokio::test]
    async fn tokens_are_added_listed_used_and_revoked() {
        let (_dir, creds) = store().await;
        let now = SystemTime::now();
        let ci = creds
            .add_token("ci", Role::Bot, Some(now + Duration::from_secs(3600)))
            .await
            .unwrap();
        let om = creds.add_token("om", Role::Admin, None).await.unwrap();
        let err = creds.add_token("om", Role::User, None).await.unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        let (tokens, _) = creds.load(&no_keys).await.unwrap();
        assert_eq!(tokens.authenticate(&ci, now).unwrap().name, "ci");
        assert_eq!(tokens.authenticate(&om, now).unwrap().role, Role::Admin);
        assert!(
            tokens
                .authenticate(&ci, now + Duration::from_secs(3601))
                .is_none()
        );

        creds
            .record_uses(&[(CredentialKind::Token, "om".into(), now)])
            .await
            .unwrap();
        let list = creds.list().await.unwrap();
        assert_eq!(list.len(), 2);
        let om_info = list.iter().find(|c| c.name == "om").unwrap();
        assert_eq!(om_info.last_used.map(secs), Some(secs(now)));
        assert!(
            list.iter()
                .find(|c| c.name == "ci")
                .unwrap()
                .expires
                .is_some()
        );
        assert!(!format!("{list:?}").contains(om.as_str()));

        let before = creds.fingerprint().await.unwrap();
        creds.revoke(CredentialKind::Token, "om").await.unwrap();
        assert_ne!(before, creds.fingerprint().await.unwrap());
        let (tokens, _) = creds.load(&no_keys).await.unwrap();
        assert!(tokens.authenticate(&om, now).is_none());
        let err = creds
            .revoke(CredentialKind::Token, "om")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no token named \"om\"") && err.contains("ci"),
            "{err}"
        );
        // The "last used" went with it: a new token of that name starts afresh.
        creds.add_token("om", Role::User, None).await.unwrap();
        let list = creds.list().await.unwrap();
        assert_eq!(
            list.iter().find(|c| c.name == "om").unwrap().last_used,
            None
        );
        // Tokens are not access keys.
        assert!(!creds.has_aws_keys().await.unwrap());
        let ring = Keyring::single([7; 32]);
        creds
            .add_aws_key("om", Role::Bot, None, &ring)
            .await
            .unwrap();
        assert!(creds.has_aws_keys().await.unwrap());
    }

    #[tokio::test]
    async fn files_of_earlier_releases_are_imported_once() {
        let (dir, creds) = store().await;
        let token = tokens::generate();
        let file = dir.path().join("tokens");
        std::fs::write(
            &file,
            format!(
                "# old\nlegacy user sha256:{}\n",
                hex::encode(tokens::digest(token.as_bytes()))
            ),
        )
        .unwrap();
        let keys = dir.path().join("aws-keys");
        assert_eq!(creds.import_files(&file, &keys).await.unwrap(), 1);
        assert!(!file.exists() && dir.path().join("tokens.imported").exists());
        let (tokens, _) = creds.load(&no_keys).await.unwrap();
        let caller = tokens.authenticate(&token, SystemTime::now()).unwrap();
        assert_eq!((caller.name.as_str(), caller.role), ("legacy", Role::User));
        // Revoked, it stays revoked: the file is not read again.
        creds.revoke(CredentialKind::Token, "legacy").await.unwrap();
        assert_eq!(creds.import_files(&file, &keys).await.unwrap(), 0);
        assert!(creds.list().await.unwrap().is_empty());
    }
}
