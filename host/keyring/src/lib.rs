//! The `keyring` capability: the deployment's master keys and AES-256-GCM
//! envelope encryption ([`Keyring`]), granted to a provider instance as a
//! [`KeyringCtx`] that binds every ciphertext to the instance's namespace.
//!
//! A sealed value is `b"sbk1" | key version (u32 BE) | nonce (12) | ciphertext+tag`.
//! The key version travels with the ciphertext so old values stay readable after a
//! new key is added; the associated data binds the ciphertext to its context.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;
use zeroize::Zeroizing;

use secret_broker_runtime::SecretValue;
use secret_broker_runtime::fs::{Mode, open_private, replace_private, write_private};

mod cap;
pub use cap::{KeyringCtx, KeyringView, add_to_linker};

const MAGIC: &[u8; 4] = b"sbk1";
const HEADER: usize = 4 + 4 + 12;

/// Why sealing or opening failed. Never carries plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The ciphertext names a key version this keyring does not hold.
    #[error("sealed with key version {0}, which this keyring does not hold")]
    UnknownKeyVersion(u32),
    /// Authentication failed: wrong key, tampered ciphertext or wrong context.
    #[error(
        "integrity check failed opening a value sealed with key version {0}: wrong key, \
         corrupted ciphertext, or a ciphertext moved to another secret"
    )]
    Integrity(u32),
    /// Not something `seal` produced.
    #[error("not a sealed value (bad header or too short)")]
    Malformed,
    /// The same version twice in a key file or key list: which key seals is
    /// ambiguous (two rotations at once used to do this).
    #[error(
        "master key version {0} appears twice: keep the entry whose key sealed your values \
         (try each with `secret get`), remove the other"
    )]
    DuplicateVersion(u32),
    /// Other users may read or change the key file.
    #[error(
        "master key file {path} has mode {mode:o}: other users may read or replace the keys; \
         run `chmod 600 {path}` (and consider rotating the keys if others could read them)"
    )]
    LoosePermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A key that is not 32 bytes of standard base64.
    #[error("master key {0}: expected 32 bytes as standard base64")]
    BadKey(String),
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// One key's 32 bytes, wiped when dropped.
pub type KeyBytes = Zeroizing<[u8; 32]>;

type Keys = BTreeMap<u32, KeyBytes>;

/// Master keys by version; the highest version seals, unless an active version
/// is set ([`Keyring::merge`]): then that one seals and newer versions are held
/// only to open (a rotation announces a key before anyone seals with it). Versions
/// can be added to a live keyring ([`Keyring::reload_file`], [`Keyring::merge`])
/// but never removed, so a process keeps reading what another process re-sealed
/// under a newer key.
pub struct Keyring {
    keys: RwLock<Keys>,
    /// The version that seals; 0 means the newest held. Only grows.
    active: AtomicU32,
    /// The key file this keyring was loaded from: a value sealed under a version
    /// it does not hold makes it read the file once more (another process rotated).
    file: Option<PathBuf>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.versions())
            .finish()
    }
}

impl Keyring {
    fn from_keys(keys: Keys) -> Self {
        Keyring {
            keys: RwLock::new(keys),
            active: AtomicU32::new(0),
            file: None,
        }
    }

    fn from_file(path: &Path, keys: Keys) -> Self {
        Keyring {
            keys: RwLock::new(keys),
            active: AtomicU32::new(0),
            file: Some(path.to_path_buf()),
        }
    }

    /// A keyring of the given keys (data keys read from a store) in which
    /// `active` seals. Fails on an empty list, a version twice, or an `active`
    /// version not among them.
    pub fn with_keys(keys: Vec<(u32, KeyBytes)>, active: u32) -> Result<Self, KeyringError> {
        let mut map = BTreeMap::new();
        for (version, key) in keys {
            if map.insert(version, key).is_some() {
                return Err(KeyringError::DuplicateVersion(version));
            }
        }
        if !map.contains_key(&active) {
            return Err(KeyringError::UnknownKeyVersion(active));
        }
        let ring = Keyring::from_keys(map);
        ring.active.store(active, Ordering::SeqCst);
        Ok(ring)
    }

