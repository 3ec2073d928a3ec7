//! The audit chain in the shared database: with PostgreSQL or MariaDB as record
//! store, every broker process on it (any number of hosts) appends to one chain
//! of rows, so replicas make one audit log. Rows live in the namespace
//! `broker/audit` (providers' are `provider/<instance>`): `e/<seq>` each entry's
//! line, `c/<n>` each checkpoint's line, `head` where the chain stands. A commit
//! writes the head (compare-and-set on its version: the row lock orders the
//! writers), the entries and the checkpoint in one transaction; a writer that
//! lost the race numbers its entries again. Entries hold no id or value in
//! clear, as in the file.

use std::path::{Path, PathBuf};

use secret_broker::audit::chain::{Batch, ChainStore, Head};
use secret_broker_record_store::{Condition, RecordStore, StoreError, Write, redact_url};

/// The namespace of the audit chain's rows.
pub const NAMESPACE: &str = "broker/audit";

fn entry_key(seq: u64) -> String {
    format!("e/{seq:020}")
}

fn checkpoint_key(n: u64) -> String {
    format!("c/{n:020}")
}

/// The chain in a record store's rows.
#[derive(Debug)]
pub struct RecordChain {
    url: String,
    /// Connected in the audit writer's own runtime, at the first use.
    store: Option<RecordStore>,
    /// Processes on this machine take turns on this lock before the row lock,
    /// so they queue here rather than retry.
    lock: std::fs::File,
    /// The head row's version read by `begin` (0: none yet).
    version: u64,
    /// A file that also gets each entry this process commits (`[audit]
    /// copy_to_file`), and whether it holds lines not yet synced.
    copy: Option<(PathBuf, bool)>,
}

impl RecordChain {
    /// The chain in the database at `url`; `lock` is a file in the data dir.
    pub fn new(url: &str, lock: &Path) -> std::io::Result<RecordChain> {
        drop(secret_broker_runtime::fs::open_private(
            lock,
            secret_broker_runtime::fs::Mode::Append,
        )?);
        Ok(RecordChain {
            url: url.to_owned(),
            store: None,
            lock: std::fs::OpenOptions::new().read(true).open(lock)?,
            version: 0,
            copy: None,
        })
    }

    /// Also appends each entry this process commits to `file` (a copy for a
    /// log shipper: the chain in the database is what `audit verify` proves,
    /// and the copy holds only this process's entries). The file is opened by
    /// its path for every batch, so logrotate's moves are followed. A failure
    /// to write the copy is logged; the entry is in the chain already.
    pub fn with_copy(mut self, file: &Path) -> RecordChain {
        self.copy = Some((file.to_path_buf(), false));
        self
    }

    fn write_copy(&mut self, entries: &[Vec<u8>]) {
        let Some((path, dirty)) = &mut self.copy else {
            return;
        };
        let mut text = Vec::with_capacity(entries.iter().map(|e| e.len() + 1).sum());
        for line in entries {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        let written =
            secret_broker_runtime::fs::open_private(path, secret_broker_runtime::fs::Mode::Append)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &text));
        match written {
            Ok(()) => *dirty = true,
            Err(e) => tracing::warn!(
                file = %path.display(),
                error = %e,
                "the audit entries committed to the database could not be copied to the file"
            ),
        }
    }

    async fn store(&mut self) -> std::io::Result<&RecordStore> {
        if self.store.is_none() {
            self.store = Some(RecordStore::connect(&self.url).await.map_err(io)?);
        }
        self.store
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the audit store is not connected"))
    }

    async fn read_head(&mut self) -> std::io::Result<Head> {
        let row = self
            .store()
            .await?
            .get(NAMESPACE, "head")
            .await
            .map_err(io)?;
        match row {
            None => {
                self.version = 0;
                Ok(Head::genesis())
            }
            Some(row) => {
                self.version = row.version;
                serde_json::from_slice(&row.value).map_err(|e| {
                    std::io::Error::other(format!(
                        "the audit chain's head row in {} is not a head ({e}): it was edited",
                        redact_url(&self.url)
                    ))
                })
            }
        }
    }
}

