//! The in-memory reference provider: the smallest complete provider, used to
//! exercise the runtime and the conformance suite. It keeps the host's secret
//! handles in a sorted map inside its own instance, so it never sees plaintext and
//! loses everything when its instance is discarded.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, export_provider,
};

/// Ids are OpenMetadata-shaped; values up to 64 KiB, as AWS Secrets Manager.
const MAX_ID_LEN: u32 = 512;
const MAX_VALUE_BYTES: u64 = 65_536;

/// The host's handles, in this instance's memory.
struct Memory {
    secrets: RefCell<BTreeMap<String, Secret>>,
}

impl Provider for Memory {
    fn new() -> Result<Self, Error> {
        Ok(Memory {
            secrets: RefCell::new(BTreeMap::new()),
        })
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let mut secrets = self.secrets.borrow_mut();
        let outcome = match secrets.get(id) {
            None => PutOutcome::Created,
            Some(old) if old.equals(&value) => return Ok(PutOutcome::Unchanged),
            Some(_) => PutOutcome::Updated,
        };
        secrets.insert(id.to_owned(), value);
        Ok(outcome)
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        Ok(self.secrets.borrow().get(id).map(Secret::clone))
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        Ok(self.secrets.borrow_mut().remove(id).is_some())
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        let secrets = self.secrets.borrow();
        // Start at the cursor (or the prefix) instead of scanning from the top.
        let start = match cursor {
            Some(after) => Bound::Excluded(after.to_owned()),
            None => Bound::Included(prefix.to_owned()),
        };
        let ids = secrets
            .range((start, Bound::Unbounded))
            .map(|(id, _)| id)
            .skip_while(|id| !id.starts_with(prefix) && id.as_str() < prefix)
            .take_while(|id| id.starts_with(prefix))
            .cloned();
        Ok(ListPage::from_sorted(ids, None, limit))
    }
}

export_provider!(
    Memory,
    name: "memory",
    rules: IdRules::slash_separated(MAX_ID_LEN, MAX_VALUE_BYTES),
    stateful: true,
);
