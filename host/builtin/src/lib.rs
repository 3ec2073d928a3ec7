//! The first-party provider components, built for wasm32 by this crate's build
//! script and embedded, so a binary that depends on this crate carries them.
//! Only crates that ship the built-in providers depend on it (and on the guest
//! toolchain its build needs); the runtime does not.
#![deny(missing_docs)]

/// The in-memory reference provider (persists nothing).
pub const MEMORY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/memory.wasm"));
/// The `db` provider: keyring-sealed rows in the record store (the embedded default).
pub const DB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/db.wasm"));
/// The `aws-secrets-manager` provider.
pub const AWS_SECRETS_MANAGER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/aws-secrets-manager.wasm"));
/// The `aws-ssm` provider.
pub const AWS_SSM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/aws-ssm.wasm"));
/// The `openbao` provider (OpenBao / Vault KV version 2, on the `http` capability).
pub const OPENBAO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openbao.wasm"));
/// The `kubernetes` provider (Secret objects in a namespace, on the `http` capability).
pub const KUBERNETES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.wasm"));
/// The `azure-key-vault` provider (Azure Key Vault secrets, on the `http` capability).
pub const AZURE_KEY_VAULT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/azure-key-vault.wasm"));
/// The `gcp-secret-manager` provider (Google Cloud Secret Manager, on the `http`
/// capability).
pub const GCP_SECRET_MANAGER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gcp-secret-manager.wasm"));

/// The name of every built-in provider, as its folder under `providers/` is named.
pub const NAMES: [&str; 8] = include!("names.rs");

/// A built-in provider component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Its name (`db`).
    pub name: &'static str,
    /// The capabilities it imports and so must be granted, by grant name.
    pub grants: &'static [&'static str],
    /// The component.
    pub wasm: &'static [u8],
}

impl Builtin {
    /// How configuration refers to it: `builtin:NAME`.
    pub fn source(&self) -> String {
        format!("builtin:{}", self.name)
    }
}

/// Every built-in provider.
pub const ALL: [Builtin; 8] = [
    Builtin {
        name: "memory",
        grants: &[],
        wasm: MEMORY,
    },
    Builtin {
        name: "db",
        grants: &["keyring", "record-store"],
        wasm: DB,
    },
    Builtin {
        name: "aws-secrets-manager",
        grants: &["aws-secrets-manager"],
        wasm: AWS_SECRETS_MANAGER,
    },
    Builtin {
        name: "aws-ssm",
        grants: &["aws-ssm"],
        wasm: AWS_SSM,
    },
    Builtin {
        name: "openbao",
        grants: &["http"],
        wasm: OPENBAO,
    },
    Builtin {
        name: "kubernetes",
        grants: &["http"],
        wasm: KUBERNETES,
    },
    Builtin {
        name: "azure-key-vault",
        grants: &["http"],
        wasm: AZURE_KEY_VAULT,
    },
    Builtin {
        name: "gcp-secret-manager",
        grants: &["http"],
        wasm: GCP_SECRET_MANAGER,
    },
];

/// The built-in provider a configuration names, as `builtin:NAME` or `NAME`.
pub fn lookup(name: &str) -> Option<Builtin> {
    let name = name.strip_prefix("builtin:").unwrap_or(name);
    ALL.into_iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_component() {
        for name in NAMES {
            let b = lookup(&format!("builtin:{name}")).unwrap();
            assert_eq!(b.name, name);
            assert_eq!(&b.wasm[..4], b"\0asm");
        }
        assert!(lookup("builtin:nope").is_none());
    }
}
