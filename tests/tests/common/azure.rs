//! An Azure Key Vault and its token endpoint (`tests/scripts/azure_kv_server.py`,
//! written from the published references) on a free loopback port over TLS with
//! a CA of its own, owned by one test and stopped when dropped; the official
//! `azure-keyvault-secrets` and `azure-identity` clients from PyPI run against it
//! as another client.

use std::process::Output;
use std::sync::Arc;

use secret_broker::{ProviderHost, SecretValue};
use secret_broker_http::HttpSettings;

pub const TENANT: &str = "7f3c1d2e-0000-4000-8000-00000000a2b1";
pub const CLIENT_ID: &str = "0d5e8a41-1111-4111-8111-0000000c11e7";

pub struct Azure {
    _server: super::Server,
    /// The vault: `https://127.0.0.1:PORT`.
    pub url: String,
    /// The authority: the same server as another origin, `https://localhost:PORT`
    /// (as login.microsoftonline.com is another origin than the vault).
    pub authority: String,
    pub ca_file: std::path::PathBuf,
    pub client_secret: String,
    dir: tempfile::TempDir,
}

impl Azure {
    pub fn start() -> Azure {
        let dir = tempfile::tempdir().unwrap();
        let client_secret = format!("Az~{:016x}.secret", rand::random::<u64>());
        std::fs::write(
            dir.path().join("clients"),
            format!("{TENANT} {CLIENT_ID} {client_secret}\n"),
        )
        .unwrap();
        let (server, url) = super::start_script_server("azure_kv_server.py", dir.path(), &[], true);
        Azure {
            _server: server,
            authority: url.replace("127.0.0.1", "localhost"),
            url,
            ca_file: dir.path().join("ca.pem"),
            client_secret,
            dir,
        }
    }

    /// Replaces the client secret the token endpoint accepts (a rotation).
    pub fn set_client_secret(&self, secret: &str) {
        std::fs::write(
            self.dir.path().join("clients"),
            format!("{TENANT} {CLIENT_ID} {secret}\n"),
        )
        .unwrap();
    }

    /// Grant settings for this server with `client_secret` as the credential
    /// `client-secret` (sent to the authority only); the access token the
    /// provider keeps from the authority may go to the vault.
    pub fn http(&self, client_secret: &str) -> HttpSettings {
        self.http_unbound(client_secret)
            .bind_credential("access-token", &[self.url.as_str()])
            .unwrap()
    }

    /// As [`Azure::http`], without letting the access token go to the vault.
    pub fn http_unbound(&self, client_secret: &str) -> HttpSettings {
        let mut s = HttpSettings::new(&[self.url.as_str(), self.authority.as_str()])
            .unwrap()
            .credential(
                "client-secret",
                SecretValue::from_string(client_secret.into()),
            )
            .unwrap()
            .bind_credential("client-secret", &[self.authority.as_str()])
            .unwrap();
        s.allow_private = true;
        s.ca_file = Some(self.ca_file.clone());
        s
    }

    /// The azure-key-vault provider on this server.
    pub async fn provider(&self) -> Arc<ProviderHost> {
        self.provider_with(self.http(&self.client_secret), &[])
            .await
    }

    /// With the grant `http` and extra settings.
    pub async fn provider_with(
        &self,
        http: HttpSettings,
        settings: &[(&str, &str)],
    ) -> Arc<ProviderHost> {
        let base = [
            ("vault-url", self.url.as_str()),
            ("authority", self.authority.as_str()),
            ("tenant-id", TENANT),
            ("client-id", CLIENT_ID),
        ];
        let all: Vec<_> = base.iter().chain(settings).copied().collect();
        super::http_provider(
            "azure-key-vault",
            secret_broker_builtin::AZURE_KEY_VAULT,
            http,
            &all,
        )
        .await
    }

    /// Runs a Python snippet with `c`, the official `SecretClient`, logged in
    /// by `ClientSecretCredential` at this server's token endpoint (and `BASE`,
    /// `CA`, `sys` in scope).
    pub fn python(&self, body: &str, args: &[&str]) -> Output {
        let script = format!(
            "import sys, os\n\
             BASE = {base:?}\n\
             CA = {ca:?}\n\
             os.environ['REQUESTS_CA_BUNDLE'] = CA\n\
             from azure.identity import ClientSecretCredential\n\
             from azure.keyvault.secrets import SecretClient\n\
             cred = ClientSecretCredential({TENANT:?}, {CLIENT_ID:?}, {secret:?}, authority=BASE, disable_instance_discovery=True)\n\
             c = SecretClient(vault_url=BASE, credential=cred, verify_challenge_resource=False)\n\
             {body}\n",
            base = self.url,
            ca = self.ca_file.display().to_string(),
            secret = self.client_secret,
        );
        super::python(&script, args, "azure-keyvault-secrets and azure-identity")
    }
}

impl super::TestControls for Azure {
    fn control_base(&self) -> (&str, &std::path::Path) {
        (&self.url, &self.ca_file)
    }
}
