//! The `gcp-secret-manager` provider through the `http` capability, against a
//! Secret Manager and token endpoint written from the published references
//! (`tests/scripts/gcp_sm_server.py`, TLS with a test CA), which the official
//! `google-cloud-secret-manager` client (REST transport) logged in with a
//! service account key checks: conformance, logged in by the service account
//! (the host signs its assertions) and by a plain bearer token; the client reads
//! what the broker wrote and the broker reads what the client wrote, under the
//! ids OpenMetadata gives them; reads are checked against the CRC32C the service
//! sends; the access token is renewed before expiry and at once on a 401;
//! throttling, conflicts and server errors behave as on the real service, and
//! the previous value stays readable.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::gcp::Gcp;
use common::{OtherClient, TestControls, ok, ran, text, val};
use secret_broker::openmetadata::ids::{IdBuilder, IdStyle};
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::{ProviderError, PutOptions, PutOutcome, SecretValue};
use secret_broker_runtime::conformance;
use serde_json::json;

#[tokio::test]
async fn conformance_with_a_service_account() {
    let gcp = Gcp::start();
    // The official client as the other client (a new version, as OpenMetadata's
    // server adds one); its own logins are counted apart from the broker's.
    let client_logins = std::sync::atomic::AtomicU64::new(0);
    let client = OtherClient(|id: &str, value: &[u8]| {
        let before = gcp.stats()["logins"].as_u64().unwrap();
        let out = gcp.python(
            "data = sys.argv[2].encode()\n\
             c.add_secret_version(parent=f'{PARENT}/secrets/{sys.argv[1]}', payload={'data': data, 'data_crc32c': google_crc32c.value(data)})",
            &[id, std::str::from_utf8(value).unwrap()],
        );
        let after = gcp.stats()["logins"].as_u64().unwrap();
        client_logins.fetch_add(after - before, std::sync::atomic::Ordering::SeqCst);
        ran(out)
    });
    let report = conformance::run_with(gcp.provider().await, Some(&client)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
    // One login served every call of the suite.
    let broker_logins = gcp.stats()["logins"].as_u64().unwrap()
        - client_logins.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(broker_logins, 1);
}

#[tokio::test]
async fn conformance_with_a_bearer_token() {
    let gcp = Gcp::start();
    let p = gcp.provider_with(gcp.http_token(&gcp.token), &[]).await;
    let report = conformance::run(p).await;
    assert!(report.ok(), "{report}");
    assert_eq!(gcp.stats()["logins"], 0, "a bearer token needs no login");
}

#[tokio::test]
async fn the_official_client_reads_what_the_broker_wrote_and_back() {
    let gcp = Gcp::start();
    let p = gcp.provider().await;
    let value = "pässwörd \"quoted\" \n line";
    let name = "openmetadata_database_MySQLProd_authType_password";
    let options = PutOptions {
        description: None,
        tags: vec![("team".into(), "data".into())],
    };
    assert_eq!(
        p.put(name, &val(value), &options).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        p.put(name, &val(value), &options).await.unwrap(),
        PutOutcome::Unchanged
    );
    assert_eq!(
        gcp.stats()["versions"],
        1,
        "an unchanged put adds no version"
    );
    let out = ok(&gcp.python(
        "r = c.access_secret_version(name=f'{PARENT}/secrets/{sys.argv[1]}/versions/latest')\n\
         assert r.payload.data_crc32c == google_crc32c.value(r.payload.data)\n\
         sys.stdout.write(r.payload.data.decode() + '\\n')\n\
         s = c.get_secret(name=f'{PARENT}/secrets/{sys.argv[1]}')\n\
         print(s.annotations['team'], s.annotations['secret-broker-digest'].startswith('hmac-sha256:'), s.annotations['secret-broker-version'])",
        &[name],
    ));
    assert_eq!(out, format!("{value}\ndata True 1\n"));

    // Written by the client as OpenMetadata's server writes it (create, then
    // add a version), then changed.
    let theirs = "openmetadata_bot_ingestion_bot_config_jwttoken";
    let add = "s = f'{PARENT}/secrets/{sys.argv[1]}'\n\
               try:\n\
               \x20   c.create_secret(parent=PARENT, secret_id=sys.argv[1], secret={'replication': {'automatic': {}}})\n\
               except Exception:\n\
               \x20   pass\n\
               data = sys.argv[2].encode()\n\
               c.add_secret_version(parent=s, payload={'data': data, 'data_crc32c': google_crc32c.value(data)})";
    ok(&gcp.python(add, &[theirs, "eyJ-first"]));
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-first")
    );
    ok(&gcp.python(add, &[theirs, "eyJ-second"]));
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-second")
    );
    // The broker's own value, then a version the client added with the same
    // bytes the broker's digest describes: never mistaken for unchanged.
    assert_eq!(
        p.put(theirs, &val("eyJ-third"), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Updated
    );
    ok(&gcp.python(add, &[theirs, "eyJ-other"]));
    assert_eq!(
        p.put(theirs, &val("eyJ-third"), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Updated
    );
    let out = ok(&gcp.python(
        "s = f'{PARENT}/secrets/{sys.argv[1]}'\n\
         print(c.access_secret_version(name=s + '/versions/latest').payload.data.decode(), len(list(c.list_secret_versions(parent=s))))",
        &[theirs],
    ));
    assert_eq!(out.trim(), "eyJ-third 5");

    // A disabled latest version: the get says so; a put of the value it held
    // writes a new version rather than reporting it unchanged.
    ok(&gcp.python(
        "c.disable_secret_version(name=f'{PARENT}/secrets/{sys.argv[1]}/versions/latest')",
        &[theirs],
    ));
    let err = p.get(theirs).await.unwrap_err();
    assert!(err.to_string().contains("DISABLED"), "{err}");
    assert_eq!(
        p.put(theirs, &val("eyJ-third"), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Updated
    );
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-third")
    );

    // Bytes that are not UTF-8 round-trip both ways.
    let bytes = SecretValue::new(vec![0xff, 0x00, 0xfe, b'k']);
    p.put("binary_value", &bytes, &PutOptions::default())
        .await
        .unwrap();
    assert!(p.get("binary_value").await.unwrap().unwrap().ct_eq(&bytes));
    let out = ok(&gcp.python(
        "print(c.access_secret_version(name=f'{PARENT}/secrets/binary_value/versions/latest').payload.data.hex())",
        &[],
    ));
    assert_eq!(out.trim(), "ff00fe6b");

    // Deleted by the client: gone for the broker. Deleted by the broker: gone
    // for the client.
    ok(&gcp.python(
        "c.delete_secret(name=f'{PARENT}/secrets/{sys.argv[1]}')",
        &[theirs],
    ));
    assert!(p.get(theirs).await.unwrap().is_none());
    assert!(!p.delete(theirs).await.unwrap());
    assert!(p.delete(name).await.unwrap());
    let out = ok(&gcp.python(
        "from google.api_core.exceptions import NotFound\n\
         try:\n\
         \x20   c.get_secret(name=f'{PARENT}/secrets/{sys.argv[1]}'); print('found')\n\
         except NotFound:\n\
         \x20   print('absent')",
        &[name],
    ));
    assert_eq!(out.trim(), "absent");
}

/// The ids OpenMetadata's GCP secrets manager builds are the secret ids the
/// broker writes.
#[tokio::test]
async fn openmetadata_ids_are_the_secret_ids() {
    let gcp = Gcp::start();
    let p = gcp.provider().await;
    let db = common::TempDb::sqlite();
    for schemas in ["om-schemas", "om-schemas-2.0"] {
        let schemas = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared")
            .join(schemas);
        let ids = IdBuilder::with_style(None, "openmetadata", IdStyle::Gcp).unwrap();
        let m = SecretsManager::new(p.clone(), &schemas, ids, common::owners(&db).await).unwrap();
        let config = json!({"type": "Mysql", "username": "u", "hostPort": "h:3306",
            "authType": {"password": "canary-gcp-om-ids"}});
        let stored = m
            .encrypt_connection("database", "MySQL_Prod", config)
            .await
            .unwrap();
        let reference = stored["authType"]["password"].as_str().unwrap();
        let name = reference.strip_prefix("secret:").unwrap();
        assert!(
            name.starts_with("openmetadata_database_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        let out = ok(&gcp.python(
            "print(c.access_secret_version(name=f'{PARENT}/secrets/{sys.argv[1]}/versions/latest').payload.data.decode())",
            &[name],
        ));
        assert_eq!(out.trim(), "canary-gcp-om-ids");
        let back = m.decrypt_connection("database", stored).await.unwrap();
        assert_eq!(back["authType"]["password"], "canary-gcp-om-ids");
    }
}

#[tokio::test]
async fn listing_follows_page_tokens_and_sorts() {
    let gcp = Gcp::start();
    // Written by the client in reverse, more than one page of the provider's 250.
    ok(&gcp.python(
        "for i in reversed(range(260)):\n\
         \x20   c.create_secret(parent=PARENT, secret_id=f'om_many_{i:04d}', secret={'replication': {'automatic': {}}})\n\
         c.create_secret(parent=PARENT, secret_id='other_one', secret={'replication': {'automatic': {}}})",
        &[],
    ));
    let p = gcp.provider().await;
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = p.list("om_many_", cursor.as_deref(), 100).await.unwrap();
        assert!(page.ids.len() <= 100);
        listed.extend(page.ids);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..260).map(|i| format!("om_many_{i:04}")).collect();
    assert_eq!(listed, want);
    assert!(p.list("om_none_", None, 10).await.unwrap().ids.is_empty());
    // A project larger than the pages a call may read: a clear error naming the setting.
    let small = gcp
        .provider_with(gcp.http(), &[("max-list-pages", "1")])
        .await;
    let err = small.list("om_many_", None, 10).await.unwrap_err();
    assert!(err.to_string().contains("max-list-pages"), "{err}");
}

