//! Bearer tokens mapped to roles. The tokens file keeps only SHA-256 digests, one
//! per line: `NAME ROLE sha256:<hex>`. A presented token is hashed and compared
//! with every entry in constant time, so neither timing nor an early exit tells
//! how close a guess was.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use secret_broker::broker::Caller;
use secret_broker::policy::Role;

/// One configured token.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

fn digest(token: &[u8]) -> [u8; 32] {
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
            if entries.iter().any(|e: &Entry| e.name == name) {
                return Err(bad("this name is already used by an earlier line"));
            }
            entries.push(Entry {
                name: name.to_owned(),
                role,
                digest,
            });
        }
        Ok(Tokens { entries })
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
        self.entries.push(Entry {
            name: name.to_owned(),
            role,
            digest: digest(token.as_bytes()),
        });
    }

    /// The caller a presented token stands for. Every entry is compared, in
    /// constant time each.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let d = digest(presented.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&d)) {
                found = Some(entry);
            }
        }
        found.map(|e| Caller {
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
pub(crate) fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        anyhow::bail!("name {name:?}: use letters, digits and - _ . @ only");
    }
    Ok(())
}

/// Appends a token's line to the tokens file (created with mode 0600).
pub fn append(path: &Path, name: &str, role: Role, token: &str) -> anyhow::Result<()> {
    check_name(name)?;
    let existing = Tokens::load(path)?;
    if existing.entries.iter().any(|e| e.name == name) {
        anyhow::bail!(
            "a token named {name:?} exists in {}; remove its line first to replace it",
            path.display()
        );
    }
    let mut file =
        secret_broker_runtime::fs::open_private(path, secret_broker_runtime::fs::Mode::Append)
            .map_err(|e| anyhow::anyhow!("opening tokens file {}: {e}", path.display()))?;
    writeln!(
        file,
        "{name} {role} sha256:{}",
        hex::encode(digest(token.as_bytes()))
    )?;
    file.sync_all()?;
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
        assert_eq!(tokens.authenticate(&admin).unwrap().role, Role::Admin);
        let viewer = tokens.authenticate(&user).unwrap();
        assert_eq!((viewer.name.as_str(), viewer.role), ("viewer", Role::User));
        assert!(tokens.authenticate("").is_none());
        assert!(tokens.authenticate(&admin[..admin.len() - 1]).is_none());
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
