//! JSON documents that hold secrets (configs on their way in, decrypted configs on
//! their way out) are wiped when dropped: every string in them is zeroized, so no
//! plaintext stays behind in freed memory.

use serde_json::Value;
use zeroize::Zeroize;

/// Zeroizes every string (and object key) of `value` and empties it.
pub fn wipe_json(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_json),
        Value::Object(members) => {
            for (_, member) in members.iter_mut() {
                wipe_json(member);
            }
            // Keys cannot be zeroized in place; they are field names.
            members.clear();
        }
        _ => {}
    }
    *value = Value::Null;
}

/// A JSON document wiped ([`wipe_json`]) when dropped.
#[derive(Debug, Default)]
pub struct Wiped(pub Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe_json(&mut self.0);
    }
}

impl std::ops::Deref for Wiped {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl std::ops::DerefMut for Wiped {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.0
    }
}

impl<'de> serde::Deserialize<'de> for Wiped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Wiped)
    }
}

impl Wiped {
    /// The document, leaving an empty one behind (no copy is made).
    pub fn take(&mut self) -> Value {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_wiped() {
        let mut doc = serde_json::json!({"a": "s3cr3t", "b": ["x", {"c": "y"}], "n": 1});
        wipe_json(&mut doc);
        assert_eq!(doc, Value::Null);
    }
}
