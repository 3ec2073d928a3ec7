//! The AWS providers against moto: the conformance suite, boto3 reading what the
//! broker wrote (and the reverse) at OpenMetadata's ids, scope and bad input
//! refused before any request, and a fault-injecting proxy for outages, timeouts,
//! 5xx and throttling.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::val;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::moto::Moto;
use common::{OtherClient, aws_provider, ran, runtime};
use secret_broker::{ProviderError, PutOptions, PutOutcome, SecretValue, conformance};
use secret_broker_aws::AwsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SM: &str = "aws-secrets-manager";
const SSM: &str = "aws-ssm";

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

#[tokio::test]
async fn secrets_manager_passes_the_conformance_suite() {
    let moto = Moto::start();
    let p = aws_provider(&runtime(), SM, &moto.settings("/"))
        .await
        .unwrap();
    let boto3 = OtherClient(|id: &str, value: &[u8]| {
        ran(moto.boto3(
            "sm.put_secret_value(SecretId=sys.argv[1], SecretString=sys.argv[2])",
            &[id, std::str::from_utf8(value).unwrap()],
        ))
    });
    let report = conformance::run_with(p, Some(&boto3)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
}

#[tokio::test]
async fn ssm_passes_the_conformance_suite() {
    let moto = Moto::start();
    let p = aws_provider(&runtime(), SSM, &moto.settings("/"))
        .await
        .unwrap();
    let boto3 = OtherClient(|id: &str, value: &[u8]| {
        ran(moto.boto3(
            "ssm.put_parameter(Name=sys.argv[1], Value=sys.argv[2], Type='SecureString', Overwrite=True)",
            &[id, std::str::from_utf8(value).unwrap()],
        ))
    });
    let report = conformance::run_with(p, Some(&boto3)).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 17, "{report}");
}

#[tokio::test]
async fn boto3_reads_what_the_broker_wrote_to_secrets_manager_and_back() {
    let moto = Moto::start();
    let p = aws_provider(&runtime(), SM, &moto.settings("/openmetadata/"))
        .await
        .unwrap();
    let id = "/openmetadata/database/mysql_prod/password";
    let options = PutOptions {
        description: Some("mysql_prod password".into()),
        tags: vec![("team".into(), "data".into())],
    };
    assert_eq!(
        p.put(id, &val("first-pw"), &options).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        p.put(id, &val("second-pw"), &options).await.unwrap(),
        PutOutcome::Updated
    );
    let read = moto.boto3(
        "d = sm.describe_secret(SecretId=sys.argv[1])\n\
         print(sm.get_secret_value(SecretId=sys.argv[1])['SecretString'], d['Description'], d['Tags'][0]['Key'])",
        &[id],
    );
    assert_eq!(stdout(&read), "second-pw mysql_prod password team");

    let other = "/openmetadata/bot/ingestion-bot/config/jwttoken";
    stdout(&moto.boto3(
        "sm.create_secret(Name=sys.argv[1], SecretString='jwt-from-python')",
        &[other],
    ));
    assert_eq!(
        p.get(other).await.unwrap().unwrap().expose_str(),
        Some("jwt-from-python")
    );
    assert!(p.delete(other).await.unwrap());
    let gone = moto.boto3(
        "try:\n    sm.get_secret_value(SecretId=sys.argv[1]); print('present')\nexcept sm.exceptions.ResourceNotFoundException:\n    print('gone')",
        &[other],
    );
    assert_eq!(
        stdout(&gone),
        "gone",
        "ForceDeleteWithoutRecovery leaves nothing behind"
    );
}

