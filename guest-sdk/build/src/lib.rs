//! Builds guest components (providers, test guests) for `wasm32-wasip2` from a
//! build script, so that `cargo build` and `cargo test` always run fresh guests.
//!
//! Two toolchain paths, chosen automatically:
//! - rustup with the `wasm32-wasip2` target installed (a provider author's usual
//!   machine): plain `cargo build --target wasm32-wasip2`;
//! - otherwise Debian's `rustc-web` toolchain (`/usr/bin/cargo`, 1.96) building the
//!   standard library from source (`-Zbuild-std`) with `wasm-component-ld` as the
//!   linker, as ../shared/design.md section 6 describes.
//!
//! Guests build into `<target>/guests`, a target dir of their own: the outer cargo
//! holds the lock on the main one while build scripts run. Cargo's own fingerprints
//! skip the work when nothing changed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile guests build with (see the workspace `Cargo.toml`).
pub const PROFILE: &str = "guest";
const TARGET: &str = "wasm32-wasip2";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_WASI_LIBS: &str = "/usr/lib/wasm32-wasi";

/// A guest to build: its cargo package and the folder holding its sources.
#[derive(Debug, Clone)]
pub struct Guest {
    /// Cargo package name, such as `secret-broker-provider-memory`.
    pub package: String,
    /// The package folder, watched for changes.
    pub dir: PathBuf,
}

/// Builds `guests` in the workspace at `workspace_root` and returns, in the same
/// order, the path of each component. Prints the `cargo:rerun-if-changed` lines
/// for everything the guests are made from.
///
/// Panics with instructions when no toolchain can build them: a build script has
/// no better way to fail.
pub fn build(workspace_root: &Path, guests: &[Guest]) -> Vec<PathBuf> {
    for watched in [
        "wit",
        "guest-sdk/src",
        "host/idrules/src",
        "host/names/src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(watched).display()
        );
    }
    for guest in guests {
        println!("cargo:rerun-if-changed={}", guest.dir.display());
    }
    println!("cargo:rerun-if-env-changed=SECRET_BROKER_GUEST_TOOLCHAIN");

    let target_dir = guest_target_dir(workspace_root);
    // `cargo rustc` builds one package per call; shared dependencies are reused.
    for guest in guests {
        let mut cmd = toolchain_command(workspace_root);
        cmd.current_dir(workspace_root)
            .args([
                "rustc",
                "--profile",
                PROFILE,
                "--target",
                TARGET,
                "--crate-type",
                "cdylib",
            ])
            .args(["-p", &guest.package])
            .arg("--target-dir")
            .arg(&target_dir);
        let status = cmd.status().unwrap_or_else(|e| {
            panic!("could not run cargo to build the guest components: {e}; run tests/setup first")
        });
        if !status.success() {
            panic!(
                "building guest {} failed ({status}); see the cargo output above",
                guest.package
            );
        }
    }
    guests
        .iter()
        .map(|g| {
            let file = format!("{}.wasm", g.package.replace('-', "_"));
            let path = target_dir.join(TARGET).join(PROFILE).join(file);
            assert!(
                path.exists(),
                "cargo built {} but {} is missing",
                g.package,
                path.display()
            );
            path
        })
        .collect()
}

fn guest_target_dir(workspace_root: &Path) -> PathBuf {
    let base = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"));
    base.join("guests")
}

/// Which toolchain builds guests: `rustup` (the target is installed), `debian`
/// (§6 recipe), or chosen automatically when `SECRET_BROKER_GUEST_TOOLCHAIN` is unset.
fn toolchain_command(workspace_root: &Path) -> Command {
    let choice = env::var("SECRET_BROKER_GUEST_TOOLCHAIN").unwrap_or_default();
    let use_rustup = match choice.as_str() {
        "rustup" => true,
        "debian" => false,
        _ => rustup_has_target(),
    };
    let mut cmd = if use_rustup {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Command::new(cargo)
    } else {
        debian_command(workspace_root)
    };
    scrub_outer_cargo_env(&mut cmd);
    cmd
}

fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false)
}

fn debian_command(_workspace_root: &Path) -> Command {
    if !Path::new(DEBIAN_CARGO).exists() || !Path::new(DEBIAN_WASI_LIBS).exists() {
        panic!(
            "no toolchain can build wasm32-wasip2 guests: rustup has no `{TARGET}` target and \
             Debian's rustc-web is not installed; run tests/setup (or `rustup target add {TARGET}`)"
        );
    }
    let path = format!("/usr/bin:{}", env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(DEBIAN_CARGO);
    cmd.env("PATH", path)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", "/usr/bin/rustc")
        .env("CARGO_TARGET_WASM32_WASIP2_LINKER", "wasm-component-ld")
        .env(
            "RUSTFLAGS",
            format!("-L {DEBIAN_WASI_LIBS} -C link-self-contained=no"),
        )
        .arg("-Zbuild-std=std,panic_abort");
    cmd
}

/// The outer cargo's variables describe the build script's own compilation; a
/// nested cargo must not inherit them.
fn scrub_outer_cargo_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer = key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "CARGO_ENCODED_RUSTFLAGS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTDOC"
                    | "RUSTUP_TOOLCHAIN"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if outer {
            cmd.env_remove(key);
        }
    }
    if !cmd.get_envs().any(|(k, _)| k == "RUSTC") {
        cmd.env_remove("RUSTC");
    }
    if !cmd.get_envs().any(|(k, _)| k == "RUSTFLAGS") {
        cmd.env_remove("RUSTFLAGS");
    }
}
