//! The `record-store` capability: versioned rows in SQLite (the embedded default), PostgreSQL
//! or MySQL/MariaDB, through sqlx. Rows are namespaced per provider instance;
//! writes are compare-and-set on a per-row version; batches are transactions.
//! The host runs the schema migrations.

#![deny(missing_docs)]

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

mod cap;
pub use cap::{RecordStoreCtx, RecordStoreView, add_to_linker};

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, in-process.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

/// Why a store operation failed. Never carries a password or a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one this store understands.
    #[error("store url {0}: {1}")]
    BadUrl(String, String),
    /// The database could not be reached (retry later).
    #[error("store unavailable ({url}): {message}")]
    Unavailable {
        /// The URL, password removed.
        url: String,
        /// What happened.
        message: String,
    },
    /// A condition did not hold.
    #[error("conflict on {0}: the row changed or exists")]
    Conflict(String),
    /// Anything else the database said.
    #[error("store error ({url}): {message}")]
    Database {
        /// The URL, password removed.
        url: String,
        /// What happened.
        message: String,
    },
}

/// A row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Key within the namespace.
    pub key: String,
    /// Opaque bytes (ciphertext for the db provider).
    pub value: Vec<u8>,
    /// Version, from 1.
    pub version: u64,
}

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    Any,
    /// Only if the key is absent.
    Absent,
    /// Only if the key is at this version.
    Version(u64),
}

/// One write of a batch; `value: None` deletes.
#[derive(Debug, Clone)]
pub struct Write {
    /// The key.
    pub key: String,
    /// New bytes, or `None` to delete.
    pub value: Option<Vec<u8>>,
    /// When it may happen.
    pub condition: Condition,
}

/// A pool on one database.
#[derive(Debug, Clone)]
pub struct RecordStore {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
    /// SQLite has one writer at a time: this process's writers queue here, in
    /// order, instead of polling in SQLite's busy handler (whose sleeps grow and
    /// made tail latency jump under contention). Other processes still wait on
    /// `busy_timeout`.
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Batches waiting for the writer: whoever holds it next commits every one
    /// of them in one transaction (group commit: one sync for many writes).
    sqlite_group: std::sync::Arc<std::sync::Mutex<Vec<Job>>>,
}

/// A batch waiting for SQLite's writer, and where its outcome goes.
#[derive(Debug)]
struct Job {
    ns: String,
    writes: Vec<Write>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<u64>, ApplyError>>,
}

const MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS sb_records (namespace TEXT NOT NULL, rkey TEXT NOT NULL, \
     value BLOB NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (namespace, rkey))",
    "CREATE TABLE IF NOT EXISTS sb_records (namespace TEXT COLLATE \"C\" NOT NULL, \
     rkey TEXT COLLATE \"C\" NOT NULL, value BYTEA NOT NULL, version BIGINT NOT NULL, \
     PRIMARY KEY (namespace, rkey))",
    "CREATE TABLE IF NOT EXISTS sb_records (namespace VARCHAR(190) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
     rkey VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, value LONGBLOB NOT NULL, \
     version BIGINT NOT NULL, PRIMARY KEY (namespace, rkey)) ENGINE=InnoDB",
)];

/// `url` with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparseable url)".into(),
    }
}