#[tokio::test]
async fn boto3_reads_what_the_broker_wrote_to_ssm_and_back() {
    let moto = Moto::start();
    let p = aws_provider(&runtime(), SSM, &moto.settings("/openmetadata/"))
        .await
        .unwrap();
    let id = "/openmetadata/database/mysql_prod/password";
    let options = PutOptions {
        description: None,
        tags: vec![("team".into(), "data".into())],
    };
    assert_eq!(
        p.put(id, &val("first-pw"), &options).await.unwrap(),
        PutOutcome::Created
    );
    // The second put takes OpenMetadata's path: Overwrite=false fails, then
    // Overwrite=true without tags.
    assert_eq!(
        p.put(id, &val("second-pw"), &options).await.unwrap(),
        PutOutcome::Updated
    );
    let read = moto.boto3(
        "r = ssm.get_parameter(Name=sys.argv[1], WithDecryption=True)['Parameter']\n\
         t = ssm.list_tags_for_resource(ResourceType='Parameter', ResourceId=sys.argv[1])['TagList']\n\
         print(r['Value'], r['Type'], r['Version'], t[0]['Key'])",
        &[id],
    );
    assert_eq!(stdout(&read), "second-pw SecureString 2 team");

    let other =
        "/openmetadata/workflow/test-connection/request/connection/config/authtype/password";
    stdout(&moto.boto3(
        "ssm.put_parameter(Name=sys.argv[1], Value='pw-from-python', Type='SecureString')",
        &[other],
    ));
    assert_eq!(
        p.get(other).await.unwrap().unwrap().expose_str(),
        Some("pw-from-python")
    );
}

#[tokio::test]
async fn names_outside_the_prefix_are_refused_before_any_request() {
    // Nothing listens at this endpoint: any request would fail as unavailable.
    let mut settings = AwsSettings::new("/openmetadata/");
    settings.region = Some("us-east-1".into());
    settings.access_key_id = Some("testing".into());
    settings.secret_access_key = Some(val("testing"));
    settings.endpoint = Some(format!("http://127.0.0.1:{}", common::free_port()));
    for which in [SM, SSM] {
        let p = aws_provider(&runtime(), which, &settings).await.unwrap();
        let err = p
            .put("/elsewhere/x", &val("v"), &PutOptions::default())
            .await
            .expect_err("out of scope");
        assert!(
            matches!(err, ProviderError::AccessDenied(_)),
            "{which}: {err}"
        );
        assert!(
            err.to_string()
                .contains("outside this grant's prefix `/openmetadata/`: no request was sent"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn backend_limits_are_enforced_before_any_request() {
    let mut settings = AwsSettings::new("/");
    settings.region = Some("us-east-1".into());
    settings.access_key_id = Some("testing".into());
    settings.secret_access_key = Some(val("testing"));
    settings.endpoint = Some(format!("http://127.0.0.1:{}", common::free_port()));
    let rt = runtime();
    let sm = aws_provider(&rt, SM, &settings).await.unwrap();
    let ssm = aws_provider(&rt, SSM, &settings).await.unwrap();
    let big = SecretValue::new(vec![b'x'; 65_537]);
    let err = sm
        .put("/a/b", &big, &PutOptions::default())
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err,
            ProviderError::ValueTooLarge {
                size: 65_537,
                limit: 65_536
            }
        ),
        "{err}"
    );
    let err = ssm
        .put(
            "/a/b",
            &SecretValue::new(vec![b'x'; 4097]),
            &PutOptions::default(),
        )
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err,
            ProviderError::ValueTooLarge {
                size: 4097,
                limit: 4096
            }
        ),
        "{err}"
    );
    let err = sm
        .put("/a/b c", &val("v"), &PutOptions::default())
        .await
        .expect_err("bad char");
    assert!(
        err.to_string()
            .contains("outside the allowed characters [A-Za-z0-9/_+=.@-]"),
        "{err}"
    );
    let err = sm
        .put(
            &format!("/{}", "a".repeat(512)),
            &val("v"),
            &PutOptions::default(),
        )
        .await
        .expect_err("long");
    assert!(err.to_string().contains("over the limit of 512"), "{err}");
    let deep = format!("/{}", vec!["l"; 16].join("/"));
    let err = ssm
        .put(&deep, &val("v"), &PutOptions::default())
        .await
        .expect_err("deep");
    assert!(
        err.to_string().contains("16 levels, over the limit of 15"),
        "{err}"
    );
    let err = ssm
        .put("/aws/reserved", &val("v"), &PutOptions::default())
        .await
        .expect_err("reserved");
    assert!(
        err.to_string().contains("may not start with \"aws\""),
        "{err}"
    );
}

