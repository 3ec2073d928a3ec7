//! The HTTP API end to end on loopback: tokens and roles, masking and unmask on
//! update, the audit log, bad input, a slow provider, metrics, and a canary value
//! that must appear only where an admin asked for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use secret_broker::audit::{AuditLog, Salt};
use secret_broker::broker::Broker;
use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::openmetadata::owners::Owners;
use secret_broker::policy::{Policy, Role};
use secret_broker::{
    Granted, Limits, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue,
};
use secret_broker_keyring::Keyring;
use secret_broker_record_store::RecordStore;
use secret_broker_server::listen::ConnOptions;
use secret_broker_server::tokens::Tokens;
use secret_broker_server::{self as server, AppState, ServerOptions};
use secret_broker_tests::guests;
use serde_json::{Value, json};

use common::{TempDb, db_provider, hold_sqlite_write_lock, runtime};

const ADMIN: &str = "sbt_admin-token-for-tests";
const USER: &str = "sbt_user-token-for-tests";
const BOT: &str = "sbt_bot-token-for-tests";

/// Everything written by `tracing` in this test binary, at TRACE.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Sink;
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                captured_logs().lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(|| Sink)
            .with_ansi(false)
            .try_init();
        Mutex::new(Vec::new())
    })
}

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    audit_path: PathBuf,
    salt: Salt,
    _dir: tempfile::TempDir,
    _db: Option<TempDb>,
}

fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas")
}

fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.insert("om-server", Role::Admin, ADMIN);
    t.insert("alice", Role::User, USER);
    t.insert("ingestion-bot", Role::Bot, BOT);
    t
}

async fn start(
    provider: Arc<ProviderHost>,
    db: Option<TempDb>,
    policy: Policy,
    options: ServerOptions,
) -> Server {
    start_with(provider, db, policy, options, ConnOptions::default()).await
}

async fn start_with(
    provider: Arc<ProviderHost>,
    db: Option<TempDb>,
    policy: Policy,
    options: ServerOptions,
    conn: ConnOptions,
) -> Server {
    let _ = captured_logs();
    let dir = tempfile::tempdir().unwrap();
    let salt = Salt::from_bytes(&[7; 32]);
    let audit_path = dir.path().join("audit.log");
    let audit = Arc::new(AuditLog::open(&audit_path, salt.clone()).unwrap());
    let ids = IdBuilder::new(None, "openmetadata").unwrap();
    let owners_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("owners.db").display()
    );
    let owners = Owners::new(secret_broker_deploy::RecordOwners::shared(Arc::new(
        RecordStore::connect(&owners_url).await.unwrap(),
    )));
    let manager = SecretsManager::new(provider.clone(), &schemas(), ids, owners).unwrap();
    let broker = Broker::new(provider, Some(manager), policy, Some(audit));
    let app = server::router(AppState::new(broker, tokens(), options));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::listen::serve(
        listener,
        app,
        conn,
        std::future::pending(),
    ));
    Server {
        addr,
        client: {
            secret_broker_http::ensure_crypto_provider();
            reqwest::Client::new()
        },
        audit_path,
        salt,
        _dir: dir,
        _db: db,
    }
}

/// The db provider on a fresh SQLite file, instance `name`.
async fn sqlite_provider(name: &str) -> (TempDb, Arc<ProviderHost>) {
    let db = TempDb::sqlite();
    let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
    let provider = db_provider(&runtime(), store, Arc::new(Keyring::single([4; 32])), name).await;
    (db, provider)
}

async fn db_server(policy: Policy) -> Server {
    let (db, provider) = sqlite_provider("http").await;
    start(provider, Some(db), policy, ServerOptions::default()).await
}

