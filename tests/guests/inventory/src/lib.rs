//! A provider that keeps handles in its instance, like the memory provider, and
//! reports every id it stores or deletes to an inventory the embedder keeps: a
//! capability of the embedder's own (`example:embedder/inventory`), which is not
//! part of secret-broker's WIT. The host example `embedder.rs` runs it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret,
    export_provider,
};

mod inventory {
    wit_bindgen::generate!({
        inline: "
            package example:embedder@0.1.0;

            interface inventory {
                /// Records that `id` saw `event` (put, delete); never a value.
                report: func(id: string, event: string);
            }

            world inventory-user {
                import inventory;
            }
        ",
    });
    pub use self::example::embedder::inventory::report;
}

thread_local! {
    static SECRETS: RefCell<BTreeMap<String, Secret>> = const { RefCell::new(BTreeMap::new()) };
}

struct Inventoried;

impl Inventoried {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "inventoried".into(),
            version: "0.0.1".into(),
            id_rules: IdRules::slash_separated(256, 4096),
            stateful: true,
        }
    }
}

impl Provider for Inventoried {
    fn new() -> Result<Self, Error> {
        Ok(Inventoried)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let id = id.to_owned();
        inventory::report(&id, "put");
        let old = SECRETS.with(|s| s.borrow_mut().insert(id, value));
        Ok(if old.is_some() {
            PutOutcome::Updated
        } else {
            PutOutcome::Created
        })
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let id = id.to_owned();
        Ok(SECRETS.with(|s| s.borrow().get(&id).map(Secret::clone)))
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        let id = id.to_owned();
        inventory::report(&id, "delete");
        Ok(SECRETS.with(|s| s.borrow_mut().remove(&id)).is_some())
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        let prefix = prefix.to_owned();
        let cursor = cursor.map(str::to_owned);
        let ids: Vec<String> = SECRETS.with(|s| {
            s.borrow()
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect()
        });
        Ok(ListPage::from_sorted(ids, cursor.as_deref(), limit))
    }
}

export_provider!(Inventoried, info: Inventoried::info());
