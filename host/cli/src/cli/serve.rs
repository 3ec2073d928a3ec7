//! `secret-broker serve` and `audit`: the HTTP API on loopback or a unix socket,
//! finding an id's audit entries, verifying the log and its signing key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use secret_broker::audit::{KeySlot, PublicKey, SigningKey, VerifyOptions};
use secret_broker_deploy::Deployment;
use secret_broker_deploy::audit_secrets::AuditSecret;
use secret_broker_deploy::server::{Listen, ServeOptions, shutdown_signal};
use secret_broker_server::ServerOptions;
use secret_broker_server::listen::ConnOptions;

use super::print_stdout;

/// `serve` options.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on: loopback only (127.0.0.1 or ::1) without TLS,
    /// any address with `--tls-cert` and `--tls-key`.
    #[arg(long, default_value = "127.0.0.1:8686", conflicts_with = "unix")]
    listen: SocketAddr,
    /// Listen on a unix socket at this path instead (created mode 0600).
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate
    /// first); needs `--tls-key`. Required to listen off loopback.
    #[arg(long, requires = "tls_key", conflicts_with = "unix")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// OpenMetadata's JSON Schemas for the /v1/entities routes (default: the
    /// embedded ones).
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
    /// Largest request body accepted, KiB.
    #[arg(long, default_value_t = 256)]
    body_limit_kib: usize,
    /// Deadline of one request, milliseconds (503 after it).
    #[arg(long, default_value_t = 15_000)]
    request_timeout_ms: u64,
    /// Time a client has to send a request's headers, milliseconds; also how
    /// long an idle keep-alive connection stays open.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Open connections at most; more wait until one closes.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// How long to wait at start for a PostgreSQL or MariaDB store that does
    /// not answer yet (retried meanwhile), seconds.
    #[arg(long, default_value_t = 60)]
    store_wait_secs: u64,
}

/// `audit` subcommands.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Print the `hmac-sha256:<hex>` an id (or value, from stdin with `-`) has in
    /// this deployment's audit log, to find its entries.
    Hmac {
        /// The secret id, or `-` to read a value from stdin.
        id: String,
    },
    /// Check the audit log's chain and its signed checkpoints: finds a changed,
    /// inserted, reordered or removed entry, entries cut off either end, a
    /// rotated file missing or out of order, and a removed, altered or
    /// foreign-signed checkpoint. Needs only the public key. Says how far the
    /// chain is proven and what could not be checked; exits 1 on a break.
    Verify {
        /// Log files, oldest first (rotated files, then the current one); the
        /// data dir's `audit.log` when none is given.
        files: Vec<PathBuf>,
        /// A public key trusted to sign checkpoints (`audit key public` prints
        /// it), repeatable; the data dir's own signing key when none is given.
        #[arg(long = "public-key", value_name = "FILE")]
        public_keys: Vec<PathBuf>,
        /// The checkpoint file; the data dir's `audit.checkpoints` by default.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        /// The first file given starts at entry N (older files were rotated
        /// away on purpose).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        from: Option<u64>,
    },
    /// The checkpoint signing key (`audit.signing-key` in the data dir).
    #[command(subcommand)]
    Key(AuditKeyCommand),
}

/// `audit key`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditKeyCommand {
    /// Create the signing key before the first start (it is created with the
    /// log otherwise) and print its public key.
    Generate,
    /// Replace the signing key: a checkpoint signed by the old key names the
    /// new one, so verifiers holding the old public key follow. Prints the new
    /// public key.
    Rotate,
    /// Print the public key (`ed25519:<base64>`), for `audit verify
    /// --public-key` on a machine that holds no secret.
    Public,
}

