//! The built-in `gcp-secret-manager` provider configured as OpenMetadata
//! configures its GCP secrets manager: `SECRET_MANAGER=gcp` with
//! `OM_SM_PROJECT_ID` (or the `parameters` `projectId`; `[gcp]` in TOML,
//! `secretBroker.gcp` in YAML) and the service account key Google's libraries
//! find in `GOOGLE_APPLICATION_CREDENTIALS`. The key stays in the host, which
//! signs each login assertion with it; the provider splices the assertion into
//! the token request and the access token into API requests, and holds neither.
//! A plain bearer token from a file (`OM_SM_GCP_TOKEN_FILE`) serves instead,
//! for a token a workload identity or `gcloud auth print-access-token` wrote.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use secret_broker_names as names;

use secret_broker::SecretValue;

use super::http::{CredentialSource, HttpConfig, SignerSource, origin_and_path};

/// Google's Secret Manager API.
const ENDPOINT: &str = "https://secretmanager.googleapis.com";
/// Google's token endpoint (a key file's `token_uri`).
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope the access token is asked for.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Requests one provider call may send: a listing reads every page of 250.
const REQUESTS_PER_CALL: u64 = 64;
/// Pages a listing may read in one call (one request is left for a login).
const LIST_PAGES: u64 = REQUESTS_PER_CALL - 4;

/// `[gcp]`, OpenMetadata's `parameters` for `gcp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// The project holding the secrets (OpenMetadata's `projectId`); the key
    /// file's `project_id` when not given.
    #[serde(default, alias = "projectId")]
    pub project_id: Option<String>,
    /// A service account key file (JSON, as Google's console gives it).
    #[serde(default, alias = "credentialsFile")]
    pub credentials_file: Option<PathBuf>,
    /// A file holding a bearer access token, used as it is.
    #[serde(default, alias = "tokenFile")]
    pub token_file: Option<PathBuf>,
    /// The API's URL (default `https://secretmanager.googleapis.com`; a regional
    /// or private endpoint).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Allow the API or the token endpoint on a private address.
    #[serde(default, alias = "allowPrivate")]
    pub allow_private: bool,
    /// Extra CA certificates (PEM).
    #[serde(default, alias = "caFile")]
    pub ca_file: Option<PathBuf>,
}

/// What the provider needs of a service account key file.
#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    token_uri: Option<String>,
}

impl Drop for ServiceAccountKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

fn read_key(path: &std::path::Path) -> anyhow::Result<ServiceAccountKey> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("the service account key {}", path.display()))?,
    );
    // serde_json's error names a line and column, never the text.
    let key: ServiceAccountKey = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "the service account key {} is not a key file's JSON",
            path.display()
        )
    })?;
    if key.kind != "service_account" {
        bail!(
            "the credentials file {} is of type {:?}: only a service account key \
             (\"type\": \"service_account\") is supported; for other credentials write an \
             access token to a file and give it as OM_SM_GCP_TOKEN_FILE",
            path.display(),
            key.kind
        );
    }
    if key.private_key.is_empty() || key.client_email.is_empty() {
        bail!(
            "the service account key {} has no private_key or client_email",
            path.display()
        );
    }
    Ok(key)
}

