//! `SecretValue`: plaintext held by the host, zeroized on drop, never printable.

use std::fmt;
use std::sync::{Arc, OnceLock};

use secrecy::{ExposeSecret, SecretSlice};
use subtle::ConstantTimeEq;

/// A secret value. Cloning shares the same zeroize-on-drop buffer; `Debug` shows the
/// length only; there is no `Display`. This is also the host side of the WIT
/// `secret` resource: a provider holds handles to these, never the bytes.
///
/// A value remembers whether a provider chose its bytes (the `secret` constructor,
/// or a ciphertext the keyring sealed from such a value): a provider without
/// `reveal` may not compare those with values the host holds, which would let it
/// guess plaintext.
#[derive(Clone)]
pub struct SecretValue {
    shared: Arc<Shared>,
    guest_made: bool,
}

/// What clones of one value share.
struct Shared {
    bytes: SecretSlice<u8>,
    /// The forms the scrubber looks for, made at the first scrub and kept for a
    /// small value (a credential is scrubbed from every answer it is sent for);
    /// wiped with the value.
    needles: OnceLock<crate::scrub::Needles>,
}

/// Values up to this size keep their scrubber needles (about ten times the
/// value's size).
const KEEP_NEEDLES_MAX: usize = 1024;

impl SecretValue {
    /// Takes ownership of `bytes`: a value the host holds. A vector with spare
    /// capacity is copied to an exact allocation and wiped, so no unzeroized
    /// copy is left behind by the shrink.
    pub fn new(mut bytes: Vec<u8>) -> Self {
        let exact: Box<[u8]> = if bytes.len() == bytes.capacity() {
            bytes.into_boxed_slice()
        } else {
            let copy = Box::from(bytes.as_slice());
            secrecy::zeroize::Zeroize::zeroize(&mut bytes);
            copy
        };
        SecretValue {
            shared: Arc::new(Shared {
                bytes: SecretSlice::from(exact),
                needles: OnceLock::new(),
            }),
            guest_made: false,
        }
    }

    /// Reads a value from `reader` to its end (at most `limit` bytes), into
    /// a [`WipingBuf`]: no copy of the value is left in freed memory. `None`
    /// when it is over the limit.
    pub fn read_from(
        mut reader: impl std::io::Read,
        limit: usize,
    ) -> std::io::Result<Option<SecretValue>> {
        let mut buf = WipingBuf::default();
        let mut chunk = secrecy::zeroize::Zeroizing::new([0u8; 4096]);
        loop {
            let n = match reader.read(&mut chunk[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.len() + n > limit {
                return Ok(None);
            }
            buf.push(&chunk[..n]);
        }
        Ok(Some(SecretValue::new(std::mem::take(&mut *buf.0))))
    }

    /// Takes ownership of bytes a provider chose.
    pub fn made_by_guest(bytes: Vec<u8>) -> Self {
        SecretValue::new(bytes).marked_guest_made()
    }

    /// The same value, marked as chosen by a provider.
    pub fn marked_guest_made(mut self) -> Self {
        self.guest_made = true;
        self
    }

    /// Whether a provider chose these bytes.
    pub fn is_guest_made(&self) -> bool {
        self.guest_made
    }

    /// An identity of the shared buffer: equal for clones of one value.
    pub fn buffer_id(&self) -> usize {
        Arc::as_ptr(&self.shared) as *const u8 as usize
    }

    /// Copies a string value.
    pub fn from_string(value: String) -> Self {
        Self::new(value.into_bytes())
    }

    /// The plaintext. Every caller of this is a place where a value may leave the
    /// host's care: keep them few and audited.
    pub fn expose(&self) -> &[u8] {
        self.shared.bytes.expose_secret()
    }

    /// The forms of the value the scrubber looks for (kept for a small value).
    pub(crate) fn needles(&self) -> crate::scrub::Needles {
        if self.len() > KEEP_NEEDLES_MAX {
            return crate::scrub::needles_of(self.expose());
        }
        self.shared
            .needles
            .get_or_init(|| crate::scrub::needles_of(self.expose()))
            .clone()
    }

    /// The plaintext as UTF-8, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(self.expose()).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Constant-time equality of the bytes.
    pub fn ct_eq(&self, other: &SecretValue) -> bool {
        let (a, b) = (self.expose(), other.expose());
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<{} bytes redacted>)", self.len())
    }
}

/// A growable byte buffer that wipes every allocation it leaves behind: when it
/// outgrows one, the bytes move to a larger one and the old one is zeroized, and
/// the last one is zeroized on drop. For plaintext read in or written out.
#[derive(Default)]
pub struct WipingBuf(secrecy::zeroize::Zeroizing<Vec<u8>>);

impl WipingBuf {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends `data`.
    pub fn push(&mut self, data: &[u8]) {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut bigger = secrecy::zeroize::Zeroizing::new(Vec::with_capacity(
                needed.max(self.0.capacity() * 2).max(256),
            ));
            bigger.extend_from_slice(&self.0);
            // The old allocation is wiped as it drops.
            self.0 = bigger;
        }
        self.0.extend_from_slice(data);
    }

    /// The bytes, in a buffer that is wiped when dropped.
    pub fn into_inner(self) -> secrecy::zeroize::Zeroizing<Vec<u8>> {
        self.0
    }
}

impl std::io::Write for WipingBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.push(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::from_string("canary-7f3a".into());
        let printed = format!("{v:?} {:#?}", vec![v.clone()]);
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("11 bytes"));
    }

    #[test]
    fn equality_is_by_content() {
        let a = SecretValue::from_string("same".into());
        assert!(a.ct_eq(&SecretValue::from_string("same".into())));
        assert!(!a.ct_eq(&SecretValue::from_string("Same".into())));
        assert!(!a.ct_eq(&SecretValue::from_string("same!".into())));
    }
}
