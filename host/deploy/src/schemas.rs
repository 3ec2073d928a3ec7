//! OpenMetadata's JSON Schemas: the ones embedded in the binary for the release
//! it targets ([`RELEASE`]), or a directory given for a newer OpenMetadata.

use std::path::Path;

use anyhow::Context as _;
use secret_broker::openmetadata::schema::SchemaSet;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
}

/// The OpenMetadata release whose schemas are embedded; `None` when this
/// binary was built without them.
pub const RELEASE: Option<&str> = embedded::RELEASE;

/// `--schemas`'s help: what it is for, and which release is embedded.
pub const HELP: &str = embedded::HELP;

/// The schemas in `dir`, else the embedded ones; an error saying what to give
/// when there are neither.
pub fn load(dir: Option<&Path>) -> anyhow::Result<SchemaSet> {
    if let Some(dir) = dir {
        return SchemaSet::load(dir)
            .with_context(|| format!("reading OpenMetadata's schemas from {}", dir.display()));
    }
    let Some(release) = RELEASE else {
        anyhow::bail!(
            "this binary was built without OpenMetadata's schemas: give --schemas DIR \
             (openmetadata-spec's src/main/resources/json/schema) or SECRET_BROKER_SCHEMAS"
        );
    };
    SchemaSet::from_files(
        &format!("the schemas embedded for OpenMetadata {release}"),
        embedded::FILES.iter().copied(),
    )
    .context("reading the embedded OpenMetadata schemas")
}
