//! OpenMetadata's secret ids, spelled for the backend they go to, as
//! OpenMetadata's secrets manager for that backend spells them
//! ([`IdStyle`]). The default (`/`, for the db, AWS and OpenBao providers):
//! `/{prefix}/{clusterName}/{entityType}/{entityName}/{field path}`, the prefix
//! segment only when one is set, the whole id lowercased, and in each segment
//! every character outside `[A-Za-z0-9/_-]` replaced by `_`.
//!
//! As in OpenMetadata's `SecretsManager.buildSecretId`, the prefix and cluster
//! name are lowercased and then cleaned like every other segment (OpenMetadata
//! cleans the whole parent id each time it adds a field), never refused; an
//! entity name that cleans to nothing leaves an empty segment, so the id holds a
//! doubled, leading or trailing separator, as OpenMetadata writes it. Where the
//! broker differs on purpose: a `/` prefix is trimmed of `/` at both ends
//! (OpenMetadata would write `//om/...` for the prefix `/om`), and an empty
//! cluster name, or a `/` prefix with an empty segment inside, is refused at
//! start rather than making ids no backend takes.

/// Why an id builder could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// An empty cluster name.
    #[error("clusterName is empty: set OpenMetadata's clusterName (its default is `openmetadata`)")]
    EmptyCluster,
    /// A `/` prefix with an empty segment inside (`a//b`).
    #[error("prefix {0:?} has an empty segment (`//`): give segments separated by a single `/`")]
    EmptySegment(String),
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
        // Where an older OpenMetadata server put it on Kubernetes (differs from
        // `fit` for names over 253 characters).
        if self == IdStyle::Kubernetes && id.starts_with('/') {
            let legacy = legacy_k8s_name(id);
            if legacy != first && !out.contains(&legacy) {
                out.push(legacy);
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

/// The object name an OpenMetadata server older than its Kubernetes id change
/// (upstream PR #25988) gave the `/`-style id `id` (what its references hold):
/// the leading `/`s dropped, every character outside `[A-Za-z0-9-]` turned into
/// `-`, lowercased, runs of `-` collapsed and trimmed; a name over 253
/// characters cut to 240 and suffixed with `-` and the hex of Java's
/// `String.hashCode` of the whole id; a name that is empty (or would not start
/// with a letter or digit) prefixed with `om-`.
pub fn legacy_k8s_name(id: &str) -> String {
    let replaced: String = id
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = String::with_capacity(replaced.len());
    for c in replaced.chars() {
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    while name.ends_with('-') {
        name.pop();
    }
    if name.len() > K8S_NAME_MAX {
        name.truncate(240);
        name.push_str(&format!("-{:x}", java_hash(id)));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        name.insert_str(0, "om-");
    }
    name
}

/// Java's `String.hashCode`: over UTF-16 code units, wrapping.
fn java_hash(s: &str) -> u32 {
    s.encode_utf16().fold(0u32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(u32::from(unit))
    })
}

/// Builds secret ids for one deployment.
#[derive(Debug, Clone)]
pub struct IdBuilder {
    head: String,
    /// The head a `/`-style deployment with the same settings has.
    slash_head: String,
    style: IdStyle,
}

/// The start of every id: prefix and cluster name, lowercased and then
/// cleaned as `style` cleans a segment.
fn head(prefix: Option<&str>, cluster: &str, style: IdStyle) -> Result<String, IdError> {
    if cluster.is_empty() {
        return Err(IdError::EmptyCluster);
    }
    let slash = style == IdStyle::Slash;
    let mut head = String::new();
    let prefix = prefix
        .map(|p| if slash { p.trim_matches('/') } else { p })
        .filter(|p| !p.is_empty());
    if let Some(prefix) = prefix {
        if slash && prefix.contains("//") {
            return Err(IdError::EmptySegment(prefix.to_owned()));
        }
        if slash {
            head.push('/');
        }
        head.push_str(prefix);
    }
    if slash {
        head.push('/');
    }
    head.push_str(cluster);
    // Lowercased first, then cleaned: the order OpenMetadata's calls apply them
    // in (it matters for a character whose lowercase is ASCII, such as the
    // Kelvin sign, or is two characters).
    Ok(style.clean(&head.to_lowercase()))
}

impl IdBuilder {
    /// `/`-joined ids (the db, AWS and OpenBao providers): `prefix` as in
    /// `secretsManagerConfiguration.prefix` (optional), `cluster` as
    /// OpenMetadata's `clusterName` (default `openmetadata`).
    pub fn new(prefix: Option<&str>, cluster: &str) -> Result<Self, IdError> {
        IdBuilder::with_style(prefix, cluster, IdStyle::Slash)
    }

    /// Ids spelled in `style`. The prefix and cluster name are lowercased and
    /// then cleaned as the style cleans a segment, as OpenMetadata does: without
    /// a leading separator a prefix is glued to the cluster name.
    pub fn with_style(
        prefix: Option<&str>,
        cluster: &str,
        style: IdStyle,
    ) -> Result<Self, IdError> {
        Ok(IdBuilder {
            head: head(prefix, cluster, style)?,
            slash_head: head(prefix, cluster, IdStyle::Slash)?,
            style,
        })
    }

    /// Today's spelling of a `/`-style id under this deployment's prefix and
    /// cluster name (`/om/openmetadata/database/x/password`, as a `/`-style
    /// backend or an older Kubernetes server wrote it): the id this builder
    /// gives the same entity and field (`omopenmetadata-database-x-password`
    /// on Azure Key Vault, where the prefix is glued to the cluster name).
    /// `None` when `id` does not start with this deployment's `/`-style head.
    pub fn today(&self, id: &str) -> Option<String> {
        let rest = id
            .strip_prefix(self.slash_head.as_str())?
            .strip_prefix('/')?;
        if rest.is_empty() || self.style == IdStyle::Slash {
            return None;
        }
        let segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
        let (first, tail) = segments.split_first()?;
        Some(self.id(first, None, tail))
    }

    /// Today's name for an object an older OpenMetadata server wrote on
    /// Kubernetes under this deployment's prefix and cluster name
    /// ([`legacy_k8s_name`]): the names differ where a prefix is set (older
    /// servers joined it to the cluster name with `-`, today's glue them).
    /// `None` when `name` is not such an object, is already today's name, or
    /// may carry the hash suffix of a cut name, whose cut-off tail is lost (a
    /// reference still finds it where it is).
    pub fn today_from_legacy_k8s(&self, name: &str) -> Option<String> {
        if self.style != IdStyle::Kubernetes {
            return None;
        }
        let legacy_head = legacy_k8s_name(&self.slash_head);
        let rest = name.strip_prefix(legacy_head.as_str())?.strip_prefix('-')?;
        let maybe_hashed = (242..=249).contains(&name.len()) && name.as_bytes()[240] == b'-';
        if rest.is_empty() || maybe_hashed {
            return None;
        }
        let today = k8s_name(&format!("{}-{rest}", self.head));
        (today != name).then_some(today)
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
    fn prefix_and_cluster_are_cleaned_not_refused() -> Result<(), IdError> {
        let ids = IdBuilder::new(Some("my prefix"), "Open/Metadata")?;
        assert_eq!(
            ids.id("bot", Some("b"), &path(&["x"])),
            "/my_prefix/open/metadata/bot/b/x"
        );
        assert_eq!(IdBuilder::new(None, "").unwrap_err(), IdError::EmptyCluster);
        assert!(matches!(
            IdBuilder::new(Some("a//b"), "openmetadata"),
            Err(IdError::EmptySegment(_))
        ));
        Ok(())
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
    fn a_prefix_the_backend_cannot_carry_is_cleaned_as_openmetadata_cleans_it()
    -> Result<(), IdError> {
        let conn = path(&["authType", "password"]);
        let azure = IdBuilder::with_style(Some("om_prod"), "open metadata", IdStyle::Azure)?;
        assert_eq!(
            azure.id("database", Some("x"), &conn),
            "omprodopenmetadata-database-x-authtype-password"
        );
        let gcp = IdBuilder::with_style(Some("om-prod"), "open-metadata", IdStyle::Gcp)?;
        assert_eq!(
            gcp.id("database", Some("x"), &conn),
            "omprodopenmetadata_database_x_authtype_password"
        );
        let k8s = IdBuilder::with_style(Some("a/b"), "Open_Metadata", IdStyle::Kubernetes)?;
        assert_eq!(
            k8s.id("database", Some("x"), &conn),
            "a-bopen-metadata-database-x-authtype-password"
        );
        // A name that cleans to nothing leaves an empty segment.
        let azure = IdBuilder::with_style(None, "openmetadata", IdStyle::Azure)?;
        assert_eq!(
            azure.id("database", Some("日本"), &conn),
            "openmetadata-database--authtype-password"
        );
        let gcp = IdBuilder::with_style(None, "openmetadata", IdStyle::Gcp)?;
        assert_eq!(
            gcp.id("database", Some("_db_"), &conn),
            "openmetadata_database__db__authtype_password"
        );
        Ok(())
    }

    #[test]
    fn older_kubernetes_servers_names() {
        assert_eq!(
            legacy_k8s_name("/openmetadata/database/mysql_prod/authtype/password"),
            "openmetadata-database-mysql-prod-authtype-password"
        );
        assert_eq!(legacy_k8s_name("/"), "om-");
        // Java's "abc".hashCode() is 96354 (0x17862).
        assert_eq!(java_hash("abc"), 96354);
        let long = format!("/openmetadata/database/{}/password", "a".repeat(300));
        let name = legacy_k8s_name(&long);
        assert_eq!(
            name.len(),
            240 + 1 + format!("{:x}", java_hash(&long)).len()
        );
        assert!(name.starts_with("openmetadata-database-aaa"));
        // A reference an older server stored finds its object among the
        // spellings tried.
        assert!(
            IdStyle::Kubernetes
                .migrated_spellings(&long)
                .contains(&name)
        );
    }

    #[test]
    fn legacy_kubernetes_names_respelled_for_today() -> Result<(), IdError> {
        let k8s = IdBuilder::with_style(Some("om"), "openmetadata", IdStyle::Kubernetes)?;
        let legacy = legacy_k8s_name("/om/openmetadata/database/x/authtype/password");
        assert_eq!(legacy, "om-openmetadata-database-x-authtype-password");
        assert_eq!(
            k8s.today_from_legacy_k8s(&legacy).as_deref(),
            Some("omopenmetadata-database-x-authtype-password")
        );
        // Today's name, someone else's object, or a cut name: left alone.
        assert_eq!(
            k8s.today_from_legacy_k8s("omopenmetadata-database-x-authtype-password"),
            None
        );
        assert_eq!(k8s.today_from_legacy_k8s("unrelated-object"), None);
        let long = legacy_k8s_name(&format!("/om/openmetadata/database/{}/p", "a".repeat(300)));
        assert_eq!(k8s.today_from_legacy_k8s(&long), None);
        // Without a prefix old and new names are the same.
        let plain = IdBuilder::with_style(None, "openmetadata", IdStyle::Kubernetes)?;
        assert_eq!(
            plain.today_from_legacy_k8s("openmetadata-database-x-authtype-password"),
            None
        );
        Ok(())
    }

    #[test]
    fn today_respells_a_slash_id_under_this_deployments_head() -> Result<(), IdError> {
        let azure = IdBuilder::with_style(Some("om"), "openmetadata", IdStyle::Azure)?;
        assert_eq!(
            azure
                .today("/om/openmetadata/database/my_db/authtype/password")
                .as_deref(),
            Some("omopenmetadata-database-mydb-authtype-password")
        );
        assert_eq!(azure.today("/other/database/x/password"), None);
        let k8s = IdBuilder::with_style(Some("om"), "openmetadata", IdStyle::Kubernetes)?;
        assert_eq!(
            k8s.today("/om/openmetadata/bot/b/config/jwttoken")
                .as_deref(),
            Some("omopenmetadata-bot-b-config-jwttoken")
        );
        Ok(())
    }
}
