//! `secret-broker provider test PATH.wasm`: run the conformance suite against a
//! component and print a readable report; exits non-zero when a check fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use secret_broker::{ProviderHost, conformance};

use super::deployment::Deployment;
use super::print_stdout;

/// Arguments of `provider test`.
#[derive(clap::Args)]
pub struct Args {
    /// The component file.
    path: PathBuf,
    /// Provider settings, `KEY=VALUE`, readable through its `config` import.
    #[arg(long = "setting", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

/// Runs the command. Grants what the component imports; the test data dir keys
/// the keyring.
pub async fn run(ctx: &Deployment, args: Args) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let component = runtime.load_file(&args.path)?;
    let names = super::deployment::needed_grants(&component)?;
    let granted = ctx
        .grants(
            "conformance",
            &names,
            &args.settings.into_iter().collect(),
            None,
        )
        .await?;
    let host = Arc::new(ProviderHost::new(&runtime, &component, granted).await?);
    let report = conformance::run(host).await;
    print_stdout(&report.to_string())?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
