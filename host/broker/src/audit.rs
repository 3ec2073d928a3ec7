//! The audit log: one JSON line per secret operation (who, role, operation,
//! provider, outcome, time), appended to a file opened append-only. Secret ids and
//! values never appear in clear: they are written as `hmac-sha256:<hex>` under a
//! per-deployment salt, as Vault's audit devices do, so an operator who knows an id
//! can find its entries (`secret-broker audit hmac ID`) and nobody can read the ids
//! or values back out of the log.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use secret_broker_runtime::fs::{Mode, open_private, write_private};

use crate::policy::Role;

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
    /// concurrent writes to share its sync (group commit): fewer syncs, a little
    /// more latency. Zero syncs each batch at once.
    pub group_window: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            read_sync: ReadSync::default(),
            queue: 4096,
            group_window: Duration::from_millis(2),
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

/// The `prev` of the first entry of a log: no entry came before it.
const GENESIS: &[u8] = b"secret-broker audit log: start";

/// An entry waiting for the writer, and who waits for it.
struct Pending {
    json: Vec<u8>,
    durability: Durability,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

enum Job {
    Entry(Pending),
    /// Sync what is written (the read interval elapsed).
    Tick,
}

/// An append-only JSON-lines audit file, hash-chained: every entry carries, as
/// `prev`, the salted HMAC of the line before it, so a changed, removed or
/// inserted line breaks the chain ([`verify`]). One writer thread owns the file:
/// entries queue to it (a bounded queue), it writes each batch with one write
/// and one sync shared by every operation in the batch (group commit), reopens
/// the path when the file was moved or deleted (logrotate), and answers each
/// entry only once it is written (and synced when its operation needs that).
pub struct AuditLog {
    path: PathBuf,
    salt: Salt,
    /// `None` only while dropping.
    jobs: Option<tokio::sync::mpsc::Sender<Job>>,
    syncs: Arc<AtomicU64>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for AuditLog {
    /// Closes the queue and waits for the writer to sync what it wrote.
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
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) `path` for appending, with default options.
    pub fn open(path: &Path, salt: Salt) -> Result<AuditLog, AuditError> {
        Self::open_with(path, salt, AuditOptions::default())
    }

    /// Opens `path` for appending and starts its writer thread.
    pub fn open_with(
        path: &Path,
        salt: Salt,
        options: AuditOptions,
    ) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut writer = Writer {
            path: path.to_path_buf(),
            file: None,
            prev: String::new(),
            salt: salt.clone(),
            read_sync: options.read_sync,
            window: options.group_window,
            dirty: false,
            syncs: Arc::new(AtomicU64::new(0)),
        };
        writer.reopen().map_err(io)?;
        let syncs = writer.syncs.clone();
        let (jobs, queue) = tokio::sync::mpsc::channel(options.queue.max(1));
        if let ReadSync::Within(interval) = options.read_sync {
            // A weak sender: the ticks do not keep the queue open once the log
            // is dropped.
            let ticks = jobs.downgrade();
            std::thread::Builder::new()
                .name("audit-sync".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(interval);
                        match ticks.upgrade() {
                            Some(sender) => {
                                let _ = sender.try_send(Job::Tick);
                            }
                            None => break,
                        }
                    }
                })
                .map_err(io)?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(io)?;
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rt, queue))
            .map_err(io)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            salt,
            jobs: Some(jobs),
            syncs,
            writer: Some(writer),
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

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the writer synced the file (concurrent operations share
    /// one sync).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Appends one entry and returns once it is written, and synced when
    /// `durability` says so. An operation whose entry cannot be written must
    /// fail (and one that writes must not start).
    pub async fn write(&self, entry: &Entry<'_>, durability: Durability) -> Result<(), AuditError> {
        let failed = |message: String| AuditError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(message),
        };
        let json = serde_json::to_vec(entry).map_err(|e| failed(e.to_string()))?;
        let (done, answer) = tokio::sync::oneshot::channel();
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| failed("the audit log is closing".into()))?;
        jobs.send(Job::Entry(Pending {
            json,
            durability,
            done,
        }))
        .await
        .map_err(|_| failed("the audit writer stopped".into()))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(failed(message)),
            Err(_) => Err(failed("the audit writer stopped".into())),
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    /// The open file, with the device and inode it had when opened.
    file: Option<(std::fs::File, (u64, u64))>,
    /// `prev` for the next entry.
    prev: String,
    salt: Salt,
    read_sync: ReadSync,
    /// How long an entry that must reach the disk waits for others to share
    /// its sync.
    window: Duration,
    /// Written since the last sync.
    dirty: bool,
    syncs: Arc<AtomicU64>,
}

