//! The `azure-key-vault` provider through the `http` capability, against a Key
//! Vault and token endpoint written from the published references
//! (`tests/scripts/azure_kv_server.py`, TLS with a test CA), which the official
//! `azure-keyvault-secrets` client logged in by `azure-identity` checks:
//! conformance; the client reads what the broker wrote and the broker reads what
//! the client wrote, under the names OpenMetadata gives them; the OAuth2 token
//! is renewed before expiry and at once on a 401, goes to the vault only where
//! the grant says so, and never reaches the provider; soft delete and purge,
//! throttling and server errors behave as on the real service, and the previous
//! value stays readable.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{OtherClient, TestControls, ok, ran, text, val};

use common::azure::Azure;
use secret_broker::openmetadata::ids::{IdBuilder, IdStyle};
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::{ProviderError, PutOptions, PutOutcome, SecretValue};
use secret_broker_runtime::conformance;
use serde_json::json;

#[tokio::test]
async fn conformance_on_the_test_vault() {
    let az = Azure::start();
    // The official client as the other client; its own logins are counted
    // apart from the broker's.
    let client_logins = std::sync::atomic::AtomicU64::new(0);
    let client = OtherClient(|id: &str, value: &[u8]| {
        let before = az.stats()["logins"].as_u64().unwrap();
        let out = az.python(
            "c.set_secret(sys.argv[1], sys.argv[2])",
            &[id, std::str::from_utf8(value).unwrap()],
        );
        let after = az.stats()["logins"].as_u64().unwrap();
        client_logins.fetch_add(after - before, std::sync::atomic::Ordering::SeqCst);
        ran(out)
    });
    let report = conformance::run_with(az.provider().await, Some(&client)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
    // One login served every call of the suite.
    let broker_logins = az.stats()["logins"].as_u64().unwrap()
        - client_logins.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(broker_logins, 1);
}

#[tokio::test]
async fn the_official_client_reads_what_the_broker_wrote_and_back() {
    let az = Azure::start();
    let p = az.provider().await;
    let value = "pässwörd \"quoted\" \n line";
    let name = "openmetadata-database-mysqlprod-authtype-password";
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
    let out = ok(&az.python(
        "s = c.get_secret(sys.argv[1])\n\
         sys.stdout.write(s.value + '\\n')\n\
         print(s.properties.tags['team'], s.properties.tags['secret-broker-digest'].startswith('hmac-sha256:'))",
        &[name],
    ));
    assert_eq!(out, format!("{value}\ndata True\n"));

    // Written by the client as OpenMetadata's server writes it, then changed.
    let theirs = "openmetadata-bot-ingestion-bot-config-jwttoken";
    ok(&az.python("c.set_secret(sys.argv[1], 'eyJ-first')", &[theirs]));
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-first")
    );
    ok(&az.python("c.set_secret(sys.argv[1], 'eyJ-second')", &[theirs]));
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-second")
    );
    // Key Vault names ignore case.
    assert_eq!(
        text(p.get(&theirs.to_uppercase()).await.unwrap()).as_deref(),
        Some("eyJ-second")
    );
    // The client's write carried no digest: the same value is written again
    // (a new version), never wrongly reported unchanged.
    assert_eq!(
        p.put(theirs, &val("eyJ-second"), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Updated
    );
    assert_eq!(
        p.put(theirs, &val("eyJ-third"), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Updated
    );
    let out = ok(&az.python(
        "print(c.get_secret(sys.argv[1]).value, len(list(c.list_properties_of_secret_versions(sys.argv[1]))))",
        &[theirs],
    ));
    assert_eq!(out.trim(), "eyJ-third 4");

    // Bytes that are not UTF-8 are stored base64 and read back exactly.
    let bytes = SecretValue::new(vec![0xff, 0x00, 0xfe, b'k']);
    p.put("binary-value", &bytes, &PutOptions::default())
        .await
        .unwrap();
    assert!(p.get("binary-value").await.unwrap().unwrap().ct_eq(&bytes));
    let out = ok(&az.python(
        "s = c.get_secret('binary-value')\nprint(s.value, s.properties.content_type)",
        &[],
    ));
    assert_eq!(out.trim(), "/wD+aw== application/vnd.secret-broker.base64");

    // Deleted and purged by the client: gone for the broker.
    ok(&az.python(
        "c.begin_delete_secret(sys.argv[1]).wait()\nc.purge_deleted_secret(sys.argv[1])",
        &[theirs],
    ));
    assert!(p.get(theirs).await.unwrap().is_none());
    assert!(!p.delete(theirs).await.unwrap());
    // Deleted by the broker: the client finds neither the secret nor a deleted one.
    assert!(p.delete(name).await.unwrap());
    let out = ok(&az.python(
        "from azure.core.exceptions import ResourceNotFoundError\n\
         for f in (c.get_secret, c.get_deleted_secret):\n\
         \x20   try:\n\
         \x20       f(sys.argv[1]); print('found')\n\
         \x20   except ResourceNotFoundError:\n\
         \x20       print('absent')",
        &[name],
    ));
    assert_eq!(out, "absent\nabsent\n");
}

/// The ids OpenMetadata's Azure Key Vault secrets manager builds are the secret
/// names the broker writes.
#[tokio::test]
async fn openmetadata_ids_are_the_secret_names() {
    let az = Azure::start();
    let p = az.provider().await;
    let db = common::TempDb::sqlite();
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas-2.0");
    let ids = IdBuilder::with_style(None, "openmetadata", IdStyle::Azure).unwrap();
    let m = SecretsManager::new(p.clone(), &schemas, ids, common::owners(&db).await).unwrap();
    let config = json!({"type": "Mysql", "username": "u", "hostPort": "h:3306",
        "authType": {"password": "canary-azure-om-ids"}});
    let stored = m
        .encrypt_connection("database", "MySQL_Prod", config)
        .await
        .unwrap();
    let name = "openmetadata-database-mysqlprod-authtype-password";
    assert_eq!(stored["authType"]["password"], format!("secret:{name}"));
    let out = ok(&az.python("print(c.get_secret(sys.argv[1]).value)", &[name]));
    assert_eq!(out.trim(), "canary-azure-om-ids");
    let back = m.decrypt_connection("database", stored).await.unwrap();
    assert_eq!(back["authType"]["password"], "canary-azure-om-ids");
}

#[tokio::test]
async fn listing_follows_next_links_and_sorts() {
    let az = Azure::start();
    // Written by the client in reverse, more than four pages of Key Vault's 25.
    ok(&az.python(
        "for i in reversed(range(110)):\n\
         \x20   c.set_secret(f'om-many-{i:04d}', str(i))\n\
         c.set_secret('other-one', 'x')",
        &[],
    ));
    let p = az.provider().await;
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = p.list("om-many-", cursor.as_deref(), 40).await.unwrap();
        assert!(page.ids.len() <= 40);
        listed.extend(page.ids);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..110).map(|i| format!("om-many-{i:04}")).collect();
    assert_eq!(listed, want);
    assert!(p.list("om-none-", None, 10).await.unwrap().ids.is_empty());
    // A vault larger than the pages a call may read: a clear error naming the setting.
    let small = az
        .provider_with(az.http(&az.client_secret), &[("max-list-pages", "2")])
        .await;
    let err = small.list("om-many-", None, 10).await.unwrap_err();
    assert!(err.to_string().contains("max-list-pages"), "{err}");
}

