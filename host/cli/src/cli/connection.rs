//! `secret-broker connection encrypt|decrypt|delete`: a service connection config
//! (or, with `--entity`, a bot's authentication mechanism, an ingestion pipeline, a
//! workflow) on stdin, its stored form (secret fields replaced by `secret:`
//! references) or its resolved form on stdout. The schemas are the ones embedded
//! for the release the broker targets, or `--schemas DIR` for a newer one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use secret_broker::SecretValue;
use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::manager::{EntityKind, SecretsManager};
use secret_broker::openmetadata::owners::Owners;
use secret_broker::wipe::Wiped;
use zeroize::Zeroizing;

use super::print_stdout;
use secret_broker_deploy::Deployment;

/// Options every `connection` subcommand takes.
#[derive(clap::Args)]
pub struct Common {
    /// Service type: database, dashboard, messaging, pipeline, storage, search, mlmodel...
    #[arg(long, required_if_eq("entity", "connection"))]
    service_type: Option<String>,
    /// What the document on stdin is.
    #[arg(long, default_value = "connection", value_parser = entity_kind())]
    entity: EntityKind,
    /// Directory of OpenMetadata's JSON Schemas (default: the embedded ones).
    #[arg(long, env = "SECRET_BROKER_SCHEMAS", help = secret_broker_deploy::schemas::HELP)]
    schemas: Option<PathBuf>,
    /// OpenMetadata's cluster name, the second segment of every id; by default
    /// the configuration's `clusterName` (`OPENMETADATA_CLUSTER_NAME`), else
    /// `openmetadata`.
    #[arg(long, env = "CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// OpenMetadata's secrets manager prefix, the first segment when set; by
    /// default the configuration's.
    #[arg(long, env = "SECRET_MANAGER_PREFIX")]
    prefix: Option<String>,
}

/// `--entity`: the broker's entity kinds, by their names.
fn entity_kind() -> impl clap::builder::TypedValueParser<Value = EntityKind> {
    use clap::builder::TypedValueParser as _;
    let names = EntityKind::ALL.map(EntityKind::name);
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<EntityKind>())
}

/// The `connection` subcommands.
#[derive(clap::Subcommand)]
pub enum ConnectionCommand {
    /// Store the secret fields of the config on stdin; print the stored form.
    Encrypt {
        #[command(flatten)]
        common: Common,
        /// The service's name (the entity name in the ids).
        #[arg(long)]
        name: String,
    },
    /// Resolve the references of a stored config on stdin; print the config.
    Decrypt {
        #[command(flatten)]
        common: Common,
    },
    /// Delete the secrets a stored config on stdin refers to.
    Delete {
        #[command(flatten)]
        common: Common,
        /// The service's name.
        #[arg(long)]
        name: String,
    },
}

/// The config on stdin, read into buffers that are wiped, and wiped itself when
/// dropped: it holds plaintext secrets.
fn read_config() -> anyhow::Result<Wiped> {
    let text = SecretValue::read_from(std::io::stdin().lock(), 16 << 20)
        .context("reading the config from stdin")?
        .ok_or_else(|| anyhow::anyhow!("the config on stdin is over 16 MiB"))?;
    // serde_json's message gives line and column, never the content.
    serde_json::from_slice(text.expose())
        .map(Wiped)
        .map_err(|e| anyhow::anyhow!("the config on stdin is not valid JSON: {e}"))
}

/// Runs a `connection` subcommand.
pub async fn run(ctx: &Deployment, cmd: ConnectionCommand) -> anyhow::Result<ExitCode> {
    let common = match &cmd {
        ConnectionCommand::Encrypt { common, .. }
        | ConnectionCommand::Decrypt { common }
        | ConnectionCommand::Delete { common, .. } => common,
    };
    let cluster = common
        .cluster_name
        .clone()
        .unwrap_or_else(|| ctx.cluster_name());
    let prefix = common.prefix.as_ref().or(ctx.settings.prefix.as_ref());
    let ids = IdBuilder::with_style(prefix.map(String::as_str), &cluster, ctx.id_style())?;
    let runtime = ctx.runtime()?;
    let provider = ctx.provider(&runtime).await?;
    let owners = Owners::new(secret_broker_deploy::RecordOwners::shared(
        ctx.record_store().await?,
    ));
    let schemas = secret_broker_deploy::schemas::load(common.schemas.as_deref())?;
    let manager = SecretsManager::with_schemas(provider.clone(), schemas, ids, owners);
    let broker = ctx.broker(provider, Some(manager))?;
    let caller = secret_broker_deploy::cli_caller();
    let entity = common
        .entity
        .entity(common.service_type.as_deref())
        .context("--service-type is required with --entity connection")?;
    let mut config = read_config()?;
    match &cmd {
        ConnectionCommand::Encrypt { name, .. } => {
            let stored = broker
                .encrypt(&caller, entity, name, config.take(), None)
                .await?;
            print_stdout(&format!("{}\n", serde_json::to_string_pretty(&stored)?))?;
        }
        ConnectionCommand::Decrypt { .. } => {
            let plain = Wiped(broker.decrypt(&caller, entity, config.take()).await?);
            let text = Zeroizing::new(serde_json::to_string_pretty(&*plain)? + "\n");
            print_stdout(&text)?;
        }
        ConnectionCommand::Delete { name, .. } => {
            let deleted = broker.delete_entity(&caller, entity, name, &config).await?;
            eprintln!("deleted {deleted} secret(s) of {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
