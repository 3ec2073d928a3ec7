//! Secret-field discovery on OpenMetadata's real JSON Schemas
//! (`../shared/om-schemas`), with realistic configs for a dozen connection types,
//! and the ids those fields are stored under.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::schema::{SchemaError, SchemaSet, Step};
use serde_json::{Value, json};

fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas");
        SchemaSet::load(&dir)
            .expect("the OpenMetadata schemas beside the repository (../shared/om-schemas)")
    })
}

/// The secret field paths of a `service` connection config, joined by `/`.
fn secrets(service: &str, config: Value) -> Vec<String> {
    let kind = config["type"].as_str().unwrap().to_owned();
    let set = schemas();
    let file = set.connection_schema(service, &kind).unwrap();
    let fields = set.secret_fields(&file, &config).unwrap();
    // Every location points at the string it names.
    for f in &fields {
        let mut v = &config;
        for step in &f.location {
            v = match step {
                Step::Key(k) => &v[k.as_str()],
                Step::Index(i) => &v[*i],
            };
        }
        assert!(v.is_string(), "{:?} does not point at a string", f.location);
    }
    let mut paths: Vec<String> = fields.into_iter().map(|f| f.field_path.join("/")).collect();
    paths.sort();
    paths
}

#[test]
fn mysql_basic_auth_and_iam() {
    let basic = json!({"type": "Mysql", "username": "openmetadata", "hostPort": "mysql:3306",
                       "authType": {"password": "pw"}, "databaseSchema": "shop"});
    assert_eq!(secrets("database", basic), ["authType/password"]);
    let iam = json!({"type": "Mysql", "username": "openmetadata", "hostPort": "mysql:3306",
                     "authType": {"awsAccessKeyId": "AKIA", "awsSecretAccessKey": "secret", "awsRegion": "eu-west-1"}});
    assert_eq!(secrets("database", iam), ["authType/awsSecretAccessKey"]);
}

#[test]
fn postgres_through_its_common_config() {
    let config = json!({"type": "Postgres", "connectionType": {"username": "u", "password": "pw", "hostPort": "pg:5432", "databaseName": "db"}});
    assert_eq!(secrets("database", config), ["connectionType/password"]);
}

#[test]
fn snowflake_password_and_private_key() {
    let config = json!({"type": "Snowflake", "username": "u", "account": "acme", "warehouse": "wh",
                        "password": "pw", "privateKey": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
                        "snowflakePrivatekeyPassphrase": "phrase"});
    assert_eq!(
        secrets("database", config),
        ["password", "privateKey", "snowflakePrivatekeyPassphrase"]
    );
}

#[test]
fn bigquery_gcp_credentials_values_vs_path() {
    let values = json!({"type": "BigQuery", "credentials": {"gcsConfig": {
        "type": "service_account", "projectId": "proj", "privateKeyId": "kid",
        "privateKey": "-----BEGIN PRIVATE KEY-----", "clientEmail": "sa@proj.iam", "clientId": "123"}}});
    assert_eq!(
        secrets("database", values),
        ["credentials/gcsConfig/privateKey"]
    );
    // In this schema version the credentials path is a bare string.
    let path = json!({"type": "BigQuery", "credentials": {"gcsConfig": "/var/creds.json"}});
    assert!(secrets("database", path).is_empty());
}

#[test]
fn datalake_sources_are_told_apart_by_their_security_config() {
    let s3 = json!({"type": "Datalake", "bucketName": "b", "configSource": {"securityConfig": {
        "awsAccessKeyId": "AKIA", "awsSecretAccessKey": "s3-secret", "awsRegion": "us-east-1"}}});
    assert_eq!(
        secrets("database", s3),
        ["configSource/securityConfig/awsSecretAccessKey"]
    );
    let gcs = json!({"type": "Datalake", "configSource": {"securityConfig": {"gcsConfig": {
        "type": "service_account", "projectId": "p", "privateKey": "gcs-key", "clientEmail": "e"}}}});
    assert_eq!(
        secrets("database", gcs),
        ["configSource/securityConfig/gcsConfig/privateKey"]
    );
    let azure = json!({"type": "Datalake", "configSource": {"securityConfig": {
        "clientId": "c", "clientSecret": "azure-secret", "tenantId": "t", "accountName": "acct"}}});
    assert_eq!(
        secrets("database", azure),
        ["configSource/securityConfig/clientSecret"]
    );
}

#[test]
fn looker_with_github_credentials() {
    let config = json!({"type": "Looker", "clientId": "id", "clientSecret": "looker-secret", "hostPort": "https://looker",
                        "githubCredentials": {"repositoryOwner": "acme", "repositoryName": "lookml", "token": "ghp_x"}});
    assert_eq!(
        secrets("dashboard", config),
        ["clientSecret", "githubCredentials/token"]
    );
}

#[test]
fn airflow_with_an_embedded_connection_picks_the_right_database() {
    let mysql = json!({"type": "Airflow", "hostPort": "http://airflow:8080", "connection": {
        "type": "Mysql", "username": "airflow", "hostPort": "db:3306", "authType": {"password": "af-pw"}}});
    assert_eq!(secrets("pipeline", mysql), ["connection/authType/password"]);
    let postgres = json!({"type": "Airflow", "hostPort": "http://airflow:8080", "connection": {
        "type": "Postgres", "connectionType": {"username": "airflow", "password": "af-pg", "hostPort": "db:5432"}}});
    assert_eq!(
        secrets("pipeline", postgres),
        ["connection/connectionType/password"]
    );
}

