//! The audit log: one JSON line per secret operation (who, role, operation,
//! provider, outcome, time), appended to a file opened append-only. Secret ids and
//! values never appear in clear: they are written as `hmac-sha256:<hex>` under a
//! per-deployment salt, as Vault's audit devices do, so an operator who knows an id
//! can find its entries (`secret-broker audit hmac ID`) and nobody can read the ids
//! or values back out of the log.
//!
//! The entries form one chain however many processes write ([`chain`]); signed
//! checkpoints of its head ([`checkpoint`]) let `audit verify` ([`verify()`])
//! prove with a public key alone that nothing was changed or removed.

pub mod chain;
pub mod checkpoint;
mod file_store;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use secret_broker_runtime::fs::write_private;

use crate::policy::Role;

pub use chain::{ChainStore, Head};
pub use checkpoint::{AuditFiles, Checkpoint, KeySlot, PublicKey, SigningKey};
pub use file_store::FileStore;
pub use verify::{Report, VerifyOptions, verify};

use chain::Batch;

/// The salt file's size.
const SALT_BYTES: usize = 32;

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read, created or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The salt is gone but the log it keys is not.
    #[error(
        "audit salt {salt} is missing but the audit log {log} has entries: restore the salt \
         from backup (a new one would make every earlier entry unmatchable and break the \
         chain), or move the log aside to start a new one"
    )]
    SaltMissing {
        /// The salt file.
        salt: String,
        /// The log.
        log: String,
    },
    /// The salt file holds something else than a salt.
    #[error(
        "audit salt {path} is not {SALT_BYTES} bytes of hex; restore it from backup (entries \
         written under another salt cannot be matched any more)"
    )]
    BadSalt {
        /// The file.
        path: String,
    },
    /// A key file holds something else than a key.
    #[error("audit key {path}: {why}")]
    BadKey {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The signing key is gone but the checkpoints it signed are not.
    #[error(
        "audit signing key {path} is missing but the chain has checkpoints it signed: restore \
         it from backup, or copy it from the replica that made it (a new key's checkpoints \
         would not verify under the published public key)"
    )]
    KeyMissing {
        /// The key file.
        path: String,
    },
    /// The key file is not the key the chain says signs now.
    #[error(
        "audit signing key {path} is not the key the chain's last checkpoint names as its \
         signer ({want}): restore that key, or the key file this data dir was rotated to"
    )]
    WrongKey {
        /// The key file.
        path: String,
        /// The key the chain expects.
        want: String,
    },
}

/// The per-deployment salt and the HMAC it keys.
#[derive(Clone)]
pub struct Salt(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// Reads the salt file (hex), creating it (mode 0600) with a random salt when
    /// it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Salt, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| AuditError::BadSalt {
                    path: path.display().to_string(),
                })?;
                if bytes.len() != SALT_BYTES {
                    return Err(AuditError::BadSalt {
                        path: path.display().to_string(),
                    });
                }
                Ok(Salt(Zeroizing::new(bytes)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; SALT_BYTES];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                write_private(path, format!("{}\n", hex::encode(&bytes)).as_bytes()).map_err(io)?;
                Ok(Salt(Zeroizing::new(bytes)))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// [`Salt::load_or_create`] for the log at `log`: a missing salt beside a
    /// log that already has entries is an error, never a fresh salt (which
    /// would make every earlier entry unmatchable and the chain unverifiable).
    pub fn for_log(path: &Path, log: &Path) -> Result<Salt, AuditError> {
        let has_entries = std::fs::metadata(log).is_ok_and(|m| m.is_file() && m.len() > 0);
        if has_entries && !path.exists() {
            return Err(AuditError::SaltMissing {
                salt: path.display().to_string(),
                log: log.display().to_string(),
            });
        }
        Self::load_or_create(path)
    }

    /// A salt from bytes (tests, embedders with their own key management).
    pub fn from_bytes(bytes: &[u8]) -> Salt {
        Salt(Zeroizing::new(bytes.to_vec()))
    }

    /// `hmac-sha256:<hex>` of `data` under this salt.
    pub fn hmac(&self, data: &[u8]) -> String {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(data);
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Done, and the secret did not exist.
    NotFound,
    /// Refused by the policy.
    Denied,
    /// Refused as bad input.
    Invalid,
    /// The provider failed.
    Error,
    /// A write about to reach the provider (its outcome follows in another
    /// entry; a write whose attempt cannot be logged does not happen).
    Attempt,
    /// No valid token was presented (HTTP 401).
    Unauthenticated,
}

/// One entry, as written.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    /// The caller's name (a token's name, or the OS user for the CLI).
    pub actor: &'a str,
    /// The caller's role (none when no valid token was presented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// `secret.get`, `secret.put`, `entity.encrypt`...
    pub operation: &'a str,
    /// The provider instance.
    pub provider: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// The ids touched, HMAC'd.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The value written, HMAC'd (puts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The error's kind when the outcome is an error (never its text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// An entry stamped now, with no ids, value or error.
    pub fn new(
        actor: &'a str,
        role: Option<Role>,
        operation: &'a str,
        provider: &'a str,
        outcome: Outcome,
    ) -> Self {
        Entry {
            time: now(),
            actor,
            role,
            operation,
            provider,
            outcome,
            ids: Vec::new(),
            value: None,
            error: None,
        }
    }
}

