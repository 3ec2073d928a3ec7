//! Shared test helpers: throwaway databases on the local servers, and providers
//! wired to them.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

pub mod azure;
pub mod bao;
pub mod gcp;
pub mod k8s;
pub mod moto;

use std::path::Path;
use std::sync::Arc;

use secret_broker::{Granted, ProviderHost, Runtime, RuntimeOptions, SecretValue};
use secret_broker_keyring::Keyring;
use secret_broker_keyring::KeyringCtx;
use secret_broker_record_store::RecordStore;
use secret_broker_record_store::RecordStoreCtx;
use sqlx::{AssertSqlSafe, Connection};

pub const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/";

/// A database created for one test and dropped by `drop_db`.
pub struct TempDb {
    pub url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

fn random_name() -> String {
    format!("sb_test_{:016x}", rand::random::<u64>())
}

impl TempDb {
    pub fn sqlite() -> TempDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("secrets.db").display()
        );
        TempDb {
            url,
            admin: None,
            _dir: Some(dir),
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    pub async fn postgres() -> TempDb {
        let name = random_name();
        let mut conn = sqlx::PgConnection::connect(POSTGRES_ADMIN)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (run tests/setup)");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        TempDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            admin: Some((POSTGRES_ADMIN.into(), name)),
            _dir: None,
        }
    }

    pub async fn mariadb() -> TempDb {
        let name = random_name();
        let mut conn = sqlx::MySqlConnection::connect(MARIADB_ADMIN)
            .await
            .expect("MariaDB on 127.0.0.1:3306 (run tests/setup)");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        TempDb {
            url: format!("mysql://root@127.0.0.1:3306/{name}"),
            admin: Some((MARIADB_ADMIN.into(), name)),
            _dir: None,
        }
    }

