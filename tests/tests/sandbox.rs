//! The sandbox holds against hostile guests: each misbehaviour gets a clear error,
//! and the same host process keeps serving a well-behaved provider afterwards.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use secret_broker::{
    Granted, Limits, ProviderError, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue,
};
use secret_broker_keyring::Keyring;
use secret_broker_tests::guests;

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use $name as _;
    };
}
secret_broker_tests::foreach_guest!(assert_test_exists);

fn runtime() -> Runtime {
    let limits = Limits {
        memory_bytes: 32 << 20,
        call_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    match Runtime::new(RuntimeOptions {
        cache_dir: None,
        pooling: true,
        limits,
    }) {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e:#}"),
    }
}

async fn host(rt: &Runtime, path: &str, granted: Granted) -> Result<ProviderHost, ProviderError> {
    let component = match rt.load_file(std::path::Path::new(path)) {
        Ok(c) => c,
        Err(e) => panic!("loading {path}: {e}"),
    };
    ProviderHost::new(rt, &component, granted).await
}

fn grant(name: &str) -> Granted {
    Granted::new(name)
}

/// Puts `4242` at `id` on a provider that attacks it; the host must stop the
/// provider with `Forbidden`, whose message is returned.
async fn forbidden_put(p: &ProviderHost, id: &str) -> String {
    let err = p
        .put(
            id,
            &SecretValue::from_string("4242".into()),
            &PutOptions::default(),
        )
        .await
        .expect_err("the attack must be stopped");
    assert!(matches!(err, ProviderError::Forbidden { .. }), "{err}");
    err.to_string()
}

/// After any abuse, a well-behaved provider in the same process still works.
async fn still_serves(rt: &Runtime) {
    let memory = host(rt, guests::PROVIDER_MEMORY, grant("healthy"))
        .await
        .expect("memory provider");
    let v = SecretValue::from_string("still-fine".into());
    memory
        .put("/after/abuse", &v, &PutOptions::default())
        .await
        .expect("put");
    let got = memory
        .get("/after/abuse")
        .await
        .expect("get")
        .expect("present");
    assert!(got.ct_eq(&v));
}

mod adversary {
    use super::*;

    async fn adversary(rt: &Runtime) -> ProviderHost {
        host(rt, guests::TEST_GUEST_ADVERSARY, grant("adversary"))
            .await
            .expect("adversary instantiates")
    }

    #[tokio::test]
    async fn infinite_loop_times_out_and_instance_is_replaced() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/loop").await.expect_err("loop must not succeed");
        assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains("did not answer within 2s"),
            "{err}"
        );
        // The same provider serves the next call from a fresh instance.
        assert!(p.get("/x/fine").await.expect("fresh instance").is_none());
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn unbounded_allocation_hits_the_memory_limit() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/alloc").await.expect_err("alloc must fail");
        assert!(
            matches!(err, ProviderError::MemoryLimit { limit, .. } if limit == 32 << 20),
            "{err}"
        );
        assert!(p.get("/x/fine").await.expect("fresh instance").is_none());
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn huge_return_value_is_refused() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p
            .list("/huge", None, 10)
            .await
            .expect_err("huge page must fail");
        assert!(matches!(err, ProviderError::DataLimit { .. }), "{err}");
        assert!(err.to_string().contains("over the limit"), "{err}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn log_flood_is_stopped_by_the_per_call_limit() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/log-flood").await.expect_err("flood must fail");
        assert!(matches!(err, ProviderError::DataLimit { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("over the limit of 1048576 bytes per host call (configured as `limits.host_call_kib`)"),
            "{err}"
        );
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn panic_is_a_trap_and_the_instance_is_discarded() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/panic").await.expect_err("panic must fail");
        assert!(matches!(err, ProviderError::Trapped { .. }), "{err}");
        assert!(err.to_string().contains("crashed"), "{err}");
        assert!(p.get("/x/fine").await.expect("fresh instance").is_none());
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn no_files_are_visible() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/read-file").await.expect_err("no file access");
        let msg = err.to_string();
        assert!(matches!(err, ProviderError::Backend(_)), "{msg}");
        assert!(msg.starts_with("backend error: read-file:"), "{msg}");
        assert!(!msg.contains("root:"), "{msg}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn no_environment_or_arguments() {
        // SAFETY of the test: the variable is set in this process; the guest must not see it.
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/env").await.expect_err("no environment");
        assert!(err.to_string().contains("vars visible: 0"), "{err}");
        let err = p.get("/x/args").await.expect_err("no arguments");
        assert!(err.to_string().contains("args: 0"), "{err}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn no_tcp_connections_even_to_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p
            .get(&format!("/x/tcp-{port}"))
            .await
            .expect_err("no sockets");
        assert!(err.to_string().starts_with("backend error: tcp:"), "{err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(listener.accept().is_err(), "the guest reached the listener");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn stdout_goes_to_the_host_log_not_the_terminal() {
        let rt = runtime();
        let p = adversary(&rt).await;
        assert!(p.get("/x/print").await.expect("print is allowed").is_none());
    }

    #[tokio::test]
    async fn ids_breaking_declared_rules_never_reach_the_provider() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/has space").await.expect_err("bad id");
        assert!(matches!(err, ProviderError::InvalidId(_)), "{err}");
        let err = p
            .put(
                "/x",
                &SecretValue::new(vec![0; 2000]),
                &PutOptions::default(),
            )
            .await
            .expect_err("too big");
        assert!(
            matches!(
                err,
                ProviderError::ValueTooLarge {
                    size: 2000,
                    limit: 1024
                }
            ),
            "{err}"
        );
    }
}

/// Attacks of a provider granted nothing: each gets a clear error, and the host
/// keeps serving.
mod hostile {
    use super::*;

    async fn adversary(rt: &Runtime) -> ProviderHost {
        host(rt, guests::TEST_GUEST_ADVERSARY, grant("adversary"))
            .await
            .expect("adversary instantiates")
    }

    fn pin(p: &str) -> SecretValue {
        SecretValue::from_string(p.into())
    }

    #[tokio::test]
    async fn equals_is_no_oracle_for_a_provider_without_reveal() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let msg = forbidden_put(&p, "/x/oracle").await;
        assert!(msg.contains("compared a secret it made itself"), "{msg}");
        assert!(!msg.contains("4-2-4-2"), "{msg}");
        // Its own values it compares freely.
        assert!(p.get("/x/equal-own").await.expect("own compare").is_some());
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn guesses_in_its_text_are_withheld_not_marked() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p
            .put("/x/guess-error", &pin("0420"), &PutOptions::default())
            .await
            .expect_err("fails");
        let msg = err.to_string();
        // Marking where the value matched would answer the guess.
        assert!(msg.contains("provider text withheld"), "{msg}");
        assert!(!msg.contains("[redacted]"), "{msg}");
        assert!(!msg.contains("0419"), "{msg}");
        // A log line of guesses completes too (its text is withheld).
        p.put("/x/guess-log", &pin("4242"), &PutOptions::default())
            .await
            .expect("the call itself succeeds");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn clone_and_drop_in_a_loop_hits_the_handle_budget() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/clone-drop").await.expect_err("budget");
        let msg = err.to_string();
        assert!(matches!(err, ProviderError::DataLimit { .. }), "{msg}");
        assert!(msg.contains("more than 1000 secret handles"), "{msg}");
        assert!(msg.contains("`limits.handles_per_call`"), "{msg}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn empty_log_lines_count_against_the_line_budget() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/empty-logs").await.expect_err("budget");
        let msg = err.to_string();
        assert!(msg.contains("more than 1000 log lines"), "{msg}");
        assert!(msg.contains("`limits.log_lines_per_call`"), "{msg}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn values_spelling_the_marker_cannot_blow_up_the_scrubber() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/marker").await.expect_err("fails");
        assert!(err.to_string().len() < 1024, "{err}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn a_huge_error_message_is_cut() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/big-error").await.expect_err("fails");
        let msg = err.to_string();
        assert!(msg.len() < 4096 + 200, "{} bytes", msg.len());
        assert!(msg.contains("more bytes cut"), "{}", &msg[msg.len() - 60..]);
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn what_it_says_cannot_forge_lines_or_escape_sequences() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.get("/x/forge").await.expect_err("fails");
        let msg = err.to_string();
        assert!(
            !msg.contains('\n') && !msg.contains('\u{1b}') && !msg.contains('\u{202e}'),
            "{msg:?}"
        );
        assert!(msg.contains("refused\\n\\u{1b}[2J"), "{msg}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn list_pages_are_bounded_by_count_and_must_advance() {
        let rt = runtime();
        let p = adversary(&rt).await;
        let err = p.list("/empty-ids", None, 10).await.expect_err("count");
        assert!(
            err.to_string()
                .contains("100000 ids, more than the 10 asked for"),
            "{err}"
        );
        // A cursor that repeats, or goes back, is an error, not an endless walk.
        let err = secret_broker_runtime::paging::collect_all(|c| {
            let p = &p;
            async move { p.list("/stuck", c.as_deref(), 10).await }
        })
        .await
        .expect_err("stuck");
        assert!(err.to_string().contains("does not advance"), "{err}");
        let err = secret_broker_runtime::paging::collect_all(|c| {
            let p = &p;
            async move { p.list("/backwards", c.as_deref(), 10).await }
        })
        .await
        .expect_err("backwards");
        assert!(err.to_string().contains("does not advance"), "{err}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn insane_info_is_refused_at_load() {
        let rt = runtime();
        for (mode, expect) in [
            ("zero-max", "max-id-len is 0"),
            ("huge-value", "max-value-bytes is 18446744073709551615"),
            ("escape-name", "the name adversary\\u{1b}[2K\\r"),
            ("many-prefixes", "forbidden-prefixes has 5000 entries"),
            ("bad-class", "whose start is after its end"),
        ] {
            let mut granted = grant("adversary");
            granted.settings.insert("info".into(), mode.into());
            let err = host(&rt, guests::TEST_GUEST_ADVERSARY, granted)
                .await
                .expect_err(mode);
            let msg = err.to_string();
            assert!(msg.contains("its info is not acceptable"), "{mode}: {msg}");
            assert!(msg.contains(expect), "{mode}: {msg}");
            assert!(!msg.contains('\u{1b}'), "{mode}: {msg:?}");
        }
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn inspect_runs_info_with_nothing_granted() {
        let rt = runtime();
        // The adversary needs nothing: its info reads fine.
        let path = std::path::Path::new(guests::TEST_GUEST_ADVERSARY);
        let info = ProviderHost::inspect(&rt, &rt.load_file(path).unwrap())
            .await
            .expect("inspect");
        assert_eq!(info.name, "adversary");
        // The keyring user imports the keyring, which is a trap during inspection:
        // its info() does not touch it, so it still reads.
        let path = std::path::Path::new(guests::TEST_GUEST_KEYRING_USER);
        let info = ProviderHost::inspect(&rt, &rt.load_file(path).unwrap())
            .await
            .expect("inspect keyring user");
        assert_eq!(info.name, "keyring-user");
    }

    /// Looping calls occupy both worker threads; a call through another provider
    /// still answers while they run, because guest code yields every epoch tick.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn looping_providers_do_not_stall_the_host() {
        let limits = Limits {
            call_timeout: Duration::from_secs(6),
            ..Limits::default()
        };
        let rt = Runtime::new(RuntimeOptions {
            cache_dir: None,
            pooling: true,
            limits,
        })
        .unwrap();
        let looper = Arc::new(adversary(&rt).await);
        let memory = Arc::new(
            host(&rt, guests::PROVIDER_MEMORY, grant("healthy"))
                .await
                .unwrap(),
        );
        let v = SecretValue::from_string("still-answering".into());
        memory.put("/ok", &v, &PutOptions::default()).await.unwrap();
        let loops: Vec<_> = (0..4)
            .map(|_| {
                let looper = looper.clone();
                tokio::spawn(async move { looper.get("/x/loop").await })
            })
            .collect();
        // Give the looping calls time to reach guest code (not an assertion).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let get = tokio::spawn({
            let memory = memory.clone();
            async move { memory.get("/ok").await }
        });
        let got = get.await.unwrap().unwrap().unwrap();
        assert!(got.ct_eq(&v));
        assert!(
            loops.iter().all(|l| !l.is_finished()),
            "the get answered only after the looping calls ended"
        );
        for l in loops {
            let err = l.await.unwrap().expect_err("loop");
            assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
        }
    }
}

mod keyring_user {
    use super::*;
    use secret_broker_keyring::KeyringCtx;

    fn keyring_grant(instance: &str, ring: &Arc<Keyring>) -> Granted {
        Granted::new(instance).with(KeyringCtx::new(
            ring.clone(),
            &format!("provider/{instance}"),
        ))
    }

    #[tokio::test]
    async fn an_ungranted_import_fails_instantiation_naming_import_and_grant() {
        let rt = runtime();
        let err = host(&rt, guests::TEST_GUEST_KEYRING_USER, grant("nokeys"))
            .await
            .expect_err("must be refused");
        let msg = err.to_string();
        assert!(matches!(err, ProviderError::NotGranted { .. }), "{msg}");
        assert!(
            msg.contains("`secret-broker:provider/keyring@0.1.0`"),
            "{msg}"
        );
        assert!(msg.contains("grants = [\"keyring\"]"), "{msg}");
        still_serves(&rt).await;
    }

    #[tokio::test]
    async fn granted_keyring_round_trips() {
        let rt = runtime();
        let ring = Arc::new(Keyring::single([3; 32]));
        let p = host(
            &rt,
            guests::TEST_GUEST_KEYRING_USER,
            keyring_grant("a", &ring),
        )
        .await
        .expect("granted");
        let v = SecretValue::from_string("sealed-canary".into());
        p.put("/s/one", &v, &PutOptions::default())
            .await
            .expect("put");
        assert!(
            p.get("/s/one")
                .await
                .expect("get")
                .expect("present")
                .ct_eq(&v)
        );
    }

    #[tokio::test]
    async fn another_instances_ciphertext_is_outside_the_grants_scope() {
        let rt = runtime();
        let ring = Arc::new(Keyring::single([3; 32]));
        let a = host(
            &rt,
            guests::TEST_GUEST_KEYRING_USER,
            keyring_grant("a", &ring),
        )
        .await
        .expect("a");
        let b = host(
            &rt,
            guests::TEST_GUEST_KEYRING_USER,
            keyring_grant("b", &ring),
        )
        .await
        .expect("b");
        a.put(
            "/x",
            &SecretValue::from_string("belongs-to-a".into()),
            &PutOptions::default(),
        )
        .await
        .expect("put");
        let sealed = a.list("/", None, 10).await.expect("list").ids.remove(0);
        // Instance b is handed a's ciphertext for the same context and must not open it.
        let err = b
            .get(&format!("/open{sealed}"))
            .await
            .expect_err("must be refused");
        assert!(matches!(err, ProviderError::AccessDenied(_)), "{err}");
        assert!(
            err.to_string()
                .contains("outside this keyring grant's scope"),
            "{err}"
        );
        // a itself opens it, bound to the context it was sealed with.
        assert!(a.get("/x").await.expect("get").is_some());
        still_serves(&rt).await;
    }
}

mod laundering {
    use super::*;
    use secret_broker_keyring::KeyringCtx;

    #[tokio::test]
    async fn a_guess_sealed_and_opened_is_still_the_providers_own() {
        let rt = runtime();
        let ring = Arc::new(Keyring::single([4; 32]));
        let granted = Granted::new("launder").with(KeyringCtx::new(ring, "provider/launder"));
        let p = host(&rt, guests::TEST_GUEST_KEYRING_USER, granted)
            .await
            .expect("granted");
        let msg = forbidden_put(&p, "/oracle/seal").await;
        assert!(!msg.contains("104242"), "{msg}");
        // The ordinary seal and open of host values still work.
        let v = SecretValue::from_string("sealed-after-attack".into());
        p.put("/s/fine", &v, &PutOptions::default()).await.unwrap();
        assert!(p.get("/s/fine").await.unwrap().unwrap().ct_eq(&v));
    }
}

/// A guest-made value written to an AWS backend would come back host-held: the
/// capability refuses the write, before any request.
mod aws_launderer {
    use super::*;

    #[tokio::test]
    async fn a_guest_made_value_cannot_be_written_to_a_backend() {
        let mut settings = secret_broker_aws::AwsSettings::new("/");
        settings.region = Some("us-east-1".into());
        settings.access_key_id = Some("testing".into());
        settings.secret_access_key = Some(SecretValue::from_string("testing".into()));
        // Nothing listens here: a request would fail as unavailable, not forbidden.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        settings.endpoint = Some(format!("http://127.0.0.1:{port}"));
        let base = secret_broker_aws::AwsGrantBase::new(&settings)
            .await
            .unwrap();
        let rt = runtime();
        let granted =
            Granted::new("launderer").with(secret_broker_aws::SecretsManagerCtx::new(base));
        let p = host(&rt, guests::TEST_GUEST_AWS_LAUNDERER, granted)
            .await
            .expect("granted");
        let msg = forbidden_put(&p, "/x").await;
        assert!(
            msg.contains("may store only values the host handed it"),
            "{msg}"
        );
        still_serves(&rt).await;
    }
}

mod leaky {
    use super::*;
    use std::sync::{Mutex, OnceLock};

    /// Everything logged through `tracing` in this test binary, at TRACE.
    fn captured() -> &'static Mutex<Vec<u8>> {
        static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
        LOG.get_or_init(|| {
            let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || Capture(buf))
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            buf
        })
    }

    struct Capture(&'static Mutex<Vec<u8>>);

    impl std::io::Write for Capture {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_leak_path_is_scrubbed() {
        let log = captured();
        let rt = runtime();
        let granted = Granted::new("leaky").with(secret_broker_runtime::caps::reveal::Reveal);
        let p = host(&rt, guests::TEST_GUEST_LEAKY, granted)
            .await
            .expect("reveal granted");
        let canary = "canary-leak-93c1f0aa";
        let err = p
            .put(
                "/l/one",
                &SecretValue::from_string(canary.into()),
                &PutOptions::default(),
            )
            .await
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("backend refused the value [redacted] for /l/one"),
            "{msg}"
        );
        assert!(!format!("{err:?}").contains(canary));
        // A value the provider itself created during the call is scrubbed too.
        let err = p.get("/l/two").await.expect_err("fails");
        assert!(
            err.to_string().contains("cannot return [redacted]"),
            "{err}"
        );

        let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        assert!(
            logged.contains("storing /l/one = [redacted]"),
            "log line missing: {logged}"
        );
        assert!(
            logged.contains("stdout sees [redacted]"),
            "stdout missing: {logged}"
        );
        assert!(
            logged.contains("stderr sees [redacted]"),
            "stderr missing: {logged}"
        );
        // A value from an earlier call, raw or hex-encoded, is scrubbed too.
        let err = p.get("/l/earlier").await.expect_err("fails");
        let msg = err.to_string();
        assert!(!msg.contains(canary), "{msg}");
        assert!(!msg.contains(&hex::encode(canary)), "{msg}");
        assert!(msg.contains("earlier: [redacted] hex [redacted]"), "{msg}");
        assert!(!logged.contains(canary), "canary in the log: {logged}");
        assert!(
            !logged.contains("made-up-/l/two"),
            "provider-made value in the log: {logged}"
        );
    }

    #[tokio::test]
    async fn reveal_is_denied_without_its_grant() {
        let rt = runtime();
        let err = host(&rt, guests::TEST_GUEST_LEAKY, grant("noreveal"))
            .await
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("`secret-broker:provider/reveal@0.1.0`"),
            "{err}"
        );
    }
}

