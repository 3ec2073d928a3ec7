//! The one registry of built-in backends, [`BACKENDS`]: for each secrets manager
//! this broker runs without a `[provider]` table, OpenMetadata's name for it and
//! its aliases, the built-in provider component, how OpenMetadata spells its ids,
//! and the typed preset that builds the provider's settings and `http` grant from
//! the deployment's settings. Adding a backend is one provider crate, one module
//! here with its settings type, and one entry in [`BACKENDS`].

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod http;
pub mod kubernetes;
pub mod openbao;

use std::collections::BTreeMap;

use anyhow::bail;

use secret_broker::openmetadata::ids::IdStyle;
use secret_broker_builtin::Builtin;

use crate::settings::Settings;
use http::HttpConfig;

/// What a backend's preset builds from the deployment's settings.
#[derive(Debug, Default)]
pub struct Preset {
    /// The provider's settings (read through its `config` import).
    pub settings: BTreeMap<String, String>,
    /// The `http` grant, for backends reached over HTTP.
    pub http: Option<HttpConfig>,
}

impl Preset {
    fn http((settings, http): (BTreeMap<String, String>, HttpConfig)) -> Preset {
        Preset {
            settings,
            http: Some(http),
        }
    }
}

/// A built-in backend: everything about it in one place.
#[derive(Debug)]
pub struct Backend {
    /// OpenMetadata's name for it (`SECRET_MANAGER`, `secretsManager`).
    pub name: &'static str,
    /// Other names that select it.
    pub aliases: &'static [&'static str],
    /// The built-in provider component (`builtin:NAME`) that implements it.
    pub provider: &'static str,
    /// How OpenMetadata's secrets manager for it spells ids.
    pub id_style: IdStyle,
    /// Builds its provider's settings and grant from the deployment's settings.
    pub preset: fn(&Settings) -> anyhow::Result<Preset>,
}

fn no_preset(_: &Settings) -> anyhow::Result<Preset> {
    Ok(Preset::default())
}

/// Every built-in backend.
pub const BACKENDS: [Backend; 7] = [
    Backend {
        name: "db",
        // OpenMetadata's default (`${SECRET_MANAGER:-noop}` in the shipped
        // file): secrets in its own database, here the embedded `db` provider.
        aliases: &["noop"],
        provider: "db",
        id_style: IdStyle::Slash,
        preset: no_preset,
    },
    Backend {
        name: "managed-aws",
        aliases: &["aws"],
        provider: "aws-secrets-manager",
        id_style: IdStyle::Slash,
        preset: no_preset,
    },
    Backend {
        name: "managed-aws-ssm",
        aliases: &["aws-ssm"],
        provider: "aws-ssm",
        id_style: IdStyle::Slash,
        preset: no_preset,
    },
    Backend {
        name: "openbao",
        aliases: &[],
        provider: "openbao",
        id_style: IdStyle::Slash,
        preset: |s| s.openbao.provider().map(Preset::http),
    },
    Backend {
        name: "kubernetes",
        aliases: &[],
        provider: "kubernetes",
        id_style: IdStyle::Kubernetes,
        preset: |s| s.kubernetes.provider().map(Preset::http),
    },
    Backend {
        name: "managed-azure-kv",
        aliases: &["azure-kv"],
        provider: "azure-key-vault",
        id_style: IdStyle::Azure,
        preset: |s| s.azure.provider().map(Preset::http),
    },
    Backend {
        name: "gcp",
        aliases: &["managed-gcp"],
        provider: "gcp-secret-manager",
        id_style: IdStyle::Gcp,
        preset: |s| s.gcp.provider().map(Preset::http),
    },
];

impl Backend {
    /// The built-in component that implements it (every entry names one of
    /// `secret_broker_builtin::ALL`; tested).
    pub fn builtin(&self) -> anyhow::Result<Builtin> {
        secret_broker_builtin::lookup(self.provider).ok_or_else(|| {
            anyhow::anyhow!(
                "the built-in provider {} is missing from this build",
                self.provider
            )
        })
    }

    /// Whether `name` selects it.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// The backend a `SECRET_MANAGER` value selects; an unknown name is an error
/// listing every known one.
pub fn for_secrets_manager(name: &str) -> anyhow::Result<&'static Backend> {
    let name = name.trim();
    if let Some(backend) = BACKENDS.iter().find(|b| b.is_named(name)) {
        return Ok(backend);
    }
    let known: Vec<&str> = BACKENDS
        .iter()
        .flat_map(|b| std::iter::once(b.name).chain(b.aliases.iter().copied()))
        .collect();
    bail!(
        "SECRET_MANAGER={name:?} is not a secrets manager this broker knows: use {}",
        known.join(", ")
    )
}

/// The backend whose provider is the built-in component `component`
/// (`builtin:NAME` or `NAME`), if any.
pub fn for_component(component: &str) -> Option<&'static Backend> {
    let name = component.strip_prefix("builtin:").unwrap_or(component);
    BACKENDS.iter().find(|b| b.provider == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_has_its_component_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for b in &BACKENDS {
            assert!(secret_broker_builtin::lookup(b.provider).is_some(), "{b:?}");
            assert_eq!(b.builtin().unwrap().name, b.provider);
            for n in std::iter::once(b.name).chain(b.aliases.iter().copied()) {
                assert!(names.insert(n), "{n} names two backends");
            }
        }
    }

    #[test]
    fn names_select_backends_with_their_id_styles() {
        let style = |n: &str| for_secrets_manager(n).map(|b| b.id_style).ok();
        assert_eq!(style("managed-azure-kv"), Some(IdStyle::Azure));
        assert_eq!(style(" azure-kv "), Some(IdStyle::Azure));
        assert_eq!(style("kubernetes"), Some(IdStyle::Kubernetes));
        assert_eq!(style("gcp"), Some(IdStyle::Gcp));
        assert_eq!(style("managed-gcp"), Some(IdStyle::Gcp));
        assert_eq!(style("managed-aws"), Some(IdStyle::Slash));
        assert_eq!(
            for_secrets_manager("aws").unwrap().provider,
            "aws-secrets-manager"
        );
        let err = for_secrets_manager("vault").unwrap_err().to_string();
        assert!(err.contains("\"vault\" is not a secrets manager"), "{err}");
        assert!(
            err.contains("managed-azure-kv, azure-kv, gcp, managed-gcp"),
            "{err}"
        );
        assert_eq!(
            for_component("builtin:aws-ssm").map(|b| b.name),
            Some("managed-aws-ssm")
        );
        assert!(for_component("builtin:memory").is_none());
    }
}
