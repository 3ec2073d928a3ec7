//! The `kubernetes` provider through the `http` capability, against a Kubernetes
//! API server for Secrets written from the published API reference
//! (`tests/scripts/k8s_api_server.py`, TLS with a test CA), which the official
//! `kubernetes` client from PyPI checks: conformance; the client reads what the
//! broker wrote and the broker reads what the client wrote, under the names
//! OpenMetadata gives them; a concurrent change, a refused token, throttling and
//! server errors behave as on a real cluster, and the previous value stays
//! readable.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{OtherClient, TestControls, ok, ran, text, val};

use common::k8s::K8s;
use secret_broker::openmetadata::ids::{IdBuilder, IdStyle};
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::{ProviderError, PutOptions, PutOutcome};
use secret_broker_runtime::conformance;
use serde_json::json;

#[tokio::test]
async fn conformance_on_the_api_server() {
    let k8s = K8s::start();
    let client = OtherClient(|id: &str, value: &[u8]| {
        ran(k8s.python(
            "s = api.read_namespaced_secret(sys.argv[1], 'default')\n\
             s.data = None\n\
             s.string_data = {'value': sys.argv[2]}\n\
             api.replace_namespaced_secret(sys.argv[1], 'default', s)",
            &[id, std::str::from_utf8(value).unwrap()],
        ))
    });
    let report = conformance::run_with(k8s.provider("default").await, Some(&client)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
}

#[tokio::test]
async fn the_official_client_reads_what_the_broker_wrote_and_back() {
    let k8s = K8s::start();
    let p = k8s.provider("openmetadata").await;
    let value = "pässwörd \"quoted\" \n line";
    let name = "openmetadata-database-mysql-prod-authtype-password";
    assert_eq!(
        p.put(name, &val(value), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Created
    );
    let out = ok(&k8s.python(
        "s = api.read_namespaced_secret(sys.argv[1], 'openmetadata')\n\
         sys.stdout.buffer.write(base64.b64decode(s.data['value']))\n\
         print()\n\
         print(s.metadata.labels['app'], s.metadata.labels['managed-by'], s.type)",
        &[name],
    ));
    assert_eq!(
        out,
        format!("{value}\nopenmetadata openmetadata-secrets-manager Opaque\n")
    );

    // Written by the client as OpenMetadata's server writes it (data `value`,
    // its labels), then changed by the client with stringData.
    let theirs = "openmetadata-bot-ingestion-bot-config-jwttoken";
    ok(&k8s.python(
        "meta = client.V1ObjectMeta(name=sys.argv[1], labels={'app': 'openmetadata', 'team': 'data'})\n\
         api.create_namespaced_secret('openmetadata', client.V1Secret(metadata=meta, data={'value': base64.b64encode(b'eyJ-first').decode()}))",
        &[theirs],
    ));
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-first")
    );
    ok(&k8s.python(
        "s = api.read_namespaced_secret(sys.argv[1], 'openmetadata')\n\
         s.data = None\n\
         s.string_data = {'value': 'eyJ-second'}\n\
         api.replace_namespaced_secret(sys.argv[1], 'openmetadata', s)",
        &[theirs],
    ));
    assert_eq!(
        text(p.get(theirs).await.unwrap()).as_deref(),
        Some("eyJ-second")
    );
    // The broker's update keeps the labels another client set.
    assert_eq!(
        p.put(theirs, &val("eyJ-third"), &PutOptions::default())
            .await
            .unwrap(),
        PutOutcome::Updated
    );
    let out = ok(&k8s.python(
        "s = api.read_namespaced_secret(sys.argv[1], 'openmetadata')\n\
         print(base64.b64decode(s.data['value']).decode(), s.metadata.labels['team'])",
        &[theirs],
    ));
    assert_eq!(out.trim(), "eyJ-third data");
    // Deleted by the client: gone for the broker.
    ok(&k8s.python(
        "api.delete_namespaced_secret(sys.argv[1], 'openmetadata')",
        &[theirs],
    ));
    assert_eq!(p.get(theirs).await.unwrap().map(|_| ()), None);
    assert!(!p.delete(theirs).await.unwrap());
    // Another namespace is another store.
    let other = k8s.provider("default").await;
    assert!(other.get(name).await.unwrap().is_none());
}

/// The ids OpenMetadata's Kubernetes secrets manager builds are the object
/// names the broker writes: a connection stored through the broker's
/// OpenMetadata manager is found by the client under OpenMetadata's name.
#[tokio::test]
async fn openmetadata_ids_are_the_object_names() {
    let k8s = K8s::start();
    let p = k8s.provider("default").await;
    let db = common::TempDb::sqlite();
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/om-schemas");
    let ids = IdBuilder::with_style(None, "openmetadata", IdStyle::Kubernetes).unwrap();
    let m = SecretsManager::new(p.clone(), &schemas, ids, common::owners(&db).await).unwrap();
    let config = json!({"type": "Mysql", "username": "u", "hostPort": "h:3306",
        "authType": {"password": "canary-k8s-om-ids"}});
    let stored = m
        .encrypt_connection("database", "MySQL_Prod", config)
        .await
        .unwrap();
    let name = "openmetadata-database-mysql-prod-authtype-password";
    assert_eq!(stored["authType"]["password"], format!("secret:{name}"));
    let out = ok(&k8s.python(
        "s = api.read_namespaced_secret(sys.argv[1], 'default')\n\
         print(base64.b64decode(s.data['value']).decode())",
        &[name],
    ));
    assert_eq!(out.trim(), "canary-k8s-om-ids");
    let back = m.decrypt_connection("database", stored).await.unwrap();
    assert_eq!(back["authType"]["password"], "canary-k8s-om-ids");
}

#[tokio::test]
async fn listing_pages_through_continue_tokens_and_only_openmetadata_labels() {
    let k8s = K8s::start();
    // More objects than one list request asks for; one without the label.
    ok(&k8s.python(
        "for i in range(310):\n\
         \x20   meta = client.V1ObjectMeta(name=f'om-many-{i:04d}', labels={'app': 'openmetadata'})\n\
         \x20   api.create_namespaced_secret('default', client.V1Secret(metadata=meta, string_data={'value': str(i)}))\n\
         api.create_namespaced_secret('default', client.V1Secret(metadata=client.V1ObjectMeta(name='om-many-unlabelled'), string_data={'value': 'x'}))",
        &[],
    ));
    let p = k8s.provider("default").await;
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = p.list("om-many-", cursor.as_deref(), 70).await.unwrap();
        assert!(page.ids.len() <= 70);
        listed.extend(page.ids);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..310).map(|i| format!("om-many-{i:04}")).collect();
    assert_eq!(listed, want);
    assert!(p.list("om-other-", None, 10).await.unwrap().ids.is_empty());
}