/// When entries of reads reach the disk. Entries of writes are always synced
/// before the write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSync {
    /// Synced before the read answers.
    Always,
    /// Synced within this interval (group-committed with whatever else is due).
    Within(Duration),
}

impl Default for ReadSync {
    fn default() -> Self {
        ReadSync::Within(Duration::from_secs(1))
    }
}

impl std::str::FromStr for ReadSync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "always" => Ok(ReadSync::Always),
            other => humantime::parse_duration(other)
                .ok()
                .filter(|d| !d.is_zero())
                .map(ReadSync::Within)
                .ok_or_else(|| {
                    format!(
                        "audit read sync {other:?}: use `always` or a duration such as `1s` or \
                         `250ms`"
                    )
                }),
        }
    }
}

/// Settings of an [`AuditLog`].
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// When entries of reads reach the disk.
    pub read_sync: ReadSync,
    /// Entries waiting for the writer at most; operations wait beyond that.
    pub queue: usize,
    /// How long a write's entry waits, once written, for the entries of
    /// concurrent writes to share its sync (group commit), when at least
    /// `commit_siblings` other writes are in progress. A lone write never waits.
    pub group_window: Duration,
    /// Other writes in progress ([`AuditLog::writing`]) that make a write's
    /// entry wait `group_window` for them (PostgreSQL's `commit_siblings`).
    pub commit_siblings: usize,
    /// A checkpoint is signed at most this many entries after the last one.
    pub checkpoint_every: u64,
    /// ... and at most this long after an entry no checkpoint covers.
    pub checkpoint_interval: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            read_sync: ReadSync::default(),
            queue: 4096,
            group_window: Duration::from_millis(2),
            commit_siblings: 2,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// How durable an entry must be before [`AuditLog::write`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written to the file (synced within the read interval).
    Written,
    /// Written and synced to the disk.
    Synced,
}