impl RecordStore {
    /// Connects to `url` (`sqlite://PATH?mode=rwc`, `postgres://...`, `mysql://...`)
    /// and runs the schema migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Dialect::Mysql
        } else {
            return Err(StoreError::BadUrl(
                shown,
                "expected a sqlite:, postgres: or mysql: url".into(),
            ));
        };
        let (compiled, feature) = match dialect {
            Dialect::Sqlite => (cfg!(feature = "sqlite"), "sqlite"),
            Dialect::Postgres => (cfg!(feature = "postgres"), "postgres"),
            Dialect::Mysql => (cfg!(feature = "mysql"), "mysql"),
        };
        if !compiled {
            return Err(StoreError::BadUrl(
                shown,
                format!(
                    "this build has no {feature} driver: enable the `{feature}` feature of \
                     secret-broker-record-store"
                ),
            ));
        }
        let url = url.replacen("mariadb:", "mysql:", 1);
        let max = if dialect == Dialect::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Mysql {
                        // No gap locks on absent keys: concurrent inserts of
                        // different new keys then do not deadlock each other.
                        sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                            .execute(&mut *conn)
                            .await?;
                    }
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| StoreError::Unavailable {
                url: shown.clone(),
                message: describe(&e),
            })?;
        let store = RecordStore {
            pool,
            dialect,
            url: shown,
            sqlite_writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            sqlite_group: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL with the password removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool, for benchmarks and tools that issue their own statements.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.exec("CREATE TABLE IF NOT EXISTS sb_schema (version BIGINT NOT NULL PRIMARY KEY)")
            .await?;
        let applied: Vec<i64> =
            sqlx::query(AssertSqlSafe(self.sql("SELECT version FROM sb_schema")))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .filter_map(|r| r.try_get::<i64, _>(0).ok())
                .collect();
        for (version, sqlite, postgres, mysql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let ddl = match self.dialect {
                Dialect::Sqlite => sqlite,
                Dialect::Postgres => postgres,
                Dialect::Mysql => mysql,
            };
            self.exec(ddl).await?;
            let insert = sqlx::query(AssertSqlSafe(
                self.sql("INSERT INTO sb_schema (version) VALUES (?)"),
            ))
            .bind(*version);
            if let Err(e) = insert.execute(&self.pool).await {
                // Another process applied it at the same moment.
                if !is_unique_violation(&e) {
                    return Err(self.err(e));
                }
            }
        }
        Ok(())
    }

    async fn exec(&self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Rewrites `?` placeholders to `$n` for PostgreSQL.
    fn sql(&self, sql: &str) -> String {
        if self.dialect != Dialect::Postgres {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => StoreError::Unavailable {
                url: self.url.clone(),
                message: describe(&e),
            },
            other => StoreError::Database {
                url: self.url.clone(),
                message: describe(&other),
            },
        }
    }

    /// Whether the database answers (a `SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The row at `key`.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql(
            "SELECT rkey, value, version FROM sb_records WHERE namespace = ? AND rkey = ?",
        )))
        .bind(ns)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| self.record(&r)).transpose()
    }

    fn record(&self, row: &AnyRow) -> Result<Record, StoreError> {
        let bad = |e: sqlx::Error| self.err(e);
        let version: i64 = row.try_get(2).map_err(bad)?;
        Ok(Record {
            key: row.try_get(0).map_err(bad)?,
            value: row.try_get(1).map_err(bad)?,
            version: version as u64,
        })
    }

    /// Writes `key` under `condition`, returning the new version.
    pub async fn put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: Condition,
    ) -> Result<u64, StoreError> {
        let write = Write {
            key: key.to_owned(),
            value: Some(value.to_vec()),
            condition,
        };
        let versions = self.apply(ns, std::slice::from_ref(&write)).await?;
        Ok(versions.first().copied().unwrap_or(0))
    }

    /// Deletes `key` under `condition`; reports whether it existed.
    pub async fn remove(
        &self,
        ns: &str,
        key: &str,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        let write = Write {
            key: key.to_owned(),
            value: None,
            condition,
        };
        let versions = self.apply(ns, std::slice::from_ref(&write)).await?;
        Ok(versions.first().is_some_and(|&v| v > 0))
    }

    /// Rows under `prefix`, after `after`, at most `limit`, in key order.
    pub async fn scan(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        let mut sql = String::from(
            "SELECT rkey, value, version FROM sb_records WHERE namespace = ? AND rkey >= ?",
        );
        let upper = prefix_upper_bound(prefix);
        if upper.is_some() {
            sql.push_str(" AND rkey < ?");
        }
        if after.is_some() {
            sql.push_str(" AND rkey > ?");
        }
        sql.push_str(" ORDER BY rkey LIMIT ?");
        let sql = self.sql(&sql);
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(ns).bind(prefix);
        if let Some(upper) = upper {
            query = query.bind(upper);
        }
        if let Some(after) = after {
            query = query.bind(after);
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter().map(|r| self.record(r)).collect()
    }

    /// Applies every write or none. Returns, per write, the new version (0 for a
    /// delete of an absent key, 1 for a delete that removed a row).
    pub async fn apply(&self, ns: &str, writes: &[Write]) -> Result<Vec<u64>, StoreError> {
        // A concurrent insert of the same new key makes one transaction fail with a
        // unique violation; with `Condition::Any` that is not a conflict, so retry.
        for attempt in 0..RACE_RETRIES {
            match self.try_apply(ns, writes).await {
                Err(ApplyError::Race) if attempt + 1 < RACE_RETRIES => {
                    // Back off with jitter so the racers stop colliding.
                    let ms = rand::random::<u64>() % (5 * (attempt as u64 + 1)) + 1;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
                Err(ApplyError::Race) => {
                    return Err(StoreError::Conflict("concurrent writes".into()));
                }
                Err(ApplyError::Store(e)) => return Err(e),
                Ok(versions) => return Ok(versions),
            }
        }
        Err(StoreError::Conflict("concurrent writes".into()))
    }

    async fn try_apply(&self, ns: &str, writes: &[Write]) -> Result<Vec<u64>, ApplyError> {
        if self.dialect == Dialect::Sqlite {
            return self.apply_grouped(ns, writes).await;
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.tx_err(e))?;
        let versions = self.apply_in(&mut tx, ns, writes).await?;
        tx.commit().await.map_err(|e| self.tx_err(e))?;
        Ok(versions)
    }

    /// SQLite's group commit: the batch joins the queue; whoever takes the
    /// writer next (this call, or one ahead of it) applies every queued batch
    /// in one `BEGIN IMMEDIATE` transaction, each batch under a savepoint of
    /// its own (all of its writes or none), and commits once: one sync for
    /// every write waiting, none of them acknowledged before the commit. A
    /// lone write waits for nobody.
    async fn apply_grouped(&self, ns: &str, writes: &[Write]) -> Result<Vec<u64>, ApplyError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.sqlite_group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Job {
                ns: ns.to_owned(),
                writes: writes.to_vec(),
                reply,
            });
        {
            let _writer = self.sqlite_writer.lock().await;
            let jobs = std::mem::take(
                &mut *self
                    .sqlite_group
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if !jobs.is_empty() {
                self.commit_group(jobs).await;
            }
        }
        outcome.await.unwrap_or_else(|_| {
            Err(ApplyError::Store(StoreError::Database {
                url: self.url.clone(),
                message: "the transaction carrying this write was abandoned; nothing was \
                          written"
                    .into(),
            }))
        })
    }

    /// Applies `jobs` in one transaction and tells each its outcome.
    async fn commit_group(&self, jobs: Vec<Job>) {
        let fail_all = |jobs: Vec<Job>, e: ApplyError| {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        };
        let mut tx = match self.pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => return fail_all(jobs, self.tx_err(e)),
        };
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in &jobs {
            if jobs.len() == 1 {
                // Alone: the transaction is the batch.
                outcomes.push(self.apply_in(&mut tx, &job.ns, &job.writes).await);
                continue;
            }
            // A batch of several writes gets a savepoint, so a conflict on a
            // later write undoes its earlier ones; a single write that meets a
            // conflict has written nothing (its condition is checked first).
            let several = job.writes.len() > 1;
            if several && let Err(e) = self.exec_in(&mut tx, "SAVEPOINT sb_batch").await {
                return fail_all(jobs, e);
            }
            let outcome = self.apply_in(&mut tx, &job.ns, &job.writes).await;
            match &outcome {
                Ok(_) | Err(ApplyError::Store(StoreError::Conflict(_))) => {}
                // Any other failure may have ended the transaction (SQLite rolls
                // back a whole transaction on I/O errors or a full disk): every
                // batch of the group fails, nothing of it is committed.
                Err(e) => return fail_all(jobs, e.clone()),
            }
            if several {
                let end = match outcome {
                    Ok(_) => self.exec_in(&mut tx, "RELEASE sb_batch").await,
                    Err(_) => match self.exec_in(&mut tx, "ROLLBACK TO sb_batch").await {
                        Ok(()) => self.exec_in(&mut tx, "RELEASE sb_batch").await,
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = end {
                    return fail_all(jobs, e);
                }
            }
            outcomes.push(outcome);
        }
        // A lone batch that failed leaves nothing to commit.
        if jobs.len() == 1 && outcomes.first().is_some_and(Result::is_err) {
            drop(tx);
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
            return;
        }
        if let Err(e) = tx.commit().await {
            return fail_all(jobs, self.tx_err(e));
        }
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
    }

    async fn exec_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        sql: &'static str,
    ) -> Result<(), ApplyError> {
        sqlx::query(sql)
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(|e| self.tx_err(e))
    }

    /// Applies `writes` inside `tx`: each condition checked, then the write.
    async fn apply_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        ns: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, ApplyError> {
        let mut versions = Vec::with_capacity(writes.len());
        for w in writes {
            let current = self.current_version(tx, ns, &w.key).await?;
            let ok = match (w.condition, current) {
                (Condition::Any, _) => true,
                (Condition::Absent, None) => true,
                (Condition::Version(v), Some(c)) => v == c,
                _ => false,
            };
            if !ok {
                return Err(ApplyError::Store(StoreError::Conflict(w.key.clone())));
            }
            let version = match (&w.value, current) {
                (Some(value), Some(c)) => {
                    let sql = self.sql("UPDATE sb_records SET value = ?, version = ? WHERE namespace = ? AND rkey = ? AND version = ?");
                    let res = sqlx::query(AssertSqlSafe(sql))
                        .bind(value.clone())
                        .bind((c + 1) as i64)
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(c as i64)
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| self.tx_err(e))?;
                    if res.rows_affected() != 1 {
                        return Err(self.lost_race(w));
                    }
                    c + 1
                }
                (Some(value), None) => {
                    let sql = self.sql("INSERT INTO sb_records (namespace, rkey, value, version) VALUES (?, ?, ?, 1)");
                    let res = sqlx::query(AssertSqlSafe(sql))
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(value.clone())
                        .execute(&mut **tx)
                        .await;
                    match res {
                        Ok(_) => 1,
                        Err(e) if is_unique_violation(&e) => return Err(self.lost_race(w)),
                        Err(e) => return Err(self.tx_err(e)),
                    }
                }
                (None, Some(c)) => {
                    let sql = self.sql(
                        "DELETE FROM sb_records WHERE namespace = ? AND rkey = ? AND version = ?",
                    );
                    let res = sqlx::query(AssertSqlSafe(sql))
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(c as i64)
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| self.tx_err(e))?;
                    if res.rows_affected() != 1 {
                        return Err(self.lost_race(w));
                    }
                    1
                }
                (None, None) => 0,
            };
            versions.push(version);
        }
        Ok(versions)
    }

    /// A deadlock or serialization failure rolled the transaction back: retry it.
    fn tx_err(&self, e: sqlx::Error) -> ApplyError {
        if is_serialization_failure(&e) {
            ApplyError::Race
        } else {
            ApplyError::Store(self.err(e))
        }
    }

    fn lost_race(&self, w: &Write) -> ApplyError {
        match w.condition {
            Condition::Any => ApplyError::Race,
            _ => ApplyError::Store(StoreError::Conflict(w.key.clone())),
        }
    }

    async fn current_version(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        ns: &str,
        key: &str,
    ) -> Result<Option<u64>, ApplyError> {
        let lock = if self.dialect == Dialect::Sqlite {
            ""
        } else {
            " FOR UPDATE"
        };
        let sql = self.sql(&format!(
            "SELECT version FROM sb_records WHERE namespace = ? AND rkey = ?{lock}"
        ));
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(ns)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await;
        match row {
            Ok(row) => Ok(row
                .and_then(|r| r.try_get::<i64, _>(0).ok())
                .map(|v| v as u64)),
            Err(e) => Err(self.tx_err(e)),
        }
    }
}

