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

    use super::common::{TempDb, db_provider, runtime};

    async fn manager() -> (TempDb, Arc<ProviderHost>, SecretsManager) {
        let db = TempDb::sqlite();
        let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
        let provider =
            db_provider(&runtime(), store, Arc::new(Keyring::single([6; 32])), "om").await;
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas");
        let ids = IdBuilder::new(None, "openmetadata").unwrap();
        let manager = SecretsManager::new(provider.clone(), &dir, ids).unwrap();
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

    use super::common::{TempDb, db_provider, runtime};

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
        let m = SecretsManager::new(provider.clone(), dir, ids).unwrap();
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
