//! OpenMetadata semantics: which fields of a config are secrets (from its JSON
//! Schemas) and the ids they are stored under.

pub mod ids;
pub mod manager;
pub mod owners;
pub mod schema;
