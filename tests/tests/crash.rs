//! The database killed in the middle of writes: a private PostgreSQL server (its
//! own data dir and port, so the machine's server is untouched) is stopped with
//! `pg_ctl stop -m immediate` (no checkpoint, crash recovery on restart) while a
//! writer runs. Writes fail with clear errors; after the restart every write that
//! was acknowledged reads back.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use secret_broker::{PutOptions, SecretValue};
use secret_broker_keyring::Keyring;
use secret_broker_record_store::RecordStore;

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries (tests/setup installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version with pg_ctl")
}

/// Runs a PostgreSQL tool as the `postgres` user (initdb refuses root).
fn as_postgres(tool: &str, args: &[&str]) -> std::process::Output {
    let bin = pg_bin().join(tool);
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin)
        .args(args)
        .output()
        .unwrap()
}

struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let out = as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn kill(&self) {
        let out = as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new() -> PrivatePg {
        let dir = tempfile::tempdir().unwrap();
        chown_postgres(dir.path());
        let port = common::free_port();
        let data = dir.path().join("data").display().to_string();
        let out = as_postgres(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg { dir, port };
        pg.start();
        pg
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown postgres {}", path.display());
}

#[tokio::test]
async fn acknowledged_writes_survive_a_database_crash() {
    let pg = PrivatePg::new();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    let rt = common::runtime();
    let store = Arc::new(RecordStore::connect(&url).await.unwrap());
    let keyring = Arc::new(Keyring::single([5; 32]));
    let p = common::db_provider(&rt, store, keyring, "crash").await;

    let writer = {
        let p = p.clone();
        tokio::spawn(async move {
            let (mut acked, mut errors) = (Vec::new(), Vec::new());
            for i in 0..100_000u32 {
                let v = SecretValue::from_string(format!("value-{i}"));
                match p
                    .put(&format!("/crash/k{i:06}"), &v, &PutOptions::default())
                    .await
                {
                    Ok(_) => acked.push(i),
                    Err(e) => {
                        errors.push(e);
                        if errors.len() >= 3 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acked, errors)
        })
    };
    // Let some writes land, then crash the server under the writer.
    while p
        .list("/crash/", None, 60)
        .await
        .map(|page| page.ids.len())
        .unwrap_or(0)
        < 50
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pg.kill();
    let (acked, errors) = writer.await.unwrap();
    assert!(
        acked.len() >= 50,
        "only {} writes acknowledged",
        acked.len()
    );
    assert_eq!(errors.len(), 3, "the writer must see the crash");
    for e in &errors {
        let msg = e.to_string();
        assert!(
            msg.contains("store"),
            "unclear error after the crash: {msg}"
        );
    }

    pg.start();
    let mut missing = Vec::new();
    for i in &acked {
        let got = p.get(&format!("/crash/k{i:06}")).await;
        match got {
            Ok(Some(v)) if v.expose_str() == Some(&format!("value-{i}")) => {}
            other => missing.push((
                i,
                other.map(|o| o.map(|v| v.len())).map_err(|e| e.to_string()),
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged writes lost after the crash: {missing:?}"
    );
}
