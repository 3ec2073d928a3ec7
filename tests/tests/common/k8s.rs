//! A Kubernetes API server for Secrets (`tests/scripts/k8s_api_server.py`, written
//! from the published API reference) on a free loopback port over TLS with a CA
//! of its own, owned by one test and stopped when dropped; the official
//! `kubernetes` client from PyPI run against it as another client.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secret_broker::{Granted, ProviderHost, SecretValue};
use secret_broker_http::{HttpCtx, HttpSettings};

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
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/k8s_api_server.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .arg("--tls")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 (tests/setup)");
        let port_file = dir.path().join("port");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "the Kubernetes test server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        K8s {
            _server: super::Server(child),
            server: format!("https://127.0.0.1:{}", port.trim()),
            ca_file: dir.path().join("ca.pem"),
            token,
            dir,
        }
    }

    /// Replaces the tokens the server accepts (a rotation).
    pub fn set_tokens(&self, tokens: &[&str]) {
        std::fs::write(self.dir.path().join("tokens"), tokens.join("\n")).unwrap();
    }

    /// Answers the next `times` API requests (of `method`, if given) with
    /// `status` (and `Retry-After`).
    pub fn fault(&self, method: Option<&str>, status: u16, times: u32, retry_after: Option<u32>) {
        let mut body = serde_json::json!({"status": status, "times": times});
        if let Some(method) = method {
            body["method"] = method.into();
        }
        if let Some(after) = retry_after {
            body["retry_after"] = after.into();
        }
        let out = self.python(
            "import json, urllib.request, ssl\n\
             ctx = ssl.create_default_context(cafile=CA)\n\
             req = urllib.request.Request(SERVER + '/_test/faults', data=sys.argv[1].encode(), method='POST')\n\
             urllib.request.urlopen(req, context=ctx).read()",
            &[&body.to_string()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
        let runtime = super::runtime();
        let component = runtime
            .load_bytes("builtin:kubernetes", secret_broker_builtin::KUBERNETES)
            .unwrap();
        let mut granted = Granted::new("k8s").with(HttpCtx::new(http).unwrap());
        granted
            .settings
            .insert("server".into(), self.server.clone());
        granted
            .settings
            .insert("namespace".into(), namespace.into());
        Arc::new(
            ProviderHost::new(&runtime, &component, granted)
                .await
                .unwrap(),
        )
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
