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

use secret_broker_guest_sdk::http::{self, Encoding, Lift, Part, Request, Response, Token};
use secret_broker_guest_sdk::names;
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, config, export_provider,
    walk_tree,
};
use serde_json::Value;

/// LIST requests one `list` call may send (the grant allows 16 requests a call).
const LIST_BUDGET: usize = 12;

fn rules() -> IdRules {
    IdRules {
        allowed_chars: "A-Za-z0-9/_+=.@-".into(),
        leading_separator: true,
        ..IdRules::slash_separated(512, 65_536)
    }
}

/// One instance's provider: its settings, read once (an instance's grant never
/// changes), and the AppRole login's token, kept by the grant as `session`.
struct OpenBao {
    address: String,
    mount: String,
    namespace: Option<String>,
    role_id: Option<String>,
    soft_delete: bool,
    session: Token,
}

fn read_settings() -> Result<OpenBao, Error> {
    let missing = |what: &str| Error::Backend(format!("the setting `{what}` is missing"));
    let role_id = match config::get(names::openbao::AUTH).as_deref() {
        None | Some("token") => None,
        Some(names::openbao::AUTH_APPROLE) => Some(
            config::get(names::openbao::ROLE_ID).ok_or_else(|| missing(names::openbao::ROLE_ID))?,
        ),
        Some(other) => {
            return Err(Error::Backend(format!(
                "auth {other:?}: use token or approle"
            )));
        }
    };
    Ok(OpenBao {
        address: config::get(names::openbao::ADDRESS)
            .ok_or_else(|| missing(names::openbao::ADDRESS))?,
        mount: config::get(names::openbao::MOUNT)
            .unwrap_or_else(|| "secret".into())
            .trim_matches('/')
            .into(),
        namespace: config::get(names::openbao::NAMESPACE).filter(|n| !n.is_empty()),
        role_id,
        soft_delete: config::get(names::openbao::SOFT_DELETE).is_some_and(|v| v == "true"),
        session: Token::shaped(names::openbao::SESSION, &http::VAULT),
    })
}

/// The KV path of an id (checked against the rules already), refusing
/// segments a URL would reinterpret.
fn path(id: &str) -> Result<&str, Error> {
    let path = &id[1..];
    let odd = |s: &str| s.is_empty() || s == "." || s == "..";
    if path.split('/').any(odd) {
        return Err(Error::InvalidId(format!(
            "{id:?} has an empty, `.` or `..` segment"
        )));
    }
    Ok(path)
}

/// OpenBao's answer as the provider's error (403 access denied, sealed 503
/// unavailable, a check-and-set mismatch a conflict).
fn failure(r: &Response) -> Error {
    let text = r.error_text("OpenBao");
    match r.status {
        400 if text.contains("check-and-set") => Error::Conflict(text),
        _ => r.status_error(text),
    }
}

/// The answer if it is a success, else its error.
fn success(r: Response) -> Result<Response, Error> {
    match r.status {
        ..300 => Ok(r),
        _ => Err(failure(&r)),
    }
}

fn request<'a>(s: &OpenBao, method: &str, path: &str) -> Request<'a> {
    let r = Request::new(method, &s.address, format!("/v1/{path}"));
    match &s.namespace {
        Some(ns) => r.header("X-Vault-Namespace", http::bytes(ns.as_str())),
        None => r,
    }
}

/// AppRole: renews the token while it is held (OpenBao caps the lease at the
/// token's max TTL), else logs in with `role-id` and the credential `secret-id`.
fn login(s: &OpenBao, role_id: &str, t: &Token) -> Result<(), Error> {
    if http::has_credential(t.name()) {
        let renew = request(s, "POST", "auth/token/renew-self").json(vec![http::bytes("{}")]);
        if t.login(&t.attach(renew))?.is_ok() {
            return Ok(());
        }
    }
    let body = vec![
        http::bytes(format!(
            "{{\"role_id\":{},\"secret_id\":",
            Value::from(role_id)
        )),
        Part::Credential((names::openbao::SECRET_ID.into(), Encoding::JsonString)),
        http::bytes("}"),
    ];
    let login = request(s, "POST", "auth/approle/login").json(body);
    t.login(&login)?.map_err(|r| failure(&r))
}

/// Sends a request for `path` below the mount with the token: the grant's
/// `token`, or the AppRole token (logging in or renewing when due, and once
/// more after a 403).
fn call<'a>(
    s: &OpenBao,
    method: &str,
    path: &str,
    body: impl Fn() -> Vec<Part<'a>>,
    lifts: &[Lift],
) -> Result<Response, Error> {
    let make = || {
        let r = request(s, method, &format!("{}/{path}", s.mount));
        if method == "POST" { r.json(body()) } else { r }
    };
    match &s.role_id {
        None => http::send(
            &make().header(
                "X-Vault-Token",
                http::credential_part(names::openbao::TOKEN),
            ),
            lifts,
        ),
        Some(role_id) => {
            let t = &s.session;
            t.call(make, lifts, || login(s, role_id, t))
        }
    }
}

