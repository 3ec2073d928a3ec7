//! The `azure-key-vault` provider: secrets in an Azure Key Vault, through the Key
//! Vault REST API (version 7.4) on the `http` capability alone. An id is the
//! secret's name, spelled as OpenMetadata's Azure secrets manager spells it
//! (`openmetadata-database-MySQLProd-password`: letters, digits and `-`; Key
//! Vault compares names without regard to case). The provider never holds a
//! value, the client secret or an access token: it splices handles into
//! requests and has the host lift the value out of answers.
//!
//! Settings: `vault-url` (`https://NAME.vault.azure.net`), `tenant-id`,
//! `client-id`, `authority` (default `https://login.microsoftonline.com`),
//! `scope` (default the vault's cloud: `https://vault.azure.net/.default`),
//! `expires-after-days` (as OpenMetadata's `expiresAfterDays`), `purge`
//! (default `true`: a deleted secret is purged where the vault allows it),
//! `max-list-pages` (default 12). The grant's credential `client-secret` logs in
//! by OAuth2 client credentials; the access token is kept in the grant as
//! `access-token` and renewed at two thirds of its life, or at once when the
//! vault answers 401.
//!
//! A put sets a new version of the secret, keeping the tags it had and adding
//! the put's tags and a keyed digest of the value (tag `secret-broker-digest`),
//! which is how a put of the same value reports `unchanged`. Key Vault has no
//! conditional write: the last of two concurrent puts wins. A value that is not
//! UTF-8 is stored base64 with content type `application/vnd.secret-broker.base64`.
//! A delete deletes and then purges; when the vault keeps deleted secrets
//! (purge protection, or a purge refused), a later put to that name purges it
//! first or answers a conflict that says so. Listing reads every page (Key Vault
//! filters by nothing and promises no order), then sorts.

use std::time::{SystemTime, UNIX_EPOCH};

use secret_broker_guest_sdk::http::{self, Encoding, Part, Request, Response};
use secret_broker_guest_sdk::names;
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, SizeLimit, collect_sorted,
    config, export_provider, log,
};
use serde_json::{Map, Value, json};

const API: &str = "api-version=7.4";
/// Key Vault takes values up to 25 KiB.
const MAX_VALUE: u64 = 25 << 10;
/// Names listed per request (Key Vault's maximum).
const LIST_PAGE: u32 = 25;
/// The tag holding the keyed digest of the value this provider wrote.
const DIGEST_TAG: &str = "secret-broker-digest";
/// The content type of a value stored base64 (it was not UTF-8).
const BASE64_TYPE: &str = "application/vnd.secret-broker.base64";

static RULES: std::sync::LazyLock<IdRules> = std::sync::LazyLock::new(|| IdRules {
    separator: "-".into(),
    allowed_chars: "A-Za-z0-9-".into(),
    leading_separator: false,
    max_id_len: 127,
    max_levels: None,
    forbidden_prefixes: Vec::new(),
    max_value_bytes: MAX_VALUE,
});

struct Settings {
    /// The access token, kept in the grant as `access-token`.
    token: http::Token,
    /// The vault's `scheme://host:port` and path (empty for most vaults).
    vault: (String, String),
    /// The authority's `scheme://host:port` and path.
    authority: (String, String),
    tenant: String,
    client_id: String,
    scope: String,
    expires_after_days: Option<u64>,
    purge: bool,
    max_list_pages: usize,
}

