//! OpenMetadata's secret ids, spelled for the backend they go to, as
//! OpenMetadata's secrets manager for that backend spells them
//! ([`IdStyle`]). The default (`/`, for the db, AWS and OpenBao providers):
//! `/{prefix}/{clusterName}/{entityType}/{entityName}/{field path}`, the prefix
//! segment only when one is set, the whole id lowercased, and in each segment
//! every character outside `[A-Za-z0-9/_-]` replaced by `_`. Unlike OpenMetadata,
//! the prefix and cluster name are validated up front (a space in them used to
//! produce ids that break; a character the backend refuses used to fail every
//! write).

/// Why an id builder could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// A prefix or cluster name with characters ids cannot carry.
    #[error("{what} {value:?} contains {bad:?}: {}", style.allowed(what))]
    BadPart {
        /// `prefix` or `clusterName`.
        what: &'static str,
        /// The value.
        value: String,
        /// The first bad character.
        bad: char,
        /// The style of the ids it was for.
        style: IdStyle,
    },
}

/// How one backend's ids are spelled, exactly as OpenMetadata's secrets manager
/// for that backend builds them (its `SecretsIdConfig`): the separator, whether
/// ids start with it, which characters a segment may keep and what the others
/// become; the whole id is lowercased.
///
/// OpenMetadata's quirks are kept, so that ids it stored are found:
/// - without a leading separator, a prefix is glued to the cluster name with
///   nothing between them (prefix `om`, cluster `openmetadata`:
///   `omopenmetadata-database-...`);
/// - Azure Key Vault and Google Secret Manager drop the characters they cannot
///   carry instead of replacing them, so `mysql_prod` is `mysqlprod` on Azure and
///   `my-db` is `mydb` on GCP (entity names that then meet are refused by the
///   owner records rather than sharing a secret);
/// - Kubernetes replaces them by `-`, then collapses runs of `-`, trims `-` at
///   both ends and cuts names over 253 characters to 253 (without a hash: that
///   is what OpenMetadata's server writes; the provider maps any other id onto an
///   object name the way OpenMetadata's ingestion reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdStyle {
    /// `/`-joined with a leading `/`, other characters `_` (the db, AWS
    /// Secrets Manager, SSM and OpenBao providers).
    #[default]
    Slash,
    /// Azure Key Vault: `-`-joined, no leading separator, characters outside
    /// `[A-Za-z0-9-]` dropped.
    Azure,
    /// Google Secret Manager: `_`-joined, no leading separator, characters
    /// outside `[A-Za-z0-9_]` dropped.
    Gcp,
    /// Kubernetes Secrets: `-`-joined, no leading separator, characters outside
    /// `[A-Za-z0-9-]` turned into `-`, then made a valid object name.
    Kubernetes,
}

/// Longest Kubernetes object name (a DNS subdomain).
const K8S_NAME_MAX: usize = 253;

impl IdStyle {
    fn separator(self) -> char {
        match self {
            IdStyle::Slash => '/',
            IdStyle::Gcp => '_',
            IdStyle::Azure | IdStyle::Kubernetes => '-',
        }
    }

    /// Whether a segment keeps `c`.
    fn keeps(self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || match self {
                IdStyle::Slash => "/_-".contains(c),
                IdStyle::Gcp => c == '_',
                IdStyle::Azure | IdStyle::Kubernetes => c == '-',
            }
    }

    /// What a character the segment cannot keep becomes.
    fn replacement(self) -> Option<char> {
        match self {
            IdStyle::Slash => Some('_'),
            IdStyle::Kubernetes => Some('-'),
            IdStyle::Azure | IdStyle::Gcp => None,
        }
    }

