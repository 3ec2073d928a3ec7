//! `SecretValue`: plaintext held by the host, zeroized on drop, never printable.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretSlice};
use subtle::ConstantTimeEq;

/// A secret value. Cloning shares the same zeroize-on-drop buffer; `Debug` shows the
/// length only; there is no `Display`. This is also the host side of the WIT
/// `secret` resource: a provider holds handles to these, never the bytes.
#[derive(Clone)]
pub struct SecretValue(Arc<SecretSlice<u8>>);

impl SecretValue {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(Arc::new(SecretSlice::from(bytes)))
    }

    /// Copies a string value.
    pub fn from_string(value: String) -> Self {
        Self::new(value.into_bytes())
    }

    /// The plaintext. Every caller of this is a place where a value may leave the
    /// host's care: keep them few and audited.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
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
