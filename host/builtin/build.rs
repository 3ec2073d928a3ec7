//! Builds the first-party provider components for wasm32 (once per change of
//! their sources: the guest build caches by content) so this crate can embed them.

use std::env;
use std::path::PathBuf;

use secret_broker_guest_build::{Guest, build};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_default();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    // The list is include!d here, which cargo does not see: say so, or adding a
    // provider reuses an old run's output without the new component.
    println!("cargo:rerun-if-changed=src/names.rs");
    let providers = include!("src/names.rs");
    let guests: Vec<Guest> = providers
        .iter()
        .map(|name| Guest {
            package: format!("secret-broker-provider-{name}"),
            dir: root.join("providers").join(name),
        })
        .collect();
    for (name, wasm) in providers.iter().zip(build(&root, &guests)) {
        let dest = out_dir.join(format!("{name}.wasm"));
        if let Err(e) = std::fs::copy(&wasm, &dest) {
            panic!("copying {} to {}: {e}", wasm.display(), dest.display());
        }
    }
}