    /// What a prefix or cluster name may hold, for an error.
    fn allowed(self, what: &str) -> &'static str {
        match self {
            IdStyle::Slash if what == "prefix" => "use letters, digits, `_`, `-` and `/`",
            IdStyle::Slash => "use letters, digits, `_` and `-`",
            IdStyle::Gcp => "Google Secret Manager ids take letters, digits and `_`",
            IdStyle::Azure => "Azure Key Vault names take letters, digits and `-`",
            IdStyle::Kubernetes => "Kubernetes object names take letters, digits and `-`",
        }
    }

    /// Whether `id` is already spelled in this style: what OpenMetadata's
    /// secrets manager for the backend could have written.
    pub fn fits(self, id: &str) -> bool {
        let kept = id.chars().all(|c| self.keeps(c));
        match self {
            IdStyle::Slash => id.starts_with('/') && kept,
            IdStyle::Azure | IdStyle::Gcp => !id.is_empty() && !id.starts_with('/') && kept,
            IdStyle::Kubernetes => kept && !id.is_empty() && k8s_name(&id.to_lowercase()) == id,
        }
    }

    /// The id a secret stored under `id` by another backend's spelling has in
    /// this one (`migrate` moves it there; a `secret:` reference OpenMetadata
    /// stored before the move still resolves). An id already spelled in this
    /// style is left as it is. Otherwise: into `/` ids, the whole id becomes one
    /// segment (`/openmetadata-database-x-password`, so it translates back
    /// exactly); from `/` ids, each segment is cleaned and joined with this
    /// style's separator; any other character this style cannot keep becomes
    /// the separator (`_` in a GCP id, for Azure). Kubernetes names are then
    /// made valid object names (lowercase, runs of `-` collapsed, trimmed).
    pub fn fit(self, id: &str) -> String {
        if self.fits(id) {
            return id.to_owned();
        }
        let sep = self.separator();
        let out = match self {
            IdStyle::Slash => format!("/{}", self.clean(id)),
            _ => {
                let mut out = String::with_capacity(id.len());
                for c in id.trim_start_matches('/').chars() {
                    if self.keeps(c) {
                        out.push(c);
                    } else if !out.ends_with(sep) {
                        out.push(sep);
                    }
                }
                out
            }
        };
        match self {
            IdStyle::Kubernetes => k8s_name(&out.to_lowercase()),
            _ => out,
        }
    }

    /// Where a secret OpenMetadata referenced as `id` may sit in a backend of
    /// this style after one or more `migrate`s (through any other spelling and
    /// back), besides [`IdStyle::fit`]`(id)`: tried in turn when that is not
    /// found (`/openmetadata/database/x/password`, moved to GCP and back, sits
    /// at `/openmetadata_database_x_password`).
    pub fn migrated_spellings(self, id: &str) -> Vec<String> {
        let first = self.fit(id);
        let mut out: Vec<String> = Vec::new();
        for via in [
            IdStyle::Gcp,
            IdStyle::Azure,
            IdStyle::Kubernetes,
            IdStyle::Slash,
        ] {
            let candidate = self.fit(&via.fit(id));
            if candidate != first && candidate != id && !out.contains(&candidate) {
                out.push(candidate);
            }
        }
        out
    }

    /// Cleans one segment.
    pub fn clean(self, segment: &str) -> String {
        segment
            .chars()
            .filter_map(|c| {
                if self.keeps(c) {
                    Some(c)
                } else {
                    self.replacement()
                }
            })
            .collect()
    }
}

/// Cleans one segment of a `/`-joined id: characters outside `[A-Za-z0-9/_-]`
/// become `_`.
pub fn clean_segment(segment: &str) -> String {
    IdStyle::Slash.clean(segment)
}

/// A name as OpenMetadata's Kubernetes secrets manager leaves it: runs of `-`
/// collapsed, `-` trimmed at both ends, cut to 253 characters.
fn k8s_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(K8S_NAME_MAX);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Builds secret ids for one deployment.
#[derive(Debug, Clone)]
pub struct IdBuilder {
    head: String,
    style: IdStyle,
}

fn check(what: &'static str, value: &str, style: IdStyle, prefix: bool) -> Result<(), IdError> {
    let slash_ok = prefix && style == IdStyle::Slash;
    match value
        .chars()
        .find(|&c| !(style.keeps(c) && (c != '/' || slash_ok)))
    {
        Some(bad) => Err(IdError::BadPart {
            what,
            value: value.to_owned(),
            bad,
            style,
        }),
        None if value.trim_matches('/').is_empty() => Err(IdError::BadPart {
            what,
            value: value.to_owned(),
            bad: ' ',
            style,
        }),
        None => Ok(()),
    }
}

impl IdBuilder {
    /// `/`-joined ids (the db, AWS and OpenBao providers): `prefix` as in
    /// `secretsManagerConfiguration.prefix` (optional), `cluster` as
    /// OpenMetadata's `clusterName` (default `openmetadata`).
    pub fn new(prefix: Option<&str>, cluster: &str) -> Result<Self, IdError> {
        IdBuilder::with_style(prefix, cluster, IdStyle::Slash)
    }

    /// Ids spelled in `style`.
    pub fn with_style(
        prefix: Option<&str>,
        cluster: &str,
        style: IdStyle,
    ) -> Result<Self, IdError> {
        let mut head = String::new();
        let prefix = prefix.filter(|p| !p.trim_matches('/').is_empty());
        if let Some(prefix) = prefix {
            let prefix = if style == IdStyle::Slash {
                prefix.trim_matches('/')
            } else {
                prefix
            };
            check("prefix", prefix, style, true)?;
            if style == IdStyle::Slash {
                head.push('/');
            }
            head.push_str(prefix);
        }
        check("clusterName", cluster, style, false)?;
        if style == IdStyle::Slash {
            head.push('/');
        }
        head.push_str(cluster);
        Ok(IdBuilder {
            head: head.to_lowercase(),
            style,
        })
    }