#[test]
fn kafka_sasl_and_schema_registry() {
    let config = json!({"type": "Kafka", "bootstrapServers": "kafka:9092", "saslUsername": "u",
                        "saslPassword": "sasl-pw", "saslMechanism": "PLAIN", "basicAuthUserInfo": "user:pw"});
    assert_eq!(
        secrets("messaging", config),
        ["basicAuthUserInfo", "saslPassword"]
    );
}

#[test]
fn dashboards_storage_and_search() {
    let tableau = json!({"type": "Tableau", "hostPort": "https://tableau",
                         "authType": {"personalAccessTokenName": "n", "personalAccessTokenSecret": "pat"}});
    assert_eq!(
        secrets("dashboard", tableau),
        ["authType/personalAccessTokenSecret"]
    );
    let tableau_basic = json!({"type": "Tableau", "hostPort": "https://tableau", "authType": {"username": "u", "password": "pw"}});
    assert_eq!(secrets("dashboard", tableau_basic), ["authType/password"]);
    let powerbi =
        json!({"type": "PowerBI", "clientId": "c", "clientSecret": "pbi", "tenantId": "t"});
    assert_eq!(secrets("dashboard", powerbi), ["clientSecret"]);
    let s3 = json!({"type": "S3", "awsConfig": {"awsAccessKeyId": "AKIA", "awsSecretAccessKey": "s", "awsRegion": "eu-west-1"}});
    assert_eq!(secrets("storage", s3), ["awsConfig/awsSecretAccessKey"]);
    let redshift = json!({"type": "Redshift", "username": "u", "password": "rs", "hostPort": "rs:5439", "database": "dev"});
    assert_eq!(secrets("database", redshift), ["password"]);
}

