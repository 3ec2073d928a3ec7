//! `secret-broker provider verify PATH.wasm`: load, check the world, print the
//! provider's info and the grants it needs. It has no side effects: the
//! component's `info()` runs with nothing granted (every capability it imports
//! is a trap), so no store is opened, no key read and no network reached.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use secret_broker::ProviderHost;
use secret_broker_runtime::scrub::printable;

use secret_broker_deploy::Deployment;

/// Arguments of `provider verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The component file.
    path: PathBuf,
}

/// Runs the command.
pub async fn run(ctx: &Deployment, args: Args) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let runtime = ctx.runtime_without_cache()?;
    let component = runtime.load_file(&args.path)?;
    writeln!(out, "component:   {}", component.source)?;
    writeln!(out, "sha256:      {}", component.sha256)?;
    writeln!(
        out,
        "pin it:      sha256 = \"{}\"   (beside `component` in the provider config)",
        component.sha256
    )?;
    writeln!(
        out,
        "world:       secret-broker:provider/provider-world@{} (ok; exports provider@{})",
        component.world_version(),
        secret_broker_runtime::VERSION
    )?;
    let needs = secret_broker_deploy::needed_grants(&component)?;
    writeln!(
        out,
        "needs grants: {}",
        if needs.is_empty() {
            "none".to_owned()
        } else {
            needs.join(", ")
        }
    )?;
    writeln!(
        out,
        "wasi imports: {} (linked locked down: no files, env, args, sockets)",
        component.wasi_imports.len()
    )?;
    let info = ProviderHost::inspect(&runtime, &component).await?;
    let rules = &info.id_rules;
    writeln!(
        out,
        "sandbox:     info() ran with nothing granted: no store, no keys, no network"
    )?;
    writeln!(out, "provider:    {} {}", info.name, info.version)?;
    writeln!(out, "stateful:    {}", info.stateful)?;
    writeln!(
        out,
        "id rules:    separator {:?}, characters [{}], leading separator {}, max {} bytes, max levels {}",
        rules.separator,
        printable(&rules.allowed_chars),
        rules.leading_separator,
        rules.max_id_len,
        rules
            .max_levels
            .map_or("none".to_owned(), |l| l.to_string())
    )?;
    if !rules.forbidden_prefixes.is_empty() {
        writeln!(
            out,
            "forbidden:   {}",
            printable(&rules.forbidden_prefixes.join(", "))
        )?;
    }
    writeln!(out, "max value:   {} bytes", rules.max_value_bytes)?;
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
