//! The one place `bindgen!` runs on the host side: Rust types and traits generated
//! from `wit/v0.1.0`. Hand-written code lives in `caps/` and `provider.rs`.

wasmtime::component::bindgen!({
    path: "../../wit/v0.1.0",
    world: "provider-world",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "secret-broker:provider/types.secret": crate::secret::SecretValue,
    },
});

pub use self::secret_broker::provider::types::{
    Error as WitError, IdRules as WitIdRules, ListPage as WitListPage,
    ProviderInfo as WitProviderInfo, PutOptions as WitPutOptions, PutOutcome as WitPutOutcome,
    Tag as WitTag,
};