#[tokio::test]
async fn the_token_is_renewed_before_expiry_and_after_a_401_and_the_key_stays_in_the_host() {
    let gcp = Gcp::start();
    let p = gcp.provider().await;
    let id = "openmetadata_token_renewal";
    p.put(id, &val("v1"), &PutOptions::default()).await.unwrap();
    assert_eq!(gcp.stats()["logins"], 1);
    // Revoked: the API answers 401, the provider logs in again and retries.
    gcp.revoke_tokens();
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(gcp.stats()["logins"], 2);
    // Tokens that live 3 s are renewed at two thirds of their life, before the
    // API refuses them.
    gcp.config(json!({"token_ttl": 3}));
    gcp.revoke_tokens();
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(gcp.stats()["logins"], 3);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(
        gcp.stats()["logins"],
        4,
        "renewed before expiry, without a 401"
    );

    // The key deleted from the service account: access denied naming what to
    // check, and nothing of the key in the error.
    let key = std::fs::read_to_string(&gcp.key_file).unwrap();
    std::fs::remove_file(&gcp.key_file).unwrap();
    gcp.revoke_tokens();
    let err = p.get(id).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("service account key")),
        "{err}"
    );
    let pem: serde_json::Value = serde_json::from_str(&key).unwrap();
    let body = pem["private_key"].as_str().unwrap().lines().nth(1).unwrap();
    assert!(!err.to_string().contains(body));
    std::fs::write(&gcp.key_file, &key).unwrap();
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));

    // Without the grant letting the access token go to the API, the host
    // refuses to send it there: the provider cannot move a credential between
    // origins; nor the assertion anywhere but the token endpoint.
    let unbound = gcp
        .provider_with(
            gcp.http()
                .bind_credential("access-token", &[gcp.token_origin()])
                .unwrap(),
            &[],
        )
        .await;
    let err = unbound.get(id).await.unwrap_err();
    assert!(err.to_string().contains("access-token"), "{err}");
    let misrouted = gcp
        .provider_with(gcp.http(), &[("token-url", &format!("{}/token", gcp.api))])
        .await;
    let err = misrouted.get(id).await.unwrap_err();
    assert!(err.to_string().contains("`assertion`"), "{err}");

    // A plain bearer token that stops being accepted: access denied, no login.
    let bearer = gcp.provider_with(gcp.http_token(&gcp.token), &[]).await;
    assert_eq!(text(bearer.get(id).await.unwrap()).as_deref(), Some("v1"));
    gcp.set_tokens(&["ya29.some-other-token"]);
    let err = bearer.get(id).await.unwrap_err();
    assert!(matches!(err, ProviderError::AccessDenied(_)), "{err}");
}