    /// The style of the ids.
    pub fn style(&self) -> IdStyle {
        self.style
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
            id.push(self.style.separator());
            id.push_str(&self.style.clean(segment));
        }
        let id = id.to_lowercase();
        match self.style {
            IdStyle::Kubernetes => k8s_name(&id),
            _ => id,
        }
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
    fn ids_fit_another_backends_spelling_and_back() {
        let slash = "/openmetadata/database/mysql_prod/authtype/password";
        assert_eq!(
            IdStyle::Gcp.fit(slash),
            "openmetadata_database_mysql_prod_authtype_password"
        );
        assert_eq!(
            IdStyle::Azure.fit(slash),
            "openmetadata-database-mysql-prod-authtype-password"
        );
        assert_eq!(
            IdStyle::Kubernetes.fit("/OpenMetadata/database/My--db/x"),
            "openmetadata-database-my-db-x"
        );
        // Already spelled for the backend: unchanged (a reference OpenMetadata
        // wrote for it resolves as before).
        for (style, id) in [
            (IdStyle::Slash, slash),
            (IdStyle::Gcp, "openmetadata_database_x_password"),
            (IdStyle::Azure, "openmetadata-database-x-password"),
            (IdStyle::Kubernetes, "openmetadata-database-x-password"),
        ] {
            assert!(style.fits(id), "{style:?} {id}");
            assert_eq!(style.fit(id), id);
        }
        // Into `/` ids and back out: exactly the id it was.
        for (style, id) in [
            (IdStyle::Gcp, "openmetadata_database_x_password"),
            (IdStyle::Azure, "openmetadata-database-x-password"),
        ] {
            let moved = IdStyle::Slash.fit(id);
            assert_eq!(moved, format!("/{id}"));
            assert_eq!(style.fit(&moved), id);
        }
        // Moved to GCP and back: the old reference finds it among the spellings.
        let back = IdStyle::Slash.fit(&IdStyle::Gcp.fit(slash));
        assert_eq!(back, "/openmetadata_database_mysql_prod_authtype_password");
        assert!(IdStyle::Slash.migrated_spellings(slash).contains(&back));
        assert!(
            !IdStyle::Slash
                .migrated_spellings(slash)
                .contains(&slash.to_owned())
        );
        // A GCP id into Azure: `_` becomes `-`.
        assert_eq!(IdStyle::Azure.fit("om_db_x"), "om-db-x");
        assert!(!IdStyle::Kubernetes.fits("-x") && !IdStyle::Azure.fits("/x"));
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

    /// Each expected id is what OpenMetadata's `buildSecretId` (with the
    /// backend's `SecretsIdConfig`, and for Kubernetes its `sanitizeForK8s`)
    /// returns for the same entity.
    #[test]
    fn ids_match_openmetadata_on_azure_gcp_and_kubernetes() -> Result<(), IdError> {
        let conn = path(&["authType", "password"]);
        let cases = [
            (
                IdStyle::Azure,
                "openmetadata-database-mysqlprod-authtype-password",
            ),
            (
                IdStyle::Gcp,
                "openmetadata_database_mysql_prod_authtype_password",
            ),
            (
                IdStyle::Kubernetes,
                "openmetadata-database-mysql-prod-authtype-password",
            ),
        ];
        for (style, expected) in cases {
            let ids = IdBuilder::with_style(None, "openmetadata", style)?;
            assert_eq!(ids.id("database", Some("MySQL_Prod"), &conn), expected);
        }
        // A prefix is glued to the cluster name, as OpenMetadata does.
        let azure = IdBuilder::with_style(Some("om"), "openmetadata", IdStyle::Azure)?;
        assert_eq!(
            azure.id("bot", Some("ingestion-bot"), &path(&["config", "JWTToken"])),
            "omopenmetadata-bot-ingestion-bot-config-jwttoken"
        );
        let gcp = IdBuilder::with_style(Some("om"), "openmetadata", IdStyle::Gcp)?;
        assert_eq!(
            gcp.id("bot", Some("ingestion-bot"), &path(&["config", "JWTToken"])),
            "omopenmetadata_bot_ingestionbot_config_jwttoken"
        );
        // Kubernetes: runs of `-` collapse, `-` is trimmed, long names are cut.
        let k8s = IdBuilder::with_style(None, "openmetadata", IdStyle::Kubernetes)?;
        assert_eq!(
            k8s.id(
                "database",
                Some("--My  Service.prod--"),
                &path(&["#0", "password"])
            ),
            "openmetadata-database-my-service-prod-0-password"
        );
        let long = "a".repeat(300);
        let id = k8s.id("database", Some(&long), &conn);
        assert_eq!(id.len(), 253);
        assert!(id.starts_with("openmetadata-database-aaa") && !id.ends_with('-'));
        let cut_at_dash = "b".repeat(230);
        let id = k8s.id("database", Some(&cut_at_dash), &conn);
        // The 253rd character is the `-` before `authtype`: cut, then trimmed.
        assert_eq!(id, format!("openmetadata-database-{cut_at_dash}"));
        Ok(())
    }

    #[test]
    fn a_prefix_the_backend_cannot_carry_is_refused_naming_the_backend() {
        let err =
            IdBuilder::with_style(Some("om_prod"), "openmetadata", IdStyle::Azure).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prefix \"om_prod\" contains '_': Azure Key Vault names take letters, digits and `-`"
        );
        assert!(IdBuilder::with_style(Some("a/b"), "openmetadata", IdStyle::Kubernetes).is_err());
        assert!(IdBuilder::with_style(None, "open-metadata", IdStyle::Gcp).is_err());
        assert!(IdBuilder::with_style(Some("a/b"), "openmetadata", IdStyle::Slash).is_ok());
    }
}