impl Server {
    async fn call(&self, token: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn raw(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, String) {
        let mut req = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn get_text(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = self.client.get(format!("http://{}{path}", self.addr));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    fn audit_entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn tokens_roles_and_the_audit_log() {
    let s = db_server(Policy::default()).await;
    let id = "/openmetadata/database/pg/password";

    // No token, a wrong token: 401, and nothing happens.
    let (st, body) = s.call(None, "/v1/secrets/get", json!({"id": id})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    let (st, _) = s
        .call(
            Some("sbt_not-a-token"),
            "/v1/secrets/get",
            json!({"id": id}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get_text("/metrics", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Health and the OpenAPI document are open.
    for open in ["/health", "/health/live", "/health/ready"] {
        let (st, text) = s.get_text(open, None).await;
        assert_eq!(st, StatusCode::OK, "{open}: {text}");
    }
    let (st, text) = s.get_text("/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    let doc: Value = serde_json::from_str(&text).unwrap();
    for route in [
        "/v1/secrets/get",
        "/v1/secrets/put",
        "/v1/secrets/delete",
        "/v1/secrets/list",
        "/v1/secrets/resolve",
        "/v1/entities/encrypt",
        "/v1/entities/decrypt",
        "/v1/entities/delete",
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(route).is_some(),
            "{route} in the OpenAPI document"
        );
    }

    // Admin writes and reads.
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": id, "value": "pg-pass"}),
        )
        .await;
    assert_eq!(
        (st, body["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );
    let (st, body) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(
        (st, body["value"].as_str()),
        (StatusCode::OK, Some("pg-pass"))
    );
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/resolve",
            json!({"reference": format!("secret:{id}")}),
        )
        .await;
    assert_eq!(
        (st, body["value"].as_str()),
        (StatusCode::OK, Some("pg-pass"))
    );
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/list",
            json!({"prefix": "/openmetadata/"}),
        )
        .await;
    assert_eq!((st, body["ids"].clone()), (StatusCode::OK, json!([id])));

    // A user and a bot may not read or write: 403, audited.
    for token in [USER, BOT] {
        let (st, body) = s
            .call(Some(token), "/v1/secrets/get", json!({"id": id}))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
        assert!(!body.to_string().contains("pg-pass"));
        let (st, _) = s
            .call(
                Some(token),
                "/v1/secrets/put",
                json!({"id": id, "value": "overwritten"}),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    let (_, body) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(
        body["value"],
        json!("pg-pass"),
        "refused writes changed nothing"
    );

    let entries = s.audit_entries();
    let hid = s.salt.hmac(id.as_bytes());
    let denied: Vec<&Value> = entries
        .iter()
        .filter(|e| e["outcome"] == json!("denied"))
        .collect();
    assert_eq!(denied.len(), 4, "{entries:?}");
    assert!(denied.iter().any(|e| e["actor"] == json!("alice")
        && e["role"] == json!("user")
        && e["operation"] == json!("secret.get")
        && e["ids"] == json!([hid])));
    let put = entries
        .iter()
        .find(|e| e["operation"] == json!("secret.put") && e["outcome"] == json!("ok"))
        .unwrap();
    assert_eq!(put["actor"], json!("om-server"));
    assert_eq!(put["provider"], json!("http"));
    assert_eq!(put["value"], json!(s.salt.hmac(b"pg-pass")));
    assert!(put["time"].as_str().unwrap().ends_with('Z'));
    let log = std::fs::read_to_string(&s.audit_path).unwrap();
    assert!(!log.contains(id) && !log.contains("pg-pass"), "{log}");
}

#[tokio::test]
async fn masked_for_users_and_bots_unmasked_on_update() {
    let s = db_server(Policy::default()).await;
    let config = json!({"type": "Mysql", "username": "u", "hostPort": "db:3306",
                        "authType": {"password": "mysql-pass"}});
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "shop", "config": config}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let stored = body["config"].clone();
    let id = "/openmetadata/database/shop/authtype/password";
    assert_eq!(
        stored["authType"]["password"],
        json!(format!("secret:{id}"))
    );

    // Users and bots see the mask; admins the value.
    for token in [USER, BOT] {
        let (st, body) = s
            .call(
                Some(token),
                "/v1/entities/decrypt",
                json!({"serviceType": "database", "config": stored}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(body["config"]["authType"]["password"], json!("*********"));
        assert_eq!(body["config"]["username"], json!("u"));
        assert_eq!(body["masked"], json!(true));
    }
    let (_, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/decrypt",
            json!({"serviceType": "database", "config": stored}),
        )
        .await;
    assert_eq!(body["config"], config);

    // The masked config sent back keeps the stored value.
    let mut masked = config.clone();
    masked["authType"]["password"] = json!("*********");
    masked["username"] = json!("u2");
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "shop", "config": masked, "stored": stored}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["config"]["username"], json!("u2"));
    let (_, got) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(got["value"], json!("mysql-pass"), "the mask was not stored");
    // The mask with another entity's stored form: refused, nothing written (a
    // caller who may write could otherwise hand this entity another's secret).
    let other = json!({"type": "Mysql", "username": "o", "hostPort": "db:3306",
                       "authType": {"password": "other-pass"}});
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "other", "config": other}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let others = body["config"].clone();
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "shop", "config": masked, "stored": others}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["kind"], json!("foreign-stored"), "{body}");
    assert!(body["error"].as_str().unwrap().contains(id), "{body}");
    assert!(!body.to_string().contains("other-pass"), "{body}");
    let (_, got) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(got["value"], json!("mysql-pass"), "nothing was written");
    // Without the stored form, the mask is refused rather than stored.
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "shop", "config": masked}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("authType/password"),
        "{body}"
    );
    // A changed value replaces it.
    let mut changed = config.clone();
    changed["authType"]["password"] = json!("rotated-pass");
    let (st, _) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "shop", "config": changed, "stored": stored}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, got) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(got["value"], json!("rotated-pass"));
    // The mask on a plain put keeps the value too.
    let (_, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": id, "value": "*********"}),
        )
        .await;
    assert_eq!(body["outcome"], json!("unchanged"));
    let (_, got) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(got["value"], json!("rotated-pass"));

    // A user may not encrypt or delete.
    let (st, _) = s
        .call(
            Some(USER),
            "/v1/entities/delete",
            json!({"serviceType": "database", "name": "shop", "config": stored}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/delete",
            json!({"serviceType": "database", "name": "shop", "config": stored}),
        )
        .await;
    assert_eq!((st, body["deleted"].clone()), (StatusCode::OK, json!(1)));
    // A dangling reference is named.
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/decrypt",
            json!({"serviceType": "database", "config": stored}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains(id), "{body}");
}

#[tokio::test]
async fn bots_can_be_unmasked_by_the_role_table() {
    let policy: Policy = serde_json::from_value(json!({"bot": {"reveal": true}})).unwrap();
    let s = db_server(policy).await;
    s.call(
        Some(ADMIN),
        "/v1/secrets/put",
        json!({"id": "/b/x", "value": "bot-visible"}),
    )
    .await;
    let (st, body) = s
        .call(Some(BOT), "/v1/secrets/get", json!({"id": "/b/x"}))
        .await;
    assert_eq!(
        (st, body["value"].as_str()),
        (StatusCode::OK, Some("bot-visible"))
    );
    let (st, _) = s
        .call(Some(USER), "/v1/secrets/get", json!({"id": "/b/x"}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_that_echo_no_value() {
    let s = db_server(Policy::default()).await;
    let (st, text) = s
        .raw(
            "/v1/secrets/put",
            Some(ADMIN),
            b"{\"id\": \"/x\", ".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
    let (st, body) = s
        .call(Some(ADMIN), "/v1/secrets/put", json!({"id": "/x"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the member `value` is missing"),
        "{body}"
    );
    // A JSON array where an object is expected: refused, nothing written (it
    // used to be read member by member as `{"id": ..., "value": ...}`).
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!(["/array", "array-canary"]),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expected an object, found an array"),
        "{body}"
    );
    assert!(!body.to_string().contains("array-canary"), "{body}");
    let (st, _) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/array"}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Values, unknown members and their names holding quotes and backslashes
    // appear in no message.
    for bad in [
        json!({"id": "/x", "value": ["quote\"canary\\"]}),
        json!({"id": "/x", "value": {"quote\"canary\\": "q\"canary"}}),
        json!({"id": "/x", "value": "v", "quote\"canary\\": 1}),
        json!({"id": {"quote\"canary": "x"}, "value": "v"}),
    ] {
        let (st, body) = s.call(Some(ADMIN), "/v1/secrets/put", bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert!(!body.to_string().contains("canary"), "{body}");
    }
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": "/x", "value": 1, "vaule": "typo-canary"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/get",
            json!({"id": ["wrong-type-canary"]}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("id"), "{body}");
    assert!(!body.to_string().contains("wrong-type-canary"), "{body}");
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": "no-leading-slash", "value": "v"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"name": "x", "config": {"type": "Mysql"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("serviceType"),
        "{body}"
    );
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "x", "config": {"type": "Nosuchdb"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("Nosuchdb"),
        "{body}"
    );
    // Oversized: 413, and the previous value is still there.
    s.call(
        Some(ADMIN),
        "/v1/secrets/put",
        json!({"id": "/big", "value": "small"}),
    )
    .await;
    let big = json!({"id": "/big", "value": "x".repeat(300 << 10)});
    let (st, text) = s
        .raw("/v1/secrets/put", Some(ADMIN), big.to_string().into_bytes())
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let (_, body) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/big"}))
        .await;
    assert_eq!(body["value"], json!("small"));
    let (st, _) = s.call(Some(ADMIN), "/v1/nothing", json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// The adversary guest as the server's provider, with calls bounded by `timeout`.
async fn adversary(name: &str, timeout: Duration) -> Arc<ProviderHost> {
    let rt = Runtime::new(RuntimeOptions {
        limits: Limits {
            call_timeout: timeout,
            ..Limits::default()
        },
        ..RuntimeOptions::default()
    })
    .unwrap();
    let component = rt
        .load_file(std::path::Path::new(guests::TEST_GUEST_ADVERSARY))
        .unwrap();
    Arc::new(
        ProviderHost::new(&rt, &component, Granted::new(name))
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn a_slow_provider_answers_503_and_the_server_keeps_serving() {
    let provider = adversary("slow", Duration::from_millis(300)).await;
    let s = start(provider, None, Policy::default(), ServerOptions::default()).await;
    let started = std::time::Instant::now();
    let (st, body) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/x/loop"}))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["kind"], json!("timeout"), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("did not answer"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    let (st, body) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/x/panic"}))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (st, _) = s.get_text("/health", None).await;
    assert_eq!(st, StatusCode::OK);
    let error = s
        .audit_entries()
        .into_iter()
        .find(|e| e["error"] == json!("timeout"))
        .unwrap();
    assert_eq!(error["outcome"], json!("error"));
}

/// Looping calls on every worker thread: `/health` still answers while they run
/// (guest code yields at every epoch tick), and they end as timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_provider_calls_do_not_stall_the_server() {
    let provider = adversary("looper", Duration::from_secs(6)).await;
    let s = Arc::new(start(provider, None, Policy::default(), ServerOptions::default()).await);
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/x/loop"}))
                    .await
            })
        })
        .collect();
    // Give the looping calls time to reach guest code (not an assertion).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = tokio::spawn({
        let s = s.clone();
        async move { s.get_text("/health", None).await }
    });
    let (st, _) = health.await.unwrap();
    assert_eq!(st, StatusCode::OK);
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "/health answered only after the looping calls ended"
    );
    for l in loops {
        let (st, body) = l.await.unwrap();
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["kind"], json!("timeout"), "{body}");
    }
}

