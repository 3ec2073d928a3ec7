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
//!     export_provider, Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions,
//!     PutOutcome, Secret,
//! };
//!
//! thread_local! {
//!     static SECRETS: RefCell<BTreeMap<String, Secret>> = RefCell::new(BTreeMap::new());
//! }
//!
//! struct Tiny;
//!
//! impl Provider for Tiny {
//!     fn info() -> ProviderInfo {
//!         ProviderInfo {
//!             name: "tiny".into(),
//!             version: "0.1.0".into(),
//!             id_rules: IdRules::slash_separated(256, 65_536),
//!             stateful: true,
//!         }
//!     }
//!     fn put(id: String, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
//!         let old = SECRETS.with(|s| s.borrow_mut().insert(id, value));
//!         Ok(if old.is_some() { PutOutcome::Updated } else { PutOutcome::Created })
//!     }
//!     fn get(id: String) -> Result<Option<Secret>, Error> {
//!         Ok(SECRETS.with(|s| s.borrow().get(&id).map(Secret::clone)))
//!     }
//!     fn delete(id: String) -> Result<bool, Error> {
//!         Ok(SECRETS.with(|s| s.borrow_mut().remove(&id)).is_some())
//!     }
//!     fn list(prefix: String, _cursor: Option<String>, _limit: u32) -> Result<ListPage, Error> {
//!         let ids = SECRETS.with(|s| {
//!             s.borrow().keys().filter(|k| k.starts_with(&prefix)).cloned().collect()
//!         });
//!         Ok(ListPage { ids, next_cursor: None })
//!     }
//! }
//!
//! export_provider!(Tiny);
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
pub use page::{collect_sorted, walk_tree};
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

/// A storage provider. Every function runs inside the provider's sandbox.
pub trait Provider {
    /// Name, version and the id rules the provider enforces.
    fn info() -> ProviderInfo;
    /// Creates or replaces the value at `id`.
    fn put(id: String, value: Secret, options: PutOptions) -> Result<PutOutcome, Error>;
    /// The value at `id`, `None` when absent.
    fn get(id: String) -> Result<Option<Secret>, Error>;
    /// Deletes `id`; reports whether it existed. Must be idempotent.
    fn delete(id: String) -> Result<bool, Error>;
    /// Ids starting with `prefix`, ascending, at most `limit` per page. Backends that
    /// cannot list keep this default, which migration and inventory report clearly.
    fn list(prefix: String, cursor: Option<String>, limit: u32) -> Result<ListPage, Error> {
        let _ = (prefix, cursor, limit);
        Err(Error::Backend(
            "this provider does not support listing".into(),
        ))
    }
    /// Re-seals the value at `id` under the current master key. Providers that do
    /// not store keyring ciphertexts keep this default.
    fn reseal(id: String) -> Result<bool, Error> {
        let _ = id;
        Ok(false)
    }
}

/// Exports a [`Provider`] implementation as the component's `provider` interface.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        const _: () = {
            struct __Export;
            impl $crate::__bindings::exports::secret_broker::provider0_1_0::provider::Guest
                for __Export
            {
                fn info() -> $crate::ProviderInfo {
                    <$provider as $crate::Provider>::info()
                }
                fn put(
                    id: ::std::string::String,
                    value: $crate::Secret,
                    options: $crate::PutOptions,
                ) -> ::std::result::Result<$crate::PutOutcome, $crate::Error> {
                    <$provider as $crate::Provider>::put(id, value, options)
                }
                fn get(
                    id: ::std::string::String,
                ) -> ::std::result::Result<::std::option::Option<$crate::Secret>, $crate::Error>
                {
                    <$provider as $crate::Provider>::get(id)
                }
                fn delete(id: ::std::string::String) -> ::std::result::Result<bool, $crate::Error> {
                    <$provider as $crate::Provider>::delete(id)
                }
                fn list(
                    prefix: ::std::string::String,
                    cursor: ::std::option::Option<::std::string::String>,
                    limit: u32,
                ) -> ::std::result::Result<$crate::ListPage, $crate::Error> {
                    <$provider as $crate::Provider>::list(prefix, cursor, limit)
                }
                fn reseal(id: ::std::string::String) -> ::std::result::Result<bool, $crate::Error> {
                    <$provider as $crate::Provider>::reseal(id)
                }
            }
            $crate::__bindings::__export_provider_world!(__Export);
        };
    };
}
