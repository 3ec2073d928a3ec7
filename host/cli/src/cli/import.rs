//! `secret-broker import fernet`: move OpenMetadata database-mode values
//! (`fernet:<token>`) into the configured provider. Reads JSON lines
//! `{"id": "/openmetadata/...", "value": "fernet:gAAAA..."}` from stdin; the key
//! list comes from `FERNET_KEY`. Shows progress; reports failures by id, never by
//! value; idempotent, so an interrupted import is simply run again.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use secret_broker::PutOptions;
use secret_broker::broker::Written;
use secret_broker::fernet_import::FernetKeys;

use secret_broker_deploy::Deployment;

/// The `import` subcommands.
#[derive(clap::Subcommand)]
pub enum ImportCommand {
    /// Import `fernet:<token>` values given as JSON lines on stdin.
    Fernet {
        /// The environment variable holding the Fernet key list.
        #[arg(long, default_value = "FERNET_KEY")]
        key_env: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    value: String,
}

/// Runs an `import` subcommand.
pub async fn run(ctx: &Deployment, cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Fernet { key_env } = cmd;
    let spec = std::env::var(&key_env).with_context(|| {
        format!("{key_env} is not set: export the Fernet key OpenMetadata used")
    })?;
    let keys = FernetKeys::parse(&spec).with_context(|| format!("in {key_env}"))?;
    if keys.uses_default_key {
        tracing::warn!(
            "{key_env} includes OpenMetadata's published default key: anyone could decrypt these values; \
             rotate any credential that was stored with it"
        );
    }
    let mut entries = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        // serde_json's message names the position, never the content.
        let entry: Entry = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "line {}: expected {{\"id\": ..., \"value\": \"fernet:...\"}}: {e}",
                n + 1
            )
        })?;
        entries.push(entry);
    }
    let runtime = ctx.runtime()?;
    let provider = ctx.provider(&runtime).await?;
    let broker = ctx.broker(provider, None)?;
    let caller = secret_broker_deploy::cli_caller();
    let bar = ProgressBar::new(entries.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut created, mut updated, mut unchanged, mut failed) = (0, 0, 0, Vec::new());
    for entry in entries {
        let result = match keys.decrypt(&entry.value) {
            Ok(value) => broker
                .put(&caller, &entry.id, &value, &PutOptions::default())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(Written::Created) => created += 1,
            Ok(Written::Updated) => updated += 1,
            Ok(Written::Unchanged) => unchanged += 1,
            Err(e) => failed.push(format!("{}: {e}", entry.id)),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "imported: {created} created, {updated} updated, {unchanged} unchanged, {} failed",
        failed.len()
    );
    for f in &failed {
        eprintln!("  failed {f}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
