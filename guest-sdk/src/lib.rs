//! The guest SDK: what a secret-broker provider author depends on.
//!
//! A provider is a Wasm component that stores secrets in some backend. It never
//! sees plaintext: values arrive and leave as [`Secret`] handles, and the provider
//! moves them through the host capabilities it was granted ([`keyring`],
//! [`record_store`], [`aws_secrets_manager`], [`aws_ssm`]). Implement [`Provider`]
//! and export it with [`export_provider!`]:
//!
//! ```no_run
//! use std::cell::RefCell;
//! use std::collections::BTreeMap;
//! use secret_broker_guest_sdk::{
//!     export_provider, Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret,
//! };
//!
//! /// Keeps the host's handles in its own instance (stateful: one instance
//! /// serves every call).
//! struct Tiny {
//!     secrets: RefCell<BTreeMap<String, Secret>>,
//! }
//!
//! impl Provider for Tiny {
//!     fn new() -> Result<Self, Error> {
//!         Ok(Tiny { secrets: RefCell::new(BTreeMap::new()) })
//!     }
//!     fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
//!         let old = self.secrets.borrow_mut().insert(id.to_owned(), value);
//!         Ok(if old.is_some() { PutOutcome::Updated } else { PutOutcome::Created })
//!     }
//!     fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
//!         Ok(self.secrets.borrow().get(id).map(Secret::clone))
//!     }
//!     fn delete(&self, id: &str) -> Result<bool, Error> {
//!         Ok(self.secrets.borrow_mut().remove(id).is_some())
//!     }
//!     fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
//!         let secrets = self.secrets.borrow();
//!         let ids = secrets.keys().filter(|k| k.starts_with(prefix)).cloned();
//!         Ok(ListPage::from_sorted(ids, cursor, limit))
//!     }
//! }
//!
//! // `info()` answers this name, the crate's version and these rules, and every
//! // id and value is checked against the rules before `Tiny` sees it.
//! export_provider!(Tiny, name: "tiny", rules: IdRules::slash_separated(256, 65_536), stateful: true);
//! ```
//!
//! # Building
//!
//! On a machine whose rustup has the target (`rustup target add wasm32-wasip2`):
//!
//! ```text
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! On a machine without it (Debian's `rustc-web` toolchain, see the project README):
//!
//! ```text
//! PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 \
//!   CARGO_TARGET_WASM32_WASIP2_LINKER=wasm-component-ld \
//!   RUSTFLAGS="-L /usr/lib/wasm32-wasi -C link-self-contained=no" \
//!   cargo build --release --target wasm32-wasip2 -Zbuild-std=std,panic_abort
//! ```
//!
//! Then check it with `secret-broker provider verify target/wasm32-wasip2/release/NAME.wasm`
//! and run the conformance suite with `secret-broker provider test ...`.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.2.0",
        world: "provider-world",
        pub_export_macro: true,
        export_macro_name: "__export_provider_world",
        default_bindings_module: "::secret_broker_guest_sdk::__bindings",
        generate_all,
    });
}

/// The provider author's guide (`GUIDE.md`), here so that its example provider
/// is compiled by this crate's doc tests and stays true.
#[doc = include_str!("../GUIDE.md")]
pub mod guide {}

mod capabilities;
mod page;
#[doc(hidden)]
pub mod provider;
pub use page::{collect_sorted, walk_tree};
pub use provider::{Declared, Provider};
mod rules;

/// The setting keys and credential names the host's presets and the
/// first-party providers share.
pub use secret_broker_names as names;

pub use capabilities::{
    aws_secrets_manager, aws_ssm, config, http, keyring, log, record_store, reveal,
};

use __bindings::secret_broker::provider0_1_0::types;

/// Why an operation failed.
pub use types::Error;
/// The id rules a provider enforces.
pub use types::IdRules;
/// One page of a listing.
pub use types::ListPage;
/// What a provider says about itself.
pub use types::ProviderInfo;
/// Metadata for a put.
pub use types::PutOptions;
/// How a put changed the store.
pub use types::PutOutcome;
/// A secret value held by the host; the provider only ever holds a handle.
pub use types::Secret;
/// A size that exceeded its limit.
pub use types::SizeLimit;
/// A tag attached to a secret.
pub use types::Tag;
