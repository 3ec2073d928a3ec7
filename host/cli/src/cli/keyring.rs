//! `secret-broker keyring rotate`: add a master key and re-seal every stored value
//! under it, online, with a progress bar. Resumable: progress is saved in the data
//! dir and a second run continues where the first stopped. Old keys stay in the
//! key file, so values not yet re-sealed stay readable throughout.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use secret_broker::audit::{AuditLog, Durability, Entry, Outcome};

use secret_broker_deploy::Deployment;

/// Appends one entry of the rotation to the audit log.
async fn audit(
    log: &AuditLog,
    provider: &str,
    operation: &str,
    outcome: Outcome,
    ids: &[&str],
    durability: Durability,
) -> anyhow::Result<()> {
    let caller = secret_broker_deploy::cli_caller();
    let entry = Entry {
        ids: log.hmac_ids(ids),
        error: (outcome == Outcome::Error).then_some("rotation"),
        ..Entry::new(
            &caller.name,
            Some(caller.role),
            operation,
            provider,
            outcome,
        )
    };
    log.write(&entry, durability)
        .await
        .context("writing the rotation's audit entry; nothing more was changed")
}

/// The `keyring` subcommands.
#[derive(clap::Subcommand)]
pub enum KeyringCommand {
    /// Add a new master key and re-seal every value under it.
    Rotate,
}

/// Saved between runs so a rotation interrupted at any point resumes.
#[derive(Serialize, Deserialize)]
struct RotationState {
    target_version: u32,
    /// Every id up to and including this one is re-sealed.
    done_through: Option<String>,
}

fn load_state(path: &Path) -> anyhow::Result<Option<RotationState>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_state(path: &Path, state: &RotationState) -> anyhow::Result<()> {
    secret_broker_runtime::fs::replace_private(path, &serde_json::to_vec(state)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs a `keyring` subcommand.
pub async fn run(ctx: &Deployment, cmd: KeyringCommand) -> anyhow::Result<ExitCode> {
    let KeyringCommand::Rotate = cmd;
    let log = ctx.audit()?;
    let label = ctx.settings_label();
    audit(
        &log,
        &label,
        "keyring.rotate",
        Outcome::Attempt,
        &[],
        Durability::Synced,
    )
    .await?;
    let result = rotate(ctx, &log, &label).await;
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Error
    };
    audit(
        &log,
        &label,
        "keyring.rotate",
        outcome,
        &[],
        Durability::Synced,
    )
    .await?;
    result
}

async fn rotate(ctx: &Deployment, log: &AuditLog, label: &str) -> anyhow::Result<ExitCode> {
    let state_path = ctx.data_dir().join("rotation.json");
    let keyring = ctx.keyring()?;
    let target_version = match load_state(&state_path)? {
        Some(state) if keyring.versions().contains(&state.target_version) => {
            eprintln!(
                "resuming the rotation to key version {}",
                state.target_version
            );
            state.target_version
        }
        _ if ctx.master_key_from_env() => {
            let version = keyring.current_version();
            eprintln!(
                "SECRET_BROKER_MASTER_KEY holds the keys: re-sealing under its newest, version {version} \
                 (add a new `VERSION:KEY` entry there first to rotate to a new key)"
            );
            version
        }
        _ => {
            let next = keyring.add_key_to_file(&ctx.key_file())?;
            // The grants below share this process's keyring: give it the new key.
            keyring.reload_file(&ctx.key_file())?;
            eprintln!(
                "added master key version {} to {}",
                next.current_version(),
                ctx.key_file().display()
            );
            next.current_version()
        }
    };
    let mut state = load_state(&state_path)?
        .filter(|s| s.target_version == target_version)
        .unwrap_or(RotationState {
            target_version,
            done_through: None,
        });
    save_state(&state_path, &state)?;

    let runtime = ctx.runtime()?;
    let provider = ctx.provider(&runtime).await?;
    let ids = secret_broker_runtime::paging::collect_all(|cursor| {
        let provider = &provider;
        async move { provider.list("", cursor.as_deref(), 1000).await }
    })
    .await?;
    let todo: Vec<&String> = ids
        .iter()
        .filter(|id| state.done_through.as_ref().is_none_or(|d| *id > d))
        .collect();
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} re-sealing [{bar:40}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut rewritten, mut current) = (0usize, 0usize);
    for (i, id) in todo.iter().enumerate() {
        audit(
            log,
            label,
            "keyring.reseal",
            Outcome::Attempt,
            &[id.as_str()],
            Durability::Written,
        )
        .await?;
        let resealed = provider.reseal(id).await;
        let outcome = if resealed.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        };
        audit(
            log,
            label,
            "keyring.reseal",
            outcome,
            &[id.as_str()],
            Durability::Written,
        )
        .await?;
        if resealed.with_context(|| format!("re-sealing {id}"))? {
            rewritten += 1;
        } else {
            current += 1;
        }
        bar.inc(1);
        if i % 100 == 99 || i + 1 == todo.len() {
            state.done_through = Some((*id).clone());
            save_state(&state_path, &state)?;
        }
    }
    bar.finish_and_clear();
    // The AWS access keys' secrets are sealed by the same keyring.
    let creds = secret_broker_deploy::credentials::Credentials::new(ctx.record_store().await?);
    creds
        .import_files(&ctx.tokens_file(), &ctx.aws_keys_file())
        .await?;
    let keys_resealed = creds
        .reseal(|sealed, aad| {
            if secret_broker_keyring::Keyring::sealed_version(sealed) == Some(target_version) {
                return Ok(None);
            }
            let plain = keyring.open(sealed, aad)?;
            Ok(Some(keyring.seal(&plain, aad)))
        })
        .await?;
    if keys_resealed > 0 {
        eprintln!("re-sealed {keys_resealed} AWS access key secret(s)");
    }
    std::fs::remove_file(&state_path)
        .with_context(|| format!("removing {}", state_path.display()))?;
    eprintln!(
        "rotation to key version {target_version} complete: {rewritten} re-sealed, {current} already current, \
         {} skipped as done by an earlier run; older key versions stay in the key file",
        ids.len() - todo.len()
    );
    Ok(ExitCode::SUCCESS)
}
