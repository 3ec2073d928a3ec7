//! The `openbao` provider: OpenBao / HashiCorp Vault KV version 2, on the `http`
//! capability alone. The value of id `/a/b/c` lives at KV path `a/b/c` of the
//! mount, in the field `value` (`value_base64` for bytes that are not UTF-8). The
//! provider never holds a value or a token: it splices handles into requests and
//! has the host lift values out of responses.
//!
//! Settings: `address` (the origin, also granted in the http grant's `origins`),
//! `mount` (default `secret`), `namespace`, `auth` (`token`, the default, uses the
//! grant's credential `token`; `approle` logs in with `role-id` and the credential
//! `secret-id`, renews the token before it expires and logs in again when it
//! cannot), `soft-delete` (`true` deletes only the latest version).

use std::cell::Cell;
use std::time::{Duration, Instant};

use secret_broker_guest_sdk::http::{self, Encoding, Lift, LiftFrom, Part, Request, Response};
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, config,
    export_provider,
};
use serde_json::Value;

const MAX_VALUE: u64 = 65_536;
/// LIST requests one `list` call may send (the grant allows 16 requests per call).
const LIST_BUDGET: usize = 12;

static RULES: std::sync::LazyLock<IdRules> = std::sync::LazyLock::new(|| IdRules {
    separator: "/".into(),
    allowed_chars: "A-Za-z0-9/_+=.@-".into(),
    leading_separator: true,
    max_id_len: 512,
    max_levels: None,
    forbidden_prefixes: Vec::new(),
    max_value_bytes: MAX_VALUE,
});

thread_local! {
    /// When this instance renews the AppRole token it logged in with.
    static RENEW_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

struct Settings {
    address: String,
    mount: String,
    namespace: Option<String>,
    role_id: Option<String>,
    soft_delete: bool,
}

fn settings() -> Result<Settings, Error> {
    let address = config::get("address")
        .ok_or_else(|| Error::Backend("setting `address` is missing: give the OpenBao origin, such as https://bao.example:8200".into()))?;
    let role_id =
        match config::get("auth").as_deref() {
            None | Some("token") => None,
            Some("approle") => Some(config::get("role-id").ok_or_else(|| {
                Error::Backend("auth = approle needs the setting `role-id`".into())
            })?),
            Some(other) => {
                return Err(Error::Backend(format!(
                    "auth = {other:?}: use token or approle"
                )));
            }
        };
    Ok(Settings {
        address: address.trim_end_matches('/').to_owned(),
        mount: config::get("mount")
            .unwrap_or_else(|| "secret".into())
            .trim_matches('/')
            .to_owned(),
        namespace: config::get("namespace").filter(|n| !n.is_empty()),
        role_id,
        soft_delete: config::get("soft-delete").is_some_and(|v| v == "true"),
    })
}

/// The KV path of an id, refusing segments a URL would reinterpret.
fn path(id: &str) -> Result<&str, Error> {
    RULES.check(id)?;
    let path = &id[1..];
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Error::InvalidId(format!(
            "{id:?} has an empty, `.` or `..` segment"
        )));
    }
    Ok(path)
}

fn body_json(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

/// OpenBao's answer as the provider's error.
fn failure(response: &Response) -> Error {
    let json = body_json(response);
    let message = json["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let text = format!("OpenBao answered {}: {message}", response.status);
    match response.status {
        403 => Error::AccessDenied(text),
        400 if message.contains("check-and-set") => Error::Conflict(text),
        412 => Error::Conflict(text),
        429 | 500..=599 => Error::Unavailable(text),
        _ => Error::Backend(text),
    }
}

fn lift(pointer: &str, base64: bool, keep_as: Option<&str>) -> Lift {
    Lift {
        source: LiftFrom::Pointer(pointer.into()),
        base64,
        keep_as: keep_as.map(str::to_owned),
    }
}

fn request<'a>(
    s: &Settings,
    method: &str,
    path: String,
    token: Option<&str>,
    body: Vec<Part<'a>>,
) -> Request<'a> {
    let mut headers = Vec::new();
    if let Some(name) = token {
        headers.push(http::header(
            "X-Vault-Token",
            Part::Credential((name.into(), Encoding::Raw)),
        ));
    }
    if let Some(ns) = &s.namespace {
        headers.push(http::header("X-Vault-Namespace", http::bytes(ns.as_str())));
    }
    if !body.is_empty() {
        headers.push(http::header(
            "Content-Type",
            http::bytes("application/json"),
        ));
    }
    Request {
        method: method.into(),
        origin: s.address.clone(),
        path_and_query: format!("/v1/{path}"),
        headers,
        body,
    }
}

/// AppRole login: the token is lifted into the grant as `session`.
fn login(s: &Settings, role_id: &str) -> Result<(), Error> {
    let body = vec![
        http::bytes(format!(
            "{{\"role_id\":{},\"secret_id\":",
            Value::from(role_id)
        )),
        Part::Credential(("secret-id".into(), Encoding::JsonString)),
        http::bytes("}"),
    ];
    let r = http::send(
        &request(s, "POST", "auth/approle/login".into(), None, body),
        &[
            lift("/auth/client_token", false, Some("session")),
            lift("/auth/accessor", false, None),
        ],
    )?;
    if r.status != 200 || r.lifted.first().is_none_or(Option::is_none) {
        return Err(failure(&r));
    }
    note_lease(&body_json(&r));
    Ok(())
}