/// Most entries written in one batch.
const BATCH: usize = 1024;

impl Writer {
    /// Runs on the writer thread, on its own single-threaded runtime (for the
    /// group-commit timer), until the log is dropped.
    fn run(mut self, rt: tokio::runtime::Runtime, mut queue: tokio::sync::mpsc::Receiver<Job>) {
        rt.block_on(self.serve(&mut queue));
        // The log was dropped: what is written reaches the disk.
        let _ = self.sync();
    }

    /// Writes entries as they come; an entry that must reach the disk waits for
    /// the next sync, which comes at most `window` after the first such entry
    /// written, so every operation that arrived meanwhile shares it.
    async fn serve(&mut self, queue: &mut tokio::sync::mpsc::Receiver<Job>) {
        let mut waiting: Vec<Pending> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let job = match deadline {
                None => queue.recv().await,
                Some(at) => match tokio::time::timeout_at(at, queue.recv()).await {
                    Ok(job) => job,
                    Err(_) => {
                        self.sync_waiting(&mut waiting);
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
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Entry(pending) => batch.push(pending),
                    Job::Tick => tick = true,
                }
                if batch.len() < BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if let Err(e) = self.write_entries(&batch) {
                let e = e.to_string();
                for pending in batch.into_iter().chain(waiting.drain(..)) {
                    let _ = pending.done.send(Err(e.clone()));
                }
                deadline = None;
                continue;
            }
            for pending in batch {
                if pending.durability == Durability::Synced || self.read_sync == ReadSync::Always {
                    waiting.push(pending);
                } else {
                    let _ = pending.done.send(Ok(()));
                }
            }
            if waiting.is_empty() {
                if tick && let Err(e) = self.sync() {
                    tracing::error!(error = %e, "syncing the audit log");
                }
            } else if self.window.is_zero() || waiting.len() >= BATCH {
                self.sync_waiting(&mut waiting);
                deadline = None;
            } else if deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.window);
            }
        }
        self.sync_waiting(&mut waiting);
    }

    /// Syncs, then answers every entry that waited for it.
    fn sync_waiting(&mut self, waiting: &mut Vec<Pending>) {
        if waiting.is_empty() {
            return;
        }
        let result = self.sync().map_err(|e| e.to_string());
        for pending in waiting.drain(..) {
            let _ = pending.done.send(result.clone());
        }
    }

    /// Syncs what was written since the last sync.
    fn sync(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let result = match &self.file {
            Some((file, _)) => file.sync_data(),
            None => Err(closed()),
        };
        match result {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                self.dirty = false;
                Ok(())
            }
            Err(e) => {
                // Start again from what the file holds.
                self.file = None;
                Err(e)
            }
        }
    }

    /// Appends the batch's entries, chained, with one write.
    fn write_entries(&mut self, batch: &[Pending]) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.try_write_entries(batch);
        if result.is_err() {
            // Start again from what the file holds: a torn line is closed and
            // the chain continues from the last whole entry.
            self.file = None;
        }
        result
    }

    fn try_write_entries(&mut self, batch: &[Pending]) -> std::io::Result<()> {
        self.ensure_open()?;
        let mut buf = Vec::with_capacity(batch.iter().map(|p| p.json.len() + 90).sum());
        let mut prev = self.prev.clone();
        for pending in batch {
            let line = chain(&pending.json, &prev);
            prev = self.salt.hmac(&line);
            buf.extend_from_slice(&line);
            buf.push(b'\n');
        }
        let (file, _) = self.file.as_mut().ok_or_else(closed)?;
        file.write_all(&buf)?;
        self.prev = prev;
        self.dirty = true;
        Ok(())
    }

    /// Reopens the path when the open file is no longer there (moved or
    /// deleted by log rotation, or never opened).
    fn ensure_open(&mut self) -> std::io::Result<()> {
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        match &self.file {
            Some((_, id)) if Some(*id) == current => Ok(()),
            _ => self.reopen(),
        }
    }

    /// Opens the path for appending and reads where the chain stands: the last
    /// whole entry's HMAC, or the start of the chain in an empty new file that
    /// follows a rotated one (its first entry links to the rotated file's last).
    fn reopen(&mut self) -> std::io::Result<()> {
        if self.dirty
            && let Some((old, _)) = &self.file
        {
            // Entries written to a rotated file reach the disk too.
            old.sync_data()?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
            self.dirty = false;
        }
        let mut file = open_private(&self.path, Mode::Append)?;
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        if meta.is_file() && meta.len() > 0 {
            let (last, whole) = last_line(&self.path, meta.len())?;
            if !whole {
                // A line torn by a crash or a full disk: end it, so the next
                // entry starts a line of its own (`audit verify` reports it).
                file.write_all(b"\n")?;
            }
            match last {
                Some(line) => self.prev = self.salt.hmac(&line),
                None if self.prev.is_empty() => self.prev = self.salt.hmac(GENESIS),
                None => {}
            }
        } else if self.prev.is_empty() {
            self.prev = self.salt.hmac(GENESIS);
        }
        self.file = Some((file, id));
        Ok(())
    }
}

