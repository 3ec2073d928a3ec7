//! The `openbao` provider on a real OpenBao server, through the `http`
//! capability: conformance with token and AppRole auth, hvac reading what the
//! broker wrote and back, a revoked token, a sealed server, and the grant's
//! refusals (origin, cross-origin redirect, a name resolving to a refused address,
//! an oversized or slow answer), each before any byte reaches the refused place.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{OtherClient, ran, text, val};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::bao::Bao;
use secret_broker::{ProviderError, PutOptions, SecretValue};
use secret_broker_http::HttpSettings;
use secret_broker_runtime::conformance;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn conformance_with_a_token() {
    let bao = Bao::start();
    let token = bao.kv_token().await;
    let hvac = OtherClient(|id: &str, value: &[u8]| {
        ran(bao.hvac(
            "client.secrets.kv.v2.create_or_update_secret(path=sys.argv[1].lstrip('/'), mount_point='secret', secret={'value': sys.argv[2]})",
            &[id, std::str::from_utf8(value).unwrap()],
        ))
    });
    let report = conformance::run_with(bao.provider(&token).await, Some(&hvac)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
}

#[tokio::test]
async fn conformance_with_approle_renewing_and_logging_in_again() {
    let bao = Bao::start();
    // Tokens that live 3 s: the suite outlives several, so the provider renews
    // and, once renewal is refused past the max, logs in again.
    let (role_id, secret_id) = bao.approle("3s").await;
    let p = bao
        .provider_with(
            bao.http("secret-id", &secret_id),
            &[("auth", "approle"), ("role-id", &role_id)],
        )
        .await;
    let report = conformance::run(p.clone()).await;
    assert!(report.ok(), "{report}");
    // Past the token's lifetime the provider still reads.
    p.put("/om/approle/x", &val("v1"), &PutOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        text(p.get("/om/approle/x").await.unwrap()).as_deref(),
        Some("v1")
    );
}

#[tokio::test]
async fn hvac_reads_what_the_broker_wrote_and_back() {
    let bao = Bao::start();
    let p = bao.provider(&bao.root.clone()).await;
    let value = "pässwörd \"quoted\" \n line";
    p.put(
        "/openmetadata/database/pg/password",
        &val(value),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let out = bao.hvac(
        "r = client.secrets.kv.v2.read_secret_version(path='openmetadata/database/pg/password', mount_point='secret', raise_on_deleted_version=True)\n\
         sys.stdout.buffer.write(r['data']['data']['value'].encode())",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), value);

    let out = bao.hvac(
        "client.secrets.kv.v2.create_or_update_secret(path='openmetadata/bot/ingestion/config/jwttoken', mount_point='secret', secret={'value': sys.argv[1]})",
        &["eyJ-from-hvac"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text(
            p.get("/openmetadata/bot/ingestion/config/jwttoken")
                .await
                .unwrap()
        )
        .as_deref(),
        Some("eyJ-from-hvac")
    );
    // A write by hvac after the broker's makes the broker's digest stale: the
    // same put is an update, never a wrong "unchanged".
    let out = bao.hvac(
        "client.secrets.kv.v2.create_or_update_secret(path='openmetadata/database/pg/password', mount_point='secret', secret={'value': 'changed'})",
        &[],
    );
    assert!(out.status.success());
    let outcome = p
        .put(
            "/openmetadata/database/pg/password",
            &val(value),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, secret_broker::PutOutcome::Updated);
    // Bytes that are not UTF-8 go base64 into `value_base64` and read back exactly.
    let bytes = SecretValue::new(vec![0xff, 0x00, 0xfe, b'k']);
    p.put("/openmetadata/binary", &bytes, &PutOptions::default())
        .await
        .unwrap();
    assert!(
        p.get("/openmetadata/binary")
            .await
            .unwrap()
            .unwrap()
            .ct_eq(&bytes)
    );
    let out = bao.hvac(
        "r = client.secrets.kv.v2.read_secret_version(path='openmetadata/binary', mount_point='secret', raise_on_deleted_version=True)\n\
         print(r['data']['data']['value_base64'])",
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/wD+aw==");
}

#[tokio::test]
async fn a_revoked_token_is_access_denied() {
    let bao = Bao::start();
    let token = bao.kv_token().await;
    let p = bao.provider(&token).await;
    p.put("/om/revoked/a", &val("v"), &PutOptions::default())
        .await
        .unwrap();
    let (status, body) = bao
        .api("POST", "auth/token/revoke", Some(json!({ "token": token })))
        .await;
    assert!(status < 300, "{body}");
    let err = p.get("/om/revoked/a").await.unwrap_err();
    assert!(matches!(err, ProviderError::AccessDenied(_)), "{err}");
    // The token never shows in what the provider says.
    assert!(!err.to_string().contains(&token));
}

#[tokio::test]
async fn a_sealed_server_is_unavailable_and_the_value_survives() {
    let bao = Bao::start();
    let p = bao.provider(&bao.root.clone()).await;
    p.put("/om/sealed/a", &val("before"), &PutOptions::default())
        .await
        .unwrap();
    let (status, body) = bao.api("PUT", "sys/seal", None).await;
    assert!(status < 300, "{body}");
    let err = p.get("/om/sealed/a").await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    let err = p
        .put("/om/sealed/a", &val("during"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    let (status, body) = bao
        .api("PUT", "sys/unseal", Some(json!({ "key": bao.unseal_key })))
        .await;
    assert!(status < 300, "{body}");
    assert_eq!(
        text(p.get("/om/sealed/a").await.unwrap()).as_deref(),
        Some("before")
    );
}

#[tokio::test]
async fn soft_delete_keeps_versions_and_hard_delete_removes_them() {
    let bao = Bao::start();
    let soft = bao
        .provider_with(bao.http("token", &bao.root), &[("soft-delete", "true")])
        .await;
    soft.put("/om/del/soft", &val("v"), &PutOptions::default())
        .await
        .unwrap();
    assert!(soft.delete("/om/del/soft").await.unwrap());
    assert!(soft.get("/om/del/soft").await.unwrap().is_none());
    assert!(!soft.delete("/om/del/soft").await.unwrap());
    let (status, body) = bao.api("GET", "secret/metadata/om/del/soft", None).await;
    assert_eq!(status, 200, "soft delete keeps the metadata: {body}");

    let hard = bao.provider(&bao.root.clone()).await;
    hard.put("/om/del/hard", &val("v"), &PutOptions::default())
        .await
        .unwrap();
    assert!(hard.delete("/om/del/hard").await.unwrap());
    let (status, _) = bao.api("GET", "secret/metadata/om/del/hard", None).await;
    assert_eq!(status, 404);
}

/// A grant allowing only `origin`, with a test token; loopback only if `private`.
fn grant_for(origin: &str, private: bool) -> HttpSettings {
    let mut http = HttpSettings::new(&[origin])
        .unwrap()
        .credential("token", val("test-token-7c2e91"))
        .unwrap();
    http.allow_private = private;
    http
}

/// A loopback listener that counts connections and answers each with `answer`.
async fn listener(answer: Option<Vec<u8>>) -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let _ = s.read(&mut buf).await;
                match answer {
                    Some(a) => {
                        let _ = s.write_all(&a).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn refused_origins_redirects_and_addresses_send_nothing() {
    let bao = Bao::start();
    let (watch, seen) = listener(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    ))
    .await;

    // An origin the grant does not list: named, with the setting to change.
    let p = bao
        .provider_with(
            bao.http("token", &bao.root),
            &[("address", &format!("http://127.0.0.1:{watch}"))],
        )
        .await;
    let err = p.get("/om/x").await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("http://127.0.0.1:{watch}")) && err.contains("origins"),
        "{err}"
    );

    // A redirect from a granted origin to another one.
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{watch}/v1/secret/data/om/x\r\nContent-Length: 0\r\n\r\n"
    );
    let (redirector, _) = listener(Some(redirect.into_bytes())).await;
    let origin = format!("http://127.0.0.1:{redirector}");
    let http = grant_for(&origin, true);
    let p = bao.provider_with(http, &[("address", &origin)]).await;
    let err = p.get("/om/x").await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("redirect")),
        "{err}"
    );

    // A name resolving to loopback, and an address literal, without `allow_private`.
    for origin in [
        format!("http://localhost:{watch}"),
        format!("http://127.0.0.1:{watch}"),
    ] {
        let p = bao
            .provider_with(grant_for(&origin, false), &[("address", &origin)])
            .await;
        let err = p.get("/om/x").await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::AccessDenied(m) if m.contains("allow_private")),
            "{origin}: {err}"
        );
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a refused place got a connection"
    );
}

