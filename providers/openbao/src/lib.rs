//! The `openbao` provider: OpenBao / HashiCorp Vault KV version 2, on the `http`
//! capability alone. The value of id `/a/b/c` lives at KV path `a/b/c` of the
//! mount, in the field `value` (`value_base64` for bytes that are not UTF-8). The
//! provider never holds a value or a token: it splices handles into requests and
//! has the host lift values out of responses.
//!
//! Settings: `address` (the origin, also granted in the http grant's `origins`),
//! `mount` (default `secret`), `namespace`, `auth` (`token`, the default, sends
//! the grant's credential `token`; `approle` logs in with `role-id` and the
//! credential `secret-id`, renews the token at two thirds of its lease and logs in
//! again when refused), `soft-delete` (`true` deletes only the latest version).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use secret_broker_guest_sdk::http::{self, Encoding, Lift, Part, Request, Response};
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, config,
    export_provider, walk_tree,
};
use serde_json::Value;

/// LIST requests one `list` call may send (the grant allows 16 requests a call).
const LIST_BUDGET: usize = 12;

static RULES: std::sync::LazyLock<IdRules> = std::sync::LazyLock::new(|| IdRules {
    allowed_chars: "A-Za-z0-9/_+=.@-".into(),
    leading_separator: true,
    ..IdRules::slash_separated(512, 65_536)
});

thread_local! {
    /// When this instance renews the AppRole token it logged in with.
    static RENEW_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The settings, read once: an instance's grant never changes.
    static SETTINGS: config::Cached<Settings> = const { config::Cached::new() };
}

struct Settings {
    address: String,
    mount: String,
    namespace: Option<String>,
    role_id: Option<String>,
    soft_delete: bool,
}

fn settings() -> Result<Rc<Settings>, Error> {
    SETTINGS.with(|c| c.get_or_read(read_settings))
}

