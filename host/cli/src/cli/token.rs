//! `secret-broker token add | list | revoke`: the bearer tokens of `/v1` and the
//! AWS access keys of the AWS APIs, kept in the record store so that every
//! server on it (every replica on a shared database) refuses a revoked or
//! expired one within a second. Each change is audited.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use secret_broker::audit::{Durability, Entry, Outcome};
use secret_broker::policy::Role;
use secret_broker_deploy::Deployment;
use secret_broker_deploy::credentials::{CredentialInfo, Credentials, kind_name};
use secret_broker_server::CredentialKind;

use super::print_stdout;

/// `token` subcommands.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token for the HTTP API; prints it once on stdout and keeps
    /// only its SHA-256 in the record store.
    Add {
        /// The token's name, as it appears in the audit log.
        name: String,
        /// admin, user or bot.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Create an AWS access key pair instead (for the Secrets Manager and
        /// SSM APIs, signed with Signature Version 4): prints
        /// `AWS_ACCESS_KEY_ID=` and `AWS_SECRET_ACCESS_KEY=` lines once, and
        /// keeps the secret sealed by the keyring.
        #[arg(long)]
        aws: bool,
        /// Refused after this long (`90d`, `12h`, `30m`); by default it does not
        /// expire.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List the tokens and access keys: name, role, created, expiry, last used
    /// (never a token or a secret).
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token (or with `--aws` an access key): every server refuses it
    /// within a second.
    Revoke {
        /// The token's or access key's name.
        name: String,
        /// Revoke the access key of that name.
        #[arg(long)]
        aws: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_name(s).ok_or_else(|| format!("unknown role {s:?}: use admin, user or bot"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the duration must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{s:?} is not a duration ({e}); write for example 90d, 12h or 30m"
        )),
    }
}

/// Runs a `token` subcommand.
pub async fn run(ctx: &Deployment, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let creds = Credentials::new(ctx.record_store().await?);
    creds
        .import_files(&ctx.tokens_file(), &ctx.aws_keys_file())
        .await?;
    match cmd {
        TokenCommand::Add {
            name,
            role,
            aws,
            expires_in,
        } => {
            let kind = if aws {
                CredentialKind::AwsKey
            } else {
                CredentialKind::Token
            };
            let expires = expires_in.map(|d| SystemTime::now() + d);
            audited(ctx, "token.add", kind, &name, async {
                add(ctx, &creds, kind, &name, role, expires).await
            })
            .await?;
        }
        TokenCommand::List { json } => list(&creds.list().await?, json)?,
        TokenCommand::Revoke { name, aws } => {
            let kind = if aws {
                CredentialKind::AwsKey
            } else {
                CredentialKind::Token
            };
            audited(ctx, "token.revoke", kind, &name, creds.revoke(kind, &name)).await?;
            eprintln!(
                "{} {name:?} revoked: every server on this store refuses it within a second",
                kind_name(kind)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(
    ctx: &Deployment,
    creds: &Credentials,
    kind: CredentialKind,
    name: &str,
    role: Role,
    expires: Option<SystemTime>,
) -> anyhow::Result<()> {
    let until = match expires {
        Some(at) => format!(", expires {}", humantime::format_rfc3339_seconds(at)),
        None => String::new(),
    };
    match kind {
        CredentialKind::Token => {
            let token = creds.add_token(name, role, expires).await?;
            print_stdout(&format!("{}\n", token.as_str()))?;
            eprintln!("token {name:?} ({role}{until}) added; it is shown only now");
        }
        CredentialKind::AwsKey => {
            let keyring = ctx.keyring().await?;
            let (id, secret) = creds.add_aws_key(name, role, expires, &keyring).await?;
            print_stdout(&format!(
                "AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={}\n",
                secret.as_str()
            ))?;
            eprintln!(
                "access key {name:?} ({role}{until}) added, its secret sealed by the keyring; \
                 the secret is shown only now"
            );
        }
    }
    Ok(())
}

/// Runs `change` between an `attempt` entry and its outcome's, both synced:
/// a change whose attempt cannot be logged does not happen.
async fn audited(
    ctx: &Deployment,
    operation: &str,
    kind: CredentialKind,
    name: &str,
    change: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let log = ctx.audit()?;
    let caller = secret_broker_deploy::cli_caller();
    let subject = format!("{}/{name}", kind_name(kind).replace(' ', "-"));
    let write = |outcome: Outcome| {
        let entry = Entry {
            ids: log.hmac_ids(&[subject.as_str()]),
            error: (outcome == Outcome::Error).then_some("credential"),
            ..Entry::new(
                &caller.name,
                Some(caller.role),
                operation,
                "credentials",
                outcome,
            )
        };
        let log = log.clone();
        async move { log.write(&entry, Durability::Synced).await }
    };
    write(Outcome::Attempt)
        .await
        .context("writing the audit entry; nothing was changed")?;
    let result = change.await;
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Error
    };
    write(outcome)
        .await
        .context("writing the audit entry of the outcome")?;
    result
}

fn list(creds: &[CredentialInfo], json: bool) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let when =
        |at: Option<SystemTime>| at.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let mut out = String::new();
    if json {
        for c in creds {
            let line = serde_json::json!({
                "kind": match c.kind { CredentialKind::Token => "token", CredentialKind::AwsKey => "aws-key" },
                "name": c.name,
                "role": c.role.to_string(),
                "accessKeyId": c.access_key_id,
                "created": when(Some(c.created)),
                "expires": when(c.expires),
                "expired": c.expired(now),
                "lastUsed": when(c.last_used),
            });
            out.push_str(&format!("{line}\n"));
        }
    } else {
        out.push_str(&format!(
            "{:<8} {:<24} {:<6} {:<20} {:<22} {:<20}\n",
            "KIND", "NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED"
        ));
        for c in creds {
            let kind = match c.kind {
                CredentialKind::Token => "token",
                CredentialKind::AwsKey => "aws-key",
            };
            let expires = match (c.expires, c.expired(now)) {
                (Some(at), true) => format!("{} (expired)", when(Some(at)).unwrap_or_default()),
                (Some(at), false) => when(Some(at)).unwrap_or_default(),
                (None, _) => "never".into(),
            };
            out.push_str(&format!(
                "{:<8} {:<24} {:<6} {:<20} {:<22} {:<20}\n",
                kind,
                c.name,
                c.role.to_string(),
                when(Some(c.created)).unwrap_or_default(),
                expires,
                when(c.last_used).unwrap_or_else(|| "never".into())
            ));
        }
    }
    print_stdout(&out)
}
