//! Signed checkpoints: every so often the writer signs the chain's head (the
//! last entry's number and hash), the time and the previous checkpoint's
//! signature with an Ed25519 key of its own, and appends that to a file (or
//! rows) apart from the log. Whoever holds the public key can then prove the
//! chain up to the last checkpoint, without the HMAC salt and without being able
//! to sign. A rotation is a checkpoint, signed by the old key, naming the new one.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use secret_broker_runtime::fs::{Mode, open_private};

use super::AuditError;
use super::chain::{CheckpointHead, Head};

/// The files of one audit log: the log, its checkpoints, the head writers
/// share (and lock), and the checkpoint signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFiles {
    /// The log (JSON lines).
    pub log: PathBuf,
    /// The signed checkpoints (JSON lines).
    pub checkpoints: PathBuf,
    /// Where the chain stands; writers lock it around each append.
    pub head: PathBuf,
    /// The Ed25519 signing key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

impl AuditFiles {
    /// The files beside `log`: for `audit.log`, `audit.checkpoints`,
    /// `audit.head` and `audit.signing-key`.
    pub fn beside(log: &Path) -> AuditFiles {
        let stem = log
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "audit".into());
        let near = |suffix: &str| log.with_file_name(format!("{stem}.{suffix}"));
        AuditFiles {
            log: log.to_path_buf(),
            checkpoints: near("checkpoints"),
            head: near("head"),
            key: near("signing-key"),
        }
    }
}

/// An Ed25519 public key, written `ed25519:<base64>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(Vec<u8>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", B64.encode(&self.0))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "not an audit public key: expected `ed25519:` and 32 bytes of base64, as \
                 `secret-broker audit key public` prints ({} characters given)",
                s.trim().len()
            )
        };
        let b64 = s.trim().strip_prefix("ed25519:").ok_or_else(bad)?;
        let bytes = B64.decode(b64).map_err(|_| bad())?;
        if bytes.len() != 32 {
            return Err(bad());
        }
        Ok(PublicKey(bytes))
    }
}

impl PublicKey {
    /// Reads a public key file (`ed25519:<base64>`, as `audit key public` writes).
    pub fn read(path: &Path) -> Result<PublicKey, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })?;
        text.parse().map_err(|why| AuditError::BadKey {
            path: path.display().to_string(),
            why,
        })
    }

    /// Whether `sig` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, sig)
            .is_ok()
    }
}

/// The checkpoint signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key and its PKCS#8 PEM.
    pub fn generate() -> Result<(SigningKey, Zeroizing<String>), AuditError> {
        let failed = || AuditError::BadKey {
            path: "(new key)".into(),
            why: "the system could not generate an Ed25519 key".into(),
        };
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| failed())?;
        let key = Self::from_pkcs8(doc.as_ref()).ok_or_else(failed)?;
        let b64 = Zeroizing::new(B64.encode(doc.as_ref()));
        let mut pem = Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok((key, pem))
    }

    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
            .ok()?;
        let public = PublicKey(pair.public_key().as_ref().to_vec());
        Some(SigningKey { pair, public })
    }

    /// Reads a PKCS#8 PEM key file.
    pub fn read(path: &Path) -> Result<SigningKey, AuditError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })?);
        let bad = |why: &str| AuditError::BadKey {
            path: path.display().to_string(),
            why: why.into(),
        };
        let der = PrivatePkcs8KeyDer::from_pem_slice(&text)
            .map_err(|_| bad("not a PEM `PRIVATE KEY` (PKCS#8)"))?;
        Self::from_pkcs8(der.secret_pkcs8_der()).ok_or_else(|| bad("not an Ed25519 key"))
    }

    /// Writes a new key to `path` (mode 0600, synced), failing if one exists.
    pub fn create(path: &Path) -> Result<SigningKey, AuditError> {
        use std::io::Write as _;
        let (key, pem) = Self::generate()?;
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = open_private(path, Mode::CreateNew).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir);
        }
        Ok(key)
    }

    /// Its public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

/// Syncs a directory so a file created or renamed in it survives a crash
/// (best effort: some file systems refuse).
pub(super) fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// One checkpoint, as its line holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its number, from 1.
    pub n: u64,
    /// The last entry it covers (0: none yet).
    pub seq: u64,
    /// That entry's hash.
    pub head: String,
    /// When it was signed (RFC 3339).
    pub time: String,
    /// The previous checkpoint's signature (empty for the first).
    pub prev: String,
    /// The signer.
    pub key: String,
    /// The key this one hands over to (a rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The signature (base64) of [`Checkpoint::message`].
    pub sig: String,
}

