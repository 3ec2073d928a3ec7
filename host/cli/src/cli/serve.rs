//! `secret-broker serve`, `token add` and `audit hmac`: the HTTP API on loopback or
//! a unix socket, its bearer tokens, and finding an id's audit entries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::openmetadata::owners::Owners;
use secret_broker::policy::Role;
use secret_broker_server::{self as server, AppState, ServerOptions, tokens};

use super::deployment::Deployment;
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
    /// OpenMetadata's JSON Schemas; enables the /v1/entities routes.
    #[arg(long, env = "SECRET_BROKER_SCHEMAS")]
    schemas: Option<PathBuf>,
    /// OpenMetadata's cluster name, the second segment of every id.
    #[arg(long, env = "CLUSTER_NAME", default_value = "openmetadata")]
    cluster_name: String,
    /// OpenMetadata's secrets manager prefix, the first segment when set.
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
}

/// `token` subcommands.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token for the HTTP API; prints it once on stdout and keeps
    /// only its SHA-256 in the tokens file.
    Add {
        /// The token's name, as it appears in the audit log.
        name: String,
        /// admin, user or bot.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Create an AWS access key pair instead (for the Secrets Manager and
        /// SSM APIs, signed with Signature Version 4): prints
        /// `AWS_ACCESS_KEY_ID=` and `AWS_SECRET_ACCESS_KEY=` lines once, and
        /// keeps the secret sealed by the keyring in the data dir's `aws-keys`.
        #[arg(long)]
        aws: bool,
    },
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
    /// Check the hash chain of the audit log: every entry must carry the HMAC of
    /// the one before it. Reports the first broken or missing link; exits 1 then.
    Verify {
        /// Log files, oldest first (rotated files, then the current one); the
        /// data dir's `audit.log` when none is given.
        files: Vec<PathBuf>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_name(s).ok_or_else(|| format!("unknown role {s:?}: use admin, user or bot"))
}

/// The tokens file in the data dir.
fn tokens_file(ctx: &Deployment) -> PathBuf {
    ctx.data_dir().join("tokens")
}