/// Renews at two thirds of the lease.
fn note_lease(json: &Value) {
    let lease = json["auth"]["lease_duration"].as_u64().unwrap_or(0);
    let at = (lease > 0).then(|| Instant::now() + Duration::from_secs(lease * 2 / 3));
    RENEW_AT.with(|r| r.set(at));
}

/// The credential to send as the token, logging in or renewing first if due.
fn token(s: &Settings) -> Result<&'static str, Error> {
    let Some(role_id) = &s.role_id else {
        return Ok("token");
    };
    if !http::has_credential("session") {
        login(s, role_id)?;
    } else if RENEW_AT
        .with(Cell::get)
        .is_some_and(|at| Instant::now() >= at)
    {
        let r = http::send(
            &request(
                s,
                "POST",
                "auth/token/renew-self".into(),
                Some("session"),
                vec![http::bytes("{}")],
            ),
            &[
                lift("/auth/client_token", false, None),
                lift("/auth/accessor", false, None),
            ],
        )?;
        if r.status == 200 {
            note_lease(&body_json(&r));
        } else {
            login(s, role_id)?;
        }
    }
    Ok("session")
}

/// Sends a request with the token; with AppRole a 403 logs in once more and
/// retries (the token expired or was revoked).
fn call<'a>(
    s: &Settings,
    method: &str,
    path: String,
    body: impl Fn() -> Vec<Part<'a>>,
    lifts: &[Lift],
) -> Result<Response, Error> {
    let r = http::send(
        &request(s, method, path.clone(), Some(token(s)?), body()),
        lifts,
    )?;
    match &s.role_id {
        Some(role_id) if r.status == 403 => {
            http::forget("session");
            login(s, role_id)?;
            Ok(http::send(
                &request(s, method, path, Some("session"), body()),
                lifts,
            )?)
        }
        _ => Ok(r),
    }
}

/// The metadata of a path: current version, whether it is live, our digest.
struct Meta {
    version: u64,
    live: bool,
    digest: Option<String>,
}

fn metadata(s: &Settings, path: &str) -> Result<Option<Meta>, Error> {
    let r = call(
        s,
        "GET",
        format!("{}/metadata/{path}", s.mount),
        Vec::new,
        &[],
    )?;
    match r.status {
        404 => return Ok(None),
        200 => {}
        _ => return Err(failure(&r)),
    }
    let json = body_json(&r);
    let data = &json["data"];
    let version = data["current_version"].as_u64().unwrap_or(0);
    let current = &data["versions"][version.to_string()];
    let live = version > 0
        && current["deletion_time"].as_str().is_none_or(str::is_empty)
        && current["destroyed"] != true;
    let custom = &data["custom_metadata"];
    let digest = (custom["version"].as_str() == Some(&version.to_string()))
        .then(|| custom["digest"].as_str().map(str::to_owned))
        .flatten();
    Ok(Some(Meta {
        version,
        live,
        digest,
    }))
}

struct OpenBao;

