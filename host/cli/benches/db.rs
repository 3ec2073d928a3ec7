//! db provider throughput: put and get through the provider (host → Wasm →
//! record-store and keyring capabilities) against the same statements and the
//! same AES-GCM work issued natively with sqlx on the same pool, on SQLite and on
//! PostgreSQL (a throwaway database on 127.0.0.1:5432).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
use secret_broker_builtin as builtin;
use secret_broker_keyring::Keyring;
use secret_broker_keyring::KeyringCtx;
use secret_broker_record_store::RecordStoreCtx;
use secret_broker_record_store::{Condition, RecordStore};
use sqlx::{AssertSqlSafe, Connection};

const NS: &str = "provider/bench";
const ID: &str = "/openmetadata/database/mysql_prod/password";

struct Setup {
    store: Arc<RecordStore>,
    provider: ProviderHost,
    grant: KeyringCtx,
}

async fn setup(url: &str) -> Setup {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let component = runtime.load_bytes("db", builtin::DB).unwrap();
    let store = Arc::new(RecordStore::connect(url).await.unwrap());
    let keyring = Arc::new(Keyring::single([4; 32]));
    let granted = Granted::new("bench")
        .with(KeyringCtx::new(keyring.clone(), NS))
        .with(RecordStoreCtx::new(store.clone(), NS));
    let provider = ProviderHost::new(&runtime, &component, granted)
        .await
        .unwrap();
    Setup {
        store,
        provider,
        grant: KeyringCtx::new(keyring, NS),
    }
}

fn bench_backend(c: &mut Criterion, name: &str, url: &str) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = tokio.block_on(setup(url));
    let value = SecretValue::from_string("a-typical-password-value".into());
    tokio
        .block_on(s.provider.put(ID, &value, &PutOptions::default()))
        .unwrap();
    let mut group = c.benchmark_group(format!("db_{name}"));
    group.bench_function("get_provider", |b| {
        b.iter(|| tokio.block_on(s.provider.get(ID)).unwrap().unwrap())
    });
    group.bench_function("get_native", |b| {
        b.iter(|| {
            tokio.block_on(async {
                let row = s.store.get(NS, ID).await.unwrap().unwrap();
                s.grant.open(&row.value, ID.as_bytes()).unwrap()
            })
        })
    });
    // Alternate two values so every put really writes.
    let values = [
        SecretValue::from_string("value-one".into()),
        SecretValue::from_string("value-two".into()),
    ];
    let mut n = 0usize;
    group.bench_function("put_provider", |b| {
        b.iter(|| {
            n += 1;
            tokio
                .block_on(s.provider.put(ID, &values[n % 2], &PutOptions::default()))
                .unwrap()
        })
    });
    group.bench_function("put_native", |b| {
        b.iter(|| {
            n += 1;
            tokio.block_on(async {
                // What the provider does: read, open and compare, seal, CAS write.
                let row = s.store.get(NS, ID).await.unwrap().unwrap();
                let old = s.grant.open(&row.value, ID.as_bytes()).unwrap();
                assert!(!old.ct_eq(&values[n % 2]));
                let sealed = s.grant.seal(&values[n % 2], ID.as_bytes());
                s.store
                    .put(NS, ID, &sealed, Condition::Version(row.version))
                    .await
                    .unwrap()
            })
        })
    });
    group.finish();
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    bench_backend(c, "sqlite", &url);
}

fn postgres(c: &mut Criterion) {
    let admin = "postgres://postgres@127.0.0.1:5432/postgres";
    let name = format!("sb_bench_{:08x}", rand::random::<u32>());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Ok(mut conn) = tokio.block_on(sqlx::PgConnection::connect(admin)) else {
        eprintln!("skipping PostgreSQL: nothing answers at {admin} (run tests/setup)");
        return;
    };
    tokio
        .block_on(sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn))
        .unwrap();
    bench_backend(
        c,
        "postgres",
        &format!("postgres://postgres@127.0.0.1:5432/{name}"),
    );
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    tokio
        .block_on(sqlx::query(AssertSqlSafe(drop)).execute(&mut conn))
        .unwrap();
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
