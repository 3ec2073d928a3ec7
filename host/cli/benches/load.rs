//! Load test of the HTTP API on loopback, audit log on: N concurrent clients doing
//! puts, then gets, on the db provider (SQLite), each phase for a fixed time and
//! bounded also in operations per client. Prints req/s, p50/p99 latency and the
//! error count of each phase, then checks that every acknowledged write reads
//! back. `LOAD_CLIENTS` (default 16) and `LOAD_SECS`
//! (default 30) change the shape. Run with `cargo bench --bench load`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secret_broker::audit::{AuditLog, Salt};
use secret_broker::broker::Broker;
use secret_broker::policy::{Policy, Role};
use secret_broker::{Granted, ProviderHost, Runtime, RuntimeOptions};
use secret_broker_builtin as builtin;
use secret_broker_keyring::Keyring;
use secret_broker_keyring::KeyringCtx;
use secret_broker_record_store::RecordStore;
use secret_broker_record_store::RecordStoreCtx;
use secret_broker_server::tokens::Tokens;
use secret_broker_server::{self as server, AppState, ServerOptions};
use serde_json::json;

const TOKEN: &str = "sbt_load-test-admin";
const MAX_OPS_PER_CLIENT: usize = 200_000;
const KEYS_PER_CLIENT: usize = 50;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
}

/// One phase: every client does `op` on its own keys until the time is up.
/// Returns the last value acknowledged per id and the phase's report line.
async fn phase(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    clients: usize,
    secs: u64,
    op: Op,
) -> (BTreeMap<String, String>, String) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acked: BTreeMap<String, String> = BTreeMap::new();
            let mut errors = 0usize;
            let mut n = 0usize;
            while Instant::now() < deadline && n < MAX_OPS_PER_CLIENT {
                let id = format!("/load/c{c}/k{}", n % KEYS_PER_CLIENT);
                let value = format!("value-{c}-{n}");
                let (path, body) = match op {
                    Op::Put => ("put", json!({"id": id, "value": value})),
                    Op::Get => ("get", json!({"id": id})),
                };
                let t = Instant::now();
                let answer = client
                    .post(format!("http://{addr}/v1/secrets/{path}"))
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await;
                latencies.push(t.elapsed());
                match answer {
                    Ok(r) if r.status().is_success() => {
                        if op == Op::Put {
                            acked.insert(id, value);
                        }
                    }
                    _ => errors += 1,
                }
                n += 1;
            }
            (latencies, acked, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut acked = BTreeMap::new();
    let mut errors = 0;
    for t in tasks {
        let (l, a, e) = t.await.unwrap();
        latencies.extend(l);
        acked.extend(a);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let ops = latencies.len();
    let name = if op == Op::Put { "puts" } else { "gets" };
    let line = format!(
        "{name}: {clients} clients, {:.1} s, {ops} requests, {:.0} req/s, p50 {:?}, p99 {:?}, max {:?}, errors {errors}",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    (acked, line)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let clients = env_or("LOAD_CLIENTS", 16) as usize;
    let secs = if quick { 1 } else { env_or("LOAD_SECS", 30) };

    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let component = runtime.load_bytes("db", builtin::DB).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
    let store = Arc::new(RecordStore::connect(&url).await.unwrap());
    let keyring = Arc::new(Keyring::single([3; 32]));
    let granted = Granted::new("load")
        .with(KeyringCtx::new(keyring, "provider/load"))
        .with(RecordStoreCtx::new(store, "provider/load"));
    let provider = Arc::new(
        ProviderHost::new(&runtime, &component, granted)
            .await
            .unwrap(),
    );
    let audit = AuditLog::open(&dir.path().join("audit.log"), Salt::from_bytes(&[1; 32])).unwrap();
    let broker = Broker::new(provider, None, Policy::default(), Some(Arc::new(audit)));
    let mut tokens = Tokens::default();
    tokens.insert("load", Role::Admin, TOKEN);
    let app = server::router(AppState::new(broker, tokens, ServerOptions::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::listen::serve(
        listener,
        app,
        server::listen::ConnOptions::default(),
        std::future::pending(),
    ));

    secret_broker_http::ensure_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    // Puts, then gets, each phase timed on its own: N clients for `secs` seconds.
    let (acked, put_line) = phase(&client, addr, clients, secs, Op::Put).await;
    let (_, get_line) = phase(&client, addr, clients, secs, Op::Get).await;
    println!("load: {put_line}");
    println!("load: {get_line}");
    let mut lost = 0;
    for (id, value) in &acked {
        let body: serde_json::Value = client
            .post(format!("http://{addr}/v1/secrets/get"))
            .bearer_auth(TOKEN)
            .json(&json!({"id": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["value"] != json!(value) {
            lost += 1;
        }
    }
    println!(
        "load: {} acknowledged ids checked after the run, {lost} not reading back their last value",
        acked.len()
    );
    assert_eq!(lost, 0, "acknowledged writes were lost");
}
