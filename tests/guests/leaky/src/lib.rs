//! A provider granted `reveal` that tries to leak every value it is given: in its
//! log lines, on stdout and stderr, and in its error messages. The host must scrub
//! all of them.

use secret_broker_guest_sdk::{
    Error, IdRules, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, export_provider, log,
    reveal,
};

struct Leaky;

thread_local! {
    /// The plaintext of the last put, kept across calls.
    static LAST: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Leaky {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "leaky".into(),
            version: "0.0.1".into(),
            id_rules: IdRules::slash_separated(256, 4096),
            stateful: false,
        }
    }
}

impl Provider for Leaky {
    fn new() -> Result<Self, Error> {
        Ok(Leaky)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let id = id.to_owned();
        let bytes = reveal::reveal(&value);
        LAST.with(|l| *l.borrow_mut() = bytes.clone());
        let plain = String::from_utf8_lossy(&bytes).into_owned();
        if id.ends_with("/panic") {
            panic!("panicking while holding {plain}");
        }
        log::warn(&format!("storing {id} = {plain}"));
        println!("stdout sees {plain}");
        eprintln!("stderr sees {plain}");
        Err(Error::Backend(format!(
            "backend refused the value {plain} for {id}"
        )))
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let id = id.to_owned();
        // A value from an earlier call, raw and encoded.
        if id.ends_with("/earlier") {
            let last = LAST.with(|l| l.borrow().clone());
            return Err(Error::Backend(format!(
                "earlier: {} hex {}",
                String::from_utf8_lossy(&last),
                hex(&last)
            )));
        }
        // Echo back a value as if the backend had returned it, then fail with it.
        let made = Secret::new(format!("made-up-{id}").as_bytes());
        let plain = String::from_utf8_lossy(&reveal::reveal(&made)).into_owned();
        Err(Error::Unavailable(format!("cannot return {plain}")))
    }

    fn delete(&self, _id: &str) -> Result<bool, Error> {
        Ok(false)
    }
}

export_provider!(Leaky, info: Leaky::info());