/// An entry waiting for the writer, and who waits for it.
struct Pending {
    json: Vec<u8>,
    durability: Durability,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

enum Job {
    Entry(Pending),
    /// Sync what is written, and sign a checkpoint if one is due.
    Tick,
    /// Rotate the signing key: a hand-over checkpoint, then the new key.
    RotateKey(tokio::sync::oneshot::Sender<Result<PublicKey, String>>),
}

/// The audit log: JSON lines, hash-chained and numbered (every entry carries
/// its `seq` and, as `prev`, the SHA-256 of the line before it), with signed
/// checkpoints of the chain's head kept apart ([`checkpoint`]), so `audit
/// verify` finds any change, insertion, reordering or removal with the public
/// key alone ([`verify()`]). One writer thread per process owns the chain's
/// store: entries queue to it (a bounded queue), it appends each batch under
/// the store's lock (so every process on a data dir makes one chain), syncs
/// once for every operation in the batch (group commit when other writes are in
/// progress, at once for a lone one), reopens the log when it was moved or
/// deleted (logrotate), and answers each entry only once it is written (and
/// synced when its operation needs that).
pub struct AuditLog {
    path: PathBuf,
    describe: String,
    salt: Salt,
    public: PublicKey,
    /// `None` only while dropping.
    jobs: Option<tokio::sync::mpsc::Sender<Job>>,
    syncs: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for AuditLog {
    /// Closes the queue and waits for the writer to sync what it wrote and
    /// sign a last checkpoint.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("store", &self.describe)
            .finish_non_exhaustive()
    }
}

/// A write in progress ([`AuditLog::writing`]).
#[derive(Debug)]
pub struct Writing(Arc<AtomicUsize>);

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path` and the files beside it
    /// ([`AuditFiles::beside`]), with default options.
    pub fn open(path: &Path, salt: Salt) -> Result<AuditLog, AuditError> {
        Self::open_with(&AuditFiles::beside(path), salt, AuditOptions::default())
    }

    /// Opens the chain in `files` and starts its writer thread.
    pub fn open_with(
        files: &AuditFiles,
        salt: Salt,
        options: AuditOptions,
    ) -> Result<AuditLog, AuditError> {
        let store = FileStore::open(files).map_err(|source| AuditError::Io {
            path: files.head.display().to_string(),
            source,
        })?;
        Self::open_store(&files.log, &files.key, Box::new(store), salt, options)
    }

    /// Opens a chain in `store`, signing checkpoints with the key at `key`
    /// (created when the chain has none yet), and starts the writer thread.
    /// Returns once the chain's first checkpoint is signed.
    pub fn open_store(
        log: &Path,
        key: &Path,
        store: Box<dyn ChainStore>,
        salt: Salt,
        options: AuditOptions,
    ) -> Result<AuditLog, AuditError> {
        let describe = store.describe();
        let io = |source| AuditError::Io {
            path: describe.clone(),
            source,
        };
        let key = key.to_path_buf();
        let syncs = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (syncs2, in_flight2) = (syncs.clone(), in_flight.clone());
        let (jobs, queue) = tokio::sync::mpsc::channel(options.queue.max(1));
        let tick = match options.read_sync {
            ReadSync::Within(interval) => interval.min(options.checkpoint_interval),
            ReadSync::Always => options.checkpoint_interval,
        }
        .max(Duration::from_millis(10));
        // A weak sender: the ticks do not keep the queue open once the log is
        // dropped.
        let ticks = jobs.downgrade();
        std::thread::Builder::new()
            .name("audit-tick".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    match ticks.upgrade() {
                        Some(sender) => {
                            let _ = sender.try_send(Job::Tick);
                        }
                        None => break,
                    }
                }
            })
            .map_err(io)?;
        let mut rt = tokio::runtime::Builder::new_current_thread();
        rt.enable_time();
        if store.needs_io() {
            rt.enable_io();
        }
        let rt = rt.build().map_err(io)?;
        let (started, start) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut writer =
                        match Writer::start(store, &key, options, syncs2, in_flight2).await {
                            Ok(writer) => writer,
                            Err(e) => {
                                let _ = started.send(Err(e));
                                return;
                            }
                        };
                    let _ = started.send(Ok(writer.key.key().public().clone()));
                    writer.serve(queue).await;
                });
            })
            .map_err(io)?;
        let public = match start.recv() {
            Ok(Ok(public)) => public,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io(std::io::Error::other("the audit writer stopped")));
            }
        };
        Ok(AuditLog {
            path: log.to_path_buf(),
            describe,
            salt,
            public,
            jobs: Some(jobs),
            syncs,
            in_flight,
            writer: Some(thread),
        })
    }

    /// The salt, to HMAC ids and values.
    pub fn salt(&self) -> &Salt {
        &self.salt
    }

    /// `ids` as entries carry them: HMACs under the salt.
    pub fn hmac_ids(&self, ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| self.salt.hmac(id.as_bytes())).collect()
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key of the key this process signed checkpoints with when it
    /// opened the log.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// How many times the writer synced the log (concurrent operations share
    /// one sync).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Marks a write in progress while the guard lives: with enough of them, a
    /// write's entry waits a little for theirs to share its sync.
    pub fn writing(&self) -> Writing {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Writing(self.in_flight.clone())
    }

    fn failed(&self, message: String) -> AuditError {
        AuditError::Io {
            path: self.describe.clone(),
            source: std::io::Error::other(message),
        }
    }

    fn jobs(&self) -> Result<&tokio::sync::mpsc::Sender<Job>, AuditError> {
        self.jobs
            .as_ref()
            .ok_or_else(|| self.failed("the audit log is closing".into()))
    }

    /// Appends one entry and returns once it is written, and synced when
    /// `durability` says so. An operation whose entry cannot be written must
    /// fail (and one that writes must not start).
    pub async fn write(&self, entry: &Entry<'_>, durability: Durability) -> Result<(), AuditError> {
        let json = serde_json::to_vec(entry).map_err(|e| self.failed(e.to_string()))?;
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs()?
            .send(Job::Entry(Pending {
                json,
                durability,
                done,
            }))
            .await
            .map_err(|_| self.failed("the audit writer stopped".into()))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(self.failed(message)),
            Err(_) => Err(self.failed("the audit writer stopped".into())),
        }
    }

    /// Rotates the checkpoint signing key: a new key is staged beside the
    /// current one, a checkpoint signed by the current key names it, and it
    /// takes the current one's place. Every writer on the chain signs with the
    /// new key from then on; verifiers given the old public key follow the
    /// hand-over. Returns the new public key.
    pub async fn rotate_key(&self) -> Result<PublicKey, AuditError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs()?
            .send(Job::RotateKey(done))
            .await
            .map_err(|_| self.failed("the audit writer stopped".into()))?;
        match answer.await {
            Ok(Ok(key)) => Ok(key),
            Ok(Err(message)) => Err(self.failed(message)),
            Err(_) => Err(self.failed("the audit writer stopped".into())),
        }
    }
}

/// The writer thread's state.
struct Writer {
    store: Box<dyn ChainStore>,
    key: KeySlot,
    options: AuditOptions,
    syncs: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    /// Written since the last sync.
    dirty: bool,
}

/// Most entries written in one batch.
const BATCH: usize = 1024;

/// Whether a commit must sign a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    /// When the entries or the time since the last one say so.
    IfDue,
    /// Whenever an entry is not covered (the log is closing).
    IfUnsigned,
}

impl Writer {
    /// Opens the signing key, reads the chain's head and, on a chain with no
    /// checkpoint yet, signs its first one (so a log emptied later is found).
    async fn start(
        mut store: Box<dyn ChainStore>,
        key: &Path,
        options: AuditOptions,
        syncs: Arc<AtomicU64>,
        in_flight: Arc<AtomicUsize>,
    ) -> Result<Writer, AuditError> {
        let has_checkpoints = store.has_checkpoints().await.map_err(|e| AuditError::Io {
            path: store.describe(),
            source: e,
        })?;
        let key = KeySlot::open(key, has_checkpoints)?;
        let mut writer = Writer {
            store,
            key,
            options,
            syncs,
            in_flight,
            dirty: false,
        };
        writer
            .append(&[], Sign::IfDue, None)
            .await
            .map_err(|e| writer.error(e))?;
        Ok(writer)
    }

    fn error(&self, e: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.store.describe(),
            source: e,
        }
    }

    /// Appends `jsons` as entries after the chain's head, under the store's
    /// lock, signing a checkpoint when due (or handing over to `next`).
    async fn append(
        &mut self,
        jsons: &[&[u8]],
        sign: Sign,
        next: Option<&SigningKey>,
    ) -> std::io::Result<()> {
        loop {
            let head = self.store.begin().await?;
            let result = self.append_at(head, jsons, sign, next).await;
            self.store.finish().await;
            match result {
                Ok(true) => return Ok(()),
                // Another writer moved the head: number the entries again.
                Ok(false) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn append_at(
        &mut self,
        mut head: Head,
        jsons: &[&[u8]],
        sign: Sign,
        next: Option<&SigningKey>,
    ) -> std::io::Result<bool> {
        let mut lines = Vec::with_capacity(jsons.len());
        for json in jsons {
            let line = chain::link(json, head.seq + 1, &head.hash);
            head.hash = chain::hash(&line);
            head.seq += 1;
            lines.push(line);
        }
        let due = match &head.checkpoint {
            None => true,
            Some(cp) => {
                let unsigned = head.seq > cp.seq;
                let age = now_ms().saturating_sub(cp.time_ms);
                unsigned
                    && (sign == Sign::IfUnsigned
                        || head.seq - cp.seq >= self.options.checkpoint_every
                        || u128::from(age) >= self.options.checkpoint_interval.as_millis())
            }
        };
        let checkpoint = if due || next.is_some() {
            match self.key.current(&head) {
                Ok(key) => Some(Checkpoint::sign(key, &mut head, next.map(|k| k.public()))),
                Err(e) if next.is_none() => {
                    // The entries are still written (and audited); the chain
                    // goes unsigned until the key is put right.
                    tracing::error!(error = %e, "signing an audit checkpoint");
                    None
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        } else {
            None
        };
        if lines.is_empty() && checkpoint.is_none() {
            return Ok(true);
        }
        let committed = self
            .store
            .commit(&Batch {
                entries: &lines,
                checkpoint: checkpoint.as_deref(),
                head: &head,
            })
            .await?;
        if committed && !lines.is_empty() {
            self.dirty = true;
        }
        if committed && next.is_some() {
            // The hand-over is in the chain: the new key takes the old one's
            // place before another writer can look for it.
            // Should the rename fail, the next checkpoint finishes it from
            // the staged file, which the chain names.
            if let Err(e) = self.key.finish_rotation() {
                tracing::error!(error = %e, "putting the rotated audit signing key in place");
            }
        }
        Ok(committed)
    }

    /// Writes entries as they come. An entry that must reach the disk is
    /// synced at once, unless enough other writes are in progress to share the
    /// sync: then it waits at most `group_window` after the first such entry,
    /// so every operation that arrived meanwhile shares it.
    async fn serve(&mut self, mut queue: tokio::sync::mpsc::Receiver<Job>) {
        let mut waiting: Vec<Pending> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let job = match deadline {
                None => queue.recv().await,
                Some(at) => match tokio::time::timeout_at(at, queue.recv()).await {
                    Ok(job) => job,
                    Err(_) => {
                        self.sync_waiting(&mut waiting).await;
                        deadline = None;
                        continue;
                    }
                },
            };
            let Some(first) = job else {
                break;
            };
            let mut batch = Vec::new();
            let mut tick = false;
            let mut rotations = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Entry(pending) => batch.push(pending),
                    Job::Tick => tick = true,
                    Job::RotateKey(done) => rotations.push(done),
                }
                if batch.len() < BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                let jsons: Vec<&[u8]> = batch.iter().map(|p| p.json.as_slice()).collect();
                if let Err(e) = self.append(&jsons, Sign::IfDue, None).await {
                    let e = e.to_string();
                    for pending in batch.into_iter().chain(waiting.drain(..)) {
                        let _ = pending.done.send(Err(e.clone()));
                    }
                    deadline = None;
                    continue;
                }
            }
            for pending in batch {
                if pending.durability == Durability::Synced
                    || self.options.read_sync == ReadSync::Always
                {
                    waiting.push(pending);
                } else {
                    let _ = pending.done.send(Ok(()));
                }
            }
            for done in rotations {
                let _ = done.send(self.rotate().await.map_err(|e| e.to_string()));
            }
            if tick {
                // Any writer's entries: a process may have closed without
                // signing (killed), and the chain is signed by whoever lives.
                if let Err(e) = self.append(&[], Sign::IfDue, None).await {
                    tracing::error!(error = %e, "signing an audit checkpoint");
                }
                if waiting.is_empty()
                    && let Err(e) = self.sync().await
                {
                    tracing::error!(error = %e, "syncing the audit log");
                }
            }
            if waiting.is_empty() {
                continue;
            }
            let others = self.in_flight.load(Ordering::Relaxed).saturating_sub(1);
            let share = !self.options.group_window.is_zero()
                && waiting.len() < BATCH
                && others >= self.options.commit_siblings.max(1);
            if !share {
                self.sync_waiting(&mut waiting).await;
                deadline = None;
            } else if deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.options.group_window);
            }
        }
        self.sync_waiting(&mut waiting).await;
        // Closing: every entry so far is covered by a checkpoint.
        if let Err(e) = self.append(&[], Sign::IfUnsigned, None).await {
            tracing::error!(error = %e, "signing the audit log's last checkpoint");
        }
        if let Err(e) = self.sync().await {
            tracing::error!(error = %e, "syncing the audit log");
        }
    }

    /// Rotates the signing key (see [`AuditLog::rotate_key`]).
    async fn rotate(&mut self) -> Result<PublicKey, AuditError> {
        let new = self.key.stage_rotation()?;
        let public = new.public().clone();
        if let Err(e) = self.append(&[], Sign::IfDue, Some(&new)).await {
            self.key.abandon_rotation();
            return Err(self.error(e));
        }
        Ok(public)
    }

    /// Syncs, then answers every entry that waited for it.
    async fn sync_waiting(&mut self, waiting: &mut Vec<Pending>) {
        if waiting.is_empty() {
            return;
        }
        let result = self.sync().await.map_err(|e| e.to_string());
        for pending in waiting.drain(..) {
            let _ = pending.done.send(result.clone());
        }
    }

    /// Makes what was appended since the last sync durable.
    async fn sync(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if self.store.sync().await? {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.dirty = false;
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The current time in RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_keyed_by_the_salt() {
        let a = Salt::from_bytes(&[1; 32]);
        let b = Salt::from_bytes(&[2; 32]);
        let id = b"/openmetadata/database/x/password";
        assert!(a.hmac(id).starts_with("hmac-sha256:"));
        assert_eq!(a.hmac(id).len(), "hmac-sha256:".len() + 64);
        assert_eq!(a.hmac(id), a.hmac(id));
        assert_ne!(a.hmac(id), b.hmac(id));
        assert_ne!(a.hmac(id), a.hmac(b"/other"));
    }

    #[test]
    fn the_salt_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.salt");
        let first = Salt::load_or_create(&path).unwrap();
        let again = Salt::load_or_create(&path).unwrap();
        assert_eq!(first.hmac(b"x"), again.hmac(b"x"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "nothex").unwrap();
        let err = Salt::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("not 32 bytes of hex"), "{err}");
    }

    fn entry(op: &str) -> Entry<'_> {
        Entry::new("tester", Some(Role::Admin), op, "p", Outcome::Ok)
    }

    fn salt() -> Salt {
        Salt::from_bytes(&[3; 32])
    }

    fn options(every: u64) -> AuditOptions {
        AuditOptions {
            checkpoint_every: every,
            checkpoint_interval: Duration::from_secs(3600),
            ..AuditOptions::default()
        }
    }

    /// A log of `n` entries `op0`.. with a checkpoint every `every`, closed.
    async fn written(dir: &Path, n: usize, every: u64) -> (AuditFiles, PublicKey) {
        let files = AuditFiles::beside(&dir.join("audit.log"));
        let log = AuditLog::open_with(&files, salt(), options(every)).unwrap();
        for i in 0..n {
            log.write(&entry(&format!("op{i}")), Durability::Written)
                .await
                .unwrap();
        }
        let public = log.public_key().clone();
        drop(log);
        (files, public)
    }

    fn check(files: &AuditFiles, public: &PublicKey, logs: &[PathBuf]) -> Report {
        verify(
            logs,
            &VerifyOptions {
                checkpoints: Some(files.checkpoints.clone()),
                keys: vec![public.clone()],
                from: None,
            },
        )
        .unwrap()
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn put_lines(path: &Path, lines: &[String]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text).unwrap();
    }

    /// The break's line and message, after `tamper` rewrote the log's lines
    /// (the log is restored after).
    fn broken_by(
        files: &AuditFiles,
        public: &PublicKey,
        path: &Path,
        tamper: impl FnOnce(&mut Vec<String>),
    ) -> (usize, String) {
        let original = lines(path);
        let mut changed = original.clone();
        tamper(&mut changed);
        put_lines(path, &changed);
        let report = check(files, public, std::slice::from_ref(&files.log));
        put_lines(path, &original);
        let broken = report.broken.expect("the tampering was found");
        (broken.line, broken.why)
    }

    /// Rewrites every link after the lines were tampered with, as an intruder
    /// who knows the format would: the links alone then check.
    fn relink(lines: &mut [String]) {
        let mut prev = chain::hash(chain::GENESIS);
        for (i, line) in lines.iter_mut().enumerate() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["seq"] = serde_json::json!(i as u64 + 1);
            v["prev"] = serde_json::json!(prev);
            *line = serde_json::to_string(&v).unwrap();
            prev = chain::hash(line.as_bytes());
        }
    }

    #[tokio::test]
    async fn verify_finds_every_kind_of_change_and_removal_in_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (files, public) = written(dir.path(), 12, 5).await;
        let intact = check(&files, &public, std::slice::from_ref(&files.log));
        assert_eq!(intact.broken, None, "{intact:?}");
        assert_eq!((intact.entries, intact.range), (12, Some((1, 12))));
        // Checkpoints at the start, after 5 and 10 entries, and at close.
        assert_eq!(intact.checkpoints, 4, "{intact:?}");
        assert_eq!(intact.proven_through.as_ref().map(|p| p.0), Some(12));
        assert!(intact.unchecked.is_empty(), "{intact:?}");
        let log = files.log.clone();
        let why = |t: &dyn Fn(&mut Vec<String>)| broken_by(&files, &public, &log, t);
        // Changed in the middle: its successor's link breaks.
        let (line, msg) = why(&|l| l[4] = l[4].replace("\"op4\"", "\"op9\""));
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("does not link"), "{msg}");
        // Changed at the very end: only the checkpoint can tell.
        let (_, msg) = why(&|l| l[11] = l[11].replace("\"op11\"", "\"op9\""));
        assert!(msg.contains("is not the entry checkpoint"), "{msg}");
        // Inserted (a copy of another entry).
        let (line, msg) = why(&|l| {
            let copy = l[1].clone();
            l.insert(3, copy);
        });
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("reordered or inserted"), "{msg}");
        // Reordered.
        let (line, msg) = why(&|l| l.swap(6, 7));
        assert_eq!(line, 7, "{msg}");
        assert!(msg.contains("follows entry"), "{msg}");
        // Removed from the middle.
        let (line, msg) = why(&|l| {
            l.remove(5);
        });
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("entries 6 to 6 were removed"), "{msg}");
        // The last entries cut off.
        let (_, msg) = why(&|l| l.truncate(9));
        assert!(
            msg.contains("ends at entry 9") && msg.contains("cut off"),
            "{msg}"
        );
        // The first entries cut off.
        let (line, msg) = why(&|l| {
            l.drain(..3);
        });
        assert_eq!(line, 1, "{msg}");
        assert!(msg.contains("starts at entry 4"), "{msg}");
        // Emptied.
        let (_, msg) = why(&|l| l.clear());
        assert!(msg.contains("has no entries"), "{msg}");
        // An entry removed and every link rebuilt (the hashes are unkeyed):
        // the checkpoints still tell.
        let (_, msg) = why(&|l| {
            l.remove(2);
            relink(l);
        });
        assert!(msg.contains("is not the entry checkpoint"), "{msg}");
    }

    #[tokio::test]
    async fn verify_finds_a_removed_altered_or_foreign_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (files, public) = written(dir.path(), 12, 5).await;
        let cps = files.checkpoints.clone();
        let why = |t: &dyn Fn(&mut Vec<String>)| broken_by(&files, &public, &cps, t);
        let (line, msg) = why(&|l| {
            l.remove(1);
        });
        assert_eq!(line, 2, "{msg}");
        assert!(
            msg.contains("checkpoint 3 comes where checkpoint 2"),
            "{msg}"
        );
        let (_, msg) = why(&|l| l[2] = l[2].replace("\"seq\":10", "\"seq\":9"));
        assert!(msg.contains("signature does not verify"), "{msg}");
        let (line, msg) = why(&|l| l.clear());
        assert_eq!(line, 0);
        assert!(msg.contains("holds no checkpoint"), "{msg}");
        // Another key's checkpoints: named, and refused.
        let other = tempfile::tempdir().unwrap();
        let (_, foreign) = written(other.path(), 1, 5).await;
        let report = check(&files, &foreign, std::slice::from_ref(&files.log));
        let msg = report.broken.unwrap().why;
        assert!(
            msg.contains(&public.to_string()) && msg.contains("not a public key given"),
            "{msg}"
        );
        // Without the checkpoints, verify says what it could not prove.
        let report = verify(std::slice::from_ref(&files.log), &VerifyOptions::default()).unwrap();
        assert_eq!(report.broken, None);
        assert!(report.unchecked[0].contains("end of the chain is not proven"));
    }

    #[tokio::test]
    async fn rotated_files_are_checked_in_order_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = AuditFiles::beside(&dir.path().join("audit.log"));
        let log = AuditLog::open_with(&files, salt(), options(1000)).unwrap();
        let rotated = |n: u32| dir.path().join(format!("audit.log.{n}"));
        for (round, name) in [(0, rotated(2)), (1, rotated(1))] {
            for i in 0..3 {
                log.write(&entry(&format!("r{round}-{i}")), Durability::Written)
                    .await
                    .unwrap();
            }
            std::fs::rename(&files.log, &name).unwrap();
        }
        log.write(&entry("now"), Durability::Synced).await.unwrap();
        let public = log.public_key().clone();
        drop(log);
        let all = [rotated(2), rotated(1), files.log.clone()];
        let report = check(&files, &public, &all);
        assert_eq!((report.broken, report.entries), (None, 7));
        // Out of order: says which comes first.
        let report = check(
            &files,
            &public,
            &[rotated(1), rotated(2), files.log.clone()],
        );
        let msg = report.broken.unwrap().why;
        assert!(
            msg.contains(&format!("give {} before", rotated(2).display())),
            "{msg}"
        );
        // A file missing from the middle.
        let report = check(&files, &public, &[rotated(2), files.log.clone()]);
        let msg = report.broken.unwrap().why;
        assert!(msg.contains("entries 4 to 6 are missing"), "{msg}");
        // The oldest rotated away on purpose: `--from` says where to start.
        let report = check(&files, &public, &[rotated(1), files.log.clone()]);
        assert!(report.broken.unwrap().why.contains("--from 4"));
        let report = verify(
            &[rotated(1), files.log.clone()],
            &VerifyOptions {
                checkpoints: Some(files.checkpoints.clone()),
                keys: vec![public],
                from: Some(4),
            },
        )
        .unwrap();
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.range, Some((4, 7)));
        assert!(
            report.unchecked[0].contains("entries before 4"),
            "{report:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_and_a_key_rotation_make_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let files = AuditFiles::beside(&dir.path().join("audit.log"));
        let a = Arc::new(AuditLog::open_with(&files, salt(), options(7)).unwrap());
        let b = Arc::new(AuditLog::open_with(&files, salt(), options(7)).unwrap());
        let first = a.public_key().clone();
        assert_eq!(&first, b.public_key(), "both sign with the data dir's key");
        let writes = |log: Arc<AuditLog>, name: &'static str| async move {
            for i in 0..40 {
                let d = if i % 3 == 0 {
                    Durability::Synced
                } else {
                    Durability::Written
                };
                log.write(&entry(&format!("{name}{i}")), d).await.unwrap();
            }
        };
        let (ta, tb) = (
            tokio::spawn(writes(a.clone(), "a")),
            tokio::spawn(writes(b.clone(), "b")),
        );
        let second = a.rotate_key().await.unwrap();
        assert_ne!(second, first);
        ta.await.unwrap();
        tb.await.unwrap();
        // B learns of the rotation from the chain and signs with the new key.
        for i in 0..10 {
            b.write(&entry(&format!("after{i}")), Durability::Written)
                .await
                .unwrap();
        }
        drop((a, b));
        let report = check(&files, &first, std::slice::from_ref(&files.log));
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.entries, 90);
        assert_eq!(report.signers, vec![first.to_string(), second.to_string()]);
        assert_eq!(report.proven_through.map(|p| p.0), Some(90));
        // The old key signing after the hand-over is refused.
        let old = std::fs::read_to_string(&files.key).unwrap();
        assert!(old.contains("PRIVATE KEY"));
        let text = lines(&files.checkpoints);
        let last: Checkpoint = serde_json::from_str(text.last().unwrap()).unwrap();
        assert_eq!(last.key, second.to_string());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_waits_for_nobody_and_concurrent_ones_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let files = AuditFiles::beside(&dir.path().join("audit.log"));
        let lone = AuditOptions {
            group_window: Duration::from_secs(3600),
            ..options(1000)
        };
        let log = Arc::new(AuditLog::open_with(&files, salt(), lone).unwrap());
        let guard = log.writing();
        // An hour's window: only a write that does not wait finishes.
        tokio::time::timeout(
            Duration::from_secs(60),
            log.write(&entry("alone"), Durability::Synced),
        )
        .await
        .expect("a lone write does not wait for the group window")
        .unwrap();
        drop(guard);
        let syncs = log.syncs();
        assert!(syncs >= 1);
        drop(log);
        let log = Arc::new(
            AuditLog::open_with(
                &files,
                salt(),
                AuditOptions {
                    group_window: Duration::from_millis(20),
                    ..options(1000)
                },
            )
            .unwrap(),
        );
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    let _writing = log.writing();
                    log.write(&entry("w"), Durability::Synced).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(log.syncs() < 200, "{} syncs for 200 entries", log.syncs());
        let public = log.public_key().clone();
        drop(log);
        let report = check(&files, &public, std::slice::from_ref(&files.log));
        assert_eq!((report.broken, report.entries), (None, 201));
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_write_and_the_chain_goes_on_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = AuditFiles::beside(&dir.path().join("audit.log"));
        files.log = PathBuf::from("/dev/full");
        let log = AuditLog::open_with(&files, salt(), options(1000)).unwrap();
        let err = log
            .write(&entry("x"), Durability::Written)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        drop(log);
        // A legacy log (entries before numbering) goes on as one chain.
        let files = AuditFiles::beside(&dir.path().join("old.log"));
        std::fs::write(
            &files.log,
            "{\"op\":\"old1\",\"prev\":\"hmac-sha256:00\"}\n{\"op\":\"old2\",\"prev\":\"x\"}\n",
        )
        .unwrap();
        let log = AuditLog::open_with(&files, salt(), options(1000)).unwrap();
        log.write(&entry("new"), Durability::Synced).await.unwrap();
        let public = log.public_key().clone();
        drop(log);
        let report = check(&files, &public, std::slice::from_ref(&files.log));
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!((report.unnumbered, report.entries), (2, 1));
    }

    #[tokio::test]
    async fn a_bad_or_missing_key_and_a_missing_salt_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = written(dir.path(), 2, 5).await;
        std::fs::write(&files.key, "not a key").unwrap();
        let err = AuditLog::open_with(&files, salt(), options(5)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&files.key.display().to_string()), "{msg}");
        assert!(msg.contains("PRIVATE KEY"), "{msg}");
        std::fs::remove_file(&files.key).unwrap();
        let err = AuditLog::open_with(&files, salt(), options(5)).unwrap_err();
        assert!(
            err.to_string()
                .contains("is missing but the chain has checkpoints")
        );
        assert!(!files.key.exists(), "no fresh key was made");
        let (salt, path) = (dir.path().join("audit.salt"), dir.path().join("x.log"));
        Salt::for_log(&salt, &path).unwrap();
        std::fs::write(&path, "{}\n").unwrap();
        Salt::for_log(&salt, &path).unwrap();
        std::fs::remove_file(&salt).unwrap();
        let err = Salt::for_log(&salt, &path).unwrap_err();
        assert!(
            err.to_string().contains("is missing but the audit log"),
            "{err}"
        );
        assert!(!salt.exists(), "no fresh salt was made");
    }
}
