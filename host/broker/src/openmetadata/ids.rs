//! OpenMetadata's secret ids: `/{prefix}/{clusterName}/{entityType}/{entityName}/{field path}`,
//! the prefix segment only when one is set, the whole id lowercased, and in each
//! segment every character outside `[A-Za-z0-9/_-]` replaced by `_`. Unlike
//! OpenMetadata, the prefix and cluster name are validated up front (a space in
//! them used to produce ids that break).

/// Why an id builder could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// A prefix or cluster name with characters ids cannot carry.
    #[error(
        "{what} {value:?} contains {bad:?}: use letters, digits, `_` and `-` (and `/` in a prefix)"
    )]
    BadPart {
        /// `prefix` or `clusterName`.
        what: &'static str,
        /// The value.
        value: String,
        /// The first bad character.
        bad: char,
    },
}

/// Builds secret ids for one deployment.
#[derive(Debug, Clone)]
pub struct IdBuilder {
    head: String,
}

fn check(what: &'static str, value: &str, slash_ok: bool) -> Result<(), IdError> {
    match value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || (slash_ok && c == '/')))
    {
        Some(bad) => Err(IdError::BadPart {
            what,
            value: value.to_owned(),
            bad,
        }),
        None if value.trim_matches('/').is_empty() => Err(IdError::BadPart {
            what,
            value: value.to_owned(),
            bad: ' ',
        }),
        None => Ok(()),
    }
}

/// Cleans one segment: characters outside `[A-Za-z0-9/_-]` become `_`.
pub fn clean_segment(segment: &str) -> String {
    segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl IdBuilder {
    /// `prefix` as in `secretsManagerConfiguration.prefix` (optional), `cluster`
    /// as OpenMetadata's `clusterName` (default `openmetadata`).
    pub fn new(prefix: Option<&str>, cluster: &str) -> Result<Self, IdError> {
        let mut head = String::new();
        if let Some(prefix) = prefix
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
        {
            check("prefix", prefix, true)?;
            head.push('/');
            head.push_str(prefix);
        }
        check("clusterName", cluster, false)?;
        head.push('/');
        head.push_str(cluster);
        Ok(IdBuilder {
            head: head.to_lowercase(),
        })
    }

    /// The id of a field: `entity_type` such as `database`, `bot`, `pipeline`,
    /// `serverconnection` (no entity name) or `workflow`.
    pub fn id(
        &self,
        entity_type: &str,
        entity_name: Option<&str>,
        field_path: &[String],
    ) -> String {
        let mut id = self.head.clone();
        let segments = std::iter::once(entity_type)
            .chain(entity_name)
            .chain(field_path.iter().map(String::as_str));
        for segment in segments {
            id.push('/');
            id.push_str(&clean_segment(segment));
        }
        id.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn ids_match_openmetadata() -> Result<(), IdError> {
        let with_prefix = IdBuilder::new(Some("prefix"), "openmetadata")?;
        assert_eq!(
            with_prefix.id("database", Some("test"), &path(&["authType", "password"])),
            "/prefix/openmetadata/database/test/authtype/password"
        );
        let plain = IdBuilder::new(None, "openmetadata")?;
        assert_eq!(
            plain.id("bot", Some("ingestion-bot"), &path(&["config", "JWTToken"])),
            "/openmetadata/bot/ingestion-bot/config/jwttoken"
        );
        assert_eq!(
            plain.id(
                "pipeline",
                Some("my-pipeline"),
                &path(&[
                    "sourceConfig",
                    "config",
                    "dbtConfigSource",
                    "dbtSecurityConfig",
                    "awsSecretAccessKey"
                ])
            ),
            "/openmetadata/pipeline/my-pipeline/sourceconfig/config/dbtconfigsource/dbtsecurityconfig/awssecretaccesskey"
        );
        assert_eq!(
            plain.id(
                "serverconnection",
                None,
                &path(&["securityConfig", "secretKey"])
            ),
            "/openmetadata/serverconnection/securityconfig/secretkey"
        );
        assert_eq!(
            plain.id(
                "workflow",
                Some("test-connection"),
                &path(&["request", "connection", "config", "authType", "password"])
            ),
            "/openmetadata/workflow/test-connection/request/connection/config/authtype/password"
        );
        assert_eq!(
            plain.id(
                "database",
                Some("My Service.prod"),
                &path(&["#0", "password"])
            ),
            "/openmetadata/database/my_service_prod/_0/password"
        );
        Ok(())
    }

    #[test]
    fn bad_prefix_or_cluster_is_refused() {
        assert!(matches!(
            IdBuilder::new(Some("my prefix"), "openmetadata"),
            Err(IdError::BadPart {
                what: "prefix",
                bad: ' ',
                ..
            })
        ));
        assert!(matches!(
            IdBuilder::new(None, "open/metadata"),
            Err(IdError::BadPart {
                what: "clusterName",
                bad: '/',
                ..
            })
        ));
    }
}