impl GcpConfig {
    /// OpenMetadata's variables (and Google's) win over the file.
    pub fn overlay_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        for (name, field) in [
            ("OM_SM_PROJECT_ID", &mut self.project_id),
            ("OM_SM_GCP_ENDPOINT", &mut self.endpoint),
        ] {
            if let Some(v) = get(name) {
                *field = Some(v.trim().to_owned());
            }
        }
        for (name, field) in [
            ("GOOGLE_APPLICATION_CREDENTIALS", &mut self.credentials_file),
            ("OM_SM_GCP_TOKEN_FILE", &mut self.token_file),
            ("OM_SM_GCP_CA_FILE", &mut self.ca_file),
        ] {
            if let Some(v) = get(name).filter(|v| !v.trim().is_empty()) {
                *field = Some(PathBuf::from(v));
            }
        }
        if let Some(flag) = get("OM_SM_GCP_ALLOW_PRIVATE") {
            self.allow_private = flag.trim().eq_ignore_ascii_case("true");
        }
    }

    /// The provider's settings and its http grant.
    pub fn provider(&self) -> anyhow::Result<(BTreeMap<String, String>, HttpConfig)> {
        let key = match (&self.token_file, &self.credentials_file) {
            (Some(_), _) => None,
            (None, Some(path)) => Some(read_key(path)?),
            (None, None) => bail!(
                "the gcp-secret-manager provider needs credentials: a service account key \
                 file (GOOGLE_APPLICATION_CREDENTIALS, or `credentialsFile`) or a file holding \
                 an access token (OM_SM_GCP_TOKEN_FILE, or `tokenFile`)"
            ),
        };
        let Some(project) = self
            .project_id
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| key.as_ref().and_then(|k| k.project_id.clone()))
        else {
            bail!(
                "the gcp-secret-manager provider needs the project: `projectId` or OM_SM_PROJECT_ID"
            );
        };
        if project.len() > 30
            || !project
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!(
                "projectId {project:?}: a project id is 6 to 30 lowercase letters, digits and `-`"
            );
        }
        let endpoint = self.endpoint.as_deref().unwrap_or(ENDPOINT);
        let (api_origin, api_path) = origin_and_path("the Secret Manager endpoint", endpoint)?;
        let mut settings = BTreeMap::new();
        settings.insert(names::gcp::PROJECT_ID.to_owned(), project);
        settings.insert(
            names::common::ENDPOINT.into(),
            format!("{api_origin}{api_path}"),
        );
        settings.insert(names::common::MAX_LIST_PAGES.into(), LIST_PAGES.to_string());
        let mut origins = vec![api_origin.clone()];
        let mut credentials = BTreeMap::new();
        let mut signers = BTreeMap::new();
        let mut kept_origins = BTreeMap::new();
        match (&self.token_file, key) {
            (Some(file), _) => {
                credentials.insert(
                    names::gcp::TOKEN.to_owned(),
                    CredentialSource {
                        file: Some(file.clone()),
                        env: None,
                        origins: Some(vec![api_origin.clone()]),
                        value: None,
                    },
                );
            }
            (None, Some(key)) => {
                let token_uri = key.token_uri.as_deref().unwrap_or(TOKEN_URI);
                let (token_origin, token_path) =
                    origin_and_path("the key file's token_uri", token_uri)?;
                settings.insert(
                    names::gcp::TOKEN_URL.into(),
                    format!("{token_origin}{token_path}"),
                );
                if token_origin != api_origin {
                    origins.push(token_origin.clone());
                }
                let mut claims = serde_json::Map::new();
                claims.insert("iss".into(), key.client_email.clone().into());
                claims.insert("scope".into(), SCOPE.into());
                claims.insert("aud".into(), token_uri.into());
                signers.insert(
                    names::gcp::ASSERTION.to_owned(),
                    SignerSource {
                        key_file: None,
                        key_id: key.private_key_id.clone(),
                        claims,
                        lifetime_secs: None,
                        origins: Some(vec![token_origin]),
                        key: Some(SecretValue::from_string(key.private_key.clone())),
                    },
                );
                kept_origins.insert(names::common::ACCESS_TOKEN.to_owned(), vec![api_origin]);
            }
            (None, None) => unreachable!("credentials were checked above"),
        }
        let http = HttpConfig {
            origins,
            allow_private: self.allow_private,
            ca_file: self.ca_file.clone(),
            max_requests_per_call: Some(REQUESTS_PER_CALL),
            credentials,
            signers,
            kept_origins,
            ..HttpConfig::default()
        };
        Ok((settings, http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> GcpConfig {
        let mut c = GcpConfig::default();
        c.overlay_env(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        c
    }

    fn key_file(dir: &std::path::Path, kind: &str) -> PathBuf {
        let path = dir.join("key.json");
        std::fs::write(
            &path,
            serde_json::json!({
                "type": kind,
                "project_id": "key-project",
                "private_key_id": "k-1",
                "private_key": "-----BEGIN PRIVATE KEY-----\ncanary-gcp-key\n-----END PRIVATE KEY-----\n",
                "client_email": "broker@key-project.iam.gserviceaccount.com",
                "token_uri": "https://oauth2.googleapis.com/token",
            })
            .to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn openmetadata_variables_and_a_key_file_configure_the_login() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = key_file(dir.path(), "service_account");
        let c = config(&[
            ("OM_SM_PROJECT_ID", "om-project"),
            ("GOOGLE_APPLICATION_CREDENTIALS", &key.display().to_string()),
        ]);
        let (settings, http) = c.provider()?;
        assert_eq!(settings["project-id"], "om-project");
        assert_eq!(
            settings["endpoint"],
            "https://secretmanager.googleapis.com:443"
        );
        assert_eq!(
            settings["token-url"],
            "https://oauth2.googleapis.com:443/token"
        );
        assert_eq!(
            http.origins,
            [
                "https://secretmanager.googleapis.com:443",
                "https://oauth2.googleapis.com:443"
            ]
        );
        let signer = &http.signers[names::gcp::ASSERTION];
        assert_eq!(
            signer.claims["iss"],
            "broker@key-project.iam.gserviceaccount.com"
        );
        assert_eq!(signer.claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(
            signer.origins.as_deref(),
            Some(&["https://oauth2.googleapis.com:443".to_owned()][..])
        );
        assert_eq!(
            http.kept_origins[names::common::ACCESS_TOKEN],
            ["https://secretmanager.googleapis.com:443"]
        );
        assert!(!format!("{settings:?}{http:?}").contains("canary-gcp-key"));
        // The key file's project serves when none is given.
        let c = config(&[("GOOGLE_APPLICATION_CREDENTIALS", &key.display().to_string())]);
        assert_eq!(c.provider()?.0["project-id"], "key-project");
        Ok(())
    }

    #[test]
    fn missing_or_bad_settings_say_what_to_set() -> anyhow::Result<()> {
        let err = |c: GcpConfig| {
            c.provider()
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        let e = err(config(&[("OM_SM_PROJECT_ID", "p-1")]));
        assert!(
            e.contains("GOOGLE_APPLICATION_CREDENTIALS") && e.contains("OM_SM_GCP_TOKEN_FILE"),
            "{e}"
        );
        let dir = tempfile::tempdir()?;
        let user = key_file(dir.path(), "authorized_user");
        let e = err(config(&[
            ("OM_SM_PROJECT_ID", "p-1"),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                &user.display().to_string(),
            ),
        ]));
        assert!(e.contains("only a service account key"), "{e}");
        assert!(!e.contains("canary-gcp-key"), "{e}");
        let e = err(config(&[
            ("OM_SM_PROJECT_ID", "My Project"),
            ("OM_SM_GCP_TOKEN_FILE", "/nonexistent"),
        ]));
        assert!(e.contains("lowercase letters"), "{e}");
        Ok(())
    }

    #[test]
    fn a_token_file_is_the_bearer_for_the_api_only() -> anyhow::Result<()> {
        let c: GcpConfig =
            serde_norway::from_str("projectId: om-project\ntokenFile: /run/gcp/token\n")?;
        let (settings, http) = c.provider()?;
        assert!(!settings.contains_key("token-url"));
        assert!(http.signers.is_empty());
        assert_eq!(
            http.credentials[names::gcp::TOKEN].origins.as_deref(),
            Some(&["https://secretmanager.googleapis.com:443".to_owned()][..])
        );
        Ok(())
    }
}
