//! Reading OpenMetadata's database-mode values: `fernet:<token>`, encrypted with
//! the `FERNET_KEY` (standard base64; a comma-separated list where the first key
//! encrypts and every key decrypts). This is how existing deployments migrate in.

use secret_broker_runtime::SecretValue;

/// The key OpenMetadata ships as its default: anyone can decrypt with it.
pub const OPENMETADATA_DEFAULT_KEY: &str = "jJ/9sz0g0OHxsfxOoSfdFdmk3ysNmPRnH3TUAbz3IHA=";
/// The prefix OpenMetadata stores before a token.
pub const PREFIX: &str = "fernet:";

/// Why a value could not be imported. Never carries the token or the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FernetError {
    /// No key, or a key that is not 32 bytes of base64.
    #[error("FERNET_KEY entry {0} is not a Fernet key (32 bytes of base64)")]
    BadKey(usize),
    /// The key list was empty.
    #[error("FERNET_KEY is empty: set it to the key (or comma-separated keys) OpenMetadata used")]
    NoKey,
    /// The value lacks the `fernet:` prefix.
    #[error("the value is not in OpenMetadata's `fernet:<token>` form")]
    NotFernet,
    /// No key opened the token.
    #[error("the token does not decrypt with any key in FERNET_KEY (wrong key or corrupted token)")]
    Decrypt,
}

/// The keys of a `FERNET_KEY` setting.
pub struct FernetKeys {
    multi: fernet::MultiFernet,
    /// Whether OpenMetadata's published default key is among them.
    pub uses_default_key: bool,
}

impl FernetKeys {
    /// Parses `FERNET_KEY`: standard or URL-safe base64 keys, comma-separated.
    pub fn parse(spec: &str) -> Result<Self, FernetError> {
        let entries: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(FernetError::NoKey);
        }
        let mut keys = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            // OpenMetadata writes keys in standard base64; the fernet crate takes URL-safe.
            let urlsafe = entry.replace('+', "-").replace('/', "_");
            keys.push(fernet::Fernet::new(&urlsafe).ok_or(FernetError::BadKey(i + 1))?);
        }
        let uses_default_key = entries.contains(&OPENMETADATA_DEFAULT_KEY);
        Ok(FernetKeys {
            multi: fernet::MultiFernet::new(keys),
            uses_default_key,
        })
    }

    /// Decrypts a stored `fernet:<token>` value.
    pub fn decrypt(&self, stored: &str) -> Result<SecretValue, FernetError> {
        let token = stored.strip_prefix(PREFIX).ok_or(FernetError::NotFernet)?;
        self.multi
            .decrypt(token.trim())
            .map(SecretValue::new)
            .map_err(|_| FernetError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_key_list() -> Result<(), FernetError> {
        let old = fernet::Fernet::generate_key();
        let token = fernet::Fernet::new(&old)
            .ok_or(FernetError::BadKey(1))?
            .encrypt(b"pa55");
        let standard_old = old.replace('-', "+").replace('_', "/");
        let keys = FernetKeys::parse(&format!(
            "{},{standard_old}",
            fernet::Fernet::generate_key()
        ))?;
        assert_eq!(keys.decrypt(&format!("fernet:{token}"))?.expose(), b"pa55");
        assert!(!keys.uses_default_key);
        assert_eq!(keys.decrypt(&token).err(), Some(FernetError::NotFernet));
        let other = FernetKeys::parse(&fernet::Fernet::generate_key())?;
        assert_eq!(
            other.decrypt(&format!("fernet:{token}")).err(),
            Some(FernetError::Decrypt)
        );
        Ok(())
    }

    #[test]
    fn default_key_is_recognised_and_bad_keys_named() {
        assert!(FernetKeys::parse(OPENMETADATA_DEFAULT_KEY).is_ok_and(|k| k.uses_default_key));
        assert_eq!(FernetKeys::parse("a,b").err(), Some(FernetError::BadKey(1)));
        assert_eq!(FernetKeys::parse(" , ").err(), Some(FernetError::NoKey));
    }
}