impl Provider for OpenBao {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "openbao".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            id_rules: RULES.clone(),
            stateful: false,
        }
    }

    fn put(id: String, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let s = settings()?;
        let path = path(&id)?;
        RULES.check_value(&value)?;
        let digest = http::digest(&value);
        let meta = metadata(&s, path)?;
        let cas = meta.as_ref().map_or(0, |m| m.version);
        if let Some(m) = &meta
            && m.live
            && m.digest.as_deref() == Some(digest.as_str())
        {
            return Ok(PutOutcome::Unchanged);
        }
        let write = |field: &str, encoding: Encoding| {
            call(
                &s,
                "POST",
                format!("{}/data/{path}", s.mount),
                || {
                    vec![
                        http::bytes(format!(
                            "{{\"options\":{{\"cas\":{cas}}},\"data\":{{\"{field}\":"
                        )),
                        Part::Secret((&value, encoding)),
                        http::bytes("}}"),
                    ]
                },
                &[],
            )
        };
        let r = match write("value", Encoding::JsonString) {
            // Not UTF-8: stored base64, in a field of its own.
            Err(Error::Backend(m)) if m.contains("not UTF-8") => {
                write("value_base64", Encoding::Base64)?
            }
            other => other?,
        };
        if r.status != 200 && r.status != 204 {
            return Err(failure(&r));
        }
        let version = body_json(&r)["data"]["version"].as_u64().unwrap_or(cas + 1);
        // The digest names the version it describes: a write by another client
        // (which leaves custom metadata alone) makes it stale, never wrong.
        let r = call(
            &s,
            "POST",
            format!("{}/metadata/{path}", s.mount),
            || {
                vec![http::bytes(format!(
                    "{{\"custom_metadata\":{{\"digest\":\"{digest}\",\"version\":\"{version}\"}}}}"
                ))]
            },
            &[],
        )?;
        if r.status >= 300 {
            return Err(failure(&r));
        }
        Ok(if meta.is_some_and(|m| m.live) {
            PutOutcome::Updated
        } else {
            PutOutcome::Created
        })
    }

    fn get(id: String) -> Result<Option<Secret>, Error> {
        let s = settings()?;
        let path = path(&id)?;
        let lifts = [
            lift("/data/data/value", false, None),
            lift("/data/data/value_base64", true, None),
            lift("/data/data", false, None),
        ];
        let mut r = call(
            &s,
            "GET",
            format!("{}/data/{path}", s.mount),
            Vec::new,
            &lifts,
        )?;
        match r.status {
            404 => Ok(None),
            200 => {
                let mut lifted = std::mem::take(&mut r.lifted).into_iter();
                match (lifted.next().flatten(), lifted.next().flatten()) {
                    (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
                    _ => Err(Error::Backend(format!(
                        "the secret at {path} has no `value` field: write it as {{\"value\": \"...\"}}"
                    ))),
                }
            }
            _ => Err(failure(&r)),
        }
    }

    fn delete(id: String) -> Result<bool, Error> {
        let s = settings()?;
        let path = path(&id)?;
        let Some(meta) = metadata(&s, path)? else {
            return Ok(false);
        };
        let what = if s.soft_delete {
            if !meta.live {
                return Ok(false);
            }
            "data"
        } else {
            "metadata"
        };
        let r = call(
            &s,
            "DELETE",
            format!("{}/{what}/{path}", s.mount),
            Vec::new,
            &[],
        )?;
        if r.status >= 300 {
            return Err(failure(&r));
        }
        Ok(meta.live)
    }

    fn list(prefix: String, cursor: Option<String>, limit: u32) -> Result<ListPage, Error> {
        let s = settings()?;
        let rel = prefix.strip_prefix('/').unwrap_or(&prefix);
        let (dir, name) = rel.rsplit_once('/').map_or(("", rel), |(d, n)| (d, n));
        let dir = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut walk = Walk {
            s: &s,
            limit: limit.max(1) as usize,
            ids: Vec::new(),
            budget: LIST_BUDGET,
        };
        let after = cursor.as_deref().map(|c| c.strip_prefix('/').unwrap_or(c));
        let complete = walk.dir(&dir, name, after)?;
        let next_cursor = (!complete).then(|| walk.ids.last().cloned()).flatten();
        if !complete && next_cursor.is_none() {
            return Err(Error::Unavailable("listing needs more requests than one call may send: raise the http grant's max_requests_per_call".into()));
        }
        Ok(ListPage {
            ids: walk.ids,
            next_cursor,
        })
    }
}

/// A depth-first walk of the metadata tree in byte order (which is id order).
struct Walk<'a> {
    s: &'a Settings,
    limit: usize,
    ids: Vec<String>,
    budget: usize,
}

impl Walk<'_> {
    /// Lists `dir` (a KV path ending in `/`, or empty), keeping keys that start
    /// with `name` and sort after `after` (a path); false when the page is full.
    fn dir(&mut self, dir: &str, name: &str, after: Option<&str>) -> Result<bool, Error> {
        // What of `after` lies at this level: keys up to it were listed before.
        let rest = after.and_then(|a| a.strip_prefix(dir));
        let mut from = rest.map(|r| r.split_once('/').map_or(r, |(k, _)| k).to_owned());
        loop {
            if self.budget == 0 {
                return Ok(false);
            }
            self.budget -= 1;
            let query = from
                .as_deref()
                .map_or(String::new(), |f| format!("&after={}", query_escape(f)));
            let r = call(
                self.s,
                "LIST",
                format!("{}/metadata/{dir}?limit=1000{query}", self.s.mount),
                Vec::new,
                &[],
            )?;
            if r.status == 404 {
                return Ok(true);
            }
            if r.status != 200 {
                return Err(failure(&r));
            }
            let json = body_json(&r);
            let mut keys: Vec<String> = json["data"]["keys"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            keys.sort();
            let count = keys.len();
            let mut last = None;
            for key in keys {
                last = Some(key.clone());
                if !key.starts_with(name) {
                    continue;
                }
                if key.ends_with('/') {
                    // A folder holding the cursor is resumed inside; one wholly
                    // before it is skipped.
                    let inner = rest.filter(|r| r.starts_with(key.as_str()));
                    if inner.is_none() && rest.is_some_and(|r| key.as_str() < r) {
                        continue;
                    }
                    if !self.dir(&format!("{dir}{key}"), "", inner.and(after))? {
                        return Ok(false);
                    }
                } else {
                    if rest.is_some_and(|r| key.as_str() <= r) {
                        continue;
                    }
                    if self.ids.len() == self.limit {
                        return Ok(false);
                    }
                    self.ids.push(format!("/{dir}{key}"));
                }
            }
            if count < 1000 || last.is_none() || last == from {
                return Ok(true);
            }
            from = last;
        }
    }
}

/// Percent-encodes a key for a query string.
fn query_escape(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

export_provider!(OpenBao);