#[test]
fn bad_configs_get_clear_errors() {
    let set = schemas();
    let err = set.connection_schema("database", "Nosuchdb").unwrap_err();
    assert!(matches!(err, SchemaError::UnknownType { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("unknown database connection type \"Nosuchdb\""),
        "{err}"
    );
    let file = set.connection_schema("database", "Mysql").unwrap();
    let neither =
        json!({"type": "Mysql", "username": "u", "hostPort": "h", "authType": {"token": "x"}});
    let err = set.secret_fields(&file, &neither).unwrap_err();
    assert!(
        err.to_string()
            .contains("the config at `$.authType` matches none of the schema's alternatives"),
        "{err}"
    );
}

#[test]
fn field_paths_become_openmetadata_ids() {
    let config =
        json!({"type": "Mysql", "username": "u", "hostPort": "h", "authType": {"password": "pw"}});
    let set = schemas();
    let file = set.connection_schema("database", "Mysql").unwrap();
    let field = set.secret_fields(&file, &config).unwrap().remove(0);
    let ids = IdBuilder::new(Some("prefix"), "openmetadata").unwrap();
    assert_eq!(
        ids.id("database", Some("test"), &field.field_path),
        "/prefix/openmetadata/database/test/authtype/password"
    );
}

mod common;

mod manager {
    use std::sync::Arc;

    use secret_broker::openmetadata::ids::IdBuilder;
    use secret_broker::openmetadata::manager::{ManagerError, SecretsManager};
    use secret_broker::{ProviderHost, PutOptions, SecretValue};
    use secret_broker_keyring::Keyring;
    use secret_broker_record_store::RecordStore;
    use serde_json::json;

    use super::common::{TempDb, db_provider, owners, runtime};

    async fn manager() -> (TempDb, Arc<ProviderHost>, SecretsManager) {
        let db = TempDb::sqlite();
        let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
        let provider =
            db_provider(&runtime(), store, Arc::new(Keyring::single([6; 32])), "om").await;
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas");
        let ids = IdBuilder::new(None, "openmetadata").unwrap();
        let manager = SecretsManager::new(provider.clone(), &dir, ids, owners(&db).await).unwrap();
        (db, provider, manager)
    }

    async fn stored(p: &ProviderHost, id: &str) -> Option<String> {
        p.get(id)
            .await
            .unwrap()
            .map(|v| v.expose_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn encrypt_then_decrypt_a_mysql_connection() {
        let (_db, p, m) = manager().await;
        let config = json!({"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {"password": "s3cr3t"}});
        let enc = m
            .encrypt_connection("database", "mysql_prod", config.clone())
            .await
            .unwrap();
        let id = "/openmetadata/database/mysql_prod/authtype/password";
        assert_eq!(enc["authType"]["password"], json!(format!("secret:{id}")));
        assert_eq!(enc["username"], json!("u"), "other fields untouched");
        assert_eq!(stored(&p, id).await.as_deref(), Some("s3cr3t"));
        assert_eq!(m.decrypt_connection("database", enc).await.unwrap(), config);
        assert_eq!(
            m.resolve(&format!("secret:{id}"))
                .await
                .unwrap()
                .unwrap()
                .expose_str(),
            Some("s3cr3t")
        );
    }

    #[tokio::test]
    async fn user_references_are_kept_and_empty_or_null_deletes() {
        let (_db, p, m) = manager().await;
        let id = "/openmetadata/database/snow/password";
        p.put(
            id,
            &SecretValue::from_string("old".into()),
            &PutOptions::default(),
        )
        .await
        .unwrap();
        let config = json!({"type": "Snowflake", "username": "u", "account": "a",
                            "password": "", "privateKey": "secret:/shared/snowflake/key", "snowflakePrivatekeyPassphrase": "null"});
        let enc = m
            .encrypt_connection("database", "snow", config)
            .await
            .unwrap();
        assert_eq!(
            enc["password"],
            json!(null),
            "an empty value nulls the field"
        );
        assert_eq!(stored(&p, id).await, None, "and deletes the secret");
        assert_eq!(
            enc["privateKey"],
            json!("secret:/shared/snowflake/key"),
            "a user reference is kept"
        );
        assert_eq!(
            stored(&p, "/shared/snowflake/key").await,
            None,
            "and never uploaded"
        );
        assert_eq!(enc["snowflakePrivatekeyPassphrase"], json!(null));
        assert_eq!(
            stored(
                &p,
                "/openmetadata/database/snow/snowflakeprivatekeypassphrase"
            )
            .await,
            None,
            "\"null\" is never stored"
        );
    }

    #[tokio::test]
    async fn a_config_is_encrypted_whole_or_not_at_all() {
        let (_db, p, m) = manager().await;
        let pw = "/openmetadata/database/snow/password";
        p.put(
            pw,
            &SecretValue::from_string("previous".into()),
            &PutOptions::default(),
        )
        .await
        .unwrap();
        // The private key is over the db provider's 256 KiB limit: it fails after
        // the password was written, and the password must come back.
        let config = json!({"type": "Snowflake", "username": "u", "account": "a",
                            "password": "new-password", "privateKey": "k".repeat(300 * 1024)});
        let err = m
            .encrypt_connection("database", "snow", config)
            .await
            .unwrap_err();
        assert!(matches!(err, ManagerError::Provider { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("storing `privateKey` failed, nothing was changed"),
            "{err}"
        );
        assert_eq!(stored(&p, pw).await.as_deref(), Some("previous"));
        assert_eq!(
            stored(&p, "/openmetadata/database/snow/privatekey").await,
            None
        );
    }

    #[tokio::test]
    async fn dangling_references_and_bad_configs_are_named() {
        let (_db, _p, m) = manager().await;
        let config = json!({"type": "Redshift", "username": "u", "hostPort": "h", "database": "d",
                            "password": "secret:/openmetadata/database/gone/password"});
        let err = m.decrypt_connection("database", config).await.unwrap_err();
        assert!(
            err.to_string().contains(
                "`password` refers to /openmetadata/database/gone/password, which does not exist"
            ),
            "{err}"
        );
        let err = m
            .encrypt_connection("database", "x", json!({"username": "u"}))
            .await
            .unwrap_err();
        assert!(matches!(err, ManagerError::NotAConfig), "{err}");
        let err = m
            .encrypt_connection("database", "x", json!({"type": "Nosuch"}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown database connection type"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn deleting_the_entity_deletes_its_secrets_only() {
        let (_db, p, m) = manager().await;
        p.put(
            "/shared/kept",
            &SecretValue::from_string("kept".into()),
            &PutOptions::default(),
        )
        .await
        .unwrap();
        let config = json!({"type": "PowerBI", "clientId": "c", "clientSecret": "pbi-secret", "tenantId": "t"});
        let enc = m
            .encrypt_connection("dashboard", "bi", config)
            .await
            .unwrap();
        assert_eq!(
            m.delete_connection("dashboard", "bi", &enc).await.unwrap(),
            1
        );
        assert_eq!(
            stored(&p, "/openmetadata/dashboard/bi/clientsecret").await,
            None
        );
        let with_user_ref = json!({"type": "PowerBI", "clientId": "c", "clientSecret": "secret:/shared/kept", "tenantId": "t"});
        assert_eq!(
            m.delete_connection("dashboard", "bi", &with_user_ref)
                .await
                .unwrap(),
            0
        );
        assert_eq!(stored(&p, "/shared/kept").await.as_deref(), Some("kept"));
    }
    /// A failing encrypt (its second field is over the provider's limits) races a
    /// succeeding one of the same entity: the failing one's undo never puts an old
    /// value back over the acknowledged write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_encrypts_undo_never_loses_a_concurrent_acknowledged_write() {
        let (_db, p, m) = manager().await;
        let m = Arc::new(m);
        let id = "/openmetadata/database/snow/password";
        let huge = "k".repeat(2 << 20);
        let mut lost = 0;
        for round in 0..40 {
            let failing = json!({"type": "Snowflake", "username": "u", "account": "a", "warehouse": "w",
                                 "password": format!("failing-{round}"), "privateKey": huge});
            let winning = json!({"type": "Snowflake", "username": "u", "account": "a", "warehouse": "w",
                                 "password": format!("acknowledged-{round}")});
            let (a, b) = tokio::join!(
                tokio::spawn({
                    let m = m.clone();
                    async move { m.encrypt_connection("database", "snow", failing).await }
                }),
                tokio::spawn({
                    let m = m.clone();
                    async move { m.encrypt_connection("database", "snow", winning).await }
                }),
            );
            assert!(a.unwrap().is_err(), "the oversized field fails");
            b.unwrap().unwrap();
            if stored(&p, id).await.as_deref() != Some(format!("acknowledged-{round}").as_str()) {
                lost += 1;
            }
        }
        assert_eq!(lost, 0, "acknowledged writes lost to a concurrent undo");
    }

    /// Service `prod` (field `authType.password`) and service `prod/authtype`
    /// (field `password`) reach the same OpenMetadata id: whichever comes second
    /// is refused with nothing written, and neither can delete the other's secret.
    #[tokio::test]
    async fn entities_whose_ids_meet_are_refused_in_both_orders() {
        let id = "/openmetadata/database/prod/authtype/password";
        let mysql = json!({"type": "Mysql", "username": "u", "hostPort": "h:3306",
                           "authType": {"password": "mysql-pw"}});
        let redshift = json!({"type": "Redshift", "username": "u", "hostPort": "rs:5439",
                              "database": "dev", "password": "redshift-pw"});
        let forged = json!({"type": "Redshift", "username": "u", "hostPort": "rs:5439",
                            "database": "dev", "password": format!("secret:{id}")});
        for mysql_first in [true, false] {
            let (_db, p, m) = manager().await;
            let (first, second) = if mysql_first {
                (("prod", &mysql), ("prod/authtype", &redshift))
            } else {
                (("prod/authtype", &redshift), ("prod", &mysql))
            };
            let kept = if mysql_first {
                "mysql-pw"
            } else {
                "redshift-pw"
            };
            let enc = m
                .encrypt_connection("database", first.0, first.1.clone())
                .await
                .unwrap();
            assert!(
                enc.to_string().contains(&format!("secret:{id}")),
                "OpenMetadata's id kept"
            );
            // The same entity again (an update) keeps its id.
            m.encrypt_connection("database", first.0, first.1.clone())
                .await
                .unwrap();
            let err = m
                .encrypt_connection("database", second.0, second.1.clone())
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ManagerError::Collision { .. }), "{msg}");
            assert!(
                msg.contains(id) && msg.contains(&format!("{:?}", first.0)),
                "{msg}"
            );
            assert!(msg.contains("nothing was stored"), "{msg}");
            assert!(!msg.contains("-pw"), "{msg}");
            assert_eq!(
                stored(&p, id).await.as_deref(),
                Some(kept),
                "the first keeps its value"
            );
            // A stored document of the second that refers to the id deletes nothing.
            let (second_type_doc, first_doc) = if mysql_first {
                (forged.clone(), enc.clone())
            } else {
                (
                    json!({"type": "Mysql", "username": "u", "hostPort": "h:3306",
                        "authType": {"password": format!("secret:{id}")}}),
                    enc.clone(),
                )
            };
            assert_eq!(
                m.delete_connection("database", second.0, &second_type_doc)
                    .await
                    .unwrap(),
                0
            );
            assert_eq!(stored(&p, id).await.as_deref(), Some(kept));
            // Emptying the field in the second entity deletes nothing either.
            let mut emptied = second.1.clone();
            if mysql_first {
                emptied["password"] = json!("");
            } else {
                emptied["authType"]["password"] = json!("");
            }
            assert!(matches!(
                m.encrypt_connection("database", second.0, emptied).await,
                Err(ManagerError::Collision { .. })
            ));
            assert_eq!(stored(&p, id).await.as_deref(), Some(kept));
            // Once the first is deleted, the second may have the id.
            assert_eq!(
                m.delete_connection("database", first.0, &first_doc)
                    .await
                    .unwrap(),
                1
            );
            m.encrypt_connection("database", second.0, second.1.clone())
                .await
                .unwrap();
            assert_ne!(stored(&p, id).await.as_deref(), Some(kept));
        }
    }
}

mod server_connection {
    use std::sync::Arc;

    use secret_broker::openmetadata::ids::IdBuilder;
    use secret_broker::openmetadata::manager::SecretsManager;
    use secret_broker_keyring::Keyring;
    use secret_broker_record_store::RecordStore;
    use serde_json::json;

    use super::common::{TempDb, db_provider, runtime};

    #[tokio::test]
    async fn the_pipelines_server_connection_is_stored_under_serverconnection() {
        let db = TempDb::sqlite();
        let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
        let provider =
            db_provider(&runtime(), store, Arc::new(Keyring::single([8; 32])), "om").await;
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas");
        let m = SecretsManager::new(
            provider.clone(),
            &dir,
            IdBuilder::new(None, "openmetadata").unwrap(),
            super::common::owners(&db).await,
        )
        .unwrap();
        let config = json!({"hostPort": "http://openmetadata:8585/api", "authProvider": "openmetadata",
                            "securityConfig": {"jwtToken": "eyJ.ingestion.bot"}});
        let stored = m.encrypt_server_connection(config.clone()).await.unwrap();
        let id = "/openmetadata/serverconnection/securityconfig/jwttoken";
        assert_eq!(
            stored["securityConfig"]["jwtToken"],
            json!(format!("secret:{id}"))
        );
        assert_eq!(
            provider.get(id).await.unwrap().unwrap().expose_str(),
            Some("eyJ.ingestion.bot")
        );
        assert_eq!(m.decrypt_server_connection(stored).await.unwrap(), config);
    }
}

/// Bots, ingestion pipelines and workflows. The workflow's test connection uses the
/// real connection schemas. The bot's and the pipeline's own schemas
/// (`entity/teams/authenticationMechanism.json`, `metadataIngestion/workflow.json`)
/// are not in ../shared/om-schemas (see its MISSING.txt): with the real set the
/// manager must name the missing file; the positive tests add a two-file outline
/// of those schemas, shaped as upstream's, beside the real files they reference.
mod entities {
    use std::path::Path;
    use std::sync::Arc;

    use secret_broker::ProviderHost;
    use secret_broker::openmetadata::ids::IdBuilder;
    use secret_broker::openmetadata::manager::{Entity, ManagerError, SecretsManager};
    use secret_broker::openmetadata::schema::SchemaError;
    use secret_broker_keyring::Keyring;
    use secret_broker_record_store::RecordStore;
    use serde_json::{Value, json};

    use super::common::{TempDb, db_provider, owners, runtime};

    fn real_schemas() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas")
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    /// The real schemas plus the bot's and the pipeline's outlines.
    fn schemas_with_entities() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&real_schemas(), dir.path());
        let write = |rel: &str, doc: Value| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        };
        write(
            "entity/teams/authenticationMechanism.json",
            json!({"type": "object", "properties": {
                "authType": {"type": "string", "enum": ["JWT", "SSO", "BASIC"]},
                "config": {"oneOf": [{"$ref": "./authN/jwtAuth.json"}]}}}),
        );
        write(
            "entity/teams/authN/jwtAuth.json",
            json!({"type": "object", "properties": {
                "JWTToken": {"type": "string", "format": "password"},
                "JWTTokenExpiry": {"type": "string"}}, "additionalProperties": false}),
        );
        write(
            "metadataIngestion/workflow.json",
            json!({"definitions": {"sourceConfig": {"type": "object", "properties": {
                "config": {"type": "object", "properties": {
                    "type": {"type": "string"},
                    "dbtConfigSource": {"type": "object", "properties": {
                        "dbtConfigType": {"type": "string"},
                        "dbtSecurityConfig": {"$ref": "../security/credentials/awsCredentials.json"}}}}}}}}}),
        );
        dir
    }

    async fn manager(dir: &Path) -> (TempDb, Arc<ProviderHost>, SecretsManager) {
        let db = TempDb::sqlite();
        let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
        let provider =
            db_provider(&runtime(), store, Arc::new(Keyring::single([9; 32])), "om").await;
        let ids = IdBuilder::new(None, "openmetadata").unwrap();
        let m = SecretsManager::new(provider.clone(), dir, ids, owners(&db).await).unwrap();
        (db, provider, m)
    }

    async fn stored(p: &ProviderHost, id: &str) -> Option<String> {
        p.get(id)
            .await
            .unwrap()
            .map(|v| v.expose_str().unwrap().to_owned())
    }

    fn server_connection() -> Value {
        json!({"hostPort": "http://openmetadata:8585/api", "authProvider": "openmetadata",
               "securityConfig": {"jwtToken": "eyJ.shared.server"}})
    }

    #[tokio::test]
    async fn a_workflow_test_connection_on_the_real_schemas() {
        let (_db, p, m) = manager(&real_schemas()).await;
        let workflow = json!({
            "name": "test-connection",
            "request": {"connection": {"config": {"type": "Mysql", "hostPort": "db:3306",
                         "username": "u", "authType": {"password": "wf-pass"}}},
                        "serviceType": "Database", "connectionType": "Mysql"},
            "openMetadataServerConnection": server_connection()});
        let enc = m
            .encrypt(Entity::Workflow, "test-connection", workflow.clone())
            .await
            .unwrap();
        let id =
            "/openmetadata/workflow/test-connection/request/connection/config/authtype/password";
        let server = "/openmetadata/serverconnection/securityconfig/jwttoken";
        assert_eq!(
            enc["request"]["connection"]["config"]["authType"]["password"],
            json!(format!("secret:{id}"))
        );
        assert_eq!(
            enc["openMetadataServerConnection"]["securityConfig"]["jwtToken"],
            json!(format!("secret:{server}"))
        );
        assert_eq!(stored(&p, id).await.as_deref(), Some("wf-pass"));
        assert_eq!(
            stored(&p, server).await.as_deref(),
            Some("eyJ.shared.server")
        );
        assert_eq!(
            m.decrypt(Entity::Workflow, enc.clone()).await.unwrap(),
            workflow
        );

        // Deleting the workflow deletes its own secret, not the shared server one.
        assert_eq!(
            m.delete(Entity::Workflow, "test-connection", &enc)
                .await
                .unwrap(),
            1
        );
        assert_eq!(stored(&p, id).await, None);
        assert_eq!(
            stored(&p, server).await.as_deref(),
            Some("eyJ.shared.server")
        );

        let no_type = json!({"request": {"connection": {"config": {"type": "Mysql"}}}});
        let err = m.encrypt(Entity::Workflow, "w", no_type).await.unwrap_err();
        assert!(matches!(err, ManagerError::NoServiceType), "{err}");
        assert!(err.to_string().contains("request.serviceType"), "{err}");
    }

    #[tokio::test]
    async fn bots_and_pipelines_name_their_missing_schema() {
        let (_db, _p, m) = manager(&real_schemas()).await;
        let bot = json!({"authType": "JWT", "config": {"JWTToken": "eyJ.bot"}});
        let err = m
            .encrypt(Entity::Bot, "ingestion-bot", bot)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ManagerError::Schema(SchemaError::Missing { file, .. })
                if file == "entity/teams/authenticationMechanism.json"),
            "{err}"
        );
        assert!(err.to_string().contains("--schemas"), "{err}");
        let pipeline = json!({"sourceConfig": {"config": {"type": "DatabaseMetadata"}}});
        let err = m
            .encrypt(Entity::Pipeline, "p", pipeline)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("metadataIngestion/workflow.json"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_bots_jwt_token() {
        let dir = schemas_with_entities();
        let (_db, p, m) = manager(dir.path()).await;
        let bot = json!({"authType": "JWT", "config": {"JWTToken": "eyJ.bot.token", "JWTTokenExpiry": "Unlimited"}});
        let enc = m
            .encrypt(Entity::Bot, "ingestion-bot", bot.clone())
            .await
            .unwrap();
        let id = "/openmetadata/bot/ingestion-bot/config/jwttoken";
        assert_eq!(enc["config"]["JWTToken"], json!(format!("secret:{id}")));
        assert_eq!(enc["config"]["JWTTokenExpiry"], json!("Unlimited"));
        assert_eq!(stored(&p, id).await.as_deref(), Some("eyJ.bot.token"));
        assert_eq!(m.decrypt(Entity::Bot, enc.clone()).await.unwrap(), bot);
        assert_eq!(
            m.delete(Entity::Bot, "ingestion-bot", &enc).await.unwrap(),
            1
        );
        assert_eq!(stored(&p, id).await, None);
    }

    #[tokio::test]
    async fn an_ingestion_pipeline_source_config_and_server_connection() {
        let dir = schemas_with_entities();
        let (_db, p, m) = manager(dir.path()).await;
        let pipeline = json!({
            "name": "my-pipeline",
            "sourceConfig": {"config": {"type": "DBT", "dbtConfigSource": {"dbtConfigType": "s3",
                "dbtSecurityConfig": {"awsAccessKeyId": "AKIA", "awsSecretAccessKey": "dbt-aws-secret",
                                      "awsRegion": "us-east-1"}}}},
            "openMetadataServerConnection": server_connection()});
        let enc = m
            .encrypt(Entity::Pipeline, "my-pipeline", pipeline.clone())
            .await
            .unwrap();
        let id = "/openmetadata/pipeline/my-pipeline/sourceconfig/config/dbtconfigsource/dbtsecurityconfig/awssecretaccesskey";
        assert_eq!(
            enc["sourceConfig"]["config"]["dbtConfigSource"]["dbtSecurityConfig"]["awsSecretAccessKey"],
            json!(format!("secret:{id}"))
        );
        assert_eq!(stored(&p, id).await.as_deref(), Some("dbt-aws-secret"));
        assert_eq!(
            m.decrypt(Entity::Pipeline, enc.clone()).await.unwrap(),
            pipeline
        );

        // The shared server connection stays for the other pipelines.
        assert_eq!(
            m.delete(Entity::Pipeline, "my-pipeline", &enc)
                .await
                .unwrap(),
            1
        );
        assert_eq!(stored(&p, id).await, None);
        assert_eq!(
            stored(&p, "/openmetadata/serverconnection/securityconfig/jwttoken")
                .await
                .as_deref(),
            Some("eyJ.shared.server")
        );
    }
}

/// Every connection schema of both schema sets in ../shared, with configs built
/// from the schemas themselves (every alternative taken in turn, every secret
/// field holding a canary): encrypting never leaves a canary in the stored form,
/// and a config written for a newer schema than the one the broker holds is
/// refused, naming the field and the schema file, with nothing stored.
mod every_connection {
    use std::collections::HashMap;
    use std::path::{Component, Path, PathBuf};
    use std::sync::Arc;

    use secret_broker::ProviderHost;
    use secret_broker::openmetadata::ids::IdBuilder;
    use secret_broker::openmetadata::manager::{ManagerError, SecretsManager};
    use secret_broker::openmetadata::schema::SchemaError;
    use secret_broker_keyring::Keyring;
    use secret_broker_record_store::RecordStore;
    use serde_json::{Map, Value, json};

    use super::common::{TempDb, db_provider, owners, runtime};

    const CANARY: &str = "CANARY-7c1e";

    fn shared(set: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared")
            .join(set)
    }

    /// The raw files of a schema set, to build configs from.
    struct Files {
        docs: HashMap<PathBuf, Value>,
    }

    fn normalize(path: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for part in path.components() {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    }

    impl Files {
        fn load(set: &str) -> Files {
            let dir = shared(set);
            let mut docs = HashMap::new();
            let mut pending = vec![dir.clone()];
            while let Some(d) = pending.pop() {
                for entry in std::fs::read_dir(&d).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if path.extension().is_some_and(|x| x == "json") {
                        let doc = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                        docs.insert(path.strip_prefix(&dir).unwrap().to_path_buf(), doc);
                    }
                }
            }
            Files { docs }
        }

        /// Every service connection file the broker maps a `type` to:
        /// (service, file, the connection's `type`).
        fn connections(&self) -> Vec<(String, PathBuf, String)> {
            let mut out = Vec::new();
            for (path, doc) in &self.docs {
                let parts: Vec<_> = path.iter().map(|p| p.to_str().unwrap()).collect();
                let ["entity", "services", "connections", service, file] = parts[..] else {
                    continue;
                };
                if !file.ends_with("Connection.json") || file == "serviceConnection.json" {
                    continue;
                }
                let Some(kind) = self.type_name(path, doc) else {
                    continue;
                };
                out.push((service.to_owned(), path.clone(), kind));
            }
            out.sort();
            out
        }

        /// The connection's `type` value: the default, else the one enum value.
        fn type_name(&self, file: &Path, doc: &Value) -> Option<String> {
            let ty = doc.pointer("/properties/type")?;
            if let Some(d) = ty.get("default").and_then(Value::as_str) {
                return Some(d.to_owned());
            }
            let (_, resolved) = self.flatten(file, ty)?;
            resolved
                .get("enum")
                .and_then(|e| e.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned)
        }

        /// `None` for a reference into a file the (partial) set lacks.
        fn resolve(&self, file: &Path, reference: &str) -> Option<(PathBuf, &Value)> {
            let (path, pointer) = reference.split_once('#').unwrap_or((reference, ""));
            let target = if path.is_empty() {
                file.to_path_buf()
            } else {
                normalize(&file.parent()?.join(path))
            };
            let doc = self.docs.get(&target)?;
            let node = if pointer.is_empty() {
                Some(doc)
            } else {
                doc.pointer(pointer)
            };
            Some((target, node?))
        }

        fn flatten<'s>(
            &'s self,
            file: &Path,
            mut schema: &'s Value,
        ) -> Option<(PathBuf, &'s Value)> {
            let mut file = file.to_path_buf();
            while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                (file, schema) = self.resolve(&file, r)?;
            }
            Some((file, schema))
        }

        /// An instance of `schema`: every property present, alternative number
        /// `variant` (modulo their count) at every `oneOf`/`anyOf`, a canary in
        /// every `format: password` string.
        fn example(
            &self,
            file: &Path,
            schema: &Value,
            variant: usize,
            depth: usize,
        ) -> Option<Value> {
            let (file, schema) = self.flatten(file, schema)?;
            if schema.get("format").and_then(Value::as_str) == Some("password") {
                return Some(json!(format!("{CANARY}-{depth}-{variant}")));
            }
            if let Some(c) = schema.get("const") {
                return Some(c.clone());
            }
            if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
                return Some(first.clone());
            }
            for key in ["oneOf", "anyOf"] {
                if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                    let real: Vec<_> = branches
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                        .collect();
                    if real.is_empty() {
                        return Some(Value::Null);
                    }
                    return self.example(&file, real[variant % real.len()], variant, depth + 1);
                }
            }
            let ty = schema.get("type").and_then(Value::as_str);
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let mut out = Map::new();
                if depth < 24 {
                    for (k, sub) in props {
                        // A property whose schema the partial set lacks is left out.
                        if let Some(v) = self.example(&file, sub, variant, depth + 1) {
                            out.insert(k.clone(), v);
                        }
                    }
                }
                return Some(Value::Object(out));
            }
            Some(match ty {
                Some("object") => json!({}),
                Some("array") => match schema.get("items") {
                    Some(items) if depth < 24 => self
                        .example(&file, items, variant, depth + 1)
                        .map_or_else(|| json!([]), |item| json!([item])),
                    _ => json!([]),
                },
                Some("string") => schema.get("default").cloned().unwrap_or(json!("x")),
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                _ => schema.get("default").cloned().unwrap_or(Value::Null),
            })
        }

        /// Configs for one connection file: one per alternative at the
        /// outermost choice (capped), each a different path through the schema.
        fn examples(&self, file: &Path) -> Vec<Value> {
            let doc = &self.docs[file];
            (0..4)
                .filter_map(|v| self.example(file, doc, v, 0))
                .fold(Vec::new(), |mut all, c| {
                    if !all.contains(&c) {
                        all.push(c);
                    }
                    all
                })
        }
    }

    async fn manager(set: &str) -> (TempDb, Arc<ProviderHost>, SecretsManager) {
        let db = TempDb::sqlite();
        let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
        let provider =
            db_provider(&runtime(), store, Arc::new(Keyring::single([4; 32])), "om").await;
        let ids = IdBuilder::new(None, "openmetadata").unwrap();
        let m =
            SecretsManager::new(provider.clone(), &shared(set), ids, owners(&db).await).unwrap();
        (db, provider, m)
    }

    async fn stored_ids(p: &ProviderHost) -> Vec<String> {
        p.list("/", None, 1000).await.unwrap().ids
    }

    async fn round_trip_on(set: &str) {
        let files = Files::load(set);
        let (_db, p, m) = manager(set).await;
        let connections = files.connections();
        assert!(
            connections.len() >= 10,
            "{set}: {} connections",
            connections.len()
        );
        let mut secrets = 0;
        for (n, (service, file, kind)) in connections.iter().enumerate() {
            for config in files.examples(file) {
                let name = format!("svc{n}");
                let canaries = config.to_string().matches(CANARY).count();
                let stored = m
                    .encrypt_connection(service, &name, config.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{set} {kind}: {e}\n{config:#}"));
                let text = stored.to_string();
                assert!(
                    !text.contains(CANARY),
                    "{set} {kind}: plaintext left\n{text}"
                );
                assert_eq!(
                    text.matches("secret:/openmetadata/").count(),
                    canaries,
                    "{set} {kind}"
                );
                secrets += canaries;
                let back = m.decrypt_connection(service, stored.clone()).await.unwrap();
                assert_eq!(back, config, "{set} {kind}");
                m.delete_connection(service, &name, &stored).await.unwrap();
            }
        }
        assert!(
            stored_ids(&p).await.is_empty(),
            "{set}: deletes left secrets behind"
        );
        assert!(
            secrets >= 50,
            "{set}: only {secrets} secret fields exercised"
        );
    }

    #[tokio::test]
    async fn every_connection_of_upstreams_files_round_trips() {
        round_trip_on("om-schemas").await;
    }

    #[tokio::test]
    async fn every_connection_of_openmetadata_2_0_round_trips() {
        round_trip_on("om-schemas-2.0").await;
    }

    /// Configs as OpenMetadata 2.0 sends them, against the older upstream set
    /// (a user who upgraded OpenMetadata before the broker's schemas): each is
    /// stored with every secret replaced, or refused with nothing stored.
    #[tokio::test]
    async fn newer_configs_against_older_schemas_are_refused_or_fully_encrypted() {
        let newer = Files::load("om-schemas-2.0");
        let older = Files::load("om-schemas");
        let (_db, p, m) = manager("om-schemas").await;
        let known: Vec<(String, String)> = older
            .connections()
            .into_iter()
            .map(|(s, _, k)| (s, k))
            .collect();
        let (mut refused, mut stored_ok) = (0, 0);
        for (service, file, kind) in newer.connections() {
            if !known.contains(&(service.clone(), kind.clone())) {
                continue;
            }
            for config in newer.examples(&file) {
                match m.encrypt_connection(&service, "upgraded", config).await {
                    Ok(stored) => {
                        assert!(!stored.to_string().contains(CANARY), "{kind}: {stored}");
                        m.delete_connection(&service, "upgraded", &stored)
                            .await
                            .unwrap();
                        stored_ok += 1;
                    }
                    Err(ManagerError::Schema(e)) => {
                        let msg = e.to_string();
                        assert!(!msg.contains(CANARY), "{msg}");
                        assert!(
                            matches!(
                                e,
                                SchemaError::Undescribed { .. } | SchemaError::NoBranch { .. }
                            ),
                            "{kind}: {msg}"
                        );
                        assert!(
                            stored_ids(&p).await.is_empty(),
                            "{kind}: refused yet stored"
                        );
                        refused += 1;
                    }
                    Err(e) => panic!("{kind}: {e}"),
                }
            }
        }
        assert!(refused >= 4, "only {refused} refused ({stored_ok} stored)");
    }

    /// The four connections the issue names, as OpenMetadata 2.0 sends them.
    #[tokio::test]
    async fn the_reported_configs_name_field_and_schema_file() {
        let (_db, p, m) = manager("om-schemas").await;
        let cases = [
            (
                json!({"type": "Postgres", "username": "u", "hostPort": "pg:5432", "database": "db",
                       "authType": {"password": "CANARY-pg"}}),
                "$.authType",
                "database/postgresConnection.json",
            ),
            (
                json!({"type": "Redshift", "username": "u", "hostPort": "rs:5439", "database": "dev",
                       "authType": {"password": "CANARY-rs"}}),
                "$.authType",
                "database/redshiftConnection.json",
            ),
            (
                json!({"type": "Databricks", "hostPort": "dbx:443", "httpPath": "/sql/1.0",
                       "authType": {"token": "CANARY-dbx"}}),
                "$.authType",
                "database/databricksConnection.json",
            ),
            (
                json!({"type": "BigQuery", "credentials": {"gcpConfig": {"type": "service_account",
                       "projectId": "p", "privateKeyId": "k", "privateKey": "CANARY-bq",
                       "clientEmail": "sa@p", "clientId": "1"}}}),
                "$.credentials.gcpConfig",
                "security/credentials/gcsCredentials.json",
            ),
        ];
        for (config, path, file) in cases {
            let err = m
                .encrypt_connection("database", "prod", config)
                .await
                .unwrap_err()
                .to_string();
            assert!(!err.contains("CANARY"), "{err}");
            assert!(err.contains(&format!("`{path}`")), "{err}");
            assert!(err.contains(file), "{err}");
            assert!(err.contains("nothing was stored"), "{err}");
        }
        assert!(stored_ids(&p).await.is_empty());
    }
}
