//! Command-line interface: global options, configuration loading and dispatch to
//! one module per subcommand.

mod connection;
mod import;
mod keyring;
mod migrate;
mod provider_test;
mod provider_verify;
mod secret;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// secret-broker: secrets for metadata platforms, kept by sandboxed Wasm providers.
#[derive(Parser)]
#[command(name = "secret-broker", version, about)]
pub struct Cli {
    /// Configuration file: TOML, or OpenMetadata's YAML (`.yaml`). Without one, the embedded default runs in the data dir.
    #[arg(long, global = true, env = "SECRET_BROKER_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory for the embedded default (store, master key, compiled cache).
    #[arg(long, global = true, env = "SECRET_BROKER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter (tracing syntax), for example `info` or `secret_broker=debug`.
    #[arg(long, global = true, env = "SECRET_BROKER_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect and test provider components.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Store, read, delete and list secrets in the configured provider.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Encrypt, decrypt and delete the secrets of service connection configs.
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// Move every secret from one secrets manager to another (resumable).
    Migrate(migrate::Args),
    /// Manage the master keys.
    #[command(subcommand)]
    Keyring(keyring::KeyringCommand),
    /// Bring secrets in from an existing deployment.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Serve the secrets manager API over HTTP (loopback or a unix socket).
    Serve(serve::ServeArgs),
    /// Bearer tokens of the HTTP API.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(serve::AuditCommand),
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Load a component, check it targets the provider world, print its info and the
    /// grants it needs.
    Verify(provider_verify::Args),
    /// Run the conformance suite against a component and print a report.
    Test(provider_test::Args),
}

/// Parses the command line, runs the command, and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    install_panic_hook();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let ctx = secret_broker_deploy::Deployment::new(secret_broker_deploy::Settings::load(
            cli.config.as_deref(),
            cli.data_dir.as_deref(),
        )?);
        // With the audit chain and the keyring in a shared database, the data
        // dir's audit salt and signing key come from there (`audit key` does
        // its own, as does `serve`, after waiting for its database).
        if !matches!(
            cli.command,
            Command::Provider(_) | Command::Serve(_) | Command::Audit(serve::AuditCommand::Key(_))
        ) {
            ctx.audit_secrets().await?;
        }
        match cli.command {
            Command::Provider(ProviderCommand::Verify(args)) => {
                provider_verify::run(&ctx, args).await
            }
            Command::Provider(ProviderCommand::Test(args)) => provider_test::run(&ctx, args).await,
            Command::Secret(cmd) => secret::run(&ctx, cmd).await,
            Command::Keyring(cmd) => keyring::run(&ctx, cmd).await,
            Command::Connection(cmd) => connection::run(&ctx, cmd).await,
            Command::Migrate(args) => migrate::run(&ctx, args).await,
            Command::Import(cmd) => import::run(&ctx, cmd).await,
            Command::Serve(args) => serve::serve(&ctx, args).await,
            Command::Token(cmd) => token::run(&ctx, cmd).await,
            Command::Audit(cmd) => serve::audit(&ctx, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Errors may quote what a provider said: escaped, never raw (the
            // host's own line breaks kept).
            let message = format!("{e:#}");
            let lines: Vec<_> = message
                .split('\n')
                .map(secret_broker_runtime::scrub::printable)
                .collect();
            eprintln!("error: {}", lines.join("\n"));
            ExitCode::FAILURE
        }
    }
}

/// A panic's message is printed scrubbed of the values provider calls are
/// handling, like every log line.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!(
            "internal error (a bug; please report it){location}: {}",
            secret_broker_runtime::scrub::scrub_in_flight(&message)
        );
    }));
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Third-party crates (the AWS SDK, sqlx, hyper) log too: every line is
    // scrubbed of the values provider calls are handling at that moment.
    secret_broker_runtime::scrub::enable_log_scrubbing();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| secret_broker_runtime::scrub::ScrubbingWriter(std::io::stderr()))
        .init();
}

/// Writes `text` to stdout; a closed pipe (`| head`) ends the output quietly.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
