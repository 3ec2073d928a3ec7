//! A Kubernetes API server for Secrets (`tests/scripts/k8s_api_server.py`, written
//! from the published API reference) on a free loopback port over TLS with a CA
//! of its own, owned by one test and stopped when dropped; the official
//! `kubernetes` client from PyPI run against it as another client.

use std::process::Output;
use std::sync::Arc;

use secret_broker::{ProviderHost, SecretValue};
use secret_broker_http::HttpSettings;

pub struct K8s {
    _server: super::Server,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    pub ca_file: std::path::PathBuf,
    pub token: String,
    dir: tempfile::TempDir,
}

impl K8s {
    pub fn start() -> K8s {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("k8s-token-{:016x}", rand::random::<u64>());
        std::fs::write(dir.path().join("tokens"), format!("{token}\n")).unwrap();
        let (server, url) =
            super::start_script_server("k8s_api_server.py", dir.path(), &["--tls"], true);
        K8s {
            _server: server,
            server: url,
            ca_file: dir.path().join("ca.pem"),
            token,
            dir,
        }
    }

    /// Replaces the tokens the server accepts (a rotation).
    pub fn set_tokens(&self, tokens: &[&str]) {
        std::fs::write(self.dir.path().join("tokens"), tokens.join("\n")).unwrap();
    }

    /// Grant settings for this server with `token` as the credential `token`.
    pub fn http(&self, token: &str) -> HttpSettings {
        let mut s = HttpSettings::new(&[self.server.as_str()])
            .unwrap()
            .credential("token", SecretValue::from_string(token.into()))
            .unwrap();
        s.allow_private = true;
        s.ca_file = Some(self.ca_file.clone());
        s
    }

    /// The kubernetes provider on this server, namespace `namespace`.
    pub async fn provider(&self, namespace: &str) -> Arc<ProviderHost> {
        self.provider_with(self.http(&self.token), namespace).await
    }

    pub async fn provider_with(&self, http: HttpSettings, namespace: &str) -> Arc<ProviderHost> {
        let settings = [("server", self.server.as_str()), ("namespace", namespace)];
        super::http_provider(
            "kubernetes",
            secret_broker_builtin::KUBERNETES,
            http,
            &settings,
        )
        .await
    }

    /// Runs a Python snippet with `api`, the official client's `CoreV1Api`, on
    /// this server (and `SERVER`, `CA`, `client`, `base64`, `sys` in scope).
    pub fn python(&self, body: &str, args: &[&str]) -> Output {
        let script = format!(
            "import sys, base64\n\
             from kubernetes import client\n\
             SERVER = {server:?}\n\
             CA = {ca:?}\n\
             c = client.Configuration()\n\
             c.host = SERVER\n\
             c.ssl_ca_cert = CA\n\
             c.api_key = {{'authorization': {token:?}}}\n\
             c.api_key_prefix = {{'authorization': 'Bearer'}}\n\
             api = client.CoreV1Api(client.ApiClient(c))\n\
             {body}\n",
            server = self.server,
            ca = self.ca_file.display().to_string(),
            token = self.token,
        );
        super::python(&script, args, "kubernetes")
    }
}

impl super::TestControls for K8s {
    fn control_base(&self) -> (&str, &std::path::Path) {
        (&self.server, &self.ca_file)
    }
}