#[tokio::test]
async fn the_token_is_renewed_before_expiry_and_after_a_401_and_stays_in_the_host() {
    let az = Azure::start();
    let p = az.provider().await;
    let id = "openmetadata-token-renewal";
    p.put(id, &val("v1"), &PutOptions::default()).await.unwrap();
    assert_eq!(az.stats()["logins"], 1);
    // Revoked: the vault answers 401, the provider logs in again and retries.
    az.revoke_tokens();
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(az.stats()["logins"], 2);
    // Tokens that live 3 s are renewed at two thirds of their life, before the
    // vault refuses them.
    az.config(json!({"token_ttl": 3}));
    az.revoke_tokens();
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(az.stats()["logins"], 3);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(
        az.stats()["logins"],
        4,
        "renewed before expiry, without a 401"
    );

    // A rotated client secret: access denied naming what to check; the value
    // stays readable once the grant holds the new secret.
    az.set_client_secret("rotated-client-secret");
    az.revoke_tokens();
    let err = p.get(id).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("client-secret") && m.contains("AADSTS7000215")),
        "{err}"
    );
    assert!(!err.to_string().contains(&az.client_secret));
    let renewed = az
        .provider_with(az.http("rotated-client-secret"), &[])
        .await;
    assert_eq!(text(renewed.get(id).await.unwrap()).as_deref(), Some("v1"));

    // Without the grant letting the token go to the vault, the host refuses to
    // send it there: the provider cannot move a credential between origins.
    let unbound = az
        .provider_with(az.http_unbound("rotated-client-secret"), &[])
        .await;
    let err = unbound.get(id).await.unwrap_err();
    assert!(err.to_string().contains("access-token"), "{err}");
}

