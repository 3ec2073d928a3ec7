//! An embedder's second page: a whole broker from settings, in one call each,
//! with `secret-broker-deploy` (the library the `secret-broker` binary is a thin
//! layer over). The settings are the TOML a deployment's file would hold; the
//! environment (`SECRET_MANAGER`, `OM_SM_*`, `SECRET_BROKER_*`) is overlaid as
//! the binary overlays it.
//!
//! 1. [`Deployment::open_broker`]: the configured provider with its grants, the
//!    role table and the audit log; put and read back a value as an admin;
//! 2. [`Deployment::server`]: the HTTP server with its tokens (an admin token is
//!    created when there is none), bound to a free loopback port; ask it for a
//!    value over HTTP, then shut it down.
//!
//! ```text
//! cargo run -p secret-broker-runtime --example from_settings -- /tmp/broker-data
//! ```

use std::path::Path;
use std::time::Duration;

use secret_broker::broker::Caller;
use secret_broker::policy::Role;
use secret_broker_deploy::server::{Listen, ServeOptions};
use secret_broker_deploy::{Deployment, Settings};
use secret_broker_runtime::{PutOptions, SecretValue};

/// The configuration: the `db` provider on SQLite in the data dir.
const CONFIG: &str = r#"
[provider]
component = "builtin:db"
grants = ["keyring", "record-store"]

[policy]
admin = { reveal = true, write = true }
"#;

/// Builds a broker and a server from [`CONFIG`] in `data_dir`; returns the value
/// read back through the broker and the body the server answered with.
pub async fn run(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let deployment = Deployment::new(Settings::from_toml(CONFIG, Some(data_dir))?);
    let admin = Caller {
        name: "example".into(),
        role: Role::Admin,
    };
    let broker = deployment.open_broker().await?;
    let id = "/openmetadata/database/example/password";
    let value = SecretValue::from_string("s3cr3t-from-settings".into());
    broker
        .put(&admin, id, &value, &PutOptions::default())
        .await?;
    let read = broker
        .get(&admin, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} was not found after the put"))?;
    let read = String::from_utf8(read.expose().to_vec())?;

    let server = deployment
        .server(ServeOptions {
            listen: Listen::Tcp(([127, 0, 0, 1], 0).into()),
            ..ServeOptions::default()
        })
        .await?;
    let base = server.address()?;
    let token_file = server
        .created_admin_token()
        .ok_or_else(|| anyhow::anyhow!("the server made no admin token"))?
        .to_path_buf();
    let token = std::fs::read_to_string(token_file)?.trim().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    // The example's own client (reqwest on rustls) needs the process's crypto
    // provider; the broker configures its own clients explicitly.
    secret_broker_http::ensure_crypto_provider();
    let body = tokio::time::timeout(Duration::from_secs(30), async {
        reqwest::Client::new()
            .post(format!("{base}/v1/secrets/get"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "id": id }))
            .send()
            .await?
            .text()
            .await
    })
    .await??;
    let _ = stop.send(());
    serving.await?;
    Ok((read, body))
}

#[allow(dead_code, reason = "the tests include this file and call `run` only")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args().nth(1) else {
        anyhow::bail!("usage: from_settings DATA_DIR");
    };
    let (read, body) = run(Path::new(&dir)).await?;
    println!("read back through the broker: {} bytes", read.len());
    println!("the server answered: {} bytes", body.len());
    Ok(())
}
