//! The kubernetes, azure-key-vault and gcp-secret-manager providers against their
//! loopback test servers (`tests/scripts/*.py`, over TLS with a test CA): a get
//! through the provider (host → Wasm → http capability → reqwest, the value
//! lifted into the host) against the same read made directly from Rust with
//! reqwest to the same server (the token already in hand, the value decoded).
//! The two sides are timed in pairs, so neither gains from the server's state.
//! The servers are Python: their time dominates both sides, so the ratio says
//! what the provider path adds to a read of a real-world-slow backend; the
//! openbao benchmark's instant backend measures the path alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The binary's allocator (host/cli/src/main.rs), for both sides.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
use secret_broker_builtin as builtin;
use secret_broker_http::{HttpCtx, HttpSettings, JwtSigner};
use serde_json::Value;

const VALUE: &str = "a-typical-password-value";

/// A test server, stopped when dropped; `.1` its `https://127.0.0.1:PORT`.
struct Server(Child, String, tempfile::TempDir);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn ca(&self) -> PathBuf {
        self.2.path().join("ca.pem")
    }
}

fn start(script: &str, files: &[(&str, &str)], args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scripts")
        .join(script);
    // Owned at once: stopped and reaped when dropped, however this returns.
    let mut server = Server(
        Command::new("python3")
            .arg(path)
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 (tests/setup)"),
        String::new(),
        dir,
    );
    for _ in 0..600 {
        if let Ok(port) = std::fs::read_to_string(server.2.path().join("port")) {
            server.1 = format!("https://127.0.0.1:{}", port.trim());
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{script} did not start");
}

fn grant(origins: &[&str], ca: &Path) -> HttpSettings {
    let mut s = HttpSettings::new(origins).unwrap();
    s.allow_private = true;
    s.ca_file = Some(ca.to_path_buf());
    s
}

fn client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// One read made directly: GET `url` with `token`, the value at `pointer`
/// (base64-decoded when `base64`).
struct Direct {
    client: reqwest::Client,
    url: String,
    auth: String,
    pointer: &'static str,
    base64: bool,
}

impl Direct {
    async fn get(&self) -> Vec<u8> {
        let json: Value = self
            .client
            .get(&self.url)
            .header("Authorization", &self.auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = json.pointer(self.pointer).unwrap().as_str().unwrap();
        if !self.base64 {
            return text.as_bytes().to_vec();
        }
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }
}

/// Times `get_provider` against `get_direct`, in criterion and in pairs.
fn measure(c: &mut Criterion, name: &str, get_provider: &dyn Fn(), get_direct: &dyn Fn()) {
    let mut group = c.benchmark_group(name);
    group.bench_function("get_provider", |b| {
        b.iter_custom(|iters| common::in_turns(iters, get_provider, get_direct))
    });
    group.bench_function("get_direct", |b| {
        b.iter_custom(|iters| common::in_turns(iters, get_direct, get_provider))
    });
    group.finish();
    common::paired(
        &format!("{name} get"),
        ("provider", "direct"),
        200,
        10,
        get_provider,
        get_direct,
    );
}

/// Puts the value through the provider, checks the direct side reads it, and
/// measures both.
fn measure_direct(
    c: &mut Criterion,
    tokio: &tokio::runtime::Runtime,
    name: &str,
    provider: &ProviderHost,
    id: &str,
    direct: &Direct,
) {
    let value = SecretValue::from_string(VALUE.into());
    tokio
        .block_on(provider.put(id, &value, &PutOptions::default()))
        .unwrap();
    assert_eq!(tokio.block_on(direct.get()), VALUE.as_bytes());
    measure(
        c,
        name,
        &|| {
            tokio.block_on(provider.get(id)).unwrap().unwrap();
        },
        &|| {
            tokio.block_on(direct.get());
        },
    );
}

fn provider(
    tokio: &tokio::runtime::Runtime,
    runtime: &Runtime,
    wasm: &[u8],
    http: HttpSettings,
    settings: &[(&str, &str)],
) -> ProviderHost {
    let component = runtime.load_bytes("bench", wasm).unwrap();
    let mut granted = Granted::new("bench").with(HttpCtx::new(http).unwrap());
    for (k, v) in settings {
        granted.settings.insert((*k).into(), (*v).into());
    }
    tokio
        .block_on(ProviderHost::new(runtime, &component, granted))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    secret_broker_http::ensure_crypto_provider();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();

    // Kubernetes: a Secret's data key `value`.
    let token = "bench-k8s-token";
    let k8s = start("k8s_api_server.py", &[("tokens", token)], &["--tls"]);
    let http = grant(&[k8s.1.as_str()], &k8s.ca())
        .credential("token", SecretValue::from_string(token.into()))
        .unwrap();
    let p = provider(
        &tokio,
        &runtime,
        builtin::KUBERNETES,
        http,
        &[("server", &k8s.1), ("namespace", "bench")],
    );
    let id = "openmetadata-database-mysql-prod-password";
    let direct = Direct {
        client: client(&k8s.ca()),
        url: format!("{}/api/v1/namespaces/bench/secrets/{id}", k8s.1),
        auth: format!("Bearer {token}"),
        pointer: "/data/value",
        base64: true,
    };
    measure_direct(c, &tokio, "kubernetes", &p, id, &direct);
    drop(k8s);

    // Azure Key Vault: the direct side logs in once, as the provider does.
    let (tenant, client_id, secret) = ("bench-tenant", "bench-client", "bench-secret");
    let az = start(
        "azure_kv_server.py",
        &[("clients", &format!("{tenant} {client_id} {secret}\n"))],
        &[],
    );
    let authority = az.1.replace("127.0.0.1", "localhost");
    let http = grant(&[az.1.as_str(), authority.as_str()], &az.ca())
        .credential("client-secret", SecretValue::from_string(secret.into()))
        .unwrap()
        .bind_credential("client-secret", &[authority.as_str()])
        .unwrap()
        .bind_credential("access-token", &[az.1.as_str()])
        .unwrap();
    let p = provider(
        &tokio,
        &runtime,
        builtin::AZURE_KEY_VAULT,
        http,
        &[
            ("vault-url", &az.1),
            ("authority", &authority),
            ("tenant-id", tenant),
            ("client-id", client_id),
        ],
    );
    let http_client = client(&az.ca());
    let login: Value = tokio
        .block_on(async {
            http_client
                .post(format!("{authority}/{tenant}/oauth2/v2.0/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", "https://vault.azure.net/.default"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
        })
        .unwrap();
    let id = "openmetadata-database-mysqlprod-password";
    let direct = Direct {
        client: http_client,
        url: format!("{}/secrets/{id}?api-version=7.4", az.1),
        auth: format!("Bearer {}", login["access_token"].as_str().unwrap()),
        pointer: "/value",
        base64: false,
    };
    measure_direct(c, &tokio, "azure-key-vault", &p, id, &direct);
    drop(az);

    // Google Secret Manager: the provider logs in with the service account (the
    // host signs the assertion), the direct side uses a bearer token.
    let token = "ya29.bench-token";
    let gcp = start("gcp_sm_server.py", &[("tokens", token)], &[]);
    let key: Value = serde_json::from_slice(
        &std::fs::read(gcp.2.path().join("keys/secret-broker.json")).unwrap(),
    )
    .unwrap();
    let token_uri = key["token_uri"].as_str().unwrap();
    let token_origin = token_uri.trim_end_matches("/token");
    let signer = JwtSigner::rs256(
        "assertion",
        &SecretValue::from_string(key["private_key"].as_str().unwrap().into()),
        key["private_key_id"].as_str().map(str::to_owned),
        serde_json::json!({
            "iss": key["client_email"],
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": token_uri,
        }),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let http = grant(&[gcp.1.as_str(), token_origin], &gcp.ca())
        .signer("assertion", signer)
        .unwrap()
        .bind_credential("assertion", &[token_origin])
        .unwrap()
        .bind_credential("access-token", &[gcp.1.as_str()])
        .unwrap();
    let p = provider(
        &tokio,
        &runtime,
        builtin::GCP_SECRET_MANAGER,
        http,
        &[
            ("project-id", "om-test-project"),
            ("endpoint", &gcp.1),
            ("token-url", token_uri),
        ],
    );
    let id = "openmetadata_database_mysqlprod_password";
    let direct = Direct {
        client: client(&gcp.ca()),
        url: format!(
            "{}/v1/projects/om-test-project/secrets/{id}/versions/latest:access",
            gcp.1
        ),
        auth: format!("Bearer {token}"),
        pointer: "/payload/data",
        base64: true,
    };
    measure_direct(c, &tokio, "gcp-secret-manager", &p, id, &direct);
}

criterion_group!(benches, bench);
criterion_main!(benches);