/// A path's current version (0: no such path), whether it is live, and our
/// digest of it.
#[derive(Default)]
struct Meta {
    version: u64,
    live: bool,
    digest: Option<String>,
}

fn metadata(s: &OpenBao, path: &str) -> Result<Meta, Error> {
    let r = call(s, "GET", &format!("metadata/{path}"), Vec::new, &[])?;
    if r.status == 404 {
        return Ok(Meta::default());
    }
    let data = &success(r)?.json()["data"];
    let version = data["current_version"].as_u64().unwrap_or(0);
    let current = &data["versions"][version.to_string()];
    let live = version > 0
        && current["deletion_time"].as_str().is_none_or(str::is_empty)
        && current["destroyed"] != true;
    // Our digest names the version it describes: a write by another client
    // (which leaves custom metadata alone) makes it stale, never wrong.
    let custom = &data["custom_metadata"];
    let ours = custom["version"].as_str() == Some(&version.to_string());
    let digest = ours.then(|| custom["digest"].as_str().map(str::to_owned));
    Ok(Meta {
        version,
        live,
        digest: digest.flatten(),
    })
}

impl Provider for OpenBao {
    fn new() -> Result<Self, Error> {
        read_settings()
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let (s, path) = (self, path(id)?);
        let digest = http::digest(&value);
        let meta = metadata(s, path)?;
        if meta.live && meta.digest.as_deref() == Some(digest.as_str()) {
            return Ok(PutOutcome::Unchanged);
        }
        let cas = meta.version;
        // Base64 is bare text, quoted here (a JSON string quotes itself).
        let write = |field: &str, encoding, quote: &str| {
            let head = format!("{{\"options\":{{\"cas\":{cas}}},\"data\":{{\"{field}\":{quote}");
            let tail = format!("{quote}}}}}");
            let body = || {
                vec![
                    http::bytes(head.as_str()),
                    Part::Secret((&value, encoding)),
                    http::bytes(tail.as_str()),
                ]
            };
            call(s, "POST", &format!("data/{path}"), body, &[])
        };
        let r = success(match write("value", Encoding::JsonString, "") {
            // Not UTF-8: stored base64, in a field of its own.
            Err(Error::Backend(m)) if m.contains("not UTF-8") => {
                write("value_base64", Encoding::Base64, "\"")?
            }
            other => other?,
        })?;
        let version = r.json()["data"]["version"].as_u64().unwrap_or(cas + 1);
        let custom = format!(
            "{{\"custom_metadata\":{{\"digest\":\"{digest}\",\"version\":\"{version}\"}}}}"
        );
        let body = || vec![http::bytes(custom.as_str())];
        success(call(s, "POST", &format!("metadata/{path}"), body, &[])?)?;
        Ok(if meta.live {
            PutOutcome::Updated
        } else {
            PutOutcome::Created
        })
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let (s, path) = (self, path(id)?);
        // Whatever else the secret holds is discarded: the provider sees none of
        // it, nor the version's metadata it has no use for here (less to hand
        // back, too).
        let lifts = [
            http::pointer("/data/data/value"),
            http::lift("/data/data/value_base64", true, None),
            http::discard("/data"),
        ];
        let mut r = call(s, "GET", &format!("data/{path}"), Vec::new, &lifts)?;
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

    fn delete(&self, id: &str) -> Result<bool, Error> {
        let (s, path) = (self, path(id)?);
        let meta = metadata(s, path)?;
        if meta.version == 0 || (s.soft_delete && !meta.live) {
            return Ok(false);
        }
        let what = if s.soft_delete { "data" } else { "metadata" };
        let at = format!("{what}/{path}");
        success(call(s, "DELETE", &at, Vec::new, &[])?)?;
        Ok(meta.live)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        walk_tree(prefix, cursor, limit, LIST_BUDGET, |dir, at| {
            list_dir(self, dir, at)
        })
    }
}

/// A folder's keys after `after` (OpenBao pages with `after`/`limit`; Vault
/// ignores them and lists whole, and the walk skips what it has seen).
fn list_dir(s: &OpenBao, dir: &str, after: Option<&str>) -> Result<(Vec<String>, bool), Error> {
    let after = after.map_or(String::new(), |a| {
        format!("&after={}", http::query_escape(a))
    });
    let r = call(
        s,
        "LIST",
        &format!("metadata/{dir}?limit=1000{after}"),
        Vec::new,
        &[],
    )?;
    match r.status {
        404 => Ok((Vec::new(), false)),
        200 => {
            let keys: Vec<String> =
                serde_json::from_value(r.json()["data"]["keys"].take()).unwrap_or_default();
            let more = keys.len() >= 1000;
            Ok((keys, more))
        }
        _ => Err(failure(&r)),
    }
}

export_provider!(OpenBao, name: "openbao", rules: rules());