impl Checkpoint {
    /// What is signed: every field but the signature, one per line.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "secret-broker audit checkpoint\nn:{}\nseq:{}\nhead:{}\ntime:{}\nprev:{}\nkey:{}\n\
             next:{}\n",
            self.n,
            self.seq,
            self.head,
            self.time,
            self.prev,
            self.key,
            self.next.as_deref().unwrap_or("")
        )
        .into_bytes()
    }

    /// Signs `head` after the last checkpoint it records, handing over to
    /// `next` if given; returns the line and moves `head`'s checkpoint on.
    pub fn sign(key: &SigningKey, head: &mut Head, next: Option<&PublicKey>) -> Vec<u8> {
        let now = std::time::SystemTime::now();
        let time_ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let last = head.checkpoint.as_ref();
        let mut cp = Checkpoint {
            n: last.map_or(1, |c| c.n + 1),
            seq: head.seq,
            head: head.hash.clone(),
            time: humantime::format_rfc3339_millis(now).to_string(),
            prev: last.map(|c| c.sig.clone()).unwrap_or_default(),
            key: key.public.to_string(),
            next: next.map(ToString::to_string),
            sig: String::new(),
        };
        cp.sig = B64.encode(key.pair.sign(&cp.message()).as_ref());
        head.checkpoint = Some(CheckpointHead {
            n: cp.n,
            seq: cp.seq,
            sig: cp.sig.clone(),
            time_ms,
            key: cp.key.clone(),
            next: cp.next.clone(),
        });
        // A checkpoint serializes whole: its fields are strings and numbers.
        serde_json::to_vec(&cp).unwrap_or_default()
    }

    /// The head a checkpoint's line records (after a crash left the head file
    /// behind).
    pub fn head_of(line: &[u8]) -> Option<CheckpointHead> {
        let cp: Checkpoint = serde_json::from_slice(line).ok()?;
        let time_ms = humantime::parse_rfc3339(&cp.time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        Some(CheckpointHead {
            n: cp.n,
            seq: cp.seq,
            sig: cp.sig,
            time_ms,
            key: cp.key,
            next: cp.next,
        })
    }
}

/// The signing key as the writer holds it: read again when the chain says
/// another key signs now (a rotation by another process).
#[derive(Debug)]
pub struct KeySlot {
    path: PathBuf,
    key: SigningKey,
}

impl KeySlot {
    /// Reads the key, finishing a rotation a crash interrupted, or creates it
    /// when the chain has no checkpoints yet. A missing key beside existing
    /// checkpoints, or an unreadable one, is an error naming the file.
    pub fn open(path: &Path, chain_has_checkpoints: bool) -> Result<KeySlot, AuditError> {
        match SigningKey::read(path) {
            Ok(key) => Ok(KeySlot {
                path: path.to_path_buf(),
                key,
            }),
            Err(AuditError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && !chain_has_checkpoints
                    && !pending(path).exists() =>
            {
                Ok(KeySlot {
                    path: path.to_path_buf(),
                    key: SigningKey::create(path)?,
                })
            }
            Err(AuditError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !pending(path).exists() =>
            {
                Err(AuditError::KeyMissing {
                    path: path.display().to_string(),
                })
            }
            Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                // A rotation renamed nothing yet: the new key is the one.
                Ok(KeySlot {
                    path: path.to_path_buf(),
                    key: SigningKey::read(&pending(path))?,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The key that must sign after `head`'s last checkpoint: this one, or the
    /// file's when another process rotated it (a rotation interrupted before
    /// its rename is finished here).
    pub fn current(&mut self, head: &Head) -> Result<&SigningKey, AuditError> {
        let Some(cp) = &head.checkpoint else {
            return Ok(&self.key);
        };
        let want = cp.signer();
        if self.key.public.to_string() == want {
            return Ok(&self.key);
        }
        // A rotation whose hand-over is in the chain but whose key was not
        // put in place yet (a crash between the two).
        if SigningKey::read(&pending(&self.path)).is_ok_and(|k| k.public.to_string() == want) {
            self.finish_rotation()?;
            return Ok(&self.key);
        }
        let key = SigningKey::read(&self.path)?;
        if key.public.to_string() != want {
            return Err(AuditError::WrongKey {
                path: self.path.display().to_string(),
                want: want.to_owned(),
            });
        }
        self.key = key;
        Ok(&self.key)
    }

    /// Begins a rotation: a new key written beside this one (`<key>.new`).
    /// The writer then signs a hand-over checkpoint with the current key and
    /// [`KeySlot::finish_rotation`] renames it into place.
    pub fn stage_rotation(&self) -> Result<SigningKey, AuditError> {
        let new = pending(&self.path);
        let _ = std::fs::remove_file(&new);
        SigningKey::create(&new)
    }

    /// Ends a rotation whose hand-over checkpoint is written (called while the
    /// chain is still held, so no other writer finds it half done).
    pub fn finish_rotation(&mut self) -> Result<(), AuditError> {
        let new = pending(&self.path);
        let key = SigningKey::read(&new)?;
        std::fs::rename(&new, &self.path).map_err(|source| AuditError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir);
        }
        self.key = key;
        Ok(())
    }

    /// Drops a staged rotation whose hand-over never made it into the chain.
    pub fn abandon_rotation(&self) {
        let _ = std::fs::remove_file(pending(&self.path));
    }
}

/// Where a rotation stages its new key.
fn pending(key: &Path) -> PathBuf {
    let mut name = key.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    key.with_file_name(name)
}
