//! GetSecretValue through the broker's AWS Secrets Manager API against the
//! broker's own `/v1/secrets/get`, on the same server (db provider on SQLite,
//! audit log on), in one run; and the same GetSecretValue against moto.
//!
//! Two views:
//! - `server`: the same reqwest client sends a request built once and replayed
//!   (the AWS one signed once: a signature holds for its 15 minutes), so both
//!   sides time the server's work, signature check included, and nothing of a
//!   client's. The target is AWS ≤ 1.2 × `/v1`.
//! - `sdk`: the AWS SDK for Rust's GetSecretValue against the broker and against
//!   moto, each signing every request as OpenMetadata's clients do.
//!
//! Each side is timed in turns with the other (criterion `iter_custom`), and a
//! paired summary prints the median ratio of rounds of alternating calls.
//! Needs `moto_server` on PATH (`tests/setup` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::audit::{AuditLog, Salt};
use secret_broker::broker::Broker;
use secret_broker::policy::{Policy, Role};
use secret_broker::{Granted, ProviderHost, Runtime, RuntimeOptions, SecretValue};
use secret_broker_builtin as builtin;
use secret_broker_keyring::{Keyring, KeyringCtx};
use secret_broker_record_store::{RecordStore, RecordStoreCtx};
use secret_broker_server::aws::AwsMetadata;
use secret_broker_server::sigv4::AwsKeys;
use secret_broker_server::tokens::Tokens;
use secret_broker_server::{self as server, AppState, ServerOptions};

const ID: &str = "/openmetadata/database/mysql_prod/password";
const VALUE: &str = "bench-value-of-a-typical-length-0123456789";
const TOKEN: &str = "sbt_bench-admin";
const KEY_ID: &str = "SBAKBENCH00000000000";
const KEY_SECRET: &str = "benchSecretKey0000000000000000000000000";

fn sdk(url: &str, key: &str, secret: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                key, secret, None, None, "bench",
            )),
        )
        .build();
    aws_sdk_secretsmanager::Client::new(&config)
}

/// The broker on the db provider, audit log on; its address.
async fn broker(dir: &std::path::Path) -> std::net::SocketAddr {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let component = runtime.load_bytes("db", builtin::DB).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let store = Arc::new(RecordStore::connect(&url).await.unwrap());
    let granted = Granted::new("bench")
        .with(KeyringCtx::new(
            Arc::new(Keyring::single([3; 32])),
            "provider/bench",
        ))
        .with(RecordStoreCtx::new(store.clone(), "provider/bench"));
    let provider = Arc::new(
        ProviderHost::new(&runtime, &component, granted)
            .await
            .unwrap(),
    );
    let audit = AuditLog::open(&dir.join("audit.log"), Salt::from_bytes(&[1; 32])).unwrap();
    let broker = Broker::new(provider, None, Policy::default(), Some(Arc::new(audit)));
    let mut tokens = Tokens::default();
    tokens.insert("bench", Role::Admin, TOKEN);
    let state = AppState::new(broker, tokens, ServerOptions::default());
    let mut keys = AwsKeys::default();
    keys.insert(
        "bench",
        Role::Admin,
        KEY_ID,
        SecretValue::from_string(KEY_SECRET.into()),
    );
    state.set_aws_keys(keys);
    state.set_aws_metadata(AwsMetadata::new(store));
    let app = server::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::listen::serve(
        listener,
        app,
        server::listen::ConnOptions::default(),
        std::future::pending(),
    ));
    addr
}

/// A GetSecretValue request signed once with SigV4, to replay.
fn signed_get(addr: std::net::SocketAddr) -> reqwest::Request {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let body = format!(r#"{{"SecretId":"{ID}"}}"#);
    let host = addr.to_string();
    let date = SystemTime::now();
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
    ];
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        Credentials::new(KEY_ID, KEY_SECRET, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("secretsmanager")
        .time(date)
        .settings(SigningSettings::default())
        .build()
        .unwrap();
    let url = format!("http://{host}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params.into()).unwrap().into_parts();
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .body(body)
        .build()
        .unwrap();
    for (name, value) in instructions.headers() {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_str(value).unwrap(),
        );
    }
    req
}

fn bench(c: &mut Criterion) {
    let quick = !std::env::args().any(|a| a == "--bench");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = tokio.block_on(broker(dir.path()));
    secret_broker_http::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let moto = common::moto();

    // The value, written through each API it is read by.
    let to_broker = sdk(&format!("http://{addr}"), KEY_ID, KEY_SECRET);
    let to_moto = sdk(&moto.1, "testing", "testing");
    tokio.block_on(async {
        to_broker
            .create_secret()
            .name(ID)
            .secret_string(VALUE)
            .send()
            .await
            .unwrap();
        to_moto
            .create_secret()
            .name(ID)
            .secret_string(VALUE)
            .send()
            .await
            .unwrap();
    });

    let aws_req = signed_get(addr);
    let v1_req = client
        .post(format!("http://{addr}/v1/secrets/get"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"id":"{ID}"}}"#))
        .build()
        .unwrap();
    let send = |req: &reqwest::Request| {
        let (req, client) = (req.try_clone().unwrap(), client.clone());
        tokio.block_on(async move {
            let resp = client.execute(req).await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            let body = resp.bytes().await.unwrap();
            assert!(body.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));
        });
    };
    let aws = || send(&aws_req);
    let v1 = || send(&v1_req);
    let sdk_get = |c: &aws_sdk_secretsmanager::Client| {
        tokio.block_on(async {
            let got = c.get_secret_value().secret_id(ID).send().await.unwrap();
            assert_eq!(got.secret_string(), Some(VALUE));
        });
    };
    let sdk_broker = || sdk_get(&to_broker);
    let sdk_moto = || sdk_get(&to_moto);

    let mut g = c.benchmark_group("aws_api");
    g.bench_function("server/GetSecretValue", |b| {
        b.iter_custom(|n| common::in_turns(n, &aws, &v1))
    });
    g.bench_function("server/v1-get", |b| {
        b.iter_custom(|n| common::in_turns(n, &v1, &aws))
    });
    g.bench_function("sdk/GetSecretValue-broker", |b| {
        b.iter_custom(|n| common::in_turns(n, &sdk_broker, &sdk_moto))
    });
    g.bench_function("sdk/GetSecretValue-moto", |b| {
        b.iter_custom(|n| common::in_turns(n, &sdk_moto, &sdk_broker))
    });
    g.finish();

    let rounds = if quick { 3 } else { 300 };
    common::paired(
        "aws_api get",
        ("GetSecretValue", "v1"),
        rounds,
        10,
        &aws,
        &v1,
    );
    common::paired(
        "aws_api get through the SDK",
        ("broker", "moto"),
        if quick { 3 } else { 100 },
        10,
        &sdk_broker,
        &sdk_moto,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