/// The example embedder, built here and run on its guest.
#[path = "../../host/runtime/examples/embedder.rs"]
mod embedder_example;

/// The second example: a broker and its server from settings, one call each.
#[path = "../../host/runtime/examples/from_settings.rs"]
mod from_settings_example;

#[tokio::test]
async fn the_example_builds_a_broker_and_a_server_from_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (read, body) = from_settings_example::run(dir.path())
        .await
        .expect("example");
    assert_eq!(read, "s3cr3t-from-settings");
    // The server is the same deployment: the value the broker stored, for the
    // admin token the server created, and the write is in the audit log.
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["value"], "s3cr3t-from-settings", "{body}");
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit log");
    assert!(audit.contains("\"secret.put\"") && audit.contains("\"secret.get\""));
    assert!(!audit.contains("s3cr3t-from-settings"));
}

/// A capability of an embedder's own (the example embedder's inventory): linked
/// only when granted, refused by name otherwise.
mod inventory {
    use super::*;

    #[tokio::test]
    async fn the_example_embedder_grants_its_own_capability() {
        let path = std::path::Path::new(guests::TEST_GUEST_INVENTORY);
        let events = super::embedder_example::run(path).await.expect("example");
        let id = "/openmetadata/database/mysql_prod/password";
        assert_eq!(
            events,
            [
                (id.to_owned(), "put".to_owned()),
                (id.to_owned(), "delete".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn without_the_grant_the_import_is_named() {
        let rt = runtime();
        let err = host(&rt, guests::TEST_GUEST_INVENTORY, grant("nogrant"))
            .await
            .expect_err("ungranted");
        let msg = err.to_string();
        assert!(msg.contains("`example:embedder/inventory@0.1.0`"), "{msg}");
        still_serves(&rt).await;
    }
}

mod memscan {
    use super::*;
    use secret_broker_http::HttpCtx;

    /// An HTTP server on loopback answering every request with the request itself.
    async fn echo_server() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if got.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Echo: {}\r\nContent-Length: {}\r\n\r\n",
                        String::from_utf8_lossy(&got).lines().nth(1).unwrap_or(""),
                        got.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&got).await;
                });
            }
        });
        origin
    }

    fn masked(needle: &str) -> String {
        needle
            .bytes()
            .map(|b| format!("{:02x}", b ^ 0x5a))
            .collect()
    }

    async fn scanner(
        bao: &common::bao::Bao,
        credential: (&str, &str),
        settings: &[(&str, &str)],
        needles: &[&str],
    ) -> ProviderHost {
        let mut granted = Granted::new("memscan")
            .with(HttpCtx::new(bao.http(credential.0, credential.1)).unwrap());
        granted.settings.insert("address".into(), bao.addr.clone());
        let needles: Vec<String> = needles.iter().map(|n| masked(n)).collect();
        granted.settings.insert("needles".into(), needles.join(","));
        for (k, v) in settings {
            granted.settings.insert((*k).into(), (*v).into());
        }
        host(&runtime(), guests::TEST_GUEST_MEMSCAN, granted)
            .await
            .unwrap()
    }

    /// After put, get and an AppRole login through the http capability, neither the
    /// value nor the Vault token nor the AppRole secret id is anywhere in the
    /// provider's memory; with the value planted in memory, the same scan finds it.
    #[tokio::test]
    async fn plaintext_and_tokens_never_enter_the_guest() {
        let bao = common::bao::Bao::start();
        let value = "canary-value-7f3a9c41e2";
        let token = bao.kv_token().await;

        let p = scanner(&bao, ("token", &token), &[], &[value, &token]).await;
        let v = SecretValue::from_string(value.into());
        p.put("/om/scan/a", &v, &PutOptions::default())
            .await
            .unwrap();
        let got = p.get("/om/scan/a").await.unwrap().unwrap();
        assert!(got.ct_eq(&v));

        let (role_id, secret_id) = bao.approle("1h").await;
        let p = scanner(
            &bao,
            ("secret-id", &secret_id),
            &[("role-id", &role_id)],
            &[value, &secret_id],
        )
        .await;
        p.put("/om/scan/b", &v, &PutOptions::default())
            .await
            .unwrap();
        assert!(p.get("/om/scan/b").await.unwrap().unwrap().ct_eq(&v));

        // A backend that echoes every request: what comes back is scrubbed of the
        // value and the token before the provider sees it, so the scan finds
        // neither although both crossed the wire.
        let echo = echo_server().await;
        let mut http = secret_broker_http::HttpSettings::new(&[echo.as_str()])
            .unwrap()
            .credential("token", SecretValue::from_string(token.clone()))
            .unwrap();
        http.allow_private = true;
        let mut granted = Granted::new("memscan").with(HttpCtx::new(http).unwrap());
        granted.settings.insert("address".into(), echo.clone());
        granted
            .settings
            .insert("needles".into(), [masked(value), masked(&token)].join(","));
        let p = host(&runtime(), guests::TEST_GUEST_MEMSCAN, granted)
            .await
            .unwrap();
        p.put("/om/scan/echo", &v, &PutOptions::default())
            .await
            .unwrap();

        // The positive control: the scan finds a value that is there.
        let p = scanner(&bao, ("token", &token), &[("control", "plant")], &[value]).await;
        let err = p
            .put("/om/scan/c", &v, &PutOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("FOUND"), "{err}");
    }
}

mod legacy {
    use super::*;

    /// A provider built against contract 0.1.0 alone (wit-bindgen, no guest SDK)
    /// loads on a host serving 0.2.0, imports nothing of 0.2.0, and passes the
    /// conformance suite.
    #[tokio::test]
    async fn a_provider_built_against_0_1_0_keeps_working() {
        let rt = runtime();
        let component = rt
            .load_file(std::path::Path::new(guests::TEST_GUEST_LEGACY))
            .unwrap();
        assert!(component.needs.is_empty(), "{:?}", component.needs);
        let p = Arc::new(
            ProviderHost::new(&rt, &component, Granted::new("legacy"))
                .await
                .unwrap(),
        );
        let report = secret_broker_runtime::conformance::run(p).await;
        assert!(report.ok(), "{report}");
    }
}
