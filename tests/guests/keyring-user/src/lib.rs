//! A provider that keeps sealed values in its instance memory: it needs the
//! `keyring` grant, and lets tests hand it a ciphertext sealed by another instance.
//! `list` exposes the sealed bytes (hex) as ids so a test can carry them across.

use std::cell::RefCell;
use std::collections::BTreeMap;

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret,
    export_provider, keyring,
};

thread_local! {
    static SEALED: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
}

struct KeyringUser;

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

impl KeyringUser {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "keyring-user".into(),
            version: "0.0.1".into(),
            id_rules: IdRules::slash_separated(2048, 4096),
            stateful: true,
        }
    }
}

impl Provider for KeyringUser {
    fn new() -> Result<Self, Error> {
        Ok(KeyringUser)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let id = id.to_owned();
        // A guess laundered through the keyring: sealed as the provider's own,
        // opened again, then compared with the host's value. The host must still
        // know the opened value as the provider's making and refuse the compare.
        if id == "/oracle/seal" {
            for n in 0..10_000 {
                let guess = Secret::new(format!("{n:04}").as_bytes());
                let sealed = keyring::seal(&guess, b"launder")?;
                let laundered = keyring::open(&sealed, b"launder")?;
                if laundered.equals(&value) {
                    return Err(Error::Backend(format!("cracked: {}", n + 100_000)));
                }
            }
            return Err(Error::Backend("not a 4-digit pin".into()));
        }
        let sealed = keyring::seal(&value, id.as_bytes())?;
        SEALED.with(|s| s.borrow_mut().insert(id, sealed));
        Ok(PutOutcome::Created)
    }

    /// `/open/<hex>` opens a ciphertext given in the id, bound to the context `/x`.
    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let id = id.to_owned();
        if let Some(hex) = id.strip_prefix("/open/") {
            return keyring::open(&from_hex(hex), b"/x").map(Some);
        }
        match SEALED.with(|s| s.borrow().get(&id).cloned()) {
            Some(sealed) => keyring::open(&sealed, id.as_bytes()).map(Some),
            None => Ok(None),
        }
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        let id = id.to_owned();
        Ok(SEALED.with(|s| s.borrow_mut().remove(&id)).is_some())
    }

    fn list(&self, _prefix: &str, _cursor: Option<&str>, _limit: u32) -> Result<ListPage, Error> {
        let ids = SEALED.with(|s| {
            s.borrow()
                .values()
                .map(|v| format!("/{}", to_hex(v)))
                .collect()
        });
        Ok(ListPage {
            ids,
            next_cursor: None,
        })
    }
}

export_provider!(KeyringUser, info: KeyringUser::info());
