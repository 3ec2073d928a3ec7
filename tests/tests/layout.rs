//! The crate graph keeps its promises: an embedder of the runtime compiles no
//! HTTP server, CLI parser, database driver or AWS SDK, and each capability
//! crate's backends stay behind its features.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

/// The normal (non-dev, non-build) dependencies of `package` with `args`, one
/// crate name per line.
fn tree(package: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["-p", package])
        .args(args)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn has(deps: &[String], name: &str) -> bool {
    deps.iter()
        .any(|d| d == name || d.starts_with(&format!("{name}-")))
}

#[test]
fn the_runtime_knows_no_backend_server_or_cli() {
    let deps = tree("secret-broker-runtime", &[]);
    assert!(has(&deps, "wasmtime"), "{deps:?}");
    for banned in [
        "axum",
        "clap",
        "sqlx",
        "aws-config",
        "aws-sdk-secretsmanager",
        "aws-sdk-ssm",
        "reqwest",
        "rustls",
        "secret-broker-http",
        "secret-broker-builtin",
        "secret-broker-guest-build",
    ] {
        assert!(!has(&deps, banned), "the runtime depends on {banned}");
    }
}

#[test]
fn capability_backends_stay_behind_their_features() {
    let pg = tree(
        "secret-broker-record-store",
        &["--no-default-features", "--features", "postgres"],
    );
    assert!(has(&pg, "sqlx-postgres"));
    assert!(
        !has(&pg, "sqlx-sqlite") && !has(&pg, "sqlx-mysql"),
        "{pg:?}"
    );
    let ssm = tree(
        "secret-broker-aws",
        &["--no-default-features", "--features", "ssm"],
    );
    assert!(has(&ssm, "aws-sdk-ssm"));
    assert!(!has(&ssm, "aws-sdk-secretsmanager"), "{ssm:?}");
    let broker = tree("secret-broker", &[]);
    for banned in [
        "axum",
        "clap",
        "sqlx",
        "aws-config",
        "secret-broker-record-store",
    ] {
        assert!(
            !has(&broker, banned),
            "the broker library depends on {banned}"
        );
    }
    // The AWS APIs are a feature of the server: without it, no SigV4 and no
    // record store.
    let server = tree("secret-broker-server", &["--no-default-features"]);
    for banned in ["aws-sigv4", "secret-broker-record-store", "sqlx"] {
        assert!(
            !has(&server, banned),
            "the server without `aws-api` depends on {banned}"
        );
    }
    // The record store is a capability: it knows nothing of the broker (the
    // owner records on its table are kept by the deployment library).
    let store = tree("secret-broker-record-store", &[]);
    assert!(
        !store.iter().any(|d| d == "secret-broker"),
        "the record store depends on the broker: {store:?}"
    );
}