#[tokio::test]
async fn a_canary_appears_only_where_an_admin_asked_for_it() {
    let s = db_server(Policy::default()).await;
    let canary = "CANARY-7f3a9e-http-value";
    let id = "/openmetadata/database/canary/authtype/password";
    let config = json!({"type": "Mysql", "username": "u", "hostPort": "h:1",
                        "authType": {"password": canary}});
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "canary", "config": config}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let stored = body["config"].clone();
    assert!(!stored.to_string().contains(canary));

    let mut seen_by_others = String::new();
    for token in [USER, BOT] {
        for (path, req) in [
            ("/v1/secrets/get", json!({"id": id})),
            (
                "/v1/secrets/resolve",
                json!({"reference": format!("secret:{id}")}),
            ),
            ("/v1/secrets/list", json!({"prefix": "/"})),
            (
                "/v1/entities/decrypt",
                json!({"serviceType": "database", "config": stored}),
            ),
            (
                "/v1/entities/encrypt",
                json!({"serviceType": "database", "name": "canary", "config": config}),
            ),
            ("/v1/secrets/put", json!({"id": id, "value": canary})),
        ] {
            let (_, body) = s.call(Some(token), path, req).await;
            seen_by_others.push_str(&body.to_string());
        }
    }
    // Errors an admin gets for bad requests carrying the canary don't echo it.
    for req in [
        json!({"id": "no-slash", "value": canary}),
        json!({"id": id, "value": [canary]}),
        json!({"id": id, "value": {"nested": canary}}),
        json!({"id": id, "value": canary, "extra": canary}),
    ] {
        let (st, body) = s.call(Some(ADMIN), "/v1/secrets/put", req).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        seen_by_others.push_str(&body.to_string());
    }
    assert!(!seen_by_others.contains(canary), "{seen_by_others}");

    // The admin sees it where asked.
    let (_, body) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
        .await;
    assert_eq!(body["value"], json!(canary));

    let (_, metrics) = s.get_text("/metrics", Some(ADMIN)).await;
    assert!(
        metrics.contains("secret_broker_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/v1/secrets/get\""), "{metrics}");
    assert!(
        !metrics.contains(canary) && !metrics.contains("canary/authtype"),
        "{metrics}"
    );
    let audit = std::fs::read_to_string(&s.audit_path).unwrap();
    assert!(!audit.contains(canary) && !audit.contains(id));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs were captured"
    );
    assert!(!logs.contains(canary), "a TRACE log line holds the canary");
}