#[tokio::test]
async fn a_value_that_fails_its_crc32c_is_never_returned() {
    let gcp = Gcp::start();
    let p = gcp.provider().await;
    let id = "openmetadata_crc_checked";
    p.put(id, &val("canary-crc-1"), &PutOptions::default())
        .await
        .unwrap();
    gcp.corrupt(id);
    let err = p.get(id).await.unwrap_err();
    assert!(err.to_string().contains("CRC32C"), "{err}");
    assert!(!err.to_string().contains("anary-crc"), "{err}");
    // A good version written over it reads again.
    p.put(id, &val("canary-crc-2"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        text(p.get(id).await.unwrap()).as_deref(),
        Some("canary-crc-2")
    );
}

#[tokio::test]
async fn faults_behave_as_on_the_service_and_keep_the_previous_value() {
    let gcp = Gcp::start();
    let p = gcp.provider().await;
    let id = "openmetadata_database_faults_password";
    p.put(id, &val("v1"), &PutOptions::default()).await.unwrap();

    // Throttled: unavailable, naming when to retry.
    gcp.fault(Some("GET"), Some("/v1/"), 429, 1, Some(3));
    let err = p.get(id).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("retry after 3 s") && m.contains("RESOURCE_EXHAUSTED")),
        "{err}"
    );
    assert!(err.is_retryable());
    // A server error on the write: unavailable, the previous value readable.
    gcp.fault(Some("POST"), Some("/v1/"), 503, 1, None);
    let err = p
        .put(id, &val("v2"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    // An aborted write (a concurrent change): a conflict, the value kept.
    gcp.fault(Some("POST"), Some("/v1/"), 409, 1, None);
    let err = p
        .put(id, &val("v2"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Conflict(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    // The token endpoint down: unavailable too, once the token must be renewed.
    gcp.revoke_tokens();
    gcp.fault(Some("POST"), Some("/token"), 503, 1, None);
    let err = p.get(id).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    // Ids Secret Manager refuses are refused before any request.
    for bad in ["dot.ted", "slash/ed", "sp ace", &"x".repeat(256)] {
        let err = p
            .put(bad, &val("x"), &PutOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::InvalidId(_)), "{bad}: {err}");
    }
    // Over Secret Manager's 64 KiB: refused by the provider, nothing sent.
    let err = p
        .put(
            id,
            &SecretValue::new(vec![b'v'; 64 * 1024 + 1]),
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::ValueTooLarge { .. }), "{err}");
    // The largest value fits, base64 in a JSON answer within the grant's limit.
    let big = SecretValue::new(vec![b'w'; 64 * 1024]);
    p.put(id, &big, &PutOptions::default()).await.unwrap();
    assert!(p.get(id).await.unwrap().unwrap().ct_eq(&big));
}
