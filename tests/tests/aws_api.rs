//! The broker's AWS Secrets Manager and SSM APIs end to end on loopback, driven by
//! clients nobody here wrote: boto3 pointed at the broker with
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`, and botocore's
//! signer for raw requests. The db provider on SQLite behind it; values cross
//! between these APIs and `/v1`; roles, signatures and bad input are refused in
//! AWS's shapes, audited, and never echo a value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ok;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use secret_broker::audit::{AuditLog, Salt};
use secret_broker::broker::Broker;
use secret_broker::policy::{Policy, Role};
use secret_broker::{ProviderHost, SecretValue};
use secret_broker_keyring::Keyring;
use secret_broker_record_store::RecordStore;
use secret_broker_server::aws::AwsMetadata;
use secret_broker_server::listen::ConnOptions;
use secret_broker_server::sigv4::AwsKeys;
use secret_broker_server::tokens::Tokens;
use secret_broker_server::{self as server, AppState, ServerOptions};
use serde_json::{Value, json};

use common::{TempDb, db_provider, runtime};

const ADMIN_TOKEN: &str = "sbt_admin-token-for-aws-tests";
/// Access keys: (name, role, id, secret).
const KEYS: [(&str, Role, &str, &str); 3] = [
    (
        "om-server",
        Role::Admin,
        "SBAKADMIN00000000000",
        "adminSecretKey0000000000000000000000000",
    ),
    (
        "alice",
        Role::User,
        "SBAKUSER000000000000",
        "userSecretKey00000000000000000000000000",
    ),
    (
        "ingestion",
        Role::Bot,
        "SBAKBOT0000000000000",
        "botSecretKey000000000000000000000000000",
    ),
];
const CANARY: &str = "canary-7f3a9c-aws-api-value";

struct Served {
    addr: SocketAddr,
    audit_path: PathBuf,
    salt: Salt,
    _dir: tempfile::TempDir,
    _db: TempDb,
}

async fn start() -> Served {
    let db = TempDb::sqlite();
    let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
    let provider: Arc<ProviderHost> = db_provider(
        &runtime(),
        store.clone(),
        Arc::new(Keyring::single([9; 32])),
        "db",
    )
    .await;
    serve(provider, store, db).await
}

/// The broker in front of `provider`, its AWS API metadata in a SQLite store
/// of its own.
async fn start_on(provider: Arc<ProviderHost>) -> Served {
    let db = TempDb::sqlite();
    let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
    serve(provider, store, db).await
}

async fn serve(provider: Arc<ProviderHost>, store: Arc<RecordStore>, db: TempDb) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let salt = Salt::from_bytes(&[3; 32]);
    let audit_path = dir.path().join("audit.log");
    let audit = Arc::new(AuditLog::open(&audit_path, salt.clone()).unwrap());
    let broker = Broker::new(provider, None, Policy::default(), Some(audit));
    let mut tokens = Tokens::default();
    tokens.insert("admin", Role::Admin, ADMIN_TOKEN);
    let state = AppState::new(broker, tokens, ServerOptions::default());
    let mut keys = AwsKeys::default();
    for (name, role, id, secret) in KEYS {
        keys.insert(name, role, id, SecretValue::from_string(secret.to_owned()));
    }
    state.set_aws_keys(keys);
    state.set_aws_metadata(AwsMetadata::new(store));
    let app = server::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::listen::serve(
        listener,
        app,
        ConnOptions::default(),
        std::future::pending(),
    ));
    Served {
        addr,
        audit_path,
        salt,
        _dir: dir,
        _db: db,
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

impl Served {
    /// Python with boto3 configured for the broker and the key of `role`.
    fn python(&self, role: Role, args: &[&str]) -> Output {
        let (_, _, id, secret) = KEYS.iter().find(|k| k.1 == role).unwrap();
        let endpoint = format!("http://{}", self.addr);
        Command::new("python3")
            .args(args)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
            .env("AWS_ENDPOINT_URL_SSM", &endpoint)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .env("BROKER", &endpoint)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .expect("python3 with boto3 (tests/setup)")
    }

    async fn v1(&self, path: &str, body: Value) -> Value {
        secret_broker_http::ensure_crypto_provider();
        reqwest::Client::new()
            .post(format!("http://{}{path}", self.addr))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_every_secrets_manager_operation_and_values_cross_to_v1() {
    let b = start().await;
    let written = "/openmetadata/bot/from-v1/config/jwttoken";
    b.v1(
        "/v1/secrets/put",
        json!({"id": written, "value": "from-v1"}),
    )
    .await;
    let script = script("aws_api_secrets_manager.py");
    let out = b.python(
        Role::Admin,
        &[script.to_str().unwrap(), "/openmetadata", written],
    );
    let facts: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert!(
        facts["deleted_arn"]
            .as_str()
            .unwrap()
            .contains(":secret:/openmetadata/database/mysql/password-"),
        "{facts}"
    );
    let read = b
        .v1(
            "/v1/secrets/get",
            json!({"id": "/openmetadata/written/by/boto3"}),
        )
        .await;
    assert_eq!(read["value"], "from-boto3", "{read}");
    // Every write through the API is in the audit log under the key's name.
    let audit = b.audit();
    let by = |op: &str| {
        audit
            .iter()
            .filter(|e| e["actor"] == "om-server" && e["operation"] == op && e["outcome"] == "ok")
            .count()
    };
    assert!(by("secret.create") >= 8, "{audit:?}");
    assert!(by("secret.put") >= 2);
    assert!(by("secret.delete") >= 2);
    assert!(by("secret.get") >= 5);
    let line = b.salt.hmac(b"/openmetadata/written/by/boto3");
    assert!(audit.iter().any(|e| e["ids"][0] == json!(line)));
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_every_ssm_operation_and_values_cross_to_v1() {
    let b = start().await;
    let script = script("aws_api_ssm.py");
    let out = b.python(Role::Admin, &[script.to_str().unwrap(), "/openmetadata"]);
    assert_eq!(ok(&out).trim(), "ok");
    let read = b
        .v1(
            "/v1/secrets/get",
            json!({"id": "/openmetadata/written/by/boto3"}),
        )
        .await;
    assert_eq!(read["value"], "from-ssm", "{read}");
}

/// A raw request signed by botocore (or not), sent with urllib: prints status,
/// then body.
const RAW: &str = r#"
import os, sys, urllib.request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
target, body, service, sign = sys.argv[1], sys.argv[2].encode(), sys.argv[3], sys.argv[4]
url = os.environ["BROKER"] + "/"
headers = {"Content-Type": "application/x-amz-json-1.1"}
if target:
    headers["X-Amz-Target"] = target
req = AWSRequest(method="POST", url=url, data=body, headers=headers)
if sign != "none":
    secret = os.environ["AWS_SECRET_ACCESS_KEY"] if sign == "good" else "wrong" * 8
    SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], secret), service, "eu-west-1").add_auth(req)
r = urllib.request.Request(url, data=body, headers=dict(req.headers.items()), method="POST")
try:
    resp = urllib.request.urlopen(r)
    print(resp.status); print(resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"#;

impl Served {
    fn raw(&self, role: Role, target: &str, body: &str, service: &str, sign: &str) -> (u16, Value) {
        let out = self.python(role, &["-c", RAW, target, body, service, sign]);
        let text = ok(&out);
        let (status, body) = text.split_once('\n').unwrap();
        (
            status.trim().parse().unwrap(),
            serde_json::from_str(body.trim()).unwrap_or(Value::String(body.to_owned())),
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_signatures_are_enforced_and_audited() {
    let b = start().await;
    let id = "/openmetadata/database/roles/password";
    b.v1("/v1/secrets/put", json!({"id": id, "value": CANARY}))
        .await;
    let get = format!(r#"{{"SecretId":"{id}"}}"#);
    let target = "secretsmanager.GetSecretValue";

    // The admin key reads it.
    let (st, body) = b.raw(Role::Admin, target, &get, "secretsmanager", "good");
    assert_eq!(
        (st, body["SecretString"].as_str()),
        (200, Some(CANARY)),
        "{body}"
    );
    // A user key and a bot key are denied, as on /v1, and the attempts audited.
    for role in [Role::User, Role::Bot] {
        let (st, body) = b.raw(role, target, &get, "secretsmanager", "good");
        assert_eq!(st, 400, "{body}");
        assert_eq!(body["__type"], "AccessDeniedException", "{body}");
        assert!(!body.to_string().contains(CANARY));
    }
    // Nor may the user learn whether it exists (DescribeSecret needs reveal or write).
    let (st, body) = b.raw(
        Role::User,
        "secretsmanager.DescribeSecret",
        &get,
        "secretsmanager",
        "good",
    );
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["__type"], "AccessDeniedException");
    // Unsigned, wrongly signed, signed for another service.
    let (st, body) = b.raw(Role::Admin, target, &get, "secretsmanager", "none");
    assert_eq!(
        (st, body["__type"].as_str()),
        (403, Some("MissingAuthenticationTokenException")),
        "{body}"
    );
    let (st, body) = b.raw(Role::Admin, target, &get, "secretsmanager", "wrong");
    assert_eq!(
        (st, body["__type"].as_str()),
        (400, Some("InvalidSignatureException")),
        "{body}"
    );
    let (st, body) = b.raw(Role::Admin, target, &get, "ssm", "good");
    assert_eq!(body["__type"], "InvalidSignatureException", "{st} {body}");
    let audit = b.audit();
    let denied: Vec<&Value> = audit
        .iter()
        .filter(|e| e["outcome"] == "denied" && e["operation"] == "secret.get")
        .collect();
    assert_eq!(
        denied
            .iter()
            .map(|e| e["actor"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice", "ingestion"],
        "{audit:?}"
    );
    let refused = audit
        .iter()
        .filter(|e| e["outcome"] == "unauthenticated" && e["operation"] == "secret.get")
        .count();
    assert_eq!(refused, 3, "{audit:?}");
    let log = std::fs::read_to_string(&b.audit_path).unwrap();
    assert!(!log.contains(CANARY));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_aws_shaped_errors_naming_the_field_and_writes_nothing() {
    let b = start().await;
    let id = "/openmetadata/database/bad/password";
    b.v1("/v1/secrets/put", json!({"id": id, "value": "kept"}))
        .await;
    let sm = "secretsmanager";
    let cases: Vec<(String, String, &str, &str)> = vec![
        (
            "secretsmanager.NoSuchThing".into(),
            "{}".into(),
            "UnknownOperationException",
            "NoSuchThing",
        ),
        (
            "".into(),
            "{}".into(),
            "UnknownOperationException",
            "X-Amz-Target",
        ),
        (
            "secretsmanager.GetSecretValue".into(),
            format!("not json {CANARY}"),
            "SerializationException",
            "JSON",
        ),
        (
            "secretsmanager.GetSecretValue".into(),
            "{}".into(),
            "InvalidParameterException",
            "SecretId",
        ),
        (
            "secretsmanager.PutSecretValue".into(),
            format!(
                r#"{{"SecretId":"{id}","SecretString":"{CANARY}{}"}}"#,
                "x".repeat(70_000)
            ),
            "InvalidParameterException",
            "SecretString",
        ),
        (
            "secretsmanager.CreateSecret".into(),
            format!(r#"{{"Name":"bad name {CANARY}","SecretString":"{CANARY}"}}"#),
            "InvalidParameterException",
            "Name",
        ),
        (
            "secretsmanager.UpdateSecret".into(),
            format!(r#"{{"SecretId":"{id}","SecretString":12}}"#),
            "InvalidParameterException",
            "SecretString",
        ),
        (
            "secretsmanager.ListSecrets".into(),
            r#"{"Filters":[{"Key":"tag-key","Values":["x"]}]}"#.into(),
            "InvalidParameterException",
            "Filters",
        ),
        // An array where an object is expected: refused, not read as one.
        (
            "secretsmanager.PutSecretValue".into(),
            format!(r#"["{id}","{CANARY}"]"#),
            "SerializationException",
            "not a JSON object",
        ),
        (
            "secretsmanager.CreateSecret".into(),
            format!(r#"{{"Name":"/x/tags","SecretString":"{CANARY}","Tags":[["k","{CANARY}"]]}}"#),
            "InvalidParameterException",
            "Tags[0]",
        ),
        // Quotes and backslashes around a value in the wrong place: still no echo.
        (
            "secretsmanager.PutSecretValue".into(),
            format!(r#"{{"SecretId":"{id}","SecretString":{{"q\"{CANARY}\\":"\"{CANARY}"}}}}"#),
            "InvalidParameterException",
            "SecretString",
        ),
        (
            "AmazonSSM.PutParameter".into(),
            format!(r#"{{"Name":"{id}","Value":"{CANARY}","Type":"Secret","Overwrite":true}}"#),
            "ValidationException",
            "Type",
        ),
    ];
    for (target, body, code, names) in &cases {
        let service = if target.starts_with("AmazonSSM") {
            "ssm"
        } else {
            sm
        };
        let (st, answer) = b.raw(Role::Admin, target, body, service, "good");
        assert_eq!(st, 400, "{target}: {answer}");
        assert_eq!(answer["__type"], *code, "{target}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{target}: {message}");
        assert!(!answer.to_string().contains(CANARY), "{target}: {answer}");
    }
    // Nothing was written: the value is the one /v1 put.
    let read = b.v1("/v1/secrets/get", json!({"id": id})).await;
    assert_eq!(read["value"], "kept");
    let audit = std::fs::read_to_string(&b.audit_path).unwrap();
    assert!(!audit.contains(CANARY));
}

impl Served {
    /// The AWS CLI, configured for the broker and the admin key.
    fn aws(&self, args: &[&str]) -> Output {
        let (_, _, id, secret) = KEYS[0];
        let endpoint = format!("http://{}", self.addr);
        let config = self._dir.path().join("no-aws-config");
        Command::new("aws")
            .args(args)
            .args(["--output", "json"])
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
            .env("AWS_ENDPOINT_URL_SSM", &endpoint)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &config)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .expect("the AWS CLI (tests/setup installs awscli)")
    }

    fn aws_json(&self, args: &[&str]) -> Value {
        let text = ok(&self.aws(args));
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_runs_the_operations_against_the_broker() {
    let b = start().await;
    aws_cli_operations(&b).await;
}

/// The same AWS CLI run with the broker in front of AWS itself (moto).
#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_runs_the_operations_through_the_broker_in_front_of_moto() {
    let moto = common::moto::Moto::start();
    let rt = runtime();
    let sm = common::aws_provider(&rt, "aws-secrets-manager", &moto.settings("/"))
        .await
        .unwrap();
    aws_cli_operations(&start_on(sm).await).await;
    let ssm = common::aws_provider(&rt, "aws-ssm", &moto.settings("/"))
        .await
        .unwrap();
    aws_cli_operations(&start_on(ssm).await).await;
}

/// Every operation through the AWS CLI, checked as it goes.
async fn aws_cli_operations(b: &Served) {
    let name = "/openmetadata/pipeline/cli/awssecretaccesskey";
    let made = b.aws_json(&[
        "secretsmanager",
        "create-secret",
        "--name",
        name,
        "--secret-string",
        "cli-one",
        "--description",
        "made by the AWS CLI",
        "--tags",
        "Key=team,Value=data",
    ]);
    assert_eq!(made["Name"], name);
    let got = b.aws_json(&["secretsmanager", "get-secret-value", "--secret-id", name]);
    assert_eq!(got["SecretString"], "cli-one");
    b.aws_json(&[
        "secretsmanager",
        "update-secret",
        "--secret-id",
        name,
        "--secret-string",
        "cli-two",
    ]);
    let described = b.aws_json(&["secretsmanager", "describe-secret", "--secret-id", name]);
    assert_eq!(described["Description"], "made by the AWS CLI");
    assert_eq!(described["Tags"], json!([{"Key": "team", "Value": "data"}]));
    let listed = b.aws_json(&[
        "secretsmanager",
        "list-secrets",
        "--filters",
        "Key=name,Values=/openmetadata/pipeline/",
    ]);
    assert_eq!(listed["SecretList"][0]["Name"], name, "{listed}");
    let read = b.v1("/v1/secrets/get", json!({"id": name})).await;
    assert_eq!(read["value"], "cli-two");
    let put = b.aws_json(&[
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        name,
        "--secret-string",
        "cli-three",
    ]);
    assert_eq!(put["VersionStages"], json!(["AWSCURRENT"]));
    b.aws_json(&[
        "secretsmanager",
        "tag-resource",
        "--secret-id",
        name,
        "--tags",
        "Key=env,Value=prod",
    ]);
    b.aws_json(&[
        "secretsmanager",
        "untag-resource",
        "--secret-id",
        name,
        "--tag-keys",
        "team",
    ]);
    let described = b.aws_json(&["secretsmanager", "describe-secret", "--secret-id", name]);
    assert_eq!(described["Tags"], json!([{"Key": "env", "Value": "prod"}]));
    let batch = b.aws_json(&[
        "secretsmanager",
        "batch-get-secret-value",
        "--secret-id-list",
        name,
        "/openmetadata/pipeline/cli/missing",
    ]);
    assert_eq!(
        batch["SecretValues"][0]["SecretString"], "cli-three",
        "{batch}"
    );
    assert_eq!(batch["Errors"][0]["ErrorCode"], "ResourceNotFoundException");
    b.aws_json(&[
        "secretsmanager",
        "delete-secret",
        "--secret-id",
        name,
        "--force-delete-without-recovery",
    ]);
    let gone = b.aws(&["secretsmanager", "get-secret-value", "--secret-id", name]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("ResourceNotFoundException"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );

    let param = "/openmetadata/database/cli/password";
    let put = b.aws_json(&[
        "ssm",
        "put-parameter",
        "--name",
        param,
        "--value",
        "p-one",
        "--type",
        "SecureString",
        "--tags",
        "Key=owner,Value=om",
    ]);
    assert_eq!(put["Version"], 1);
    let again = b.aws(&[
        "ssm",
        "put-parameter",
        "--name",
        param,
        "--value",
        "p-two",
        "--type",
        "SecureString",
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("ParameterAlreadyExists"));
    let put = b.aws_json(&[
        "ssm",
        "put-parameter",
        "--name",
        param,
        "--value",
        "p-two",
        "--type",
        "SecureString",
        "--overwrite",
    ]);
    assert_eq!(put["Version"], 2);
    let got = b.aws_json(&["ssm", "get-parameter", "--name", param, "--with-decryption"]);
    assert_eq!(got["Parameter"]["Value"], "p-two");
    let got = b.aws_json(&[
        "ssm",
        "get-parameters",
        "--names",
        param,
        "/openmetadata/database/cli/missing",
        "--with-decryption",
    ]);
    assert_eq!(got["Parameters"][0]["Value"], "p-two", "{got}");
    assert_eq!(
        got["InvalidParameters"],
        json!(["/openmetadata/database/cli/missing"])
    );
    b.aws_json(&[
        "ssm",
        "add-tags-to-resource",
        "--resource-type",
        "Parameter",
        "--resource-id",
        param,
        "--tags",
        "Key=env,Value=dev",
    ]);
    let tags = b.aws_json(&[
        "ssm",
        "list-tags-for-resource",
        "--resource-type",
        "Parameter",
        "--resource-id",
        param,
    ]);
    assert_eq!(tags["TagList"].as_array().unwrap().len(), 2, "{tags}");
    let by_path = b.aws_json(&[
        "ssm",
        "get-parameters-by-path",
        "--path",
        "/openmetadata",
        "--recursive",
        "--with-decryption",
    ]);
    assert_eq!(by_path["Parameters"][0]["Name"], param, "{by_path}");
    let described = b.aws_json(&["ssm", "describe-parameters"]);
    assert_eq!(described["Parameters"][0]["Name"], param, "{described}");
    b.aws_json(&["ssm", "delete-parameter", "--name", param]);
    let gone = b.aws(&["ssm", "get-parameter", "--name", param]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("ParameterNotFound"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_sdk_for_rust_runs_the_operations_against_the_broker() {
    let b = start().await;
    let (_, _, id, secret) = KEYS[0];
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(format!("http://{}", b.addr))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(id, secret, None, None, "test"),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let name = "/openmetadata/dashboard/sdk/password";
    let made = sm
        .create_secret()
        .name(name)
        .secret_string("sdk-one")
        .description("This secret was created by OpenMetadata")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("k")
                .value("v")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(made.name(), Some(name));
    let exists = sm
        .create_secret()
        .name(name)
        .secret_string("sdk-again")
        .send()
        .await
        .unwrap_err();
    assert!(
        exists
            .as_service_error()
            .is_some_and(|e| e.is_resource_exists_exception()),
        "{exists:?}"
    );
    sm.update_secret()
        .secret_id(name)
        .secret_string("sdk-two")
        .send()
        .await
        .unwrap();
    let got = sm.get_secret_value().secret_id(name).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("sdk-two"));
    // A value written through /v1 (no AWS metadata yet) still has a VersionId
    // and a CreatedDate, the same on every read.
    let plain = "/openmetadata/v1only/written/password";
    b.v1("/v1/secrets/put", json!({"id": plain, "value": "from-v1"}))
        .await;
    let first = sm.get_secret_value().secret_id(plain).send().await.unwrap();
    let again = sm.get_secret_value().secret_id(plain).send().await.unwrap();
    assert_eq!(first.secret_string(), Some("from-v1"));
    assert!(
        first.version_id().is_some_and(|v| !v.is_empty()),
        "{first:?}"
    );
    assert!(first.created_date().is_some(), "{first:?}");
    assert_eq!(first.version_id(), again.version_id());
    assert_eq!(
        first.created_date(),
        again.created_date(),
        "{first:?} {again:?}"
    );
    let described = sm.describe_secret().secret_id(name).send().await.unwrap();
    assert_eq!(described.tags().len(), 1);
    assert!(described.last_changed_date().is_some());
    sm.delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let gone = sm
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{gone:?}"
    );

    let ssm = aws_sdk_ssm::Client::new(&config);
    // A value too large for SSM, written through /v1: the SSM read refuses it
    // with AWS's error rather than answer it over the limit.
    let big = "/openmetadata/large/sdk/big";
    b.v1(
        "/v1/secrets/put",
        json!({"id": big, "value": "b".repeat(5000)}),
    )
    .await;
    let refused = ssm
        .get_parameter()
        .name(big)
        .with_decryption(true)
        .send()
        .await
        .unwrap_err();
    {
        use aws_sdk_ssm::error::ProvideErrorMetadata as _;
        assert_eq!(refused.code(), Some("ValidationException"), "{refused:?}");
        assert!(
            refused.message().unwrap_or_default().contains("4096"),
            "{refused:?}"
        );
    }
    let param = "/openmetadata/dashboard/sdk/token";
    ssm.put_parameter()
        .name(param)
        .value("t-one")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(false)
        .send()
        .await
        .unwrap();
    // An overwrite that creates the parameter makes version 1, as on AWS.
    let fresh = ssm
        .put_parameter()
        .name("/openmetadata/pipeline/sdk/fresh")
        .value("f-one")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.version(), 1);
    let again = ssm
        .put_parameter()
        .name(param)
        .value("t-two")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(false)
        .send()
        .await
        .unwrap_err();
    assert!(
        again
            .as_service_error()
            .is_some_and(|e| e.is_parameter_already_exists()),
        "{again:?}"
    );
    let got = ssm
        .get_parameter()
        .name(param)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("t-one"));
    let listed = ssm
        .get_parameters_by_path()
        .path("/openmetadata/dashboard")
        .recursive(true)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parameters().len(), 1);
    ssm.delete_parameter().name(param).send().await.unwrap();
    let gone = ssm
        .get_parameter()
        .name(param)
        .with_decryption(true)
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_parameter_not_found()),
        "{gone:?}"
    );
}

/// Twenty creates of one id at once: one writes, nineteen are told it exists,
/// and the value kept is the one whose create succeeded.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_of_one_id_write_once() {
    use secret_broker::broker::{BrokerError, Caller, Written};
    let db = TempDb::sqlite();
    let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
    let provider = db_provider(&runtime(), store, Arc::new(Keyring::single([5; 32])), "db").await;
    let broker = Arc::new(Broker::new(provider, None, Policy::default(), None));
    let caller = Caller {
        name: "admin".into(),
        role: Role::Admin,
    };
    let id = "/openmetadata/database/race/password";
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (broker, caller) = (broker.clone(), caller.clone());
            tokio::spawn(async move {
                let value = SecretValue::from_string(format!("writer-{i}"));
                (
                    i,
                    broker
                        .create(&caller, id, &value, &secret_broker::PutOptions::default())
                        .await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(Written::Created)) => winners.push(i),
            (_, Err(BrokerError::Exists { .. })) => {}
            (i, other) => panic!("create {i}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let kept = broker.get(&caller, id).await.unwrap().unwrap();
    assert_eq!(
        kept.expose_str(),
        Some(format!("writer-{}", winners[0]).as_str())
    );
    // A user may not create, and nothing is written.
    let user = Caller {
        name: "u".into(),
        role: Role::User,
    };
    let denied = broker
        .create(
            &user,
            "/openmetadata/database/race/other",
            &SecretValue::from_string("x".into()),
            &secret_broker::PutOptions::default(),
        )
        .await;
    assert!(
        matches!(denied, Err(BrokerError::Denied { .. })),
        "{denied:?}"
    );
    assert!(
        broker
            .get(&caller, "/openmetadata/database/race/other")
            .await
            .unwrap()
            .is_none()
    );
}

/// The broker in front of AWS itself (moto): the same boto3 runs of every
/// operation pass with the AWS providers behind the broker, and what the
/// broker wrote is on the backend with OpenMetadata's description.
#[tokio::test(flavor = "multi_thread")]
async fn boto3_through_the_broker_in_front_of_moto() {
    let moto = common::moto::Moto::start();
    let rt = runtime();
    let sm = common::aws_provider(&rt, "aws-secrets-manager", &moto.settings("/"))
        .await
        .unwrap();
    let b = start_on(sm).await;
    let written = "/openmetadata/bot/from-v1/config/jwttoken";
    b.v1(
        "/v1/secrets/put",
        json!({"id": written, "value": "from-v1"}),
    )
    .await;
    let sm_script = script("aws_api_secrets_manager.py");
    ok(&b.python(
        Role::Admin,
        &[sm_script.to_str().unwrap(), "/openmetadata", written],
    ));
    let on_moto = moto.boto3(
        "d = sm.describe_secret(SecretId=sys.argv[1]); print(d.get('Description'))\n\
         print(sm.get_secret_value(SecretId=sys.argv[2])['SecretString'])",
        &["/openmetadata/listed/s0", "/openmetadata/written/by/boto3"],
    );
    assert_eq!(ok(&on_moto).trim(), "d0\nfrom-boto3");

    let ssm = common::aws_provider(&rt, "aws-ssm", &moto.settings("/"))
        .await
        .unwrap();
    let b = start_on(ssm).await;
    let ssm_script = script("aws_api_ssm.py");
    assert_eq!(
        ok(&b.python(
            Role::Admin,
            &[ssm_script.to_str().unwrap(), "/openmetadata-ssm"]
        ))
        .trim(),
        "ok"
    );
    let on_moto = moto.boto3(
        "print(ssm.get_parameter(Name=sys.argv[1], WithDecryption=True)['Parameter']['Value'])",
        &["/openmetadata-ssm/written/by/boto3"],
    );
    assert_eq!(ok(&on_moto).trim(), "from-ssm");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_is_down_answers_throttling_which_sdks_retry() {
    // The AWS provider pointed at a port nobody listens on: every call is
    // unavailable. The SDK must see ThrottlingException and back off and retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut settings = secret_broker_aws::AwsSettings::new("/");
    settings.region = Some("eu-west-1".into());
    settings.access_key_id = Some("testing".into());
    settings.secret_access_key = Some(SecretValue::from_string("testing".into()));
    settings.endpoint = Some(format!("http://127.0.0.1:{port}"));
    settings.max_attempts = 2;
    settings.initial_backoff = std::time::Duration::from_millis(10);
    settings.operation_timeout = std::time::Duration::from_secs(3);
    let rt = runtime();
    let sm = common::aws_provider(&rt, "aws-secrets-manager", &settings)
        .await
        .unwrap();
    let b = start_on(sm).await;
    let out = ok(&b.python(
        Role::Admin,
        &[
            "-c",
            "import sys, boto3, botocore.config, botocore.exceptions\n\
             cfg = botocore.config.Config(retries={'max_attempts': 3, 'mode': 'standard'})\n\
             sm = boto3.client('secretsmanager', config=cfg)\n\
             calls = [lambda: sm.get_secret_value(SecretId='/openmetadata/down/get'),\n\
                      lambda: sm.create_secret(Name='/openmetadata/down/create', SecretString=sys.argv[1])]\n\
             for call in calls:\n\
             \x20   try:\n\
             \x20       call(); print('answered')\n\
             \x20   except botocore.exceptions.ClientError as e:\n\
             \x20       m = e.response['ResponseMetadata']\n\
             \x20       print(e.response['Error']['Code'], m['HTTPStatusCode'], m['RetryAttempts'])\n",
            CANARY,
        ],
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ThrottlingException 400 3", "ThrottlingException 400 3"],
        "{out}"
    );
    // Every attempt the SDK made (the first and its 3 retries: botocore's
    // `max_attempts` counts retries) is audited as a provider error.
    let audit = b.audit();
    for op in ["secret.get", "secret.create"] {
        let errors = audit
            .iter()
            .filter(|e| e["operation"] == op && e["outcome"] == "error")
            .count();
        assert_eq!(errors, 4, "{op}: {audit:?}");
    }
    let log = std::fs::read_to_string(&b.audit_path).unwrap();
    assert!(!log.contains(CANARY));
}
