//! The conformance suite against every first-party provider component.

use std::sync::Arc;

use secret_broker::{Granted, ProviderHost, Runtime, RuntimeOptions, conformance};
use secret_broker_tests::guests;

#[tokio::test]
async fn memory_provider_passes_the_suite() -> anyhow::Result<()> {
    let rt = Runtime::new(RuntimeOptions::default())?;
    let component = rt.load_file(std::path::Path::new(guests::PROVIDER_MEMORY))?;
    let granted = Granted::new("conformance");
    let host = Arc::new(ProviderHost::new(&rt, &component, granted).await?);
    let report = conformance::run(host).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.checks.len(), 16);
    Ok(())
}
