#![allow(unsafe_code)] // wit-bindgen's generated exports
//! An in-memory provider built against `wit/v0.1.0` directly, as a provider
//! released before contract 0.2.0 was: it must keep loading and passing the
//! conformance suite on a host that serves 0.2.0.

use std::cell::RefCell;
use std::collections::BTreeMap;

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "provider-world",
    generate_all,
});

use exports::secret_broker::provider::provider::Guest;
use secret_broker::provider::types::{
    Error, IdRules, ListPage, ProviderInfo, PutOptions, PutOutcome, Secret, SizeLimit,
};

thread_local! {
    static VALUES: RefCell<BTreeMap<String, Secret>> = const { RefCell::new(BTreeMap::new()) };
}

struct Legacy;

impl Guest for Legacy {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "legacy".into(),
            version: "0.1.0".into(),
            id_rules: IdRules {
                separator: "/".into(),
                allowed_chars: "A-Za-z0-9/_.-".into(),
                leading_separator: true,
                max_id_len: 256,
                max_levels: None,
                forbidden_prefixes: Vec::new(),
                max_value_bytes: 65_536,
            },
            stateful: true,
        }
    }

    fn put(id: String, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        if id.len() > 256 {
            return Err(Error::InvalidId("longer than 256 bytes".into()));
        }
        if value.len() > 65_536 {
            return Err(Error::ValueTooLarge(SizeLimit {
                size: value.len(),
                limit: 65_536,
            }));
        }
        Ok(VALUES.with(|v| {
            let mut v = v.borrow_mut();
            let outcome = match v.get(&id) {
                Some(old) if old.equals(&value) => return PutOutcome::Unchanged,
                Some(_) => PutOutcome::Updated,
                None => PutOutcome::Created,
            };
            v.insert(id, value);
            outcome
        }))
    }

    fn get(id: String) -> Result<Option<Secret>, Error> {
        Ok(VALUES.with(|v| v.borrow().get(&id).map(Secret::clone)))
    }

    fn delete(id: String) -> Result<bool, Error> {
        Ok(VALUES.with(|v| v.borrow_mut().remove(&id)).is_some())
    }

    fn list(prefix: String, cursor: Option<String>, limit: u32) -> Result<ListPage, Error> {
        let limit = limit.max(1) as usize;
        let mut ids: Vec<String> = VALUES.with(|v| {
            v.borrow()
                .keys()
                .filter(|k| k.starts_with(&prefix) && cursor.as_ref().is_none_or(|c| *k > c))
                .take(limit + 1)
                .cloned()
                .collect()
        });
        let next_cursor = (ids.len() > limit).then(|| {
            ids.truncate(limit);
            ids.last().cloned()
        });
        Ok(ListPage {
            ids,
            next_cursor: next_cursor.flatten(),
        })
    }

    fn reseal(_id: String) -> Result<bool, Error> {
        Ok(false)
    }
}

export!(Legacy);