/// Runs `token add`.
pub fn token(ctx: &Deployment, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Add { name, role, aws } = cmd;
    if aws {
        return aws_key(ctx, &name, role);
    }
    let token = tokens::generate();
    tokens::append(&tokens_file(ctx), &name, role, &token)?;
    print_stdout(&format!("{}\n", token.as_str()))?;
    eprintln!(
        "token {name:?} ({role}) added to {}; it is shown only now",
        tokens_file(ctx).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The access keys file in the data dir.
pub fn aws_keys_file(ctx: &Deployment) -> PathBuf {
    ctx.data_dir().join("aws-keys")
}

/// Runs `token add --aws`: a new access key, its secret sealed by the keyring.
fn aws_key(ctx: &Deployment, name: &str, role: Role) -> anyhow::Result<ExitCode> {
    let keyring = ctx.keyring()?;
    let open = |sealed: &[u8], aad: &[u8]| Ok(keyring.open(sealed, aad)?);
    let (id, secret) = server::sigv4::generate();
    let sealed = keyring.seal(
        &secret_broker::SecretValue::from_string(secret.to_string()),
        &server::sigv4::seal_context(&id),
    );
    let path = aws_keys_file(ctx);
    server::sigv4::AwsKeys::append(&path, name, role, &id, &sealed, open)?;
    print_stdout(&format!(
        "AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={}\n",
        secret.as_str()
    ))?;
    eprintln!(
        "access key {name:?} ({role}) added to {}, its secret sealed by the keyring; the \
         secret is shown only now",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `audit hmac` and `audit verify`.
pub fn audit(ctx: &Deployment, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let id = match cmd {
        AuditCommand::Hmac { id } => id,
        AuditCommand::Verify { files } => return audit_verify(ctx, files),
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
    if args.unix.is_none() && args.tls_cert.is_none() && !args.listen.ip().is_loopback() {
        bail!(
            "--listen {}: without TLS the server listens on loopback only (127.0.0.1 or \
             [::1]) or on a unix socket (--unix PATH); give --tls-cert and --tls-key to \
             listen on other addresses",
            args.listen
        );
    }
    // Read before anything else starts: a bad certificate or key stops here.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::listen::tls_acceptor(cert, key)?),
        _ => None,
    };
    let runtime = ctx.runtime()?;
    let provider = ctx.provider(&runtime).await?;
    let manager = match &args.schemas {
        Some(dir) => {
            let ids =
                IdBuilder::with_style(args.prefix.as_deref(), &args.cluster_name, ctx.id_style())?;
            let owners = Owners::new(ctx.record_store().await?);
            Some(SecretsManager::new(provider.clone(), dir, ids, owners)?)
        }
        None => None,
    };
    let audit_path = ctx.audit_log();
    let broker = ctx.broker(provider, manager)?;

    let tokens_path = tokens_file(ctx);
    let mut tokens = tokens::Tokens::load(&tokens_path)?;
    if tokens.is_empty() {
        let token = tokens::generate();
        tokens::append(&tokens_path, "admin", Role::Admin, &token)?;
        let token_file = ctx.data_dir().join("admin.token");
        secret_broker_runtime::fs::overwrite_private(
            &token_file,
            format!("{}\n", token.as_str()).as_bytes(),
        )
        .with_context(|| format!("writing {}", token_file.display()))?;
        eprintln!(
            "no tokens were configured: created the admin token in {} (mode 0600); \
             add others with `secret-broker token add NAME --role user`",
            token_file.display()
        );
        tokens = tokens::Tokens::load(&tokens_path)?;
    }
    let options = ServerOptions {
        body_limit: args.body_limit_kib.max(1) << 10,
        request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
    };
    let state = AppState::new(broker, tokens, options);
    watch_tokens(state.clone(), tokens_path);
    // The AWS APIs: access keys sealed by the keyring, metadata in the record store.
    // The keyring is loaded for them only when the deployment has one in use or
    // access keys exist (a deployment on AWS alone gets no master key it never
    // needed).
    let keys_path = aws_keys_file(ctx);
    let keyring = match ctx.loaded_keyring() {
        Some(ring) => Some(ring),
        None if keys_path.exists() => Some(ctx.keyring()?),
        None => None,
    };
    let open = move |sealed: &[u8], aad: &[u8]| match &keyring {
        Some(ring) => Ok(ring.open(sealed, aad)?),
        None => bail!(
            "access keys were added after the server started on a deployment without a \
             keyring in use; restart the server to load them"
        ),
    };
    state.set_aws_keys(server::sigv4::AwsKeys::load(&keys_path, &open)?);
    state.set_aws_metadata(server::aws::AwsMetadata::new(ctx.record_store().await?));
    watch_aws_keys(state.clone(), keys_path, open);
    if let Some(keyring) = ctx.loaded_keyring().filter(|_| !ctx.master_key_from_env()) {
        watch_key_file(keyring, ctx.key_file());
    }
    let app = server::router(state);
    let conn = server::listen::ConnOptions {
        header_timeout: Duration::from_millis(args.header_timeout_ms.max(1)),
        max_connections: args.max_connections.max(1),
        ..server::listen::ConnOptions::default()
    };
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return ctrl_c.await.unwrap_or(()),
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
    };
    match &args.unix {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("binding unix socket {}", path.display()))?;
            set_mode(path, 0o600)?;
            eprintln!(
                "secret-broker listening on unix:{} (audit log {})",
                path.display(),
                audit_path.display()
            );
            server::listen::serve(listener, app, conn, shutdown).await;
        }
        None => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            eprintln!(
                "secret-broker listening on {scheme}://{} (audit log {})",
                listener.local_addr()?,
                audit_path.display()
            );
            match tls {
                Some(tls) => server::listen::serve_tls(listener, tls, app, conn, shutdown).await,
                None => server::listen::serve(listener, app, conn, shutdown).await,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(ctx: &Deployment, mut files: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    if files.is_empty() {
        files.push(ctx.audit_log());
    }
    let salt = ctx.audit_salt()?;
    let verified = secret_broker::audit::verify(&files, &salt)?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    match verified.broken {
        None => {
            let start = if verified.from_start {
                "from the start of the log"
            } else {
                "from the first entry given (it follows a rotated file not given, so its own \
                 link was not checked)"
            };
            eprintln!(
                "audit chain intact: {} entries in {}, {start}",
                verified.entries,
                names.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((file, line, why)) => {
            eprintln!(
                "audit chain broken at {} line {line}: {why} ({} entries before it checked)",
                file.display(),
                verified.entries
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Calls `on_change` whenever the file at `path` changes (checked every 2 s).
fn watch_file(path: PathBuf, mut on_change: impl FnMut(&Path) + Send + 'static) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now != seen {
                seen = now;
                on_change(&path);
            }
        }
    });
}

/// Reloads the tokens file when it changes, so `token add` takes effect without a
/// restart. A file that no longer parses keeps the tokens in use, with an error.
fn watch_tokens(state: std::sync::Arc<AppState>, path: PathBuf) {
    watch_file(path, move |path| match tokens::Tokens::load(path) {
        Ok(tokens) => {
            tracing::info!(tokens = tokens.len(), "reloaded the tokens file");
            state.set_tokens(tokens);
        }
        Err(e) => tracing::error!("keeping the tokens in use: {e:#}"),
    });
}

/// Reloads the access keys file when it changes (`token add --aws`). A file
/// that no longer reads keeps the keys in use, with an error.
fn watch_aws_keys(
    state: std::sync::Arc<AppState>,
    path: PathBuf,
    open: impl Fn(&[u8], &[u8]) -> anyhow::Result<secret_broker::SecretValue> + Send + 'static,
) {
    watch_file(path, move |path| {
        match server::sigv4::AwsKeys::load(path, &open) {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "reloaded the AWS access keys file");
                state.set_aws_keys(keys);
            }
            Err(e) => tracing::error!("keeping the AWS access keys in use: {e:#}"),
        }
    });
}

/// Picks up key versions another process added (`keyring rotate`), so values it
/// re-sealed stay readable here and new values are sealed under the newest key.
fn watch_key_file(keyring: std::sync::Arc<secret_broker_keyring::Keyring>, path: PathBuf) {
    watch_file(path, move |path| match keyring.reload_file(path) {
        Ok(added) if !added.is_empty() => {
            tracing::info!(?added, "picked up new master key versions");
        }
        Ok(_) => {}
        Err(e) => tracing::error!("keeping the master keys in use: {e}"),
    });
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