fn read_settings() -> Result<Settings, Error> {
    let missing = |what: &str| Error::Backend(format!("the setting `{what}` is missing"));
    let role_id = match config::get("auth").as_deref() {
        None | Some("token") => None,
        Some("approle") => Some(config::get("role-id").ok_or_else(|| missing("role-id"))?),
        Some(other) => {
            return Err(Error::Backend(format!(
                "auth {other:?}: use token or approle"
            )));
        }
    };
    Ok(Settings {
        address: config::get("address").ok_or_else(|| missing("address"))?,
        mount: config::get("mount")
            .unwrap_or_else(|| "secret".into())
            .trim_matches('/')
            .into(),
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

/// OpenBao's answer as the provider's error.
fn failure(response: &Response) -> Error {
    let errors = response.json()["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let message: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
    let text = format!(
        "OpenBao answered {}: {}",
        response.status,
        message.join("; ")
    );
    match response.status {
        403 => Error::AccessDenied(text),
        400 if text.contains("check-and-set") => Error::Conflict(text),
        429 | 500..=599 => Error::Unavailable(text),
        _ => Error::Backend(text),
    }
}

fn request<'a>(s: &Settings, method: &str, path: &str, token: Option<&str>) -> Request<'a> {
    let mut r = Request::new(method, &s.address, format!("/v1/{path}"));
    if let Some(name) = token {
        r = r.header("X-Vault-Token", http::credential_part(name));
    }
    match &s.namespace {
        Some(ns) => r.header("X-Vault-Namespace", http::bytes(ns.as_str())),
        None => r,
    }
}

/// Lifts that keep a token out of an auth answer (into the grant as `session`).
fn auth_lifts(keep: Option<&str>) -> [Lift; 2] {
    [
        http::lift("/auth/client_token", false, keep),
        http::pointer("/auth/accessor"),
    ]
}

/// AppRole login: the token goes into the grant as `session`.
fn login(s: &Settings, role_id: &str) -> Result<(), Error> {
    let body = vec![
        http::bytes(format!(
            "{{\"role_id\":{},\"secret_id\":",
            Value::from(role_id)
        )),
        Part::Credential(("secret-id".into(), Encoding::JsonString)),
        http::bytes("}"),
    ];
    let mut r = http::send(
        &request(s, "POST", "auth/approle/login", None).json(body),
        &auth_lifts(Some("session")),
    )?;
    if r.status != 200 || r.take_lifted(0).is_none() {
        return Err(failure(&r));
    }
    note_lease(&r.json());
    Ok(())
}

/// Renews at two thirds of the lease.
fn note_lease(json: &Value) {
    let lease = json["auth"]["lease_duration"].as_u64().unwrap_or(0);
    RENEW_AT
        .with(|r| r.set((lease > 0).then(|| Instant::now() + Duration::from_secs(lease * 2 / 3))));
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
        let renew = request(s, "POST", "auth/token/renew-self", Some("session"))
            .json(vec![http::bytes("{}")]);
        match http::send(&renew, &auth_lifts(None))? {
            r if r.status == 200 => note_lease(&r.json()),
            _ => login(s, role_id)?,
        }
    }
    Ok("session")
}

/// Sends a request with the token; with AppRole a 403 logs in once more and
/// retries (the token expired or was revoked).
fn call<'a>(
    s: &Settings,
    method: &str,
    path: &str,
    body: impl Fn() -> Vec<Part<'a>>,
    lifts: &[Lift],
) -> Result<Response, Error> {
    let send = |token| {
        let r = request(s, method, path, Some(token));
        http::send(&if method == "POST" { r.json(body()) } else { r }, lifts)
    };
    let r = send(token(s)?)?;
    match &s.role_id {
        Some(role_id) if r.status == 403 => {
            http::forget("session");
            login(s, role_id)?;
            send("session")
        }
        _ => Ok(r),
    }
}

/// A path's current version, whether it is live, and our digest of it.
struct Meta {
    version: u64,
    live: bool,
    digest: Option<String>,
}

fn metadata(s: &Settings, path: &str) -> Result<Option<Meta>, Error> {
    let r = call(
        s,
        "GET",
        &format!("{}/metadata/{path}", s.mount),
        Vec::new,
        &[],
    )?;
    match r.status {
        404 => return Ok(None),
        200 => {}
        _ => return Err(failure(&r)),
    }
    let data = &r.json()["data"];
    let version = data["current_version"].as_u64().unwrap_or(0);
    let current = &data["versions"][version.to_string()];
    let live = version > 0
        && current["deletion_time"].as_str().is_none_or(str::is_empty)
        && current["destroyed"] != true;
    // Our digest names the version it describes: a write by another client
    // (which leaves custom metadata alone) makes it stale, never wrong.
    let custom = &data["custom_metadata"];
    let digest = (custom["version"].as_str() == Some(&version.to_string()))
        .then(|| custom["digest"].as_str().map(str::to_owned));
    Ok(Some(Meta {
        version,
        live,
        digest: digest.flatten(),
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
        let (s, path) = (settings()?, path(&id)?);
        RULES.check_value(&value)?;
        let digest = http::digest(&value);
        let meta = metadata(&s, path)?;
        let live = meta.as_ref().is_some_and(|m| m.live);
        if live && meta.as_ref().and_then(|m| m.digest.as_deref()) == Some(digest.as_str()) {
            return Ok(PutOutcome::Unchanged);
        }
        let cas = meta.map_or(0, |m| m.version);
        let write = |field: &str, encoding| {
            // Base64 is bare text: quoted here (a JSON string quotes itself).
            let quote = if matches!(encoding, Encoding::Base64) {
                "\""
            } else {
                ""
            };
            let head = format!("{{\"options\":{{\"cas\":{cas}}},\"data\":{{\"{field}\":{quote}");
            let tail = format!("{quote}}}}}");
            let body = || {
                vec![
                    http::bytes(head.as_str()),
                    Part::Secret((&value, encoding)),
                    http::bytes(tail.as_str()),
                ]
            };
            call(&s, "POST", &format!("{}/data/{path}", s.mount), body, &[])
        };
        let r = match write("value", Encoding::JsonString) {
            // Not UTF-8: stored base64, in a field of its own.
            Err(Error::Backend(m)) if m.contains("not UTF-8") => {
                write("value_base64", Encoding::Base64)?
            }
            other => other?,
        };
        if r.status >= 300 {
            return Err(failure(&r));
        }
        let version = r.json()["data"]["version"].as_u64().unwrap_or(cas + 1);
        let custom = format!(
            "{{\"custom_metadata\":{{\"digest\":\"{digest}\",\"version\":\"{version}\"}}}}"
        );
        let r = call(
            &s,
            "POST",
            &format!("{}/metadata/{path}", s.mount),
            || vec![http::bytes(custom.as_str())],
            &[],
        )?;
        if r.status >= 300 {
            return Err(failure(&r));
        }
        Ok(if live {
            PutOutcome::Updated
        } else {
            PutOutcome::Created
        })
    }

    fn get(id: String) -> Result<Option<Secret>, Error> {
        let (s, path) = (settings()?, path(&id)?);
        // Whatever else the secret holds is discarded: the provider sees none of
        // it, nor the version's metadata it has no use for here (less to hand
        // back, too).
        let lifts = [
            http::pointer("/data/data/value"),
            http::lift("/data/data/value_base64", true, None),
            http::discard("/data"),
        ];
        let mut r = call(
            &s,
            "GET",
            &format!("{}/data/{path}", s.mount),
            Vec::new,
            &lifts,
        )?;
        match r.status {
            404 => Ok(None),
            200 => match r.take_lifted(0).or_else(|| r.take_lifted(1)) {
                Some(v) => Ok(Some(v)),
                None => Err(Error::Backend(format!(
                    "the secret at {path} has no `value` field"
                ))),
            },
            _ => Err(failure(&r)),
        }
    }

    fn delete(id: String) -> Result<bool, Error> {
        let (s, path) = (settings()?, path(&id)?);
        let Some(meta) = metadata(&s, path)? else {
            return Ok(false);
        };
        if s.soft_delete && !meta.live {
            return Ok(false);
        }
        let what = if s.soft_delete { "data" } else { "metadata" };
        let r = call(
            &s,
            "DELETE",
            &format!("{}/{what}/{path}", s.mount),
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
        // Folders page through OpenBao's `after`/`limit` (Vault ignores them and
        // lists whole; the walk skips what it has seen either way).
        walk_tree(
            &prefix,
            cursor.as_deref(),
            limit,
            LIST_BUDGET,
            |dir, after| {
                let after = after.map_or(String::new(), |a| {
                    format!("&after={}", http::query_escape(a))
                });
                let r = call(
                    &s,
                    "LIST",
                    &format!("{}/metadata/{dir}?limit=1000{after}", s.mount),
                    Vec::new,
                    &[],
                )?;
                match r.status {
                    404 => Ok((Vec::new(), false)),
                    200 => {
                        let keys: Vec<String> = r.json()["data"]["keys"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect();
                        let more = keys.len() >= 1000;
                        Ok((keys, more))
                    }
                    _ => Err(failure(&r)),
                }
            },
        )
    }
}

export_provider!(OpenBao);