fn io(e: StoreError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[async_trait::async_trait]
impl ChainStore for RecordChain {
    async fn begin(&mut self) -> std::io::Result<Head> {
        // Waited for without blocking the writer's runtime: a transaction this
        // writer lost (a conflict) is rolled back by a task on that runtime, and
        // another process holding this lock may be waiting for that very row
        // (blocking here deadlocked the CLI and a server on one data dir).
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match self.lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        let head = self.read_head().await;
        if head.is_err() {
            let _ = self.lock.unlock();
        }
        head
    }

    async fn commit(&mut self, batch: &Batch<'_>) -> std::io::Result<bool> {
        let head = batch.head;
        let mut writes = Vec::with_capacity(batch.entries.len() + 2);
        // The head first: its row lock orders the writers.
        writes.push(Write {
            key: "head".into(),
            value: Some(serde_json::to_vec(head).map_err(std::io::Error::other)?),
            condition: match self.version {
                0 => Condition::Absent,
                v => Condition::Version(v),
            },
        });
        let first = head.seq + 1 - batch.entries.len() as u64;
        for (i, line) in batch.entries.iter().enumerate() {
            writes.push(Write {
                key: entry_key(first + i as u64),
                value: Some(line.clone()),
                condition: Condition::Absent,
            });
        }
        if let (Some(line), Some(cp)) = (batch.checkpoint, &head.checkpoint) {
            writes.push(Write {
                key: checkpoint_key(cp.n),
                value: Some(line.to_vec()),
                condition: Condition::Absent,
            });
        }
        match self.store().await?.apply(NAMESPACE, &writes).await {
            Ok(_) => {
                self.write_copy(batch.entries);
                Ok(true)
            }
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    async fn finish(&mut self) {
        let _ = self.lock.unlock();
    }

    async fn sync(&mut self) -> std::io::Result<bool> {
        // A commit is durable when the database acknowledges it; the copy is
        // synced along, best effort.
        if let Some((path, dirty)) = &mut self.copy
            && *dirty
        {
            *dirty = false;
            let synced = std::fs::OpenOptions::new()
                .append(true)
                .open(&*path)
                .and_then(|f| f.sync_data());
            if let Err(e) = synced {
                tracing::warn!(file = %path.display(), error = %e, "the audit copy could not be synced");
            }
        }
        Ok(false)
    }

    fn needs_io(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{} ({NAMESPACE})", redact_url(&self.url))
    }

    async fn has_checkpoints(&mut self) -> std::io::Result<bool> {
        let rows = self
            .store()
            .await?
            .scan(NAMESPACE, "c/", None, 1)
            .await
            .map_err(io)?;
        Ok(!rows.is_empty())
    }
}

/// The chain as `audit verify` reads it: the entries' lines in key order as
/// one "file", and the checkpoints' likewise, each named after the database.
pub async fn read_chain(
    store: &RecordStore,
) -> anyhow::Result<((PathBuf, Vec<u8>), (PathBuf, Vec<u8>))> {
    let name =
        |what: &str| PathBuf::from(format!("{} {NAMESPACE} {what}", redact_url(store.url())));
    let mut out = Vec::new();
    for prefix in ["e/", "c/"] {
        let mut text = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = store
                .scan(NAMESPACE, prefix, after.as_deref(), 1000)
                .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = Some(last.key.clone());
            for row in &rows {
                text.extend_from_slice(&row.value);
                text.push(b'\n');
            }
        }
        out.push(text);
    }
    let checkpoints = out.pop().unwrap_or_default();
    let entries = out.pop().unwrap_or_default();
    Ok((
        (name("entries"), entries),
        (name("checkpoints"), checkpoints),
    ))
}
