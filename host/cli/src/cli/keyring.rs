//! `secret-broker keyring rotate`: add a key and re-seal every stored value under
//! it, online, with a progress bar. The key goes to the key file, or, when the
//! data keys live in the database (PostgreSQL, MariaDB, or a KMS key), to the
//! database, where every replica loads it before it seals anything (two
//! rotations at once add one version). Resumable: progress is saved in the data
//! dir or the database, and a second run continues where the first stopped. Old
//! keys stay, so values not yet re-sealed stay readable throughout.

use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use secret_broker::audit::{AuditLog, Durability, Entry, Outcome};

use secret_broker_deploy::Deployment;
use secret_broker_deploy::data_keys::{self, DataKeys, RotationProgress};

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

/// Where the progress of a rotation is kept between runs, so a rotation
/// interrupted at any point resumes: `rotation.json` in the data dir, or the
/// database when the data keys are there (any replica resumes it).
enum Progress {
    File(std::path::PathBuf),
    Stored(std::sync::Arc<DataKeys>),
}

impl Progress {
    async fn load(&self) -> anyhow::Result<Option<RotationProgress>> {
        match self {
            Progress::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(Some(
                    serde_json::from_str(&text)
                        .with_context(|| format!("reading {}", path.display()))?,
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
            },
            Progress::Stored(keys) => keys.rotation().await,
        }
    }

    async fn save(&self, state: &RotationProgress) -> anyhow::Result<()> {
        match self {
            Progress::File(path) => {
                secret_broker_runtime::fs::replace_private(path, &serde_json::to_vec(state)?)
                    .with_context(|| format!("writing {}", path.display()))
            }
            Progress::Stored(keys) => keys.save_rotation(state).await,
        }
    }

    async fn finish(&self) -> anyhow::Result<()> {
        match self {
            Progress::File(path) => {
                std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
            }
            Progress::Stored(keys) => keys.finish_rotation().await,
        }
    }
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
    let keyring = ctx.keyring().await?;
    let stored = ctx.data_keys().await?;
    let progress = match &stored {
        Some(keys) => Progress::Stored(keys.clone()),
        None => Progress::File(ctx.data_dir().join("rotation.json")),
    };
    let target_version = match &stored {
        Some(keys) => {
            let (version, added) = keys.begin_rotation().await?;
            if added {
                eprintln!(
                    "added data key version {version} to the database, wrapped by {}",
                    keys.kek().id()
                );
            } else {
                eprintln!("joining the rotation to data key version {version} under way");
            }
            if !keys.is_active(version).await? {
                // Every replica re-reads the keys every REFRESH: once they all
                // hold the new one, it may seal.
                eprintln!(
                    "waiting {} ms for every replica to load it",
                    data_keys::PROPAGATION.as_millis()
                );
                tokio::time::sleep(data_keys::PROPAGATION).await;
                keys.activate(version).await?;
            }
            keys.refresh(&keyring).await?;
            version
        }
        None => match progress.load().await? {
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
        },
    };
    let mut state = progress
        .load()
        .await?
        .filter(|s| s.target_version == target_version)
        .unwrap_or(RotationProgress {
            target_version,
            done_through: None,
        });
    progress.save(&state).await?;

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
            progress.save(&state).await?;
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
    progress.finish().await?;
    eprintln!(
        "rotation to key version {target_version} complete: {rewritten} re-sealed, {current} already current, \
         {} skipped as done by an earlier run; older key versions stay in the keyring",
        ids.len() - todo.len()
    );
    Ok(ExitCode::SUCCESS)
}