fn read_settings() -> Result<Settings, Error> {
    let required = |name: &str, what: &str| {
        config::get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Error::Backend(format!("the setting `{name}` ({what}) is missing")))
    };
    let vault_url = required(names::azure::VAULT_URL, "https://NAME.vault.azure.net")?;
    let tenant = required(names::azure::TENANT_ID, "the directory (tenant) id")?;
    let client_id = required(names::azure::CLIENT_ID, "the application (client) id")?;
    let vault = http::split_url(&vault_url);
    // The token's audience is the vault's cloud: the host name after the
    // vault's own label (vault.azure.net, vault.azure.cn, ...).
    let scope = config::get(names::azure::SCOPE).unwrap_or_else(|| {
        let authority = vault.0.rsplit("://").next().unwrap_or("");
        let host = authority.split(':').next().unwrap_or("");
        match host.split_once('.') {
            Some((_, cloud)) if cloud.starts_with("vault.") => format!("https://{cloud}/.default"),
            _ => "https://vault.azure.net/.default".into(),
        }
    });
    let number = |name: &str, default: Option<u64>| match config::get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            Error::Backend(format!(
                "the setting `{name}` is {v:?}: write a whole number"
            ))
        }),
    };
    if !tenant
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(Error::Backend(format!(
            "tenant-id {tenant:?}: a tenant is a GUID or a domain name"
        )));
    }
    Ok(Settings {
        token: http::Token::new(names::common::ACCESS_TOKEN),
        vault,
        authority: http::split_url(
            &config::get(names::azure::AUTHORITY)
                .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
        ),
        tenant,
        client_id,
        scope,
        expires_after_days: number(names::azure::EXPIRES_AFTER_DAYS, None)?,
        purge: config::get(names::azure::PURGE).is_none_or(|v| v != "false"),
        max_list_pages: number(names::common::MAX_LIST_PAGES, Some(12))?.unwrap_or(12) as usize,
    })
}

/// The secret name of an id: the id itself. Key Vault takes any 1 to 127
/// letters, digits and `-` (the rules checked them), a leading, trailing or
/// doubled `-` included, which OpenMetadata writes for a name that cleans to
/// nothing.
fn name(id: &str) -> Result<&str, Error> {
    if id.is_empty() {
        return Err(Error::InvalidId(
            "the id is empty: a Key Vault secret name has 1 to 127 characters".into(),
        ));
    }
    Ok(id)
}

/// Key Vault's (or the authority's) error answer as the provider's error.
fn failure(who: &str, r: &Response) -> Error {
    let text = r.error_text(who);
    match r.status {
        400 | 401 if who.contains("authority") => Error::AccessDenied(format!(
            "{text} (check tenant-id, client-id and the credential client-secret)"
        )),
        _ => r.status_error(text),
    }
}

/// OAuth2 client credentials: the access token goes into the grant as `access-token`.
fn login(s: &Settings) -> Result<(), Error> {
    let r = http::oauth::client_credentials(
        &s.authority.0,
        format!("{}/{}/oauth2/v2.0/token", s.authority.1, s.tenant),
        &s.client_id,
        &s.scope,
        names::azure::CLIENT_SECRET,
    );
    s.token
        .login(&r)?
        .map_err(|answer| failure("the Azure authority", &answer))
}

/// A request to the vault at `path` (below the vault URL, without the API
/// version); [`call`] adds the token.
fn request<'a>(s: &Settings, method: &str, path: &str) -> Request<'a> {
    let sep = if path.contains('?') { '&' } else { '?' };
    request_at(s, method, format!("{}{path}{sep}{API}", s.vault.1))
}

/// A request to the vault's `path_and_query` as it is (a `nextLink`'s).
fn request_at<'a>(s: &Settings, method: &str, path_and_query: String) -> Request<'a> {
    Request::new(method, &s.vault.0, path_and_query)
        .header("Accept", http::bytes("application/json"))
}

/// Sends a vault request with the access token; a 401 (the token expired or was
/// revoked) logs in once more and sends it again.
fn call<'a>(
    s: &Settings,
    make: impl Fn() -> Request<'a>,
    lifts: &[http::Lift],
) -> Result<Response, Error> {
    s.token.call(make, lifts, || login(s))
}

fn secret_path(name: &str) -> String {
    format!("/secrets/{name}")
}

/// The latest version's attributes and tags, its value discarded unseen.
fn current(s: &Settings, name: &str) -> Result<Option<Value>, Error> {
    let r = call(
        s,
        || request(s, "GET", &secret_path(name)),
        &[http::discard("/value")],
    )?;
    match r.status {
        200 => Ok(Some(r.json())),
        404 => Ok(None),
        _ => Err(failure("Key Vault", &r)),
    }
}

