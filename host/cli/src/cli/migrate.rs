//! `secret-broker migrate --from X --to Y`: move every secret from one secrets
//! manager to another (any two of `db`, `managed-aws`, `managed-aws-ssm`,
//! `openbao`, `managed-azure-kv`, `gcp`, `kubernetes`), under the same ids where
//! the target takes them, else under the ids spelled as the target's
//! OpenMetadata secrets manager spells them (`/openmetadata/database/x/password`
//! becomes `openmetadata_database_x_password` on GCP; `IdStyle::fit`), which
//! is also how the broker resolves the references OpenMetadata stored before
//! the move.
//! Each secret is written to the target, read back and compared, and only then
//! deleted from the source, so a crash at any point leaves every value readable in
//! one of the two; progress is saved in the data dir and a second run resumes.
//! `--dry-run` lists what would move and changes nothing.
//!
//! Where a prefix is set, an id under it goes to the name the target's
//! OpenMetadata secrets manager gives the same field today
//! (`/om/openmetadata/database/x/password` becomes
//! `omopenmetadata-database-x-password` on Azure Key Vault; `IdBuilder::today`).
//! `--from kubernetes --to kubernetes` renames, in place, the objects an older
//! OpenMetadata server named (before upstream PR #25988) to today's names; a
//! name cut with a hash suffix stays where it is, and its references still find
//! it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use secret_broker::{PutOptions, SecretValue};

use secret_broker::broker::{Broker, Caller};
use secret_broker_runtime::paging::collect_all;

use secret_broker::openmetadata::ids::{IdBuilder, IdStyle};
use secret_broker_deploy::{Deployment, backends};

/// Arguments of `migrate`.
#[derive(clap::Args)]
pub struct Args {
    /// The secrets manager to move from.
    #[arg(long)]
    from: String,
    /// The secrets manager to move to.
    #[arg(long)]
    to: String,
    /// Only ids starting with this (default: every id; `/`-joined and other
    /// backends' ids alike).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Show what would move; write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct MigrationState {
    from: String,
    to: String,
    /// Every id up to and including this one has moved.
    done_through: Option<String>,
}

fn save(path: &Path, state: &MigrationState) -> anyhow::Result<()> {
    secret_broker_runtime::fs::replace_private(path, &serde_json::to_vec(state)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs the migration.
pub async fn run(ctx: &Deployment, args: Args) -> anyhow::Result<ExitCode> {
    // Two names for one backend (`managed-aws` and `aws`) are one store under this
    // deployment's settings: "moving" would delete the only copy of every secret.
    let from = backends::for_secrets_manager(&args.from)
        .with_context(|| format!("--from {}", args.from))?;
    let to =
        backends::for_secrets_manager(&args.to).with_context(|| format!("--to {}", args.to))?;
    // Kubernetes to Kubernetes: the objects an older OpenMetadata server named
    // are renamed to today's names, in place.
    let respell = from.provider == to.provider && to.id_style == IdStyle::Kubernetes;
    if from.provider == to.provider && !respell {
        bail!(
            "--from {} and --to {} are the same store (both the built-in `{}` provider with \
             this deployment's settings): migrating would delete the only copy of every \
             secret; nothing was done",
            args.from.trim(),
            args.to.trim(),
            from.provider
        );
    }
    let runtime = ctx.runtime()?;
    let source = ctx
        .start_backend(&runtime, from)
        .await
        .with_context(|| format!("--from {}", args.from))?;
    let target = ctx
        .start_backend(&runtime, to)
        .await
        .with_context(|| format!("--to {}", args.to))?;
    // The id each secret gets in the target.
    let target_rules = target.info().id_rules.clone();
    let target_style = to.id_style;
    let target_ids = IdBuilder::with_style(
        ctx.settings.prefix.as_deref(),
        &ctx.cluster_name(),
        target_style,
    )?;
    // Where each secret goes: the same id where the target takes it; else
    // today's spelling of an id under this deployment's prefix and cluster
    // name; else the id fitted to the target's spelling. Renaming in place,
    // only an older server's Kubernetes names move.
    let target_id = move |id: &str| {
        if respell {
            return target_ids
                .today_from_legacy_k8s(id)
                .unwrap_or_else(|| id.to_owned());
        }
        if target_rules.check(id).is_ok() {
            return id.to_owned();
        }
        target_ids
            .today(id)
            .filter(|t| target_rules.check(t).is_ok())
            .unwrap_or_else(|| target_style.fit(id))
    };
    // Every read, write and delete is audited, as the operator at the terminal.
    let caller = secret_broker_deploy::cli_caller();
    let source = ctx.broker(source, None)?.labelled(&args.from);
    let target = ctx.broker(target, None)?.labelled(&args.to);
    let state_path = ctx.data_dir().join("migration.json");
    let previous: Option<MigrationState> = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|s: &MigrationState| s.from == args.from && s.to == args.to);
    let done_through = previous.and_then(|s| s.done_through);
    if done_through.is_some() {
        eprintln!("resuming the migration from {} to {}", args.from, args.to);
    }

    let ids = collect_all(|cursor| {
        let (source, caller, prefix) = (&source, &caller, &args.prefix);
        async move { source.list(caller, prefix, cursor.as_deref(), 500).await }
    })
    .await?;
    // What an earlier run moved is already gone from the source; the cursor only
    // matters when a crash left an id in both places.
    if args.dry_run {
        for id in &ids {
            match target_id(id) {
                new if new == *id => println!("{id}"),
                new => println!("{id} -> {new}"),
            }
        }
        eprintln!(
            "dry run: {} secret(s) would move from {} to {}; nothing was written",
            ids.len(),
            args.from,
            args.to
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut state = MigrationState {
        from: args.from.clone(),
        to: args.to.clone(),
        done_through,
    };
    save(&state_path, &state)?;
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} migrating [{bar:40}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut moved = 0usize;
    for id in &ids {
        let Some(value) = source
            .get(&caller, id)
            .await
            .with_context(|| format!("reading {id} from {}", args.from))?
        else {
            bar.inc(1);
            continue;
        };
        let to_id = target_id(id);
        if to_id == *id && respell {
            // Already today's name (or one that cannot be respelled): the
            // source and target are one store, so it stays where it is.
            bar.inc(1);
            continue;
        }
        move_one(&caller, (id, &to_id), &value, &source, &target)
            .await
            .with_context(|| match to_id == *id {
                true => format!("moving {id}"),
                false => format!("moving {id} (to {to_id})"),
            })?;
        moved += 1;
        state.done_through = Some(id.clone());
        save(&state_path, &state)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::fs::remove_file(&state_path)
        .with_context(|| format!("removing {}", state_path.display()))?;
    eprintln!(
        "migrated {moved} secret(s) from {} to {}; the source holds none of them any more",
        args.from, args.to
    );
    Ok(ExitCode::SUCCESS)
}

/// Write, verify, then delete: the value is readable somewhere at every step.
async fn move_one(
    caller: &Caller,
    (id, to_id): (&str, &str),
    value: &SecretValue,
    source: &Broker,
    target: &Broker,
) -> anyhow::Result<()> {
    target
        .put(caller, to_id, value, &PutOptions::default())
        .await?;
    match target.get(caller, to_id).await? {
        Some(back) if back.ct_eq(value) => {}
        _ => bail!("the target did not return the value just written; the source still holds it"),
    }
    source.delete(caller, id).await?;
    Ok(())
}