    pub async fn drop_db(self) {
        let Some((admin, name)) = &self.admin else {
            return;
        };
        let sql = if admin.starts_with("postgres") {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE IF EXISTS {name}")
        };
        if admin.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx::MySqlConnection::connect(admin).await.unwrap();
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// The id owner records of the OpenMetadata manager, kept in `db`.
pub async fn owners(db: &TempDb) -> secret_broker::openmetadata::owners::Owners {
    secret_broker::openmetadata::owners::Owners::new(secret_broker_deploy::RecordOwners::shared(
        Arc::new(RecordStore::connect(&db.url).await.unwrap()),
    ))
}

/// Another connection to the SQLite file of `db` holding its write lock (as
/// another process would) until it rolls back or drops.
pub async fn hold_sqlite_write_lock(db: &TempDb) -> sqlx::SqliteConnection {
    let file = db.sqlite_path().unwrap().join("secrets.db");
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

pub fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions::default()).unwrap()
}

/// The db provider on `store`, instance `instance`, with `keyring`.
pub async fn db_provider(
    rt: &Runtime,
    store: Arc<RecordStore>,
    keyring: Arc<Keyring>,
    instance: &str,
) -> Arc<ProviderHost> {
    let component = rt
        .load_file(Path::new(secret_broker_tests::guests::PROVIDER_DB))
        .unwrap();
    let ns = format!("provider/{instance}");
    let granted = Granted::new(instance)
        .with(KeyringCtx::new(keyring, &ns))
        .with(RecordStoreCtx::new(store, &ns));
    Arc::new(ProviderHost::new(rt, &component, granted).await.unwrap())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `aws-secrets-manager` or `aws-ssm` provider on `settings`.
pub async fn aws_provider(
    rt: &Runtime,
    which: &str,
    settings: &secret_broker_aws::AwsSettings,
) -> Result<Arc<ProviderHost>, String> {
    use secret_broker_aws::AwsGrantBase;
    let path = match which {
        "aws-secrets-manager" => secret_broker_tests::guests::PROVIDER_AWS_SECRETS_MANAGER,
        _ => secret_broker_tests::guests::PROVIDER_AWS_SSM,
    };
    let component = rt.load_file(Path::new(path)).unwrap();
    let base = AwsGrantBase::new(settings)
        .await
        .map_err(|e| e.to_string())?;
    let mut granted = Granted::new(which);
    match which {
        "aws-secrets-manager" => granted.grant(secret_broker_aws::SecretsManagerCtx::new(base)),
        _ => granted.grant(secret_broker_aws::SsmCtx::new(base)),
    }
    ProviderHost::new(rt, &component, granted)
        .await
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// A secret value from text.
pub fn val(s: &str) -> SecretValue {
    SecretValue::from_string(s.into())
}

/// The text of a value read back, if any.
pub fn text(v: Option<SecretValue>) -> Option<String> {
    v.map(|v| v.expose_str().unwrap().to_owned())
}

/// The stdout of a process that must have succeeded (its output in the panic
/// when it did not).
pub fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The built-in provider `builtin` (`"openbao"`, ...) of `component` on an http
/// grant of `http`, with `settings`.
pub async fn http_provider(
    builtin: &str,
    component: &[u8],
    http: secret_broker_http::HttpSettings,
    settings: &[(&str, &str)],
) -> Arc<ProviderHost> {
    let runtime = runtime();
    let component = runtime
        .load_bytes(&format!("builtin:{builtin}"), component)
        .unwrap();
    let mut granted = Granted::new(builtin).with(secret_broker_http::HttpCtx::new(http).unwrap());
    for (k, v) in settings {
        granted.settings.insert((*k).into(), (*v).into());
    }
    Arc::new(
        ProviderHost::new(&runtime, &component, granted)
            .await
            .unwrap(),
    )
}

/// A server process owned by a test: killed and reaped when dropped.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the test server `tests/scripts/{script}` on `dir` with `args` (it writes
/// its port to `dir/port` once listening) and waits for it: the server and its
/// `https://127.0.0.1:PORT` (or `http://` when `tls` is false).
pub fn start_script_server(script: &str, dir: &Path, args: &[&str], tls: bool) -> (Server, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let child = std::process::Command::new("python3")
        .arg(path)
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 (tests/setup)");
    // Owned from here: a panic below stops it.
    let server = Server(child);
    let port_file = dir.join("port");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            break port;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the test server {script} did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let scheme = if tls { "https" } else { "http" };
    (server, format!("{scheme}://127.0.0.1:{}", port.trim()))
}

/// The body of a test server's `/_test/faults`: answer the next `times`
/// requests (of `method` and under `path`, if given) with `status` (and
/// `Retry-After`).
pub fn fault_body(
    method: Option<&str>,
    path: Option<&str>,
    status: u16,
    times: u32,
    retry_after: Option<u32>,
) -> serde_json::Value {
    let mut body = serde_json::json!({"status": status, "times": times});
    if let Some(method) = method {
        body["method"] = method.into();
    }
    if let Some(path) = path {
        body["path"] = path.into();
    }
    if let Some(after) = retry_after {
        body["retry_after"] = after.into();
    }
    body
}

/// The `/_test/*` controls the Python test servers share
/// (`tests/scripts/test_server.py`), sent with the standard library only.
pub trait TestControls {
    /// The server's `https://127.0.0.1:PORT` and the CA file that trusts it.
    fn control_base(&self) -> (&str, &Path);

    /// Sends `body` to the control `path` (a GET without one) and returns its
    /// JSON answer (`Null` when it has none).
    fn control(&self, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        let (base, ca_file) = self.control_base();
        let url = format!("{base}{path}");
        let ca = ca_file.display().to_string();
        let body = body.map(serde_json::Value::to_string);
        let mut args = vec![ca.as_str(), url.as_str()];
        args.extend(body.as_deref());
        let out = python(
            "import sys, ssl, urllib.request\n\
             ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
             data = sys.argv[3].encode() if len(sys.argv) > 3 else None\n\
             req = urllib.request.Request(sys.argv[2], data=data, method='POST' if data else 'GET')\n\
             sys.stdout.buffer.write(urllib.request.urlopen(req, context=ctx).read())",
            &args,
            "the standard library",
        );
        serde_json::from_str(&ok(&out)).unwrap_or(serde_json::Value::Null)
    }

    /// Answers the next `times` requests (of `method` and under `path`, if
    /// given) with `status` (and `Retry-After`).
    fn fault(
        &self,
        method: Option<&str>,
        path: Option<&str>,
        status: u16,
        times: u32,
        retry_after: Option<u32>,
    ) {
        let body = fault_body(method, path, status, times, retry_after);
        self.control("/_test/faults", Some(&body));
    }

    /// `/_test/config`: the server's settings (`token_ttl`, and what its
    /// script lists).
    fn config(&self, body: serde_json::Value) {
        self.control("/_test/config", Some(&body));
    }

    /// Makes every access token issued so far invalid.
    fn revoke_tokens(&self) {
        self.control("/_test/revoke", Some(&serde_json::json!({})));
    }

    /// `/_test/stats`: what the server counted (`logins`, and what its script
    /// lists).
    fn stats(&self) -> serde_json::Value {
        self.control("/_test/stats", None)
    }
}

/// Runs a Python `script` with `args` (loopback never through a proxy); `what`
/// names the PyPI packages it needs, for the panic when python3 is missing.
pub fn python(script: &str, args: &[&str], what: &str) -> std::process::Output {
    std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("NO_PROXY", "*")
        .output()
        .unwrap_or_else(|e| panic!("python3 with {what} (tests/setup): {e}"))
}

/// Another client of a backend for the conformance suite's check that a put
/// after someone else changed a value still writes: `write(id, value)` stores
/// the value as that client would (a Python script with the backend's official
/// client, another broker replica).
pub struct OtherClient<F>(pub F);

impl<F> secret_broker_runtime::conformance::OtherClient for OtherClient<F>
where
    F: Fn(&str, &[u8]) -> Result<(), String> + Send + Sync,
{
    fn overwrite<'a>(
        &'a self,
        id: &'a str,
        value: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move { (self.0)(id, value) })
    }
}

/// A Python client's run, as an [`OtherClient`] result.
pub fn ran(out: std::process::Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Another replica of a provider (same component, grants and backend) as the
/// other client.
pub struct Replica(pub Arc<ProviderHost>);

impl secret_broker_runtime::conformance::OtherClient for Replica {
    fn overwrite<'a>(
        &'a self,
        id: &'a str,
        value: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.0
                .put(
                    id,
                    &secret_broker::SecretValue::new(value.to_vec()),
                    &secret_broker::PutOptions::default(),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