#[tokio::test]
async fn soft_delete_and_purge_protection_behave_as_on_the_service() {
    let az = Azure::start();
    let p = az.provider().await;
    let id = "openmetadata-soft-delete";
    p.put(id, &val("v1"), &PutOptions::default()).await.unwrap();
    // The vault takes a while to finish a deletion: the purge right after the
    // delete cannot happen yet, and a put meanwhile is told to retry.
    az.config(json!({"deleting_ms": 1500}));
    assert!(p.delete(id).await.unwrap());
    let err = p
        .put(id, &val("v2"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("being deleted")),
        "{err}"
    );
    assert!(err.is_retryable());
    std::thread::sleep(std::time::Duration::from_millis(1700));
    // Deleted by now, not purged: the put purges the deleted secret, then writes.
    assert_eq!(az.stats()["deleted"], 1);
    assert_eq!(
        p.put(id, &val("v2"), &PutOptions::default()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v2"));
    assert_eq!(az.stats()["deleted"], 0);

    // With purge protection a deleted secret stays; a put to its name is a
    // conflict that says what to do.
    az.config(json!({"deleting_ms": 0, "purge_protection": true}));
    assert!(p.delete(id).await.unwrap());
    assert!(p.get(id).await.unwrap().is_none());
    assert_eq!(az.stats()["deleted"], 1);
    let err = p
        .put(id, &val("v3"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Conflict(m) if m.contains("recover it")),
        "{err}"
    );
}

#[tokio::test]
async fn faults_behave_as_on_the_service_and_keep_the_previous_value() {
    let az = Azure::start();
    let p = az.provider().await;
    let id = "openmetadata-database-faults-password";
    p.put(id, &val("v1"), &PutOptions::default()).await.unwrap();

    // Throttled: unavailable, naming when to retry.
    az.fault(Some("GET"), Some("/secrets"), 429, 1, Some(3));
    let err = p.get(id).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("retry after 3 s")),
        "{err}"
    );
    assert!(err.is_retryable());
    // A server error on the write: unavailable, the previous value readable.
    az.fault(Some("PUT"), Some("/secrets"), 503, 1, None);
    let err = p
        .put(id, &val("v2"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    // The token endpoint down: unavailable too, once the token must be renewed.
    az.revoke_tokens();
    az.fault(Some("POST"), Some("/"), 503, 1, None);
    let err = p.get(id).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
    // Names OpenMetadata writes for entity names that clean to nothing (a
    // leading, doubled or trailing `-`): Key Vault takes them, so do the rules.
    for odd in [
        "-leading-dash",
        "openmetadata-database--authtype-password",
        "trailing-dash-",
    ] {
        p.put(odd, &val(odd), &PutOptions::default()).await.unwrap();
        assert_eq!(text(p.get(odd).await.unwrap()).as_deref(), Some(odd));
        assert!(p.delete(odd).await.unwrap(), "{odd}");
    }
    // Names Key Vault refuses are refused before any request.
    for bad in ["under_score", "dot.ted", &"x".repeat(128)] {
        let err = p
            .put(bad, &val("x"), &PutOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::InvalidId(_)), "{bad}: {err}");
    }
    // Over Key Vault's 25 KiB: refused by the provider, nothing sent.
    let err = p
        .put(
            id,
            &SecretValue::new(vec![b'v'; 25 * 1024 + 1]),
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::ValueTooLarge { .. }), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));
}
