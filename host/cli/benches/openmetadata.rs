//! OpenMetadata semantics: the schema walk alone on a Snowflake connection config
//! (three secret fields, refs across files), and encrypting that config through the
//! db provider on SQLite. Then five secret fields in one document: no connection
//! config in the schema set can hold more than four at once, so the five-field case
//! is a test-connection workflow whose Elasticsearch config has four (password and
//! three certificate values) and whose server connection has the fifth (the JWT).
//! Reads `../shared/om-schemas` beside the repository.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::manager::{Entity, SecretsManager};
use secret_broker::openmetadata::owners::Owners;
use secret_broker::openmetadata::schema::SchemaSet;
use secret_broker::{Granted, ProviderHost, Runtime, RuntimeOptions};
use secret_broker_builtin as builtin;
use secret_broker_keyring::Keyring;
use secret_broker_keyring::KeyringCtx;
use secret_broker_record_store::RecordStore;
use secret_broker_record_store::RecordStoreCtx;
use serde_json::json;

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/om-schemas");
    let set = SchemaSet::load(&dir).unwrap();
    let config = json!({"type": "Snowflake", "username": "u", "account": "acme", "warehouse": "wh",
                        "password": "pw", "privateKey": "-----BEGIN PRIVATE KEY-----", "snowflakePrivatekeyPassphrase": "phrase",
                        "connectionArguments": {"a": "b"}});
    let file = set.connection_schema("database", "Snowflake").unwrap();
    assert_eq!(set.secret_fields(&file, &config).unwrap().len(), 3);
    c.bench_function("openmetadata/schema_walk_snowflake", |b| {
        b.iter(|| set.secret_fields(&file, &config).unwrap())
    });

    let workflow = json!({
        "name": "test-connection",
        "request": {"serviceType": "Search", "connectionType": "ElasticSearch",
            "connection": {"config": {"type": "ElasticSearch", "hostPort": "https://es:9200",
                "authType": {"username": "elastic", "password": "es-pass"},
                "sslConfig": {"certificates": {"caCertValue": "-----BEGIN CA-----",
                    "clientCertValue": "-----BEGIN CERT-----", "privateKeyValue": "-----BEGIN KEY-----"}}}}},
        "openMetadataServerConnection": {"hostPort": "http://om:8585/api", "authProvider": "openmetadata",
            "securityConfig": {"jwtToken": "eyJ.server"}}});
    let es = &workflow["request"]["connection"]["config"];
    let es_file = set.connection_schema("search", "ElasticSearch").unwrap();
    assert_eq!(set.secret_fields(&es_file, es).unwrap().len(), 4);
    c.bench_function("openmetadata/schema_walk_elasticsearch_4_fields", |b| {
        b.iter(|| set.secret_fields(&es_file, es).unwrap())
    });

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let manager = tokio.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let component = runtime.load_bytes("db", builtin::DB).unwrap();
        let url = format!("sqlite://{}?mode=rwc", tmp.path().join("b.db").display());
        let store = Arc::new(RecordStore::connect(&url).await.unwrap());
        let owners = Owners::new(secret_broker_deploy::RecordOwners::shared(store.clone()));
        let keyring = Arc::new(Keyring::single([2; 32]));
        let granted = Granted::new("bench")
            .with(KeyringCtx::new(keyring, "provider/bench"))
            .with(RecordStoreCtx::new(store, "provider/bench"));
        let provider = Arc::new(
            ProviderHost::new(&runtime, &component, granted)
                .await
                .unwrap(),
        );
        SecretsManager::new(
            provider,
            &dir,
            IdBuilder::new(None, "openmetadata").unwrap(),
            owners,
        )
        .unwrap()
    });
    let mut n = 0u64;
    c.bench_function("openmetadata/encrypt_snowflake_db_sqlite", |b| {
        b.iter(|| {
            n += 1;
            let mut cfg = config.clone();
            cfg["password"] = json!(format!("pw-{n}"));
            tokio
                .block_on(manager.encrypt_connection("database", "snow", cfg))
                .unwrap()
        })
    });

    let first = tokio
        .block_on(manager.encrypt(Entity::Workflow, "wf", workflow.clone()))
        .unwrap();
    let references = first.to_string().matches("secret:/openmetadata/").count();
    assert_eq!(references, 5, "five secret fields stored");
    c.bench_function("openmetadata/encrypt_workflow_5_fields_db_sqlite", |b| {
        b.iter(|| {
            n += 1;
            let mut doc = workflow.clone();
            doc["request"]["connection"]["config"]["authType"]["password"] =
                json!(format!("es-{n}"));
            tokio
                .block_on(manager.encrypt(Entity::Workflow, "wf", doc))
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
