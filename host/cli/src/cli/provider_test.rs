//! `secret-broker provider test PATH.wasm`: run the conformance suite against a
//! component and print a readable report; exits non-zero when a check fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use secret_broker::{ProviderHost, conformance};

use super::print_stdout;
use secret_broker_deploy::{Deployment, ProviderConfig};

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

/// Runs the command. Grants what the component imports, under the instance
/// name `conformance` (its own rows and keys); the provider's settings are the
/// configuration's `[provider].settings` (a key prefix, a test namespace), each
/// `--setting` replacing one of them.
pub async fn run(ctx: &Deployment, args: Args) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let component = runtime.load_file(&args.path)?;
    let names = secret_broker_deploy::needed_grants(&component)?;
    let settings = test_settings(ctx.settings.provider.as_ref(), args.settings);
    let http = ctx.configured_http()?;
    let granted = ctx
        .grants("conformance", &names, &settings, http.as_ref())
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

/// The configuration's provider settings, overridden by the command line's.
fn test_settings(
    configured: Option<&ProviderConfig>,
    overrides: Vec<(String, String)>,
) -> BTreeMap<String, String> {
    let mut settings = configured.map(|p| p.settings.clone()).unwrap_or_default();
    settings.extend(overrides);
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_settings_are_kept_and_the_command_line_wins() {
        let config = ProviderConfig {
            component: "/p/etcd.wasm".into(),
            name: Some("etcd".into()),
            grants: Vec::new(),
            settings: [("prefix", "/test/"), ("endpoint", "e1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            sha256: None,
        };
        let s = test_settings(Some(&config), vec![("endpoint".into(), "e2".into())]);
        assert_eq!(s.get("prefix").map(String::as_str), Some("/test/"));
        assert_eq!(s.get("endpoint").map(String::as_str), Some("e2"));
        assert!(test_settings(None, Vec::new()).is_empty());
    }
}
