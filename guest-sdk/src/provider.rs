//! The [`Provider`] trait and [`export_provider!`]: a provider is built once per
//! Wasm instance from its settings, its methods take `&self`, and what `info()`
//! answers (name, version, id rules, statefulness) is declared once beside the
//! export, which also checks every id and value against the declared rules
//! before the provider sees them.

use std::cell::OnceCell;
use std::rc::Rc;

use crate::{Error, IdRules, ListPage, ProviderInfo, PutOptions, PutOutcome, Secret};

/// A storage provider. Every method runs inside the provider's sandbox.
///
/// [`Provider::new`] runs once per Wasm instance, on its first call (not for
/// `info()`, which `provider verify` runs with nothing granted): read the
/// settings there and keep them, and whatever the instance should remember
/// between calls (a token's state, a cache of your own), in `self`.
pub trait Provider: Sized + 'static {
    /// Builds the provider from its settings (`config`). An error here is the
    /// error of every call until a call succeeds in building it.
    fn new() -> Result<Self, Error>;
    /// Creates or replaces the value at `id`.
    fn put(&self, id: &str, value: Secret, options: PutOptions) -> Result<PutOutcome, Error>;
    /// The value at `id`, `None` when absent.
    fn get(&self, id: &str) -> Result<Option<Secret>, Error>;
    /// Deletes `id`; reports whether it existed. Must be idempotent.
    fn delete(&self, id: &str) -> Result<bool, Error>;
    /// Ids starting with `prefix`, ascending, after `cursor`, at most `limit`
    /// per page. Backends that cannot list keep this default, which migration
    /// and inventory report clearly.
    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        let _ = (prefix, cursor, limit);
        Err(Error::Backend(
            "this provider does not support listing".into(),
        ))
    }
    /// Re-seals the value at `id` under the current master key. Providers that
    /// do not store keyring ciphertexts keep this default.
    fn reseal(&self, id: &str) -> Result<bool, Error> {
        let _ = id;
        Ok(false)
    }
}

/// What a provider declares about itself; [`export_provider!`] answers `info()`
/// with it and checks ids and values against its rules.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The provider's name.
    pub name: &'static str,
    /// Its version (the macro passes the crate's `CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// The id rules it enforces.
    pub rules: IdRules,
    /// Whether one Wasm instance must serve every call.
    pub stateful: bool,
}

impl Declared {
    /// `info()`'s answer.
    pub fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: self.name.into(),
            version: self.version.into(),
            id_rules: self.rules.clone(),
            stateful: self.stateful,
        }
    }
}

/// The instance's provider, built on first use (and again after a failed build).
#[doc(hidden)]
pub struct Instance<P>(OnceCell<Rc<P>>);

impl<P: Provider> Instance<P> {
    /// Nothing built yet.
    pub const fn new() -> Self {
        Instance(OnceCell::new())
    }

    /// The provider, built now if it was not.
    pub fn get(&self) -> Result<Rc<P>, Error> {
        if let Some(p) = self.0.get() {
            return Ok(p.clone());
        }
        let built = Rc::new(P::new()?);
        Ok(self.0.get_or_init(|| built).clone())
    }

    /// The provider, for a call on `id` (and `value`): checked against the
    /// declared `rules` first, when the provider declares them.
    pub fn checked(
        &self,
        rules: Option<&IdRules>,
        id: &str,
        value: Option<&Secret>,
    ) -> Result<Rc<P>, Error> {
        if let Some(rules) = rules {
            rules.check(id)?;
            if let Some(value) = value {
                rules.check_value(value)?;
            }
        }
        self.get()
    }
}

impl<P: Provider> Default for Instance<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Exports a [`Provider`] as the component's `provider` interface.
///
/// Declared: `info()` answers the name, the crate's version, the rules and
/// whether it is stateful, and every id (and value) is checked against the
/// rules before the provider sees it:
///
/// ```text
/// export_provider!(Mine, name: "mine", rules: IdRules::slash_separated(512, 65_536));
/// export_provider!(Mine, name: "mine", rules: rules(), stateful: true);
/// ```
///
/// Or `info: EXPR` for an `info()` computed at each call (a test program that
/// answers what it is told); ids are then left to the host's checks.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty, name: $name:expr, rules: $rules:expr $(,)?) => {
        $crate::export_provider!($provider, name: $name, rules: $rules, stateful: false);
    };
    ($provider:ty, name: $name:expr, rules: $rules:expr, stateful: $stateful:expr $(,)?) => {
        $crate::__export_provider_with!($provider, {
            static __DECLARED: ::std::sync::LazyLock<$crate::Declared> =
                ::std::sync::LazyLock::new(|| $crate::Declared {
                    name: $name,
                    version: env!("CARGO_PKG_VERSION"),
                    rules: $rules,
                    stateful: $stateful,
                });
            fn __rules() -> ::std::option::Option<&'static $crate::IdRules> {
                ::std::option::Option::Some(&__DECLARED.rules)
            }
            fn __info() -> $crate::ProviderInfo {
                __DECLARED.info()
            }
        });
    };
    ($provider:ty, info: $info:expr $(,)?) => {
        $crate::__export_provider_with!($provider, {
            fn __rules() -> ::std::option::Option<&'static $crate::IdRules> {
                ::std::option::Option::None
            }
            fn __info() -> $crate::ProviderInfo {
                $info
            }
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_provider_with {
    ($provider:ty, { $($declare:item)* }) => {
        const _: () = {
            $($declare)*
            ::std::thread_local! {
                static __INSTANCE: $crate::provider::Instance<$provider> =
                    const { $crate::provider::Instance::new() };
            }
            struct __Export;
            impl $crate::__bindings::exports::secret_broker::provider0_1_0::provider::Guest
                for __Export
            {
                fn info() -> $crate::ProviderInfo {
                    __info()
                }
                fn put(
                    id: ::std::string::String,
                    value: $crate::Secret,
                    options: $crate::PutOptions,
                ) -> ::std::result::Result<$crate::PutOutcome, $crate::Error> {
                    __INSTANCE.with(|p| p.checked(__rules(), &id, ::std::option::Option::Some(&value))?.put(&id, value, options))
                }
                fn get(
                    id: ::std::string::String,
                ) -> ::std::result::Result<::std::option::Option<$crate::Secret>, $crate::Error>
                {
                    __INSTANCE.with(|p| p.checked(__rules(), &id, ::std::option::Option::None)?.get(&id))
                }
                fn delete(id: ::std::string::String) -> ::std::result::Result<bool, $crate::Error> {
                    __INSTANCE.with(|p| p.checked(__rules(), &id, ::std::option::Option::None)?.delete(&id))
                }
                fn list(
                    prefix: ::std::string::String,
                    cursor: ::std::option::Option<::std::string::String>,
                    limit: u32,
                ) -> ::std::result::Result<$crate::ListPage, $crate::Error> {
                    __INSTANCE.with(|p| p.get()?.list(&prefix, cursor.as_deref(), limit))
                }
                fn reseal(id: ::std::string::String) -> ::std::result::Result<bool, $crate::Error> {
                    __INSTANCE.with(|p| p.checked(__rules(), &id, ::std::option::Option::None)?.reseal(&id))
                }
            }
            $crate::__bindings::__export_provider_world!(__Export);
        };
    };
}
