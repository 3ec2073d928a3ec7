//! The `http` capability (contract 0.2.0): a provider reaches an HTTP backend on
//! the origins its grant allows, and plaintext stays in the host.
//!
//! - A request's header values and body are lists of parts: the provider's own
//!   bytes, a secret handle, or a credential of the grant by name, each written
//!   by the host in the encoding asked for. The method, origin and path are the
//!   provider's text and can hold no secret.
//! - Secret fields of a response (the whole body, or JSON pointers) are lifted
//!   into handles before the provider sees the body, and removed from it;
//!   everything the provider receives is scrubbed of every value the call spliced.
//! - The host enforces the grant: origins allow-listed (scheme, host, port);
//!   redirects followed only within the origin; every address a name resolves to
//!   checked (loopback and private ranges only with `allow_private`) and only
//!   checked addresses connected to; TLS by rustls with the system roots plus an
//!   optional CA file; connect and request timeouts bounded by the call's
//!   deadline; response size and requests per call limited.
//! - Backend credentials are configured in the grant (or kept from a login's
//!   answer) and reach the provider only as names to splice; a signer credential
//!   is an assertion the host signs afresh at each splice with a key the
//!   provider never holds.
#![deny(missing_docs)]

mod address;
mod cap;
mod ctx;
mod jwt;
mod lift;
mod scrub;
mod settings;
mod splice;
mod transport;

pub use address::{AddressKind, classify};
pub use cap::{HttpView, add_to_linker};
pub use ctx::HttpCtx;
pub use jwt::{JwtSigner, MAX_LIFETIME as MAX_ASSERTION_LIFETIME};
pub use settings::{HttpSettings, Origin, SettingsError};

/// Makes aws-lc-rs the process's default rustls crypto provider unless one is
/// already set. The grant's own client is configured explicitly; this is for the
/// other reqwest clients of a process that links this crate (reqwest's rustls
/// feature here comes without a provider of its own).
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile: either is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}
