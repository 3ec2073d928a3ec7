//! Typed access to the host capabilities. Each module is usable only when the
//! provider's configuration grants it; otherwise the host refuses to instantiate the
//! provider and names the missing grant.

/// Envelope encryption by the host (grant `keyring`).
pub mod keyring {
    pub use crate::__bindings::secret_broker::provider::keyring::{open, reseal, seal};
}

/// Versioned rows namespaced to this provider instance (grant `record-store`).
pub mod record_store {
    pub use crate::__bindings::secret_broker::provider::record_store::{
        Condition, Row, Write, apply, get, put, remove, scan,
    };
}

/// AWS Secrets Manager scoped to the grant's prefix (grant `aws-secrets-manager`).
pub mod aws_secrets_manager {
    pub use crate::__bindings::secret_broker::provider::aws_secrets_manager::{
        create_secret, delete_secret, get_secret_value, list_secrets, update_secret,
    };
}

/// AWS SSM Parameter Store scoped to the grant's prefix (grant `aws-ssm`).
pub mod aws_ssm {
    pub use crate::__bindings::secret_broker::provider::aws_ssm::{
        delete_parameter, get_parameter, get_parameters_by_path, put_parameter,
    };
}

/// Lines to the host log, scrubbed of secret values by the host.
pub mod log {
    pub use crate::__bindings::secret_broker::provider::log::{Level, log};

    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
}

/// The provider instance's settings from the host configuration.
pub mod config {
    pub use crate::__bindings::secret_broker::provider::config::{get, get_all};
}

/// Plaintext of a secret (grant `reveal`; first-party providers never need it).
pub mod reveal {
    pub use crate::__bindings::secret_broker::provider::reveal::reveal;
}
