//! Bearer tokens mapped to roles, each kept only as its SHA-256 digest, with an
//! optional expiry. A presented token is hashed and compared with every entry in
//! constant time, so neither timing nor an early exit tells how close a guess
//! was. Where the tokens are stored is the deployment's concern; [`Tokens::parse`]
//! reads the tokens file of earlier releases (`NAME ROLE sha256:<hex>` per line)
//! so a deployment can import it.

use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use secret_broker::broker::Caller;
use secret_broker::policy::Role;

/// One configured token: never the token, only its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// Its name, as the audit log shows the caller.
    pub name: String,
    /// The role it stands for.
    pub role: Role,
    /// SHA-256 of the token.
    pub digest: [u8; 32],
    /// When it stops being accepted (`None`: never).
    pub expires: Option<SystemTime>,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

/// SHA-256 of a token, as kept.
pub fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    /// Parses a tokens file's text; errors name the line.
    pub fn parse(text: &str) -> anyhow::Result<Tokens> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let bad = |why: &str| {
                anyhow::anyhow!(
                    "tokens file line {}: {why}; each line is `NAME ROLE sha256:<64 hex>` \
                     (create tokens with `secret-broker token add NAME --role ROLE`)",
                    n + 1
                )
            };
            let [name, role, hash] = parts[..] else {
                return Err(bad("expected three fields"));
            };
            let role =
                Role::from_name(role).ok_or_else(|| bad("the role must be admin, user or bot"))?;
            let hex_digest = hash
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("the digest must start with `sha256:`"))?;
            let digest: [u8; 32] = hex::decode(hex_digest)
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| bad("the digest must be 64 hex digits"))?;
            if entries.iter().any(|e: &TokenEntry| e.name == name) {
                return Err(bad("this name is already used by an earlier line"));
            }
            entries.push(TokenEntry {
                name: name.to_owned(),
                role,
                digest,
                expires: None,
            });
        }
        Ok(Tokens { entries })
    }

    /// Tokens from their entries.
    pub fn from_entries(entries: Vec<TokenEntry>) -> Tokens {
        Tokens { entries }
    }

    /// The entries (digests, never a token).
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// Reads a tokens file; a missing file is no tokens.
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        match std::fs::read_to_string(path) {
            Ok(text) => Tokens::parse(&text)
                .map_err(|e| anyhow::anyhow!("in tokens file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::default()),
            Err(e) => Err(anyhow::anyhow!(
                "reading tokens file {}: {e}",
                path.display()
            )),
        }
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a token in memory (tests, embedders).
    pub fn insert(&mut self, name: &str, role: Role, token: &str) {
        self.entries.push(TokenEntry {
            name: name.to_owned(),
            role,
            digest: digest(token.as_bytes()),
            expires: None,
        });
    }

    /// The caller a presented token stands for at `now`: none when no entry
    /// matches or the matching one has expired. Every entry is compared, in
    /// constant time each.
    pub fn authenticate(&self, presented: &str, now: SystemTime) -> Option<Caller> {
        let d = digest(presented.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&d)) {
                found = Some(entry);
            }
        }
        found
            .filter(|e| e.expires.is_none_or(|at| now < at))
            .map(|e| Caller {
                name: e.name.clone(),
                role: e.role,
            })
    }
}

/// A new random token (`sbt_` and 32 random bytes, base64url).
pub fn generate() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
    Zeroizing::new(format!(
        "sbt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ))
}

/// A token's or access key's name: letters, digits and `- _ . @`, as it
/// appears in the audit log.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        anyhow::bail!("name {name:?}: use letters, digits and - _ . @ only");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_roles_and_nothing_else_passes() {
        let admin = generate();
        let user = generate();
        let text = format!(
            "# tokens\nom admin sha256:{}\nviewer user sha256:{}\n",
            hex::encode(digest(admin.as_bytes())),
            hex::encode(digest(user.as_bytes()))
        );
        let tokens = Tokens::parse(&text).unwrap();
        let now = SystemTime::now();
        assert_eq!(tokens.authenticate(&admin, now).unwrap().role, Role::Admin);
        let viewer = tokens.authenticate(&user, now).unwrap();
        assert_eq!((viewer.name.as_str(), viewer.role), ("viewer", Role::User));
        assert!(tokens.authenticate("", now).is_none());
        assert!(
            tokens
                .authenticate(&admin[..admin.len() - 1], now)
                .is_none()
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = generate();
        let now = SystemTime::now();
        let at = now + std::time::Duration::from_secs(60);
        let tokens = Tokens::from_entries(vec![TokenEntry {
            name: "ci".into(),
            role: Role::Bot,
            digest: digest(token.as_bytes()),
            expires: Some(at),
        }]);
        assert!(tokens.authenticate(&token, now).is_some());
        assert!(tokens.authenticate(&token, at).is_none());
        assert!(
            tokens
                .authenticate(&token, at + std::time::Duration::from_secs(1))
                .is_none()
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let err = Tokens::parse("a admin sha256:00\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("64 hex"), "{err}");
        let err = Tokens::parse("\n\na root sha256:00\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("admin, user or bot"),
            "{err}"
        );
    }
}