/// Purges the deleted secret `name`. `Ok(false)` when the vault keeps it
/// (purge protection, or purging is not allowed to this client).
fn purge(s: &Settings, name: &str) -> Result<bool, Error> {
    let r = call(
        s,
        || request(s, "DELETE", &format!("/deletedsecrets/{name}")),
        &[http::discard("/value")],
    )?;
    match r.status {
        200 | 204 | 404 => Ok(true),
        403 => Ok(false),
        409 => Err(Error::Unavailable(format!(
            "{name} is still being deleted by the vault: put again in a few seconds"
        ))),
        _ => Err(failure("Key Vault", &r)),
    }
}

/// Whether a 409 says the name is held by a deleted secret (or one being deleted).
fn held_by_deleted(r: &Response) -> bool {
    let json = r.json();
    let inner = json["error"]["innererror"]["code"].as_str().unwrap_or("");
    let message = json["error"]["message"].as_str().unwrap_or("");
    inner == "ObjectIsDeletedButRecoverable"
        || inner == "ObjectIsBeingDeleted"
        || message.contains("deleted but recoverable")
        || message.contains("being deleted")
}

/// One instance's provider: its settings, read once (an instance's grant
/// never changes).
struct AzureKeyVault(Settings);

impl Provider for AzureKeyVault {
    fn new() -> Result<Self, Error> {
        Ok(AzureKeyVault(read_settings()?))
    }

