//! AWS providers against moto: get and put latency through each provider (host →
//! Wasm → capability → SDK) against the same calls made directly with the AWS SDK
//! for Rust on the same moto server, in one run. Needs `moto_server` on PATH
//! (`tests/setup` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use criterion::{Criterion, criterion_group, criterion_main};
use secret_broker::{Granted, ProviderHost, PutOptions, Runtime, RuntimeOptions, SecretValue};
use secret_broker_aws::{AwsGrantBase, AwsSettings};
use secret_broker_builtin as builtin;

const ID: &str = "/openmetadata/database/mysql_prod/password";

fn settings(url: &str) -> AwsSettings {
    let mut s = AwsSettings::new("/");
    s.region = Some("us-east-1".into());
    s.access_key_id = Some("testing".into());
    s.secret_access_key = Some(SecretValue::from_string("testing".into()));
    s.endpoint = Some(url.to_owned());
    s.writes_per_second = 100_000;
    s
}

fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "bench",
            )),
        )
        .build()
}

fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let moto = common::moto();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let values = [
        SecretValue::from_string("value-one".into()),
        SecretValue::from_string("value-two".into()),
    ];
    let mut group = c.benchmark_group("aws");

    // Secrets Manager.
    let sm = tokio.block_on(async {
        let component = runtime
            .load_bytes("sm", builtin::AWS_SECRETS_MANAGER)
            .unwrap();
        let mut granted = Granted::new("bench-sm");
        granted.grant(secret_broker_aws::SecretsManagerCtx::new(
            AwsGrantBase::new(&settings(&moto.1)).await.unwrap(),
        ));
        let p = ProviderHost::new(&runtime, &component, granted)
            .await
            .unwrap();
        p.put(ID, &values[0], &PutOptions::default()).await.unwrap();
        p
    });
    let sm_native = aws_sdk_secretsmanager::Client::new(&sdk_config(&moto.1));
    group.bench_function("sm_get_provider", |b| {
        b.iter(|| tokio.block_on(sm.get(ID)).unwrap().unwrap())
    });
    group.bench_function("sm_get_native", |b| {
        b.iter(|| {
            tokio
                .block_on(sm_native.get_secret_value().secret_id(ID).send())
                .unwrap()
                .secret_string
                .unwrap()
        })
    });
    let mut n = 0usize;
    group.bench_function("sm_put_provider", |b| {
        b.iter(|| {
            n += 1;
            tokio
                .block_on(sm.put(ID, &values[n % 2], &PutOptions::default()))
                .unwrap()
        })
    });
    group.bench_function("sm_put_native", |b| {
        b.iter(|| {
            n += 1;
            let text = values[n % 2].expose_str().unwrap();
            tokio.block_on(async {
                // The provider's put: read the current value, then UpdateSecret.
                let current = sm_native
                    .get_secret_value()
                    .secret_id(ID)
                    .send()
                    .await
                    .unwrap();
                assert_ne!(current.secret_string.as_deref(), Some(text));
                sm_native
                    .update_secret()
                    .secret_id(ID)
                    .secret_string(text)
                    .send()
                    .await
                    .unwrap()
            })
        })
    });

    // SSM Parameter Store.
    let ssm = tokio.block_on(async {
        let component = runtime.load_bytes("ssm", builtin::AWS_SSM).unwrap();
        let mut granted = Granted::new("bench-ssm");
        granted.grant(secret_broker_aws::SsmCtx::new(
            AwsGrantBase::new(&settings(&moto.1)).await.unwrap(),
        ));
        let p = ProviderHost::new(&runtime, &component, granted)
            .await
            .unwrap();
        p.put(ID, &values[0], &PutOptions::default()).await.unwrap();
        p
    });
    let ssm_native = aws_sdk_ssm::Client::new(&sdk_config(&moto.1));
    group.bench_function("ssm_get_provider", |b| {
        b.iter(|| tokio.block_on(ssm.get(ID)).unwrap().unwrap())
    });
    group.bench_function("ssm_get_native", |b| {
        b.iter(|| {
            tokio
                .block_on(
                    ssm_native
                        .get_parameter()
                        .name(ID)
                        .with_decryption(true)
                        .send(),
                )
                .unwrap()
                .parameter
                .unwrap()
        })
    });
    group.bench_function("ssm_put_provider", |b| {
        b.iter(|| {
            n += 1;
            tokio
                .block_on(ssm.put(ID, &values[n % 2], &PutOptions::default()))
                .unwrap()
        })
    });
    group.bench_function("ssm_put_native", |b| {
        b.iter(|| {
            n += 1;
            let text = values[n % 2].expose_str().unwrap();
            tokio.block_on(async {
                // The provider's put of an existing name: read, Overwrite=false
                // (fails: exists), then Overwrite=true.
                ssm_native
                    .get_parameter()
                    .name(ID)
                    .with_decryption(true)
                    .send()
                    .await
                    .unwrap();
                let first = ssm_native
                    .put_parameter()
                    .name(ID)
                    .value(text)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .overwrite(false)
                    .send()
                    .await;
                assert!(first.is_err());
                ssm_native
                    .put_parameter()
                    .name(ID)
                    .value(text)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .overwrite(true)
                    .send()
                    .await
                    .unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