/// Attempts of a transaction that lost a race (deadlock, serialization failure,
/// concurrent insert of the same new key) before giving up with a conflict.
const RACE_RETRIES: usize = 10;

#[derive(Debug, Clone)]
enum ApplyError {
    Race,
    Store(StoreError),
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn is_serialization_failure(e: &sqlx::Error) -> bool {
    // PostgreSQL 40001/40P01, MySQL deadlock 1213 (SQLSTATE 40001).
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001" || c == "40P01")
}

/// sqlx's message for an error; database errors carry no bound values.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    }
}

/// The smallest string greater than every string starting with `prefix`.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("/a/b"), Some("/a/c".into()));
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn url_passwords_are_redacted() {
        let shown = redact_url("postgres://app:hunter2@127.0.0.1:5432/db");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    /// Concurrent batches on SQLite share transactions (group commit), yet each
    /// batch is still applied whole or not at all, and each caller hears its
    /// own outcome: of many batches each inserting its own key and the one
    /// shared key, exactly one succeeds and the others leave no trace.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_group_commit_keeps_each_batch_whole() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
        let store = std::sync::Arc::new(RecordStore::connect(&url).await?);
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let writes = [
                    Write {
                        key: format!("own-{i}"),
                        value: Some(vec![1]),
                        condition: Condition::Any,
                    },
                    Write {
                        key: "shared".into(),
                        value: Some(vec![2]),
                        condition: Condition::Absent,
                    },
                ];
                (i, store.apply("g", &writes).await)
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            let (i, outcome) = task.await.expect("task");
            match outcome {
                Ok(versions) => {
                    assert_eq!(versions, vec![1, 1]);
                    won.push(i);
                }
                Err(StoreError::Conflict(key)) => assert_eq!(key, "shared"),
                Err(e) => panic!("batch {i}: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one batch inserts the shared key");
        for i in 0..64 {
            let own = store.get("g", &format!("own-{i}")).await?;
            assert_eq!(own.is_some(), won.contains(&i), "own-{i}");
        }
        // Many lone writes at once: every one acknowledged is there.
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .put("h", &format!("k{i:03}"), &[i as u8], Condition::Absent)
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task")?, 1);
        }
        assert_eq!(store.scan("h", "", None, 1000).await?.len(), 200);
        // Single writes racing for one key, each one conditional statement:
        // one creates it, the others conflict, and updates at a stale version
        // conflict too.
        let mut tasks = Vec::new();
        for i in 0..50u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.put("s", "one", &[i], Condition::Absent).await
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(1) => created += 1,
                Err(StoreError::Conflict(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(created, 1);
        assert_eq!(store.put("s", "one", &[9], Condition::Version(1)).await?, 2);
        assert!(matches!(
            store.put("s", "one", &[9], Condition::Version(1)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.put("s", "one", &[7], Condition::Any).await?, 3);
        assert!(store.remove("s", "one", Condition::Version(3)).await?);
        assert!(!store.remove("s", "one", Condition::Any).await?);
        Ok(())
    }

    #[tokio::test]
    async fn sqlite_cas_and_scan() -> Result<(), StoreError> {
        let dir =
            tempfile::tempdir().map_err(|e| StoreError::BadUrl("tmp".into(), e.to_string()))?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = RecordStore::connect(&url).await?;
        assert_eq!(store.put("ns", "/a/1", b"x", Condition::Absent).await?, 1);
        assert!(matches!(
            store.put("ns", "/a/1", b"y", Condition::Absent).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.put("ns", "/a/1", b"y", Condition::Version(7)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.put("ns", "/a/1", b"y", Condition::Version(1)).await?,
            2
        );
        store.put("ns", "/a/2", b"z", Condition::Any).await?;
        store.put("other", "/a/3", b"w", Condition::Any).await?;
        let keys: Vec<String> = store
            .scan("ns", "/a/", None, 10)
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, ["/a/1", "/a/2"]);
        assert_eq!(
            store.get("ns", "/a/1").await?.map(|r| (r.value, r.version)),
            Some((b"y".to_vec(), 2))
        );
        // A failing batch writes nothing.
        let batch = [
            Write {
                key: "/a/9".into(),
                value: Some(b"new".to_vec()),
                condition: Condition::Absent,
            },
            Write {
                key: "/a/1".into(),
                value: Some(b"bad".to_vec()),
                condition: Condition::Version(1),
            },
        ];
        assert!(matches!(
            store.apply("ns", &batch).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(store.get("ns", "/a/9").await?.is_none());
        assert!(store.remove("ns", "/a/1", Condition::Any).await?);
        assert!(!store.remove("ns", "/a/1", Condition::Any).await?);
        Ok(())
    }
}