fn closed() -> std::io::Error {
    std::io::Error::other("the audit log is not open")
}

/// `json` (an object) with `"prev":"<prev>"` added as its last member.
fn chain(json: &[u8], prev: &str) -> Vec<u8> {
    let body = json.strip_suffix(b"}").unwrap_or(json);
    let mut line = Vec::with_capacity(json.len() + prev.len() + 10);
    line.extend_from_slice(body);
    if body.len() > 1 {
        line.push(b',');
    }
    line.extend_from_slice(b"\"prev\":\"");
    line.extend_from_slice(prev.as_bytes());
    line.extend_from_slice(b"\"}");
    line
}

/// The last whole entry of the file (a line that parses as a JSON object), and
/// whether the file ends with a newline.
fn last_line(path: &Path, len: u64) -> std::io::Result<(Option<Vec<u8>>, bool)> {
    let mut file = std::fs::File::open(path)?;
    let tail = len.min(256 << 10);
    file.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    file.take(tail).read_to_end(&mut buf)?;
    let whole = buf.last() == Some(&b'\n');
    let last = buf
        .split(|b| *b == b'\n')
        .rev()
        // The piece after the last newline: empty, or a torn line.
        .skip(1)
        .find(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
        .map(<[u8]>::to_vec);
    Ok((last, whole))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries whose link checked.
    pub entries: usize,
    /// Whether the first file starts the chain (else it follows a rotated file
    /// not given, and its first link could not be checked).
    pub from_start: bool,
    /// The first broken or missing link: file, line (from 1), and what is wrong.
    pub broken: Option<(PathBuf, usize, String)>,
}

/// Checks the chain through `files`, oldest first (rotated files, then the
/// current one): every line must be an entry whose `prev` is the HMAC of the
/// line before it, across file boundaries too.
pub fn verify(files: &[PathBuf], salt: &Salt) -> Result<Verified, AuditError> {
    let mut out = Verified {
        entries: 0,
        from_start: true,
        broken: None,
    };
    let mut prev: Option<String> = None;
    for path in files {
        let text = std::fs::read(path).map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })?;
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let claimed = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("prev").and_then(|p| p.as_str()).map(str::to_owned));
            let why = match (claimed, &prev) {
                (None, _) => Some("not a whole entry with a `prev` link (torn or edited)"),
                (Some(claimed), Some(prev)) if claimed != *prev => Some(
                    "its `prev` is not the HMAC of the line before: a line before it was \
                     changed, removed or inserted, or this one was",
                ),
                (Some(claimed), None) if claimed != salt.hmac(GENESIS) => {
                    // The first file follows a rotated one not given: its first
                    // link cannot be checked.
                    out.from_start = false;
                    None
                }
                _ => None,
            };
            if let Some(why) = why {
                out.broken = Some((path.clone(), n + 1, why.to_owned()));
                return Ok(out);
            }
            prev = Some(salt.hmac(line));
            out.entries += 1;
        }
    }
    Ok(out)
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

    #[tokio::test]
    async fn the_chain_reveals_a_changed_removed_or_inserted_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let salt = Salt::from_bytes(&[3; 32]);
        let log = AuditLog::open(&path, salt.clone()).unwrap();
        for i in 0..5 {
            log.write(&entry(&format!("op{i}")), Durability::Written)
                .await
                .unwrap();
        }
        drop(log);
        let files = [path.clone()];
        let ok = verify(&files, &salt).unwrap();
        assert_eq!((ok.entries, ok.from_start, ok.broken), (5, true, None));
        // Reopened, the chain continues.
        let log = AuditLog::open(&path, salt.clone()).unwrap();
        log.write(&entry("op5"), Durability::Synced).await.unwrap();
        assert_eq!(verify(&files, &salt).unwrap().entries, 6);
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let check = |lines: Vec<String>| {
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            verify(&files, &salt)
                .unwrap()
                .broken
                .map(|(_, line, _)| line)
        };
        let owned = |v: &[&str]| v.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
        // Changed: the next line's link breaks.
        let mut changed = owned(&lines);
        changed[2] = changed[2].replace("\"op2\"", "\"op9\"");
        assert_eq!(check(changed), Some(4));
        // Removed.
        let mut removed = owned(&lines);
        removed.remove(3);
        assert_eq!(check(removed), Some(4));
        // Inserted (a copy of another line).
        let mut inserted = owned(&lines);
        inserted.insert(2, lines[4].to_owned());
        assert_eq!(check(inserted), Some(3));
        // Under another salt nothing links.
        std::fs::write(&path, text).unwrap();
        let other = verify(&files, &Salt::from_bytes(&[4; 32])).unwrap();
        assert_eq!(other.broken.map(|(_, l, _)| l), Some(2));
    }

    #[tokio::test]
    async fn a_rotated_log_is_reopened_and_the_chain_spans_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let rotated = dir.path().join("audit.log.1");
        let salt = Salt::from_bytes(&[5; 32]);
        let log = AuditLog::open(&path, salt.clone()).unwrap();
        log.write(&entry("before"), Durability::Written)
            .await
            .unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        log.write(&entry("after"), Durability::Written)
            .await
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        log.write(&entry("deleted"), Durability::Synced)
            .await
            .unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("\"deleted\"")
        );
        assert!(
            std::fs::read_to_string(&rotated)
                .unwrap()
                .contains("\"before\"")
        );
        // The current file alone: its first link points into a file not given.
        let alone = verify(std::slice::from_ref(&path), &salt).unwrap();
        assert!(!alone.from_start && alone.broken.is_none());
        // The rotated file then the current one: "after" was lost with the
        // deleted file, and the chain says so.
        let both = verify(&[rotated.clone(), path.clone()], &salt).unwrap();
        assert_eq!(both.broken.map(|(f, l, _)| (f, l)), Some((path.clone(), 1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_durable_entries_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let salt = Salt::from_bytes(&[6; 32]);
        let log = std::sync::Arc::new(AuditLog::open(&path, salt.clone()).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move { log.write(&entry("w"), Durability::Synced).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(log.syncs() < 200, "{} syncs for 200 entries", log.syncs());
        assert_eq!(verify(&[path], &salt).unwrap().entries, 200);
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_write_and_a_missing_salt_is_an_error() {
        let log = AuditLog::open(Path::new("/dev/full"), Salt::from_bytes(&[7; 32])).unwrap();
        let err = log
            .write(&entry("x"), Durability::Written)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let (salt, path) = (dir.path().join("audit.salt"), dir.path().join("audit.log"));
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
