//! Integration tests of secret-broker live in `tests/tests/`; this library only
//! carries the paths of the guest components `build.rs` built.

/// Paths of the built guest components, and `foreach_guest!`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