/// Runs `audit hmac` and `audit verify`.
pub async fn audit(ctx: &Deployment, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let id = match cmd {
        AuditCommand::Hmac { id } => id,
        AuditCommand::Verify {
            files,
            public_keys,
            checkpoints,
            from,
        } => return audit_verify(ctx, files, public_keys, checkpoints, from).await,
        AuditCommand::Key(cmd) => return audit_key(ctx, cmd).await,
    };
    let salt = ctx.audit_salt()?;
    let line = if id == "-" {
        let value = super::secret::read_stdin_value()?;
        salt.hmac(value.expose())
    } else {
        salt.hmac(id.as_bytes())
    };
    print_stdout(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub async fn serve(ctx: &Deployment, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let options = ServeOptions {
        listen: match args.unix {
            Some(path) => Listen::Unix(path),
            None => Listen::Tcp(args.listen),
        },
        tls: args.tls_cert.zip(args.tls_key),
        schemas: args.schemas,
        cluster_name: args.cluster_name,
        prefix: args.prefix,
        server: ServerOptions {
            body_limit: args.body_limit_kib.max(1) << 10,
            request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
        },
        conn: ConnOptions {
            header_timeout: Duration::from_millis(args.header_timeout_ms.max(1)),
            max_connections: args.max_connections.max(1),
            ..ConnOptions::default()
        },
        store_wait: Duration::from_secs(args.store_wait_secs),
    };
    let server = ctx.server(options).await?;
    if let Some(token_file) = server.created_admin_token() {
        eprintln!(
            "no tokens were configured: created the admin token in {} (mode 0600); \
             add others with `secret-broker token add NAME --role user`",
            token_file.display()
        );
    }
    eprintln!(
        "secret-broker listening on {} (audit log {})",
        server.address()?,
        ctx.audit_log().display()
    );
    server.run(shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// Runs `audit key`.
async fn audit_key(ctx: &Deployment, cmd: AuditKeyCommand) -> anyhow::Result<ExitCode> {
    let files = ctx.audit_files();
    let public = match cmd {
        AuditKeyCommand::Public => {
            ctx.audit_secrets().await?;
            SigningKey::read(&files.key)?.public().clone()
        }
        AuditKeyCommand::Generate if ctx.audit_chain_url().is_some() && ctx.keys_in_store() => {
            // The database's key if it has one, else this one, published.
            let existed = files.key.exists();
            ctx.audit_secrets().await?;
            if !existed {
                eprintln!(
                    "{} holds the key the replicas share (mode 0600)",
                    files.key.display()
                );
            }
            SigningKey::read(&files.key)?.public().clone()
        }
        AuditKeyCommand::Generate => {
            if files.key.exists() {
                anyhow::bail!(
                    "{} exists already; `secret-broker audit key rotate` replaces it",
                    files.key.display()
                );
            }
            let has_checkpoints = std::fs::metadata(&files.checkpoints).is_ok_and(|m| m.len() > 0);
            let slot = KeySlot::open(&files.key, has_checkpoints)?;
            eprintln!("created {} (mode 0600)", files.key.display());
            slot.key().public().clone()
        }
        AuditKeyCommand::Rotate => {
            let secrets = ctx.audit_secrets().await?;
            let log = ctx.audit()?;
            let old = log.public_key().clone();
            let new = log.rotate_key().await?;
            drop(log);
            if let Some(secrets) = secrets {
                // Replicas take it from there when they start.
                secrets.publish(AuditSecret::SigningKey).await?;
                eprintln!(
                    "published the new signing key to the database: restart the other \
                     replicas to load it (until then their audit appends fail closed)"
                );
            }
            eprintln!(
                "rotated {}: checkpoints are signed by the key below from now on; {old} \
                 signed the hand-over",
                files.key.display()
            );
            new
        }
    };
    print_stdout(&format!("{public}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `audit verify`.
async fn audit_verify(
    ctx: &Deployment,
    mut files: Vec<PathBuf>,
    public_keys: Vec<PathBuf>,
    checkpoints: Option<PathBuf>,
    from: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let own = ctx.audit_files();
    let in_database = match ctx.audit_chain_url() {
        Some(url) if files.is_empty() && checkpoints.is_none() => Some(url),
        _ => None,
    };
    if files.is_empty() {
        files.push(own.log.clone());
    }
    let mut keys = Vec::new();
    for path in &public_keys {
        keys.push(PublicKey::read(path)?);
    }
    if keys.is_empty() {
        keys.push(SigningKey::read(&own.key)?.public().clone());
        eprintln!(
            "checking with this data dir's own signing key ({}); to verify with a key kept \
             apart, give --public-key FILE (from `secret-broker audit key public`)",
            own.key.display()
        );
    }
    let mut options = VerifyOptions {
        checkpoints: Some(checkpoints.unwrap_or(own.checkpoints)),
        keys,
        from,
    };
    let (report, names) = match in_database {
        Some(url) => {
            // The chain is in the shared database: read it from there.
            let store = secret_broker_record_store::RecordStore::connect(&url).await?;
            let (entries, cps) = secret_broker_deploy::audit_store::read_chain(&store).await?;
            options.checkpoints = None;
            let name = entries.0.display().to_string();
            let report =
                secret_broker::audit::verify::verify_texts(&[entries], Some(&cps), &options);
            (report, vec![name])
        }
        None => {
            let report = secret_broker::audit::verify(&files, &options)?;
            (
                report,
                files.iter().map(|f| f.display().to_string()).collect(),
            )
        }
    };
    if let Some(broken) = &report.broken {
        eprintln!(
            "audit chain broken: {broken} ({} entries before it checked)",
            report.entries
        );
        return Ok(ExitCode::from(1));
    }
    let range = match report.range {
        Some((first, last)) => format!("entries {first} to {last}"),
        None => "no numbered entries".into(),
    };
    eprintln!(
        "audit chain intact: {range} ({} checked) in {}",
        report.entries,
        names.join(", ")
    );
    match &report.proven_through {
        Some((seq, time)) => eprintln!(
            "proven through entry {seq} by {} signed checkpoints (the last at {time}), signed \
             by {}",
            report.checkpoints,
            report.signers.join(", then ")
        ),
        None => eprintln!(
            "{} signed checkpoints checked; none covers an entry given yet",
            report.checkpoints
        ),
    }
    if report.unnumbered > 0 {
        eprintln!(
            "not checked: {} entries written before entries were numbered",
            report.unnumbered
        );
    }
    if report.torn > 0 {
        eprintln!(
            "{} torn lines (a crash or a full disk cut them; the chain links past them)",
            report.torn
        );
    }
    for what in &report.unchecked {
        eprintln!("not checked: {what}");
    }
    Ok(ExitCode::SUCCESS)
}