#[tokio::test]
async fn an_oversized_or_slow_answer_fails_clearly() {
    let bao = Bao::start();
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 3_000_000));
    let (port, _) = listener(Some(big)).await;
    let origin = format!("http://127.0.0.1:{port}");
    let http = grant_for(&origin, true);
    let p = bao.provider_with(http, &[("address", &origin)]).await;
    let err = p.get("/om/x").await.unwrap_err().to_string();
    assert!(err.contains("max_response_kib"), "{err}");

    let (port, _) = listener(None).await;
    let origin = format!("http://127.0.0.1:{port}");
    let mut http = grant_for(&origin, true);
    http.timeout = Duration::from_millis(300);
    let p = bao.provider_with(http, &[("address", &origin)]).await;
    let err = p.get("/om/x").await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("timeout_ms")),
        "{err}"
    );
}

#[tokio::test]
async fn tls_trusts_the_grants_ca_file_and_says_what_to_add_without_it() {
    let bao = Bao::start_with(true);
    let id = "/om/tls/a";
    // Without the server's CA: a TLS error naming the setting, nothing stored.
    let p = bao.provider(&bao.root.clone()).await;
    let err = p
        .put(id, &val("over-tls"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("TLS") && m.contains("ca_file")),
        "{err}"
    );
    // With it, over https.
    let mut http = bao.http("token", &bao.root);
    http.ca_file = bao.ca_file.clone();
    let p = bao.provider_with(http, &[]).await;
    p.put(id, &val("over-tls"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(text(p.get(id).await.unwrap()).as_deref(), Some("over-tls"));
}

#[tokio::test]
async fn a_credential_bound_to_one_origin_is_never_sent_to_another() {
    let bao = Bao::start();
    let (watch, seen) = listener(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    ))
    .await;
    let other = format!("http://127.0.0.1:{watch}");
    // Both origins granted; the token bound to OpenBao's alone.
    let mut http = HttpSettings::new(&[bao.addr.as_str(), other.as_str()])
        .unwrap()
        .credential("token", val(&bao.root))
        .unwrap()
        .bind_credential("token", &[bao.addr.as_str()])
        .unwrap();
    http.allow_private = true;
    let p = bao
        .provider_with(http.clone(), &[("address", &other)])
        .await;
    let err = p.get("/om/bound").await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("token") && m.contains(&other)),
        "{err}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the other origin got a connection"
    );
    // To its own origin it goes as before.
    let p = bao.provider_with(http, &[]).await;
    p.put("/om/bound", &val("v"), &PutOptions::default())
        .await
        .unwrap();
    // A binding to an origin the grant lacks is refused when configured.
    assert!(
        HttpSettings::new(&[bao.addr.as_str()])
            .unwrap()
            .bind_credential("token", &[other.as_str()])
            .is_err()
    );
}