#[tokio::test]
async fn missing_region_or_half_credentials_are_named() {
    let mut settings = AwsSettings::new("/");
    settings.access_key_id = Some("testing".into());
    let err = secret_broker_aws::AwsGrantBase::new(&settings)
        .await
        .err()
        .expect("must fail");
    assert!(
        err.to_string()
            .contains("`accessKeyId` is set without `secretAccessKey`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_name_scheduled_for_deletion_says_so() {
    let moto = Moto::start();
    let p = aws_provider(&runtime(), SM, &moto.settings("/"))
        .await
        .unwrap();
    let id = "/openmetadata/database/doomed/password";
    stdout(&moto.boto3(
        "sm.create_secret(Name=sys.argv[1], SecretString='x')\nsm.delete_secret(SecretId=sys.argv[1], RecoveryWindowInDays=7)",
        &[id],
    ));
    let err = p
        .put(id, &val("new"), &PutOptions::default())
        .await
        .expect_err("scheduled for deletion");
    assert!(matches!(err, ProviderError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("scheduled for deletion"), "{err}");
}

/// A loopback HTTP server standing in for AWS that answers every request the same
/// way, counting them.
async fn fault_server(
    status: u16,
    error_type: &'static str,
    delay: Duration,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                let mut got = Vec::new();
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() < end + 4 + length {
                        continue;
                    }
                    got.drain(..end + 4 + length);
                    seen.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let body =
                        format!("{{\"__type\":\"{error_type}\",\"message\":\"injected fault\"}}");
                    let response = format!(
                        "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: {error_type}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, count)
}

fn fault_settings(endpoint: String) -> AwsSettings {
    let mut s = AwsSettings::new("/");
    s.region = Some("us-east-1".into());
    s.access_key_id = Some("testing".into());
    s.secret_access_key = Some(val("testing"));
    s.endpoint = Some(endpoint);
    s.max_attempts = 3;
    s.initial_backoff = Duration::from_millis(10);
    s.attempt_timeout = Duration::from_millis(500);
    s.operation_timeout = Duration::from_secs(3);
    s
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_within_bounds() {
    for (status, error_type) in [(500, "InternalServiceError"), (400, "ThrottlingException")] {
        let (url, count) = fault_server(status, error_type, Duration::ZERO).await;
        let p = aws_provider(&runtime(), SM, &fault_settings(url))
            .await
            .unwrap();
        let err = p.get("/openmetadata/x").await.expect_err("fault");
        assert!(
            matches!(err, ProviderError::Unavailable(_)),
            "{error_type}: {err}"
        );
        assert!(err.is_retryable());
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "{error_type}: attempts must stop at max_attempts"
        );
    }
}

#[tokio::test]
async fn a_slow_or_absent_endpoint_fails_clearly_and_keeps_the_previous_value() {
    let moto = Moto::start();
    let id = "/openmetadata/fault/pw";
    let good = aws_provider(&runtime(), SSM, &moto.settings("/"))
        .await
        .unwrap();
    good.put(id, &val("previous"), &PutOptions::default())
        .await
        .unwrap();
    let (slow, _) = fault_server(200, "none", Duration::from_secs(5)).await;
    let down = format!("http://127.0.0.1:{}", common::free_port());
    for endpoint in [slow, down] {
        let p = aws_provider(&runtime(), SSM, &fault_settings(endpoint.clone()))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let err = p
            .put(id, &val("never-written"), &PutOptions::default())
            .await
            .expect_err("fault");
        assert!(
            matches!(err, ProviderError::Unavailable(_)),
            "{endpoint}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded by the operation timeout"
        );
    }
    let read = moto.boto3(
        "print(ssm.get_parameter(Name=sys.argv[1], WithDecryption=True)['Parameter']['Value'])",
        &[id],
    );
    assert_eq!(stdout(&read), "previous");
}
