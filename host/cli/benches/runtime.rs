//! Runtime benchmarks: cold load (compile vs precompiled cache), instantiation
//! with and without the pooling allocator, and the boundary cost of a put+get
//! through the in-memory provider against a native map behind the same checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
use secret_broker_builtin as builtin;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn granted() -> Granted {
    Granted::new("bench")
}

fn cold_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("cold_load");
    group.sample_size(10);
    let uncached = Runtime::new(RuntimeOptions::default()).unwrap();
    group.bench_function("compile", |b| {
        b.iter(|| uncached.load_bytes("memory", builtin::MEMORY).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let cached = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    cached.load_bytes("memory", builtin::MEMORY).unwrap();
    group.bench_function("precompiled_cache", |b| {
        b.iter(|| {
            let c = cached.load_bytes("memory", builtin::MEMORY).unwrap();
            assert!(c.from_cache);
        })
    });
    group.finish();
}

fn instantiate(c: &mut Criterion) {
    let tokio = rt();
    let mut group = c.benchmark_group("instantiate");
    for pooling in [true, false] {
        let runtime = Runtime::new(RuntimeOptions {
            pooling,
            ..RuntimeOptions::default()
        })
        .unwrap();
        let component = runtime.load_bytes("memory", builtin::MEMORY).unwrap();
        let host = tokio
            .block_on(ProviderHost::new(&runtime, &component, granted()))
            .unwrap();
        let name = if pooling { "pooling" } else { "on_demand" };
        group.bench_function(name, |b| {
            b.iter(|| tokio.block_on(host.probe_instantiate()).unwrap())
        });
    }
    group.finish();
}

/// A native map behind the same host-side checks a provider call gets.
struct NativeMap {
    rules: secret_broker_runtime::IdRules,
    map: Mutex<BTreeMap<String, SecretValue>>,
}

impl NativeMap {
    async fn put(&self, id: &str, value: &SecretValue) {
        self.rules.check(id).unwrap();
        self.map
            .lock()
            .unwrap()
            .insert(id.to_owned(), value.clone());
    }

    async fn get(&self, id: &str) -> Option<SecretValue> {
        self.rules.check(id).unwrap();
        self.map.lock().unwrap().get(id).cloned()
    }
}

fn round_trip(c: &mut Criterion) {
    let tokio = rt();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let component = runtime.load_bytes("memory", builtin::MEMORY).unwrap();
    let host = tokio
        .block_on(ProviderHost::new(&runtime, &component, granted()))
        .unwrap();
    let native = NativeMap {
        rules: host.info().id_rules.clone(),
        map: Mutex::new(BTreeMap::new()),
    };
    let id = "/openmetadata/database/mysql_prod/password";
    let value = SecretValue::from_string("a-typical-password-value".into());
    let options = PutOptions::default();
    let mut group = c.benchmark_group("put_get_round_trip");
    group.bench_function("memory_provider", |b| {
        b.iter(|| {
            tokio.block_on(async {
                host.put(id, &value, &options).await.unwrap();
                host.get(id).await.unwrap().unwrap()
            })
        })
    });
    group.bench_function("native_map", |b| {
        b.iter(|| {
            tokio.block_on(async {
                native.put(id, &value).await;
                native.get(id).await.unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, cold_load, instantiate, round_trip);
criterion_main!(benches);
