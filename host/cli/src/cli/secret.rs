//! `secret-broker secret put|get|delete|list`: direct access to the configured
//! provider. Values come from stdin, never from argv; `get` prints the value alone.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use secret_broker::{PutOptions, SecretValue};

use secret_broker::broker::{Broker, Caller};

use secret_broker_deploy::Deployment;

/// The `secret` subcommands.
#[derive(clap::Subcommand)]
pub enum SecretCommand {
    /// Store the value read from stdin at ID (one trailing newline is dropped).
    Put {
        /// The secret id, such as /openmetadata/database/mysql_prod/password.
        id: String,
        /// A description, where the backend keeps one.
        #[arg(long)]
        description: Option<String>,
        /// A tag `KEY=VALUE`; repeatable.
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Caught only to refuse it without echoing it: values come from stdin.
        #[arg(hide = true)]
        value_on_command_line: Option<String>,
    },
    /// Print the value at ID on stdout, alone.
    Get {
        /// The secret id.
        id: String,
    },
    /// Print the value behind a `secret:/...` reference on stdout, alone.
    Resolve {
        /// The reference, such as secret:/openmetadata/database/mysql_prod/authtype/password.
        reference: String,
    },
    /// Delete ID.
    Delete {
        /// The secret id.
        id: String,
    },
    /// List ids under PREFIX.
    List {
        /// Only ids starting with this.
        #[arg(default_value = "/")]
        prefix: String,
    },
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

/// Runs a `secret` subcommand.
pub async fn run(ctx: &Deployment, cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let provider = ctx.provider(&runtime).await?;
    let name = provider.name().to_owned();
    let broker = ctx.broker(provider, None)?;
    let caller = secret_broker_deploy::cli_caller();
    match cmd {
        SecretCommand::Put {
            id,
            description,
            tags,
            value_on_command_line,
        } => {
            if value_on_command_line.is_some() {
                anyhow::bail!(
                    "refusing a value on the command line, where the process list and shell \
                     history would show it: pipe it on stdin instead (`printf %s \"$VALUE\" | \
                     secret-broker secret put {id}`)"
                );
            }
            let value = read_stdin_value()?;
            let mut tags = tags;
            for (k, v) in
                secret_broker_deploy::backends::aws::default_tags(ctx.settings.tags.as_deref())
            {
                if !tags.iter().any(|(key, _)| *key == k) {
                    tags.push((k, v));
                }
            }
            let outcome = broker
                .put(&caller, &id, &value, &PutOptions { description, tags })
                .await?;
            eprintln!(
                "{id}: {}",
                serde_json::to_string(&outcome)?.trim_matches('"')
            );
        }
        SecretCommand::Resolve { reference } => {
            let Some(id) = reference.strip_prefix(secret_broker::openmetadata::manager::REFERENCE)
            else {
                anyhow::bail!("`{reference}` is not a reference: expected secret:/...");
            };
            return print_value(&broker, &caller, &name, id).await;
        }
        SecretCommand::Get { id } => return print_value(&broker, &caller, &name, &id).await,
        SecretCommand::Delete { id } => {
            let existed = broker.delete(&caller, &id).await?;
            eprintln!(
                "{id}: {}",
                if existed { "deleted" } else { "was not there" }
            );
        }
        SecretCommand::List { prefix } => {
            let mut out = std::io::stdout().lock();
            secret_broker_runtime::paging::each_page(
                |cursor| {
                    let (broker, caller, prefix) = (&broker, &caller, &prefix);
                    async move {
                        broker
                            .list(caller, prefix, cursor.as_deref(), 500)
                            .await
                            .map_err(anyhow::Error::from)
                    }
                },
                |ids| {
                    ids.iter()
                        .try_for_each(|id| writeln!(out, "{id}"))
                        .map_err(anyhow::Error::from)
                },
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn read_stdin_value() -> anyhow::Result<SecretValue> {
    const LIMIT: usize = 64 << 20;
    let value = SecretValue::read_from(std::io::stdin().lock(), LIMIT)
        .context("reading the value from stdin")?
        .ok_or_else(|| anyhow::anyhow!("the value on stdin is over {} MiB", LIMIT >> 20))?;
    // One trailing newline (as `echo` and editors add) is not part of the value.
    let bytes = value.expose();
    let trim = match bytes {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n'] => 1,
        _ => 0,
    };
    Ok(if trim == 0 {
        value
    } else {
        SecretValue::new(bytes[..bytes.len() - trim].to_vec())
    })
}

/// Prints the value at `id` alone on stdout; a missing secret exits 2.
async fn print_value(
    broker: &Broker,
    caller: &Caller,
    provider: &str,
    id: &str,
) -> anyhow::Result<ExitCode> {
    match broker.get(caller, id).await? {
        Some(value) => {
            let mut out = std::io::stdout().lock();
            out.write_all(value.expose())?;
            out.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("error: no secret at {id} in provider `{provider}`");
            Ok(ExitCode::from(2))
        }
    }
}