#[tokio::test]
async fn concurrent_clients_lose_no_acknowledged_write() {
    let s = Arc::new(db_server(Policy::default()).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for client in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while std::time::Instant::now() < deadline && n < 500 {
                let id = format!("/load/c{client}/k{}", n % 20);
                let value = format!("v-{client}-{n}");
                let (st, _) = s
                    .call(
                        Some(ADMIN),
                        "/v1/secrets/put",
                        json!({"id": id, "value": value}),
                    )
                    .await;
                assert_eq!(st, StatusCode::OK);
                acked.push((id.clone(), value));
                let (st, _) = s
                    .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
                    .await;
                assert_eq!(st, StatusCode::OK);
                n += 1;
            }
            acked
        }));
    }
    let mut last = std::collections::BTreeMap::new();
    for t in tasks {
        for (id, value) in t.await.unwrap() {
            last.insert(id, value);
        }
    }
    assert!(!last.is_empty());
    for (id, value) in last {
        let (_, body) = s
            .call(Some(ADMIN), "/v1/secrets/get", json!({"id": id}))
            .await;
        assert_eq!(body["value"], json!(value), "{id}");
    }
}

#[tokio::test]
async fn a_leaky_provider_cannot_get_a_value_out_through_http() {
    let rt = runtime();
    let component = rt
        .load_file(std::path::Path::new(guests::TEST_GUEST_LEAKY))
        .unwrap();
    let granted = Granted::new("leaky").with(secret_broker_runtime::caps::reveal::Reveal);
    let provider = Arc::new(ProviderHost::new(&rt, &component, granted).await.unwrap());
    let s = start(provider, None, Policy::default(), ServerOptions::default()).await;
    let canary = "CANARY-leaky-2b8c41";
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": "/leak/x", "value": canary}),
        )
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("[redacted]"),
        "{body}"
    );
    assert!(!body.to_string().contains(canary), "{body}");
    // A provider that panics with the value: a trap, and the panic message it
    // printed reaches the log scrubbed.
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": "/leak/panic", "value": canary}),
        )
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["kind"], json!("trapped"), "{body}");
    assert!(!body.to_string().contains(canary), "{body}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("storing /leak/x = [redacted]"),
        "the provider's log line arrived, scrubbed"
    );
    // Checked here, where the panic happens: the log is shared by every test
    // of this binary, and another test cannot know when this one has run.
    assert!(
        logs.contains("panicking while holding [redacted]"),
        "the panic message arrived, scrubbed"
    );
    assert!(
        !logs.contains(canary),
        "a log line holds the leaky provider's canary"
    );
}

