//! The chain in files: the log, the checkpoint file, and a head file that every
//! writer on the data dir locks (`flock`) around reading where the chain stands,
//! appending, and writing the new head. The CLI and any number of servers on
//! one data dir thus make one chain.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use secret_broker_runtime::fs::{Mode, open_private};

use super::chain::{Batch, ChainStore, FilesAt, Head, head_after};
use super::checkpoint::{AuditFiles, Checkpoint};

/// The chain in [`AuditFiles`].
#[derive(Debug)]
pub struct FileStore {
    files: AuditFiles,
    /// The head file, locked while a writer holds the chain.
    head: File,
    /// The open log with the device and inode it had when opened.
    log: Option<(File, (u64, u64))>,
    /// The checkpoint file.
    checkpoints: Option<File>,
    /// Written since the last sync.
    dirty: bool,
    /// The head file's length when read.
    head_len: usize,
    /// Where the files stood when the head was read, moved on by each write.
    at: FilesAt,
    /// The head this writer wrote last, as bytes and parsed.
    written: Option<(Vec<u8>, Head)>,
}

impl FileStore {
    /// Opens (creating, mode 0600) the head file; the log and the checkpoint
    /// file open at the first [`ChainStore::begin`].
    pub fn open(files: &AuditFiles) -> std::io::Result<FileStore> {
        drop(open_private(&files.head, Mode::Append)?);
        // Read and written at offsets, under the lock.
        let head = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&files.head)?;
        Ok(FileStore {
            files: files.clone(),
            head,
            log: None,
            checkpoints: None,
            dirty: false,
            head_len: 0,
            at: FilesAt {
                log: (0, 0),
                log_len: 0,
                checkpoints_len: 0,
            },
            written: None,
        })
    }

    /// The head as the files have it: the head file's, unless a crash left it
    /// behind the log or the checkpoint file (then their last lines say).
    fn read_head(&mut self) -> std::io::Result<Head> {
        // One read of the whole head (it is small); parsed only when another
        // writer changed it since this one wrote it.
        let mut text = vec![0u8; self.head_len.max(1024) + 1];
        let mut read = 0;
        loop {
            let n = self.head.read_at(&mut text[read..], read as u64)?;
            read += n;
            if n == 0 || read < text.len() {
                break;
            }
            text.resize(text.len() * 2, 0);
        }
        text.truncate(read);
        // Under the lock: what the head is padded to when written back.
        self.head_len = text.len();
        let stored: Option<Head> = match &self.written {
            Some((bytes, head)) if *bytes == text => Some(head.clone()),
            _ => serde_json::from_slice(&text).ok(),
        };
        let (log_id, log_len) = {
            let (file, id) = self.log.as_ref().ok_or_else(closed)?;
            (*id, file.metadata()?.len())
        };
        let cp_len = match &self.checkpoints {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        self.at = FilesAt {
            log: log_id,
            log_len,
            checkpoints_len: cp_len,
        };
        let mut head = stored.clone().unwrap_or_else(Head::genesis);
        let at = stored.as_ref().and_then(|h| h.files);
        let log_moved = at.is_none_or(|at| at.log != log_id || at.log_len != log_len);
        if log_moved && log_len > 0 {
            // The log was written after the head (a crash between the two), or
            // the head is new: the log's last whole entry says where it stands.
            let (last, whole) = last_line(&self.files.log, log_len)?;
            if !whole {
                // A line torn by a crash or a full disk: end it, so the next
                // entry starts a line of its own (`audit verify` reports it).
                let (file, _) = self.log.as_mut().ok_or_else(closed)?;
                file.write_all(b"\n")?;
                self.at.log_len += 1;
            }
            if let Some(line) = last {
                (head.seq, head.hash) = head_after(&line);
            }
        }
        // An empty log after a rotation continues the chain from the head.
        if at.is_none_or(|at| at.checkpoints_len != cp_len) && cp_len > 0 {
            let (last, whole) = last_line(&self.files.checkpoints, cp_len)?;
            if !whole && let Some(f) = self.checkpoints.as_mut() {
                f.write_all(b"\n")?;
                self.at.checkpoints_len += 1;
            }
            if let Some(cp) = last.as_deref().and_then(Checkpoint::head_of) {
                head.checkpoint = Some(cp);
            }
        }
        Ok(head)
    }

    /// Opens the log (again, when it was moved or deleted by log rotation) and
    /// the checkpoint file.
    fn ensure_open(&mut self) -> std::io::Result<()> {
        let current = std::fs::metadata(&self.files.log)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let stale = !matches!(&self.log, Some((_, id)) if Some(*id) == current);
        if stale {
            if self.dirty
                && let Some((old, _)) = &self.log
            {
                // Entries written to a rotated file reach the disk too.
                old.sync_data()?;
                self.dirty = false;
            }
            let file = open_private(&self.files.log, Mode::Append)?;
            let meta = file.metadata()?;
            self.log = Some((file, (meta.dev(), meta.ino())));
        }
        if self.checkpoints.is_none() {
            self.checkpoints = Some(open_private(&self.files.checkpoints, Mode::Append)?);
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        if !batch.entries.is_empty() {
            let size = batch.entries.iter().map(|l| l.len() + 1).sum();
            let mut buf = Vec::with_capacity(size);
            for line in batch.entries {
                buf.extend_from_slice(line);
                buf.push(b'\n');
            }
            let (file, _) = self.log.as_mut().ok_or_else(closed)?;
            file.write_all(&buf)?;
            self.at.log_len += buf.len() as u64;
            self.dirty = true;
        }
        if let Some(line) = batch.checkpoint {
            // What a checkpoint signs is on the disk before the checkpoint is.
            self.sync_log()?;
            let file = self.checkpoints.as_mut().ok_or_else(closed)?;
            let mut buf = line.to_vec();
            buf.push(b'\n');
            file.write_all(&buf)?;
            file.sync_data()?;
            self.at.checkpoints_len += buf.len() as u64;
        }
        let mut head = batch.head.clone();
        head.files = Some(self.at);
        let mut text = serde_json::to_vec(&head).map_err(std::io::Error::other)?;
        // Padded to the file's length, so it is overwritten in place and never
        // cut (no metadata change per append). A crash mid-write leaves a head
        // that does not parse or does not match the files, and is read from them.
        text.resize(self.head_len.max(text.len() + 1) - 1, b' ');
        text.push(b'\n');
        self.head.write_all_at(&text, 0)?;
        self.head_len = text.len();
        self.written = Some((text, head));
        Ok(())
    }

    fn sync_log(&mut self) -> std::io::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        let (file, _) = self.log.as_ref().ok_or_else(closed)?;
        file.sync_data()?;
        self.dirty = false;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl ChainStore for FileStore {
    async fn begin(&mut self) -> std::io::Result<Head> {
        self.head.lock()?;
        let head = self.ensure_open().and_then(|()| self.read_head());
        if head.is_err() {
            self.log = None;
            let _ = self.head.unlock();
        }
        head
    }

    async fn commit(&mut self, batch: &Batch<'_>) -> std::io::Result<bool> {
        let result = self.write_batch(batch);
        if result.is_err() {
            // Start again from what the files hold: a torn line is closed and
            // the chain continues from the last whole entry.
            self.log = None;
            self.checkpoints = None;
        }
        result.map(|()| true)
    }

    async fn finish(&mut self) {
        let _ = self.head.unlock();
    }

    async fn sync(&mut self) -> std::io::Result<bool> {
        let result = self.sync_log();
        if result.is_err() {
            self.log = None;
        }
        result
    }

    fn describe(&self) -> String {
        self.files.log.display().to_string()
    }

    async fn has_checkpoints(&mut self) -> std::io::Result<bool> {
        Ok(std::fs::metadata(&self.files.checkpoints).is_ok_and(|m| m.len() > 0))
    }
}

fn closed() -> std::io::Error {
    std::io::Error::other("the audit log is not open")
}

/// The last whole line of the file (one that parses as a JSON object), and
/// whether the file ends with a newline.
pub(super) fn last_line(path: &Path, len: u64) -> std::io::Result<(Option<Vec<u8>>, bool)> {
    let mut file = File::open(path)?;
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