    /// Adds the versions of `keys` this keyring does not hold (returning them),
    /// and makes `active` the sealing version if it is held and newer than the
    /// current one. Versions it holds keep their key: nothing is taken away or
    /// replaced, and the sealing version never goes back.
    pub fn merge(&self, keys: Vec<(u32, KeyBytes)>, active: u32) -> Vec<u32> {
        let mut held = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        for (version, key) in keys {
            if let std::collections::btree_map::Entry::Vacant(slot) = held.entry(version) {
                slot.insert(key);
                added.push(version);
            }
        }
        if held.contains_key(&active) {
            self.active.fetch_max(active, Ordering::SeqCst);
        }
        added
    }

    /// Every key with its version: for wrapping them into a store, or deriving
    /// key-encryption keys from them. Never log or print what this returns.
    pub fn key_material(&self) -> Vec<(u32, KeyBytes)> {
        self.read().iter().map(|(v, k)| (*v, k.clone())).collect()
    }

    fn parse_keys(spec: &str) -> Result<Keys, KeyringError> {
        Ok(Self::parse(spec)?
            .keys
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the versions of the key file at `path` this keyring does not hold yet
    /// (another process rotated); returns them. Versions it holds are kept as
    /// they are, so a changed or truncated file cannot take a key away.
    pub fn reload_file(&self, path: &Path) -> Result<Vec<u32>, KeyringError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeyringError::KeyFile {
                path: path.display().to_string(),
                source,
            }
        })?);
        let fresh = Self::parse_keys(text.trim())?;
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        for (version, key) in fresh {
            if let std::collections::btree_map::Entry::Vacant(slot) = keys.entry(version) {
                slot.insert(key);
                added.push(version);
            }
        }
        Ok(added)
    }

    /// A keyring holding one key as version 1.
    pub fn single(key: [u8; 32]) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, Zeroizing::new(key));
        Keyring::from_keys(keys)
    }

    /// Parses `version:base64` entries (or one bare base64 key, version 1),
    /// separated by commas or newlines (the key file has one per line).
    pub fn parse(spec: &str) -> Result<Self, KeyringError> {
        let mut keys = BTreeMap::new();
        for (i, entry) in spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (version, b64) = match entry.split_once(':') {
                // `v1:KEY` is read as `1:KEY`.
                Some((v, k)) => (
                    v.strip_prefix('v')
                        .unwrap_or(v)
                        .parse()
                        .map_err(|_| KeyringError::BadKey(format!("entry {}", i + 1)))?,
                    k,
                ),
                None => (i as u32 + 1, entry),
            };
            let key = decode_key(b64, &format!("version {version}"))?;
            if keys.insert(version, key).is_some() {
                return Err(KeyringError::DuplicateVersion(version));
            }
        }
        if keys.is_empty() {
            return Err(KeyringError::BadKey("(empty)".into()));
        }
        Ok(Keyring::from_keys(keys))
    }

    /// Loads the key file at `path`, creating it with a fresh random key (mode
    /// 0600) when missing. Returns the keyring and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyringError> {
        let io = |source| KeyringError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyringError::LoosePermissions {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        match std::fs::read_to_string(path).map(Zeroizing::new) {
            Ok(text) => Ok((Self::from_file(path, Self::parse_keys(text.trim())?), false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(key.as_mut());
                let text = Zeroizing::new(format!(
                    "1:{}\n",
                    base64::engine::general_purpose::STANDARD.encode(key.as_ref())
                ));
                write_private(path, text.as_bytes()).map_err(io)?;
                let mut keys = BTreeMap::new();
                keys.insert(1, key);
                Ok((Self::from_file(path, keys), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key version a sealed value names, if it is well formed.
    pub fn sealed_version(sealed: &[u8]) -> Option<u32> {
        (sealed.len() >= HEADER + 16 && &sealed[..4] == MAGIC)
            .then(|| u32::from_be_bytes([sealed[4], sealed[5], sealed[6], sealed[7]]))
    }

    /// The key versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.read().keys().copied().collect()
    }

    /// Adds a fresh random key as the next version to the key file at `path` and
    /// returns the new keyring. Under an exclusive lock on `PATH.lock`, the file
    /// is read again and the new version follows the newest in it, so two
    /// rotations at once add two versions, never one version twice; the file is
    /// written whole to a temporary file, synced, renamed, and the directory
    /// synced (mode 0600). The old keys stay: values sealed with them stay
    /// readable.
    pub fn add_key_to_file(&self, path: &Path) -> Result<Keyring, KeyringError> {
        let io = |source| KeyringError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
        lock_name.push(".lock");
        let lock = open_private(&path.with_file_name(lock_name), Mode::Append).map_err(io)?;
        lock.lock().map_err(io)?;
        let mut keys = self.read().clone();
        match std::fs::read_to_string(path).map(Zeroizing::new) {
            Ok(text) => {
                for (version, key) in Self::parse_keys(text.trim())? {
                    keys.entry(version).or_insert(key);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let version = keys.keys().next_back().copied().unwrap_or(0) + 1;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        keys.insert(version, key);
        let mut text = Zeroizing::new(String::new());
        for (v, k) in &keys {
            text.push_str(&format!(
                "{v}:{}\n",
                base64::engine::general_purpose::STANDARD.encode(k.as_ref())
            ));
        }
        replace_private(path, text.as_bytes()).map_err(io)?;
        drop(lock);
        Ok(Self::from_file(path, keys))
    }

    /// The version new values are sealed with.
    pub fn current_version(&self) -> u32 {
        Self::sealing(&self.read(), self.active.load(Ordering::SeqCst))
    }

    fn sealing(keys: &Keys, active: u32) -> u32 {
        if active != 0 && keys.contains_key(&active) {
            return active;
        }
        keys.keys().next_back().copied().unwrap_or(1)
    }

    /// Encrypts `value` under the current key, bound to `aad`.
    pub fn seal(&self, value: &SecretValue, aad: &[u8]) -> Vec<u8> {
        let keys = self.read();
        let version = Self::sealing(&keys, self.active.load(Ordering::SeqCst));
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER + value.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        if let Some(key) = keys.get(&version) {
            let cipher = Aes256Gcm::new(key.as_ref().into());
            let payload = Payload {
                msg: value.expose(),
                aad,
            };
            // Encryption with a valid key and nonce cannot fail for inputs this size.
            if let Ok(ct) = cipher.encrypt(Nonce::from_slice(&nonce), payload) {
                out.extend_from_slice(&ct);
            }
        }
        out
    }

    /// Decrypts what [`Keyring::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretValue, KeyringError> {
        if sealed.len() < HEADER + 16 || &sealed[..4] != MAGIC {
            return Err(KeyringError::Malformed);
        }
        let version = u32::from_be_bytes([sealed[4], sealed[5], sealed[6], sealed[7]]);
        let mut keys = self.read();
        if !keys.contains_key(&version)
            && let Some(file) = &self.file
        {
            drop(keys);
            // Another process may have rotated since this keyring read its file.
            if let Err(e) = self.reload_file(file) {
                tracing::warn!(error = %e, "re-reading the key file for an unknown key version");
            }
            keys = self.read();
        }
        let key = keys
            .get(&version)
            .ok_or(KeyringError::UnknownKeyVersion(version))?;
        let cipher = Aes256Gcm::new(key.as_ref().into());
        let payload = Payload {
            msg: &sealed[HEADER..],
            aad,
        };
        cipher
            .decrypt(Nonce::from_slice(&sealed[8..HEADER]), payload)
            .map(SecretValue::new)
            .map_err(|_| KeyringError::Integrity(version))
    }
}

fn decode_key(b64: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| KeyringError::BadKey(what.into()))?,
    );
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyringError::BadKey(what.into()))?;
    Ok(Zeroizing::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> SecretValue {
        SecretValue::from_string(s.into())
    }

    #[test]
    fn round_trip_and_context_binding() -> Result<(), KeyringError> {
        let ring = Keyring::single([7; 32]);
        let sealed = ring.seal(&value("hunter2"), b"ctx-a");
        assert_eq!(ring.open(&sealed, b"ctx-a")?.expose(), b"hunter2");
        assert!(matches!(
            ring.open(&sealed, b"ctx-b"),
            Err(KeyringError::Integrity(1))
        ));
        Ok(())
    }

    #[test]
    fn corruption_and_wrong_key_are_integrity_errors() {
        let ring = Keyring::single([7; 32]);
        let mut sealed = ring.seal(&value("hunter2"), b"c");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            ring.open(&sealed, b"c"),
            Err(KeyringError::Integrity(1))
        ));
        let other = Keyring::single([8; 32]);
        assert!(matches!(
            other.open(&ring.seal(&value("x"), b"c"), b"c"),
            Err(KeyringError::Integrity(1))
        ));
        assert!(matches!(
            ring.open(b"garbage", b"c"),
            Err(KeyringError::Malformed)
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keys/master.key");
        let (ring, created) = Keyring::load_or_create(&path)?;
        assert!(created);
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        let sealed = ring.seal(&value("v"), b"c");
        let (again, created) = Keyring::load_or_create(&path)?;
        assert!(!created);
        assert_eq!(again.open(&sealed, b"c")?.expose(), b"v");
        // Loose permissions are refused, with the fix.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let err = Keyring::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn a_live_keyring_picks_up_versions_added_to_its_file() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("master.key");
        let (live, _) = Keyring::load_or_create(&path)?;
        let old = live.seal(&value("before"), b"ctx");
        // Another process rotates: its keyring seals under version 2.
        let (other, _) = Keyring::load_or_create(&path)?;
        let rotated = other.add_key_to_file(&path)?;
        let resealed = rotated.seal(&value("after"), b"ctx");
        // The live keyring reads its file again when it meets the new version.
        assert_eq!(live.open(&resealed, b"ctx")?.expose_str(), Some("after"));
        assert_eq!(live.versions(), vec![1, 2]);
        // One that was not loaded from a file cannot.
        let detached = Keyring::single([0; 32]);
        assert!(matches!(
            detached.open(&resealed, b"ctx"),
            Err(KeyringError::UnknownKeyVersion(2))
        ));
        assert_eq!(live.open(&old, b"ctx")?.expose_str(), Some("before"));
        assert_eq!(live.current_version(), 2);
        // A file that lost a version takes nothing away.
        std::fs::write(&path, "3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")?;
        assert_eq!(live.reload_file(&path)?, vec![3]);
        assert_eq!(live.versions(), vec![1, 2, 3]);
        Ok(())
    }

    #[test]
    fn a_merged_key_opens_at_once_but_seals_only_once_active() -> Result<(), KeyringError> {
        let ring = Keyring::with_keys(vec![(1, Zeroizing::new([1; 32]))], 1)?;
        // Announced: version 2 opens, version 1 still seals.
        assert_eq!(ring.merge(vec![(2, Zeroizing::new([2; 32]))], 1), vec![2]);
        assert_eq!(ring.current_version(), 1);
        let other = Keyring::with_keys(
            vec![(1, Zeroizing::new([1; 32])), (2, Zeroizing::new([2; 32]))],
            2,
        )?;
        let sealed = other.seal(&value("v2"), b"c");
        assert_eq!(ring.open(&sealed, b"c")?.expose_str(), Some("v2"));
        assert_eq!(
            Keyring::sealed_version(&ring.seal(&value("x"), b"c")),
            Some(1)
        );
        // Activated: version 2 seals; a merge naming an older one takes nothing back,
        // and a key held is never replaced.
        assert!(ring.merge(vec![(2, Zeroizing::new([9; 32]))], 2).is_empty());
        assert_eq!(ring.current_version(), 2);
        ring.merge(Vec::new(), 1);
        assert_eq!(ring.current_version(), 2);
        assert_eq!(ring.open(&sealed, b"c")?.expose_str(), Some("v2"));
        assert!(matches!(
            Keyring::with_keys(vec![(1, Zeroizing::new([1; 32]))], 3),
            Err(KeyringError::UnknownKeyVersion(3))
        ));
        Ok(())
    }

    #[test]
    fn rotations_at_once_add_distinct_versions_and_duplicates_are_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("master.key");
        let (ring, _) = Keyring::load_or_create(&path)?;
        // Many rotations at once, each from a keyring that read the file before
        // any of them ran: every one adds its own version.
        let rings: Vec<Keyring> = (0..8)
            .map(|_| Keyring::load_or_create(&path).map(|(r, _)| r))
            .collect::<Result<_, _>>()?;
        std::thread::scope(|scope| {
            for r in &rings {
                let path = &path;
                scope.spawn(move || r.add_key_to_file(path).map(drop));
            }
        });
        let (after, _) = Keyring::load_or_create(&path)?;
        assert_eq!(after.versions(), (1..=9).collect::<Vec<u32>>());
        drop(ring);
        // A key file with a version twice is refused, naming it.
        let text = std::fs::read_to_string(&path)?;
        let line = text.lines().nth(1).unwrap_or_default().to_owned();
        std::fs::write(&path, format!("{text}{line}\n"))?;
        let err = Keyring::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyringError::DuplicateVersion(2)), "{err}");
        assert!(err.to_string().contains("version 2 appears twice"), "{err}");
        assert!(matches!(
            Keyring::parse(
                "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            ),
            Err(KeyringError::DuplicateVersion(1))
        ));
        Ok(())
    }
}
