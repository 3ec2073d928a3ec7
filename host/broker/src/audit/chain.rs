//! The chain's shape, shared by every store: entries numbered from 1, each
//! carrying the SHA-256 of the line before it, and the head (the last entry's
//! number and hash, and the last checkpoint) that writers read and advance
//! under a lock or a compare-and-set, so any number of writers make one chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the first entry links to: no entry came before it.
pub const GENESIS: &[u8] = b"secret-broker audit log: start";

/// `sha256:<hex>` of `data`.
pub fn hash(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Where the chain stands: what the next entry links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last entry's number (0: no entry yet, or only entries written
    /// before entries were numbered).
    pub seq: u64,
    /// The hash of the last entry's line ([`GENESIS`]'s when there is none).
    pub hash: String,
    /// The last checkpoint, if one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointHead>,
    /// How big the files were when this head was written (the file store
    /// checks it, to notice a head left behind by a crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesAt>,
}

impl Head {
    /// The head of a chain with no entries.
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: hash(GENESIS),
            checkpoint: None,
            files: None,
        }
    }
}

/// The last checkpoint, as the next one needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHead {
    /// Its number, from 1.
    pub n: u64,
    /// The entry it signed up to.
    pub seq: u64,
    /// Its signature (base64), which the next checkpoint names.
    pub sig: String,
    /// When it was signed, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The key that signed it.
    pub key: String,
    /// The key it handed over to (a rotation): only that key signs next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl CheckpointHead {
    /// The key that must sign the next checkpoint.
    pub fn signer(&self) -> &str {
        self.next.as_deref().unwrap_or(&self.key)
    }
}

/// Where the log and checkpoint files stood (device, inode, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesAt {
    /// The log's device and inode.
    pub log: (u64, u64),
    /// The log's length.
    pub log_len: u64,
    /// The checkpoint file's length.
    pub checkpoints_len: u64,
}

/// What one commit appends: entries (whole lines without their newline), then
/// perhaps a checkpoint line, moving the head to `head`.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The entries' lines.
    pub entries: &'a [Vec<u8>],
    /// A checkpoint's line.
    pub checkpoint: Option<&'a [u8]>,
    /// The head after them.
    pub head: &'a Head,
}

/// Where a chain lives: a file beside a lock ([`super::FileStore`]), or rows
/// of a shared database. Writers call `begin`, `commit` once, then `finish`,
/// whatever happened.
#[async_trait::async_trait]
pub trait ChainStore: Send {
    /// Takes the chain for this writer (a lock, where the store has one) and
    /// reads its head.
    async fn begin(&mut self) -> std::io::Result<Head>;
    /// Appends the batch. `false`: another writer moved the head since `begin`
    /// and nothing was written (the caller begins again).
    async fn commit(&mut self, batch: &Batch<'_>) -> std::io::Result<bool>;
    /// Gives the chain back.
    async fn finish(&mut self);
    /// Makes every committed entry durable; `true` if that took a sync.
    async fn sync(&mut self) -> std::io::Result<bool>;
    /// Whether the store does network I/O on the writer's runtime (a database):
    /// the runtime then has an I/O driver, which a file store does without.
    fn needs_io(&self) -> bool {
        false
    }
    /// What the store is, for messages (a path, a database URL without password).
    fn describe(&self) -> String;
    /// Whether the chain already has checkpoints (a missing signing key is then
    /// an error, never a fresh key).
    async fn has_checkpoints(&mut self) -> std::io::Result<bool>;
}

/// `json` (an object) with `"seq":<seq>,"prev":"<prev>"` added as its last
/// members.
pub fn link(json: &[u8], seq: u64, prev: &str) -> Vec<u8> {
    let body = json.strip_suffix(b"}").unwrap_or(json);
    let mut line = Vec::with_capacity(json.len() + prev.len() + 32);
    line.extend_from_slice(body);
    if body.len() > 1 {
        line.push(b',');
    }
    line.extend_from_slice(format!("\"seq\":{seq},\"prev\":\"{prev}\"}}").as_bytes());
    line
}

/// The `seq` and `prev` of an entry's line, if it is a whole entry.
pub fn read_link(line: &[u8]) -> Option<(Option<u64>, Option<String>)> {
    #[derive(Deserialize)]
    struct Link {
        seq: Option<u64>,
        prev: Option<String>,
    }
    serde_json::from_slice::<Link>(line)
        .ok()
        .map(|l| (l.seq, l.prev))
}

/// The head after `line`, the last whole entry of a log.
pub fn head_after(line: &[u8]) -> (u64, String) {
    let seq = read_link(line).and_then(|(seq, _)| seq).unwrap_or(0);
    (seq, hash(line))
}