#[tokio::test]
async fn faults_behave_as_on_a_cluster_and_keep_the_previous_value() {
    let k8s = K8s::start();
    let p = k8s.provider("default").await;
    let id = "openmetadata-database-faults-password";
    p.put(id, &val("v1"), &PutOptions::default()).await.unwrap();

    // A change between the broker's read and its write: a conflict, nothing lost.
    k8s.fault(Some("PUT"), None, 409, 1, None);
    let err = p
        .put(id, &val("v2"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Conflict(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));

    // Throttled: unavailable, naming when to retry.
    k8s.fault(Some("GET"), None, 429, 1, Some(3));
    let err = p.get(id).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("retry after 3 s")),
        "{err}"
    );
    assert!(err.is_retryable());
    // A server error on the write: unavailable, the previous value readable.
    k8s.fault(Some("PUT"), None, 503, 1, None);
    let err = p
        .put(id, &val("v3"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("v1"));

    // The token rotated away: access denied, naming the token; once the grant
    // holds a token the server accepts, reads work again.
    k8s.set_tokens(&["rotated-token"]);
    let err = p.get(id).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("token was refused")),
        "{err}"
    );
    let renewed = k8s
        .provider_with(k8s.http("rotated-token"), "default")
        .await;
    assert_eq!(text(renewed.get(id).await.unwrap()).as_deref(), Some("v1"));
    // A token read from a file (the projected service account token the
    // kubelet rotates) is read again when the file changes: no restart.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "rotated-token\n").unwrap();
    let mut http = k8s.http("unused");
    http.credentials.clear();
    let from_file = k8s
        .provider_with(http.credential_file("token", &file).unwrap(), "default")
        .await;
    assert_eq!(
        text(from_file.get(id).await.unwrap()).as_deref(),
        Some("v1")
    );
    k8s.set_tokens(&["rotated-again-token"]);
    std::fs::write(&file, "rotated-again-token\n").unwrap();
    assert_eq!(
        text(from_file.get(id).await.unwrap()).as_deref(),
        Some("v1")
    );
    // A name Kubernetes refuses is refused before any request.
    for bad in ["-leading-dash", "trailing-dash-"] {
        let err = renewed
            .put(bad, &val("x"), &PutOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::InvalidId(_)), "{bad}: {err}");
    }
    // A doubled `-` is a valid object name.
    from_file
        .put("doubled--dash", &val("x"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        text(from_file.get("doubled--dash").await.unwrap()).as_deref(),
        Some("x")
    );
    let err = renewed
        .put("Upper-Case", &val("x"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidId(_)), "{err}");
}
