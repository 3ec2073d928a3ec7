//! The one place `bindgen!` runs on the host side, one module per contract version
//! (as Zed's extension host does): Rust types and traits generated from
//! `wit/v0.1.0` (re-exported at this module's root, where every capability
//! implements them) and from `wit/v0.2.0` ([`v0_2_0`], which adds `http` and
//! reuses every 0.1.0 interface unchanged). Hand-written code lives in `caps/` and
//! `provider.rs`.

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

/// Contract 0.2.0: the `http` capability. Its world includes the 0.1.0 world, whose
/// interfaces are the very ones above (a 0.2.0 component imports them at 0.1.0 and
/// exports `provider@0.1.0`), so the host calls every provider the same way and
/// links `http` only for those that import it.
pub mod v0_2_0 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "provider-world",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "secret-broker:provider/types@0.1.0": crate::bindings::secret_broker::provider::types,
            "secret-broker:provider/keyring@0.1.0": crate::bindings::secret_broker::provider::keyring,
            "secret-broker:provider/record-store@0.1.0": crate::bindings::secret_broker::provider::record_store,
            "secret-broker:provider/aws-secrets-manager@0.1.0": crate::bindings::secret_broker::provider::aws_secrets_manager,
            "secret-broker:provider/aws-ssm@0.1.0": crate::bindings::secret_broker::provider::aws_ssm,
            "secret-broker:provider/log@0.1.0": crate::bindings::secret_broker::provider::log,
            "secret-broker:provider/config@0.1.0": crate::bindings::secret_broker::provider::config,
            "secret-broker:provider/reveal@0.1.0": crate::bindings::secret_broker::provider::reveal,
        },
    });
}
