//! The db provider on the three real databases: the conformance suite, no
//! plaintext at rest, ciphertexts bound to their row, and concurrent writers.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Replica, TempDb, db_provider, runtime};
use secret_broker::{ProviderError, PutOptions, PutOutcome, SecretValue, conformance};
use secret_broker_keyring::Keyring;
use secret_broker_record_store::{Condition, RecordStore};

async fn conformance_on(db: &TempDb) {
    let rt = runtime();
    let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
    let keyring = Arc::new(Keyring::single([1; 32]));
    let p = db_provider(&rt, store.clone(), keyring.clone(), "conformance").await;
    // Another broker replica on the same database writes between two puts.
    let replica = Replica(db_provider(&rt, store, keyring, "conformance").await);
    let report = conformance::run_with(p, Some(&replica)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
}

/// The db provider on a fresh SQLite file, with a one-key keyring.
async fn sqlite_provider(
    key: u8,
    instance: &str,
) -> (TempDb, Arc<RecordStore>, Arc<secret_broker::ProviderHost>) {
    let db = TempDb::sqlite();
    let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
    let p = db_provider(
        &runtime(),
        store.clone(),
        Arc::new(Keyring::single([key; 32])),
        instance,
    )
    .await;
    (db, store, p)
}

#[tokio::test]
async fn conformance_on_sqlite() {
    conformance_on(&TempDb::sqlite()).await;
}

#[tokio::test]
async fn conformance_on_postgres() {
    let db = TempDb::postgres().await;
    conformance_on(&db).await;
    db.drop_db().await;
}

#[tokio::test]
async fn conformance_on_mariadb() {
    let db = TempDb::mariadb().await;
    conformance_on(&db).await;
    db.drop_db().await;
}

#[tokio::test]
async fn sqlite_file_holds_no_plaintext() {
    let (db, store, p) = sqlite_provider(1, "plain").await;
    let canary = "canary-plaintext-5b1e0d";
    p.put(
        "/openmetadata/database/x/password",
        &SecretValue::from_string(canary.into()),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    store.pool().close().await;
    let dir = db.sqlite_path().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        seen += bytes.len();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "plaintext found on disk"
        );
    }
    assert!(seen > 0);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() {
    let (_db, store, p) = sqlite_provider(1, "moved").await;
    p.put(
        "/a/source",
        &SecretValue::from_string("moving-value".into()),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let row = store
        .get("provider/moved", "/a/source")
        .await
        .unwrap()
        .unwrap();
    store
        .put("provider/moved", "/a/target", &row.value, Condition::Absent)
        .await
        .unwrap();
    let err = p.get("/a/target").await.expect_err("must not open");
    assert!(matches!(err, ProviderError::Backend(_)), "{err}");
    assert!(err.to_string().contains("integrity check failed"), "{err}");
    assert!(!err.to_string().contains("moving-value"));
}

#[tokio::test]
async fn a_wrong_master_key_names_the_key_version_and_overwrites_nothing() {
    let (_db, store, right) = sqlite_provider(1, "keys").await;
    let v = SecretValue::from_string("keep-me".into());
    right.put("/k/1", &v, &PutOptions::default()).await.unwrap();
    let wrong = db_provider(
        &runtime(),
        store.clone(),
        Arc::new(Keyring::single([2; 32])),
        "keys",
    )
    .await;
    let err = wrong.get("/k/1").await.expect_err("wrong key");
    assert!(err.to_string().contains("key version 1"), "{err}");
    let err = wrong
        .put(
            "/k/1",
            &SecretValue::from_string("clobber".into()),
            &PutOptions::default(),
        )
        .await;
    assert!(
        err.is_err(),
        "a put with the wrong key must not replace the value"
    );
    assert!(right.get("/k/1").await.unwrap().unwrap().ct_eq(&v));
}

/// Two hosts (separate runtimes and pools) writing the same ids on one
/// PostgreSQL: every value read back is one that was written, and the last
/// acknowledged write of each id is what remains.
#[tokio::test]
async fn two_hosts_writing_the_same_ids_on_postgres() {
    let db = TempDb::postgres().await;
    let key = Arc::new(Keyring::single([9; 32]));
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let rt = runtime();
        let store = Arc::new(RecordStore::connect(&db.url).await.unwrap());
        hosts.push((
            rt.clone(),
            db_provider(&rt, store, key.clone(), "shared").await,
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (h, (_, p)) in hosts.iter().enumerate() {
        for t in 0..4 {
            let p = p.clone();
            tasks.spawn(async move {
                for round in 0..15 {
                    let id = format!("/race/id{}", round % 3);
                    let v = SecretValue::from_string(format!("host{h}-task{t}-round{round}"));
                    p.put(&id, &v, &PutOptions::default()).await.unwrap();
                    let got = p.get(&id).await.unwrap().unwrap();
                    let text = got.expose_str().unwrap().to_owned();
                    assert!(
                        text.starts_with("host") && text.contains("-round"),
                        "torn value {text:?}"
                    );
                }
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    for id in 0..3 {
        let got = hosts[0]
            .1
            .get(&format!("/race/id{id}"))
            .await
            .unwrap()
            .unwrap();
        assert!(got.expose_str().unwrap().starts_with("host"));
    }
    let current = hosts[0].1.get("/race/id0").await.unwrap().unwrap();
    let same = hosts[1]
        .1
        .put("/race/id0", &current, &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(same, PutOutcome::Unchanged);
    drop(hosts);
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_password_never_appears_in_errors() {
    let canary = "pw-canary-e0b1c";
    for url in [
        format!("mysql://root:{canary}@127.0.0.1:3306/nope"),
        format!("postgres://nobody:{canary}@127.0.0.1:1/nope"),
        format!("ftp://u:{canary}@127.0.0.1/x"),
    ] {
        let err = RecordStore::connect(&url).await.expect_err("must fail");
        let (shown, debug) = (err.to_string(), format!("{err:?}"));
        assert!(
            !shown.contains(canary) && !debug.contains(canary),
            "{shown} / {debug}"
        );
        assert!(
            shown.contains("127.0.0.1"),
            "the message should say which server: {shown}"
        );
    }
}

/// Another process holds SQLite's write lock; writes queue behind it, yet gets
/// answer while every queued write is still waiting (before, writers held every
/// provider instance while they waited, and gets waited behind them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_wait_behind_writes_held_by_a_lock() {
    let (db, _store, p) = sqlite_provider(5, "held").await;
    for i in 0..4 {
        p.put(
            &format!("/read/{i}"),
            &SecretValue::from_string(format!("v{i}")),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let mut holder = common::hold_sqlite_write_lock(&db).await;
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                p.put(
                    &format!("/write/{i}"),
                    &SecretValue::from_string(format!("w{i}")),
                    &PutOptions::default(),
                )
                .await
            })
        })
        .collect();
    // Let the writes take their instances and queue on the lock (not an assertion).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The lock goes away after a while whatever happens, so the test cannot hang.
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    });
    for i in 0..4 {
        let got = p.get(&format!("/read/{i}")).await.unwrap().unwrap();
        assert_eq!(got.expose_str(), Some(format!("v{i}").as_str()));
    }
    let waiting = writes.iter().filter(|w| !w.is_finished()).count();
    assert_eq!(
        waiting, 40,
        "the gets answered only once writes got through"
    );
    release.await.unwrap();
    for w in writes {
        w.await.unwrap().unwrap();
    }
}

/// Three broker processes (three data dirs, as on three hosts, sharing the one
/// signing key) append to one audit chain in PostgreSQL, and in MariaDB: it
/// verifies with the public key alone, and a row removed from the middle or
/// the end is found. A host without the key refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_audit_chain_on_postgres_and_mariadb() {
    use secret_broker::audit::verify::verify_texts;
    use secret_broker::audit::{
        AuditFiles, AuditLog, AuditOptions, Durability, Entry, Outcome, Salt, VerifyOptions,
    };
    use secret_broker_deploy::audit_store::{NAMESPACE, RecordChain, read_chain};
    for db in [TempDb::postgres().await, TempDb::mariadb().await] {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let options = AuditOptions {
            checkpoint_every: 10,
            ..AuditOptions::default()
        };
        // The first writer also copies its entries to its audit.log.
        let copy = dirs[0].path().join("audit.log");
        let open = |dir: &std::path::Path| {
            let files = AuditFiles::beside(&dir.join("audit.log"));
            let mut chain = RecordChain::new(&db.url, &dir.join("audit.lock")).unwrap();
            if files.log == copy {
                chain = chain.with_copy(&copy);
            }
            AuditLog::open_store(
                &files.log,
                &files.key,
                Box::new(chain),
                Salt::from_bytes(&[9; 32]),
                options,
            )
        };
        let first = Arc::new(open(dirs[0].path()).unwrap());
        let public = first.public_key().clone();
        let err = open(dirs[1].path()).unwrap_err().to_string();
        assert!(
            err.contains("is missing but the chain has checkpoints"),
            "{err}"
        );
        let key = AuditFiles::beside(&dirs[0].path().join("audit.log")).key;
        for dir in &dirs[1..] {
            std::fs::copy(&key, dir.path().join("audit.signing-key")).unwrap();
        }
        let logs = vec![
            first,
            Arc::new(open(dirs[1].path()).unwrap()),
            Arc::new(open(dirs[2].path()).unwrap()),
        ];
        let tasks: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(w, log)| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..30 {
                        let op = format!("w{w}-{i}");
                        let entry = Entry::new("replica", None, &op, "db", Outcome::Ok);
                        let d = if i % 2 == 0 {
                            Durability::Synced
                        } else {
                            Durability::Written
                        };
                        log.write(&entry, d).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        drop(logs);
        // Nothing went to the files but the first writer's copy.
        assert!(!dirs[0].path().join("audit.checkpoints").exists());
        assert!(!dirs[1].path().join("audit.log").exists());
        let store = RecordStore::connect(&db.url).await.unwrap();
        let options = VerifyOptions {
            checkpoints: None,
            keys: vec![public],
            from: None,
        };
        let verify = async || {
            let (entries, cps) = read_chain(&store).await.unwrap();
            verify_texts(&[entries], Some(&cps), &options)
        };
        let report = verify().await;
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.entries, 90);
        assert_eq!(report.proven_through.as_ref().map(|p| p.0), Some(90));
        // The copy holds exactly the first writer's entries, as the chain does.
        let copied = std::fs::read_to_string(&copy).unwrap();
        let (entries, _) = read_chain(&store).await.unwrap();
        let firsts: Vec<&str> = std::str::from_utf8(&entries.1)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"w0-"))
            .collect();
        assert_eq!(firsts.len(), 30);
        assert_eq!(copied.lines().collect::<Vec<_>>(), firsts);
        // A row removed from the middle.
        let key = |seq: u64| format!("e/{seq:020}");
        let row = store.get(NAMESPACE, &key(45)).await.unwrap().unwrap();
        store
            .remove(NAMESPACE, &key(45), Condition::Any)
            .await
            .unwrap();
        let why = verify().await.broken.unwrap().why;
        assert!(why.contains("entries 45 to 45 were removed"), "{why}");
        store
            .put(NAMESPACE, &key(45), &row.value, Condition::Absent)
            .await
            .unwrap();
        assert_eq!(verify().await.broken, None);
        // The last rows removed.
        for seq in 88..=90 {
            store
                .remove(NAMESPACE, &key(seq), Condition::Any)
                .await
                .unwrap();
        }
        let why = verify().await.broken.unwrap().why;
        assert!(
            why.contains("ends at entry 87") && why.contains("cut off"),
            "{why}"
        );
        db.drop_db().await;
    }
}
