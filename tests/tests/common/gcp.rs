//! A Google Cloud Secret Manager and its token endpoint
//! (`tests/scripts/gcp_sm_server.py`, written from the published references)
//! on a free loopback port over TLS with a CA of its own, owned by one test and
//! stopped when dropped, with a service account whose key it accepts; the
//! official `google-cloud-secret-manager` client from PyPI runs against it as
//! another client.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use secret_broker::{ProviderHost, SecretValue};
use secret_broker_http::{HttpSettings, JwtSigner};

use super::TestControls as _;

pub const PROJECT: &str = "om-test-project";
pub const CLIENT_EMAIL: &str = "secret-broker@om-test-project.iam.gserviceaccount.com";

pub struct Gcp {
    _server: super::Server,
    /// The API: `https://127.0.0.1:PORT`.
    pub api: String,
    /// The token URI: the same server as another origin,
    /// `https://localhost:PORT/token` (as oauth2.googleapis.com is another
    /// origin than secretmanager.googleapis.com).
    pub token_uri: String,
    pub ca_file: std::path::PathBuf,
    /// The service account key file (JSON, as Google's console gives it).
    pub key_file: std::path::PathBuf,
    /// A plain bearer token the API accepts.
    pub token: String,
    dir: tempfile::TempDir,
}

impl Gcp {
    pub fn start() -> Gcp {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("ya29.plain-{:016x}", rand::random::<u64>());
        std::fs::write(dir.path().join("tokens"), format!("{token}\n")).unwrap();
        let (server, api) = super::start_script_server("gcp_sm_server.py", dir.path(), &[], true);
        let token_uri = format!("{}/token", api.replace("127.0.0.1", "localhost"));
        // The service account the server created at start.
        let key_file = dir.path().join("keys/secret-broker.json");
        Gcp {
            _server: server,
            token_uri,
            api,
            ca_file: dir.path().join("ca.pem"),
            key_file,
            token,
            dir,
        }
    }

    fn key(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.key_file).unwrap()).unwrap()
    }

    /// The token endpoint's origin.
    pub fn token_origin(&self) -> String {
        self.token_uri.trim_end_matches("/token").to_owned()
    }

    /// A signer of the service account's assertions, as the CLI makes one from
    /// the key file: the key stays in the host.
    pub fn signer(&self) -> JwtSigner {
        let key = self.key();
        JwtSigner::rs256(
            "assertion",
            &SecretValue::from_string(key["private_key"].as_str().unwrap().to_owned()),
            key["private_key_id"].as_str().map(str::to_owned),
            serde_json::json!({
                "iss": CLIENT_EMAIL,
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": self.token_uri,
            }),
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    fn base_http(&self) -> HttpSettings {
        let mut s = HttpSettings::new(&[self.api.as_str(), &self.token_origin()]).unwrap();
        s.allow_private = true;
        s.ca_file = Some(self.ca_file.clone());
        s
    }

    /// Grant settings logging in with the service account: the assertion goes
    /// to the token endpoint only, the access token to the API.
    pub fn http(&self) -> HttpSettings {
        self.base_http()
            .signer("assertion", self.signer())
            .unwrap()
            .bind_credential("assertion", &[self.token_origin()])
            .unwrap()
            .bind_credential("access-token", &[self.api.as_str()])
            .unwrap()
    }

    /// Grant settings with `token` as the plain bearer token `token`.
    pub fn http_token(&self, token: &str) -> HttpSettings {
        self.base_http()
            .credential("token", SecretValue::from_string(token.into()))
            .unwrap()
    }

    /// The gcp-secret-manager provider on this server, logging in with the
    /// service account.
    pub async fn provider(&self) -> Arc<ProviderHost> {
        self.provider_with(self.http(), &[]).await
    }

    /// With the grant `http` and extra settings.
    pub async fn provider_with(
        &self,
        http: HttpSettings,
        settings: &[(&str, &str)],
    ) -> Arc<ProviderHost> {
        let base = [
            ("project-id", PROJECT),
            ("endpoint", self.api.as_str()),
            ("token-url", self.token_uri.as_str()),
        ];
        let all: Vec<_> = base.iter().chain(settings).copied().collect();
        super::http_provider(
            "gcp-secret-manager",
            secret_broker_builtin::GCP_SECRET_MANAGER,
            http,
            &all,
        )
        .await
    }

    /// Flips a bit of the latest version's stored data of `secret`, keeping its
    /// CRC32C (corruption at rest).
    pub fn corrupt(&self, secret: &str) {
        self.control(
            "/_test/corrupt",
            Some(&serde_json::json!({ "secret": secret })),
        );
    }

    /// Replaces the plain bearer tokens the API accepts.
    pub fn set_tokens(&self, tokens: &[&str]) {
        std::fs::write(self.dir.path().join("tokens"), tokens.join("\n")).unwrap();
    }

    /// Runs a Python snippet with `c`, the official `SecretManagerServiceClient`
    /// over its REST transport, logged in with the service account key (and
    /// `BASE`, `CA`, `PARENT`, `google_crc32c`, `sys` in scope).
    pub fn python(&self, body: &str, args: &[&str]) -> Output {
        let script = format!(
            "import sys, os\n\
             BASE = {base:?}\n\
             CA = {ca:?}\n\
             PARENT = 'projects/{PROJECT}'\n\
             os.environ['REQUESTS_CA_BUNDLE'] = CA\n\
             import google_crc32c\n\
             from google.oauth2 import service_account\n\
             from google.cloud import secretmanager\n\
             creds = service_account.Credentials.from_service_account_file({key:?}, scopes=['https://www.googleapis.com/auth/cloud-platform'])\n\
             c = secretmanager.SecretManagerServiceClient(credentials=creds, transport='rest', client_options={{'api_endpoint': BASE}})\n\
             {body}\n",
            base = self.api,
            ca = self.ca_file.display().to_string(),
            key = self.key_file.display().to_string(),
        );
        super::python(
            &script,
            args,
            "google-cloud-secret-manager and google-crc32c",
        )
    }
}

impl super::TestControls for Gcp {
    fn control_base(&self) -> (&str, &std::path::Path) {
        (&self.api, &self.ca_file)
    }
}
