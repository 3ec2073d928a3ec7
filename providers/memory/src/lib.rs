//! The in-memory reference provider: the smallest complete provider, used to
//! exercise the runtime and the conformance suite. It keeps the host's secret
//! handles in a sorted map inside its own instance, so it never sees plaintext and
//! loses everything when its instance is discarded.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret,
    export_provider,
};

/// Ids are OpenMetadata-shaped; values up to 64 KiB, as AWS Secrets Manager.
const MAX_ID_LEN: u32 = 512;
const MAX_VALUE_BYTES: u64 = 65_536;

thread_local! {
    static SECRETS: RefCell<BTreeMap<String, Secret>> = const { RefCell::new(BTreeMap::new()) };
}

/// The declared rules, built once.
static RULES: std::sync::LazyLock<IdRules> =
    std::sync::LazyLock::new(|| IdRules::slash_separated(MAX_ID_LEN, MAX_VALUE_BYTES));

struct Memory;

impl Provider for Memory {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "memory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            id_rules: RULES.clone(),
            stateful: true,
        }
    }

    fn put(id: String, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        // The host checks these first; a provider still enforces what it declares.
        RULES.check(&id)?;
        RULES.check_value(&value)?;
        SECRETS.with(|secrets| {
            let mut secrets = secrets.borrow_mut();
            let outcome = match secrets.get(&id) {
                None => PutOutcome::Created,
                Some(old) if old.equals(&value) => return Ok(PutOutcome::Unchanged),
                Some(_) => PutOutcome::Updated,
            };
            secrets.insert(id, value);
            Ok(outcome)
        })
    }

    fn get(id: String) -> Result<Option<Secret>, Error> {
        Ok(SECRETS.with(|secrets| secrets.borrow().get(&id).map(Secret::clone)))
    }

    fn delete(id: String) -> Result<bool, Error> {
        Ok(SECRETS
            .with(|secrets| secrets.borrow_mut().remove(&id))
            .is_some())
    }

    fn list(prefix: String, cursor: Option<String>, limit: u32) -> Result<ListPage, Error> {
        SECRETS.with(|secrets| {
            let secrets = secrets.borrow();
            // Start at the cursor (or the prefix) instead of scanning from the top.
            let start = match &cursor {
                Some(after) => Bound::Excluded(after.clone()),
                None => Bound::Included(prefix.clone()),
            };
            let ids = secrets
                .range((start, Bound::Unbounded))
                .map(|(id, _)| id)
                .skip_while(|id| !id.starts_with(&prefix) && id.as_str() < prefix.as_str())
                .take_while(|id| id.starts_with(&prefix))
                .cloned();
            Ok(ListPage::from_sorted(ids, None, limit))
        })
    }
}

export_provider!(Memory);