/// Another process holds SQLite's write lock, so the provider's writes wait. One
/// encrypt outlives the server's deadline (503), another's client hangs up: when
/// the lock is released both still complete, whole, and both are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_complete_and_are_audited() {
    let (db, provider) = sqlite_provider("dropped").await;
    let options = ServerOptions {
        request_timeout: Duration::from_millis(300),
        ..ServerOptions::default()
    };
    let mut holder = hold_sqlite_write_lock(&db).await;
    let s = start(provider.clone(), Some(db), Policy::default(), options).await;
    let config = |n: &str| {
        json!({"type": "Snowflake", "username": "u", "account": "a", "warehouse": "w",
               "password": format!("pw-{n}"), "privateKey": format!("key-{n}"),
               "snowflakePrivatekeyPassphrase": format!("phrase-{n}")})
    };

    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/encrypt",
            json!({"serviceType": "database", "name": "deadline", "config": config("deadline")}),
        )
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    secret_broker_http::ensure_crypto_provider();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let hung_up = impatient
        .post(format!("http://{}/v1/entities/encrypt", s.addr))
        .bearer_auth(ADMIN)
        .json(&json!({"serviceType": "database", "name": "hungup", "config": config("hungup")}))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    drop(holder);

    for name in ["deadline", "hungup"] {
        let mut all = false;
        for _ in 0..100 {
            let mut values = Vec::new();
            for field in ["password", "privatekey", "snowflakeprivatekeypassphrase"] {
                let id = format!("/openmetadata/database/{name}/{field}");
                values.push(provider.get(&id).await.unwrap());
            }
            if values.iter().all(Option::is_some) {
                all = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(all, "{name}: the encrypt did not complete");
        let hid = s
            .salt
            .hmac(format!("/openmetadata/database/{name}/password").as_bytes());
        let audited = s.audit_entries().into_iter().any(|e| {
            e["operation"] == json!("entity.encrypt")
                && e["outcome"] == json!("ok")
                && e["ids"].as_array().unwrap().contains(&json!(hid))
        });
        assert!(audited, "{name}: no audit entry: {:?}", s.audit_entries());
    }
}

/// Raw HTTP on a TCP connection: what `reqwest` will not send.
async fn raw_tcp(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closes `conn` (a read sees the end) before the guard.
async fn closed_by_server(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_cannot_hold_the_server() {
    use tokio::io::AsyncWriteExt;
    let (db, provider) = sqlite_provider("slow").await;
    let conn = ConnOptions {
        header_timeout: Duration::from_millis(400),
        max_connections: 4,
        ..ConnOptions::default()
    };
    let s = start_with(
        provider,
        Some(db),
        Policy::default(),
        ServerOptions::default(),
        conn,
    )
    .await;
    // Slowloris: headers a byte at a time, never finished.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let loris = tokio::spawn(async move {
        for b in b"POST /v1/secrets/get HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        closed_by_server(&mut slow).await
    });
    // Hold-open: every connection slot taken by a client that sends nothing.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    // A real client still gets through once the idle ones are closed.
    let (st, _) = tokio::time::timeout(Duration::from_secs(20), s.get_text("/health", None))
        .await
        .expect("the server stayed held by connections that send nothing");
    assert_eq!(st, StatusCode::OK);
    for mut c in idle {
        assert!(
            closed_by_server(&mut c).await,
            "an idle connection stayed open"
        );
    }
    assert!(loris.await.unwrap(), "the slowloris connection stayed open");
}

#[tokio::test]
async fn http_edge_cases_are_answered_plainly() {
    let s = db_server(Policy::default()).await;
    // Any case of the Bearer scheme.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = s
            .client
            .post(format!("http://{}/v1/secrets/list", s.addr))
            .header("authorization", format!("{scheme} {ADMIN}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{scheme}");
    }
    // 401s are audited, naming the operation only.
    let (st, _) = s
        .call(Some("sbt_wrong"), "/v1/secrets/get", json!({"id": "/a"}))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .call(None, "/v1/secrets/put", json!({"id": "/a", "value": "v"}))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let refused: Vec<Value> = s
        .audit_entries()
        .into_iter()
        .filter(|e| e["outcome"] == json!("unauthenticated"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["operation"], json!("secret.get"));
    assert_eq!(refused[1]["operation"], json!("secret.put"));
    // Made-up methods are one metrics label, however many there are.
    for i in 0..20 {
        let m = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let _ = s
            .client
            .request(m, format!("http://{}/health", s.addr))
            .send()
            .await
            .unwrap();
    }
    let (_, metrics) = s.get_text("/metrics", Some(ADMIN)).await;
    assert!(!metrics.contains("BREW"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    // The mask put to an id that holds nothing is an error, and stores nothing.
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/put",
            json!({"id": "/m/empty", "value": "*********"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["kind"], json!("mask-without-value"), "{body}");
    let (st, _) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/m/empty"}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // An unknown field's name is not echoed back.
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/secrets/get",
            json!({"id": "/a", "s3cr3t-as-key": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("s3cr3t"), "{body}");
    // A declared body over the limit is refused at once, before it is sent.
    let answer = raw_tcp(
        s.addr,
        format!(
            "POST /v1/secrets/put HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn decrypting_a_value_that_is_not_text_is_a_clear_error() {
    let (db, provider) = sqlite_provider("bin").await;
    let id = "/openmetadata/database/bin/authtype/password";
    provider
        .put(
            id,
            &SecretValue::new(vec![0xff, 0xfe, 0x00, 0x80]),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let s = start(
        provider,
        Some(db),
        Policy::default(),
        ServerOptions::default(),
    )
    .await;
    let config = json!({"type": "Mysql", "username": "u", "hostPort": "h:3306",
                        "authType": {"password": format!("secret:{id}")}});
    let (st, body) = s
        .call(
            Some(ADMIN),
            "/v1/entities/decrypt",
            json!({"serviceType": "database", "config": config}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["kind"], json!("not-text"), "{body}");
    assert!(!body.to_string().contains('\u{fffd}'), "{body}");
}

/// The audit log's disk fills up (its path now leads to /dev/full): puts and
/// deletes are refused before they reach the provider, so nothing happens
/// unaudited; once the log can be written again, the chain is unbroken.
#[tokio::test]
async fn writes_are_refused_before_the_provider_when_the_audit_log_cannot_be_written() {
    let s = db_server(Policy::default()).await;
    let put = |id: &str, value: &str| json!({"id": id, "value": value});
    let (st, _) = s
        .call(Some(ADMIN), "/v1/secrets/put", put("/full/a", "before"))
        .await;
    assert_eq!(st, StatusCode::OK);
    let rotated = s.audit_path.with_extension("log.1");
    std::fs::rename(&s.audit_path, &rotated).unwrap();
    std::os::unix::fs::symlink("/dev/full", &s.audit_path).unwrap();
    for (path, body) in [
        ("/v1/secrets/put", put("/full/a", "after")),
        ("/v1/secrets/put", put("/full/new", "v")),
        ("/v1/secrets/delete", json!({"id": "/full/a"})),
    ] {
        let (st, answer) = s.call(Some(ADMIN), path, body).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_eq!(answer["kind"], json!("audit"), "{answer}");
    }
    std::fs::remove_file(&s.audit_path).unwrap();
    let (_, got) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/full/a"}))
        .await;
    assert_eq!(got["value"], json!("before"), "{got}");
    let (st, _) = s
        .call(Some(ADMIN), "/v1/secrets/get", json!({"id": "/full/new"}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let files = secret_broker::audit::AuditFiles::beside(&s.audit_path);
    let key = secret_broker::audit::SigningKey::read(&files.key).unwrap();
    let options = secret_broker::audit::VerifyOptions {
        checkpoints: Some(files.checkpoints),
        keys: vec![key.public().clone()],
        from: None,
    };
    let verified =
        secret_broker::audit::verify(&[rotated, s.audit_path.clone()], &options).unwrap();
    assert_eq!(verified.broken, None, "{verified:?}");
    assert!(verified.entries >= 4, "{verified:?}");
    assert_eq!(verified.range.map(|r| r.0), Some(1), "{verified:?}");
}
