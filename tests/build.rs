//! Builds every test guest under `tests/guests/` for wasm32-wasip2 and writes
//! `guests.rs`: one path constant per guest, and `foreach_guest!`, which the tests
//! use to fail the build when a guest has no test module.

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

use secret_broker_guest_build::{Guest, build};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().map(PathBuf::from).unwrap_or_default();
    let guests_dir = manifest_dir.join("guests");
    println!("cargo:rerun-if-changed={}", guests_dir.display());
    // The built-in providers' list is include!d below, which cargo does not see.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/builtin/src/names.rs").display()
    );
    let mut names: Vec<String> = std::fs::read_dir(&guests_dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut guests: Vec<Guest> = names
        .iter()
        .map(|n| Guest {
            package: format!("secret-broker-test-guest-{n}"),
            dir: guests_dir.join(n),
        })
        .collect();
    for provider in include!("../host/builtin/src/names.rs") {
        guests.push(Guest {
            package: format!("secret-broker-provider-{provider}"),
            dir: root.join("providers").join(provider),
        });
    }
    let paths = build(&root, &guests);

    let mut out = String::new();
    for (guest, path) in guests.iter().zip(&paths) {
        let konst = guest
            .package
            .trim_start_matches("secret-broker-")
            .replace('-', "_")
            .to_uppercase();
        let _ = writeln!(
            out,
            "pub const {konst}: &str = {:?};",
            path.display().to_string()
        );
    }
    let idents: Vec<String> = names.iter().map(|n| n.replace('-', "_")).collect();
    let _ = writeln!(
        out,
        "#[macro_export]\nmacro_rules! foreach_guest {{ ($m:ident) => {{ {} }}; }}",
        idents
            .iter()
            .map(|i| format!("$m!({i});"))
            .collect::<String>()
    );
    let dest = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("guests.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("writing {}: {e}", dest.display());
    }
}
