//! A provider that looks for plaintext in its own linear memory: after each put,
//! get (and the AppRole login they start with) through the `http` capability it
//! scans every byte of its memory for the needles its settings name, and fails
//! the call with `FOUND` if any is there. The needles come XOR-masked (`needles`,
//! comma-separated hex of each byte XOR 0x5a), so the scan never writes the
//! plaintext itself. `control = plant` unmasks the first needle into memory
//! first: the positive control that proves the scan sees what is there.
#![allow(unsafe_code)]

use secret_broker_guest_sdk::http::{self, Encoding, Part, Request};
use secret_broker_guest_sdk::{
    Error, IdRules, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, config, export_provider,
};

const MASK: u8 = 0x5a;

fn needles() -> Vec<Vec<u8>> {
    config::get("needles")
        .unwrap_or_default()
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|hex| {
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect()
        })
        .collect()
}

/// Every byte of linear memory, compared with each masked needle.
fn scan(what: &str) -> Result<(), Error> {
    // Guests also compile natively (for clippy); there they have no linear memory.
    #[cfg(target_arch = "wasm32")]
    let size = core::arch::wasm32::memory_size::<0>() * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    let size = 0usize;
    for needle in needles() {
        let Some(&first) = needle.first() else {
            continue;
        };
        for at in 1..size.saturating_sub(needle.len()) {
            // SAFETY: inside linear memory, which is all readable in Wasm.
            let byte = |i: usize| unsafe { core::ptr::read_volatile((at + i) as *const u8) };
            if byte(0) ^ MASK == first && (1..needle.len()).all(|i| byte(i) ^ MASK == needle[i]) {
                return Err(Error::Backend(format!(
                    "FOUND plaintext in guest memory after {what}"
                )));
            }
        }
    }
    Ok(())
}

fn token() -> Result<&'static str, Error> {
    let Some(role_id) = config::get("role-id") else {
        return Ok("token");
    };
    if http::has_credential("session") {
        return Ok("session");
    }
    let r = http::send(
        &request(
            "POST",
            "/v1/auth/approle/login".into(),
            None,
            vec![
                http::bytes(format!("{{\"role_id\":\"{role_id}\",\"secret_id\":")),
                Part::Credential(("secret-id".into(), Encoding::JsonString)),
                http::bytes("}"),
            ],
        ),
        &[http::Lift {
            keep_as: Some("session".into()),
            ..http::pointer("/auth/client_token")
        }],
    )?;
    if r.status != 200 {
        return Err(Error::Backend(format!("login: {}", r.status)));
    }
    scan("login")?;
    Ok("session")
}

fn request<'a>(
    method: &str,
    path: String,
    token: Option<&str>,
    body: Vec<Part<'a>>,
) -> Request<'a> {
    let headers = token
        .map(|t| {
            vec![http::header(
                "X-Vault-Token",
                Part::Credential((t.into(), Encoding::Raw)),
            )]
        })
        .unwrap_or_default();
    Request {
        method: method.into(),
        origin: config::get("address").unwrap_or_default(),
        path_and_query: path,
        headers,
        body,
    }
}

fn control() {
    if config::get("control").as_deref() == Some("plant")
        && let Some(first) = needles().into_iter().next()
    {
        let planted: Vec<u8> = first.iter().map(|b| b ^ MASK).collect();
        std::hint::black_box(&planted);
        std::mem::forget(planted);
    }
}

struct MemScan;

impl MemScan {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "memscan".into(),
            version: "0.1.0".into(),
            id_rules: IdRules::slash_separated(256, 65_536),
            stateful: false,
        }
    }
}

impl Provider for MemScan {
    fn new() -> Result<Self, Error> {
        Ok(MemScan)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let id = id.to_owned();
        let t = token()?;
        let r = http::send(
            &request(
                "POST",
                format!("/v1/secret/data{id}"),
                Some(t),
                vec![
                    http::bytes("{\"data\":{\"value\":"),
                    Part::Secret((&value, Encoding::JsonString)),
                    http::bytes("}}"),
                ],
            ),
            &[],
        )?;
        if r.status != 200 {
            return Err(Error::Backend(format!("put: {}", r.status)));
        }
        control();
        scan("put")?;
        Ok(PutOutcome::Updated)
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let id = id.to_owned();
        let t = token()?;
        let mut r = http::send(
            &request("GET", format!("/v1/secret/data{id}"), Some(t), Vec::new()),
            &[http::pointer("/data/data/value")],
        )?;
        let value = r.lifted.pop().flatten();
        control();
        scan("get")?;
        Ok(value)
    }

    fn delete(&self, _id: &str) -> Result<bool, Error> {
        Ok(false)
    }
}

export_provider!(MemScan, info: MemScan::info());