    fn put(&self, id: &str, value: Secret, options: PutOptions) -> Result<PutOutcome, Error> {
        let (s, name) = (&self.0, name(id)?);
        let digest = http::digest(&value);
        let before = current(s, name)?;
        let mut tags = before
            .as_ref()
            .and_then(|b| b["tags"].as_object().cloned())
            .unwrap_or_default();
        let enabled = before
            .as_ref()
            .is_some_and(|b| b["attributes"]["enabled"] != false);
        if enabled && tags.get(DIGEST_TAG).and_then(Value::as_str) == Some(digest.as_str()) {
            return Ok(PutOutcome::Unchanged);
        }
        for tag in &options.tags {
            tags.insert(tag.key.clone(), Value::from(tag.value.as_str()));
        }
        tags.insert(DIGEST_TAG.into(), Value::from(digest));
        let mut attributes = Map::new();
        attributes.insert("enabled".into(), Value::Bool(true));
        if let Some(days) = s.expires_after_days {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            attributes.insert("exp".into(), Value::from(now + days * 86_400));
        }
        let write = |base64: bool| {
            let mut head = json!({ "tags": tags, "attributes": attributes });
            let encoding = if base64 {
                head["contentType"] = Value::from(BASE64_TYPE);
                Encoding::Base64
            } else {
                Encoding::JsonString
            };
            let head = head.to_string();
            // Base64 is bare text: quoted here (a JSON string quotes itself).
            let quote = if base64 { "\"" } else { "" };
            let head = format!("{},\"value\":{quote}", &head[..head.len() - 1]);
            let tail = format!("{quote}}}");
            call(
                s,
                || {
                    request(s, "PUT", &secret_path(name)).json(vec![
                        http::bytes(head.as_str()),
                        Part::Secret((&value, encoding)),
                        http::bytes(tail.as_str()),
                    ])
                },
                &[http::discard("/value")],
            )
        };
        let send = |base64: bool| match write(base64) {
            Ok(r) if r.status == 409 && held_by_deleted(&r) => {
                // A deleted secret holds the name: purge it, then write again.
                if !purge(s, name)? {
                    return Err(Error::Conflict(format!(
                        "{name} is held by a deleted secret the vault keeps (purge \
                         protection, or purging is not allowed): recover it or purge it, \
                         then put again"
                    )));
                }
                write(base64)
            }
            other => other,
        };
        let r = match send(false) {
            // Not UTF-8: stored base64 (which must still fit Key Vault's limit).
            Err(Error::Backend(m)) if m.contains("not UTF-8") => {
                if value.len() > MAX_VALUE / 4 * 3 {
                    return Err(Error::ValueTooLarge(SizeLimit {
                        size: value.len(),
                        limit: MAX_VALUE / 4 * 3,
                    }));
                }
                send(true)?
            }
            other => other?,
        };
        match r.status {
            200 | 201 if before.is_some() => Ok(PutOutcome::Updated),
            200 | 201 => Ok(PutOutcome::Created),
            409 if held_by_deleted(&r) => Err(Error::Unavailable(format!(
                "{name} is still being deleted by the vault: put again in a few seconds"
            ))),
            _ => Err(failure("Key Vault", &r)),
        }
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let (s, name) = (&self.0, name(id)?);
        // The content type says how the value was stored; it is read with the
        // value, so a value stored base64 is read again, decoded.
        let mut base64 = false;
        for _ in 0..3 {
            let lifts = [http::lift("/value", base64, None)];
            let mut r = call(s, || request(s, "GET", &secret_path(name)), &lifts)?;
            match r.status {
                200 => {}
                404 => return Ok(None),
                _ => return Err(failure("Key Vault", &r)),
            }
            let stored_base64 = r.json()["contentType"].as_str() == Some(BASE64_TYPE);
            if stored_base64 == base64 {
                return r.take_lifted(0).map(Some).ok_or_else(|| {
                    Error::Backend(format!("Key Vault answered {name} without a value"))
                });
            }
            base64 = stored_base64;
        }
        Err(Error::Unavailable(format!(
            "{name} kept changing while it was read: get again"
        )))
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        let (s, name) = (&self.0, name(id)?);
        let r = call(
            s,
            || request(s, "DELETE", &secret_path(name)),
            &[http::discard("/value")],
        )?;
        match r.status {
            200 => {}
            404 => return Ok(false),
            _ => return Err(failure("Key Vault", &r)),
        }
        if s.purge {
            // Refused or not yet possible (the deletion is still running): the
            // deleted secret stays, and a later put to the name purges it.
            match purge(s, name) {
                Ok(true) => {}
                Ok(false) => log::info(&format!("{name} deleted; the vault keeps it (no purge)")),
                Err(e) => log::warn(&format!("{name} deleted; purging it failed: {e:?}")),
            }
        }
        Ok(true)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        let s = &self.0;
        let mut pages = 0;
        let names = collect_sorted(prefix, |_, link| {
            pages += 1;
            if pages > s.max_list_pages {
                return Err(Error::Backend(format!(
                    "the vault lists more than {} pages of {LIST_PAGE} secrets: raise the \
                     setting `max-list-pages` (and the grant's requests per call)",
                    s.max_list_pages
                )));
            }
            let path = match link {
                Some(link) => link.to_owned(),
                None => format!("{}/secrets?maxresults={LIST_PAGE}&{API}", s.vault.1),
            };
            let r = call(s, || request_at(s, "GET", path.clone()), &[])?;
            if r.status != 200 {
                return Err(failure("Key Vault", &r));
            }
            let json = r.json();
            let names = json["value"]
                .as_array()
                .into_iter()
                .flatten()
                // Secrets backing certificates belong to those.
                .filter(|item| item["managed"] != true)
                .filter_map(|item| item["id"].as_str())
                .filter_map(|id| id.rsplit('/').next().map(str::to_owned))
                .collect();
            let next = match json["nextLink"].as_str().filter(|l| !l.is_empty()) {
                None => None,
                Some(link) => match link.strip_prefix(s.vault.0.as_str()) {
                    Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
                    _ => {
                        return Err(Error::Backend(format!(
                            "Key Vault's nextLink {link:?} leaves the vault {}",
                            s.vault.0
                        )));
                    }
                },
            };
            Ok((names, next))
        })?;
        Ok(ListPage::from_sorted(names, cursor, limit))
    }
}

export_provider!(AzureKeyVault, name: "azure-key-vault", rules: RULES.clone());
