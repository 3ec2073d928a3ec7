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
