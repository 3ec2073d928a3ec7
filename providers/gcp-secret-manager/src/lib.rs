//! The `gcp-secret-manager` provider: secrets in Google Cloud Secret Manager,
//! through its REST API (v1) on the `http` capability alone. An id is the
//! secret's id, spelled as OpenMetadata's GCP secrets manager spells it
//! (`openmetadata_database_MySQLProd_password`: letters, digits and `_`; the
//! service also takes `-`). The provider never holds a value, a key or a token:
//! it splices handles into requests and has the host lift the value out of
//! answers, checked against the CRC32C the service sends with it.
//!
//! Settings: `project-id`; `endpoint` (default
//! `https://secretmanager.googleapis.com`); `token-url` (default
//! `https://oauth2.googleapis.com/token`); `max-list-pages` (default 12).
//! Login, by the grant's credentials:
//! - `assertion`: a JWT the host signs with a service account's key (the grant's
//!   signer), exchanged at `token-url` for an access token (RFC 7523), which is
//!   kept in the grant as `access-token` and renewed at two thirds of its life or
//!   at once when the service answers 401;
//! - `token`: a bearer token used as it is (one a workload identity or
//!   `gcloud auth print-access-token` wrote to a file).
//!
//! A put creates the secret (automatic replication) when it is missing and adds
//! a version; a keyed digest of the value and the version it went into are kept
//! in the secret's annotations (`secret-broker-digest`,
//! `secret-broker-version`), which is how a put of the value the latest version
//! already holds reports `unchanged` (a version someone else added since is
//! never mistaken for it). A get accesses `versions/latest`; a delete deletes
//! the secret with all its versions. Listing reads every page (the service
//! promises no order), then sorts.

use secret_broker_guest_sdk::http::{self, Encoding, Part, Request, Response};
use secret_broker_guest_sdk::names;
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, collect_sorted, config,
    export_provider, log,
};
use serde_json::{Map, Value, json};

/// Secret Manager takes payloads up to 64 KiB.
const MAX_VALUE: u64 = 64 << 10;
/// Secrets listed per request.
const LIST_PAGE: u32 = 250;
/// The annotation holding the keyed digest of the value this provider wrote.
const DIGEST: &str = "secret-broker-digest";
/// The annotation holding the version that value went into.
const VERSION: &str = "secret-broker-version";
/// The grant's signed service account assertion.
const ASSERTION: &str = names::gcp::ASSERTION;
/// The grant's plain bearer token.
const BEARER: &str = names::gcp::TOKEN;

static RULES: std::sync::LazyLock<IdRules> = std::sync::LazyLock::new(|| IdRules {
    separator: "_".into(),
    allowed_chars: "A-Za-z0-9_-".into(),
    leading_separator: false,
    max_id_len: 255,
    max_value_bytes: MAX_VALUE,
    max_levels: None,
    forbidden_prefixes: Vec::new(),
});

struct Settings {
    /// The access token a service account's assertion was exchanged for,
    /// kept in the grant as `access-token`.
    token: http::Token,
    /// The API's `scheme://host:port` and path (empty for Google's).
    api: (String, String),
    /// The token endpoint's `scheme://host:port` and path.
    token_url: (String, String),
    project: String,
    /// Whether the grant holds a service account's `assertion` (else a `token`).
    assertion: bool,
    max_list_pages: usize,
}

fn read_settings() -> Result<Settings, Error> {
    let project = config::get(names::gcp::PROJECT_ID)
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::Backend("the setting `project-id` (the Google Cloud project) is missing".into())
        })?;
    // A project id (6-30 lowercase letters, digits, `-`) or a project number.
    if !project
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || project.len() > 30
    {
        return Err(Error::Backend(format!(
            "project-id {project:?}: a project id is lowercase letters, digits and `-` (or \
             the project's number)"
        )));
    }
    let assertion = http::has_credential(ASSERTION);
    if !assertion && !http::has_credential(BEARER) {
        return Err(Error::AccessDenied(
            "the http grant holds neither `assertion` (a service account key the host signs \
             with) nor `token` (a bearer token): configure one"
                .into(),
        ));
    }
    let max_list_pages = match config::get(names::common::MAX_LIST_PAGES) {
        None => 12,
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            Error::Backend(format!(
                "the setting `max-list-pages` is {v:?}: write a whole number"
            ))
        })?,
    };
    Ok(Settings {
        token: http::Token::new(names::common::ACCESS_TOKEN),
        api: http::split_url(
            &config::get(names::common::ENDPOINT)
                .unwrap_or_else(|| "https://secretmanager.googleapis.com".into()),
        ),
        token_url: http::split_url(
            &config::get(names::gcp::TOKEN_URL)
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
        ),
        project,
        assertion,
        max_list_pages,
    })
}

/// The secret id of an id, once it is known to be a valid one.
fn name(id: &str) -> Result<&str, Error> {
    if id.is_empty() {
        return Err(Error::InvalidId("an empty id names no secret".into()));
    }
    Ok(id)
}

/// Secret Manager's (or the token endpoint's) error answer as the provider's error.
fn failure(who: &str, r: &Response) -> Error {
    let text = r.error_text(who);
    match r.status {
        400 | 401 if who.contains("token") => Error::AccessDenied(format!(
            "{text} (check the service account key: its client_email, private_key and \
             token_uri)"
        )),
        _ => r.status_error(text),
    }
}

/// Exchanges a fresh assertion for an access token, kept as `access-token`.
fn login(s: &Settings) -> Result<(), Error> {
    let r = http::oauth::jwt_bearer(&s.token_url.0, s.token_url.1.clone(), ASSERTION);
    s.token
        .login(&r)?
        .map_err(|answer| failure("the Google token endpoint", &answer))
}

/// A request to the project's `path` (below `/v1/projects/PROJECT`).
fn request<'a>(s: &Settings, method: &str, path: &str) -> Request<'a> {
    Request::new(
        method,
        &s.api.0,
        format!("{}/v1/projects/{}{path}", s.api.1, s.project),
    )
    .header("Accept", http::bytes("application/json"))
}

/// Sends a request with the access token (logging in when there is none, it is
/// due, or the service answers 401), or with the grant's bearer token.
fn call<'a>(
    s: &Settings,
    make: impl Fn() -> Request<'a>,
    lifts: &[http::Lift],
) -> Result<Response, Error> {
    if s.assertion {
        s.token.call(make, lifts, || login(s))
    } else {
        http::send(&make().bearer(BEARER), lifts)
    }
}

/// The secret (its annotations), or `None`.
fn secret(s: &Settings, name: &str) -> Result<Option<Value>, Error> {
    let r = call(s, || request(s, "GET", &format!("/secrets/{name}")), &[])?;
    match r.status {
        200 => Ok(Some(r.json())),
        404 => Ok(None),
        _ => Err(failure("Secret Manager", &r)),
    }
}

/// The number of the secret's latest version, when it is enabled.
fn latest_enabled(s: &Settings, name: &str) -> Result<Option<String>, Error> {
    let r = call(
        s,
        || request(s, "GET", &format!("/secrets/{name}/versions/latest")),
        &[],
    )?;
    match r.status {
        200 => {
            let json = r.json();
            Ok((json["state"] == "ENABLED")
                .then(|| version_number(&json))
                .flatten())
        }
        404 => Ok(None),
        _ => Err(failure("Secret Manager", &r)),
    }
}

/// `N` of a version's name `projects/P/secrets/S/versions/N`.
fn version_number(version: &Value) -> Option<String> {
    version["name"]
        .as_str()
        .and_then(|n| n.rsplit('/').next())
        .map(str::to_owned)
}

/// One instance's provider: its settings, read once (an instance's grant
/// never changes).
struct GcpSecretManager(Settings);

impl Provider for GcpSecretManager {
    fn new() -> Result<Self, Error> {
        Ok(GcpSecretManager(read_settings()?))
    }

    fn put(&self, id: &str, value: Secret, options: PutOptions) -> Result<PutOutcome, Error> {
        let (s, name) = (&self.0, name(id)?);
        let digest = http::digest(&value);
        let before = secret(s, name)?;
        let mut annotations = before
            .as_ref()
            .and_then(|b| b["annotations"].as_object().cloned())
            .unwrap_or_default();
        if let Some(kept) = annotations.get(VERSION).and_then(Value::as_str)
            && annotations.get(DIGEST).and_then(Value::as_str) == Some(digest.as_str())
            && latest_enabled(s, name)?.as_deref() == Some(kept)
        {
            return Ok(PutOutcome::Unchanged);
        }
        for tag in &options.tags {
            annotations.insert(tag.key.clone(), Value::from(tag.value.as_str()));
        }
        let mut created = false;
        if before.is_none() {
            let body =
                json!({"replication": {"automatic": {}}, "annotations": annotations}).to_string();
            let r = call(
                s,
                || {
                    request(s, "POST", &format!("/secrets?secretId={name}"))
                        .json(vec![http::bytes(body.as_str())])
                },
                &[],
            )?;
            match r.status {
                200 => created = true,
                // Created meanwhile by another writer: add the version to it.
                409 => {}
                _ => return Err(failure("Secret Manager", &r)),
            }
        }
        let r = call(
            s,
            || {
                request(s, "POST", &format!("/secrets/{name}:addVersion")).json(vec![
                    http::bytes("{\"payload\":{\"data\":\""),
                    Part::Secret((&value, Encoding::Base64)),
                    http::bytes("\"}}"),
                ])
            },
            &[],
        )?;
        match r.status {
            200 => {}
            404 => {
                return Err(Error::Conflict(format!(
                    "{name} was deleted while it was written: put again"
                )));
            }
            _ => return Err(failure("Secret Manager", &r)),
        }
        // The digest goes in after the version it describes: a failure here
        // leaves a stale digest, which only makes the next put write again.
        if let Some(version) = version_number(&r.json()) {
            annotations.insert(DIGEST.into(), Value::from(digest));
            annotations.insert(VERSION.into(), Value::from(version));
            let body = json!({ "annotations": Map::from_iter(annotations) }).to_string();
            let patched = call(
                s,
                || {
                    request(
                        s,
                        "PATCH",
                        &format!("/secrets/{name}?updateMask=annotations"),
                    )
                    .json(vec![http::bytes(body.as_str())])
                },
                &[],
            );
            match patched {
                Ok(r) if r.status == 200 => {}
                Ok(r) => log::warn(&format!(
                    "{name}: the new version is written, its digest is not: {:?}",
                    failure("Secret Manager", &r)
                )),
                Err(e) => log::warn(&format!(
                    "{name}: the new version is written, its digest is not: {e:?}"
                )),
            }
        }
        Ok(if created {
            PutOutcome::Created
        } else {
            PutOutcome::Updated
        })
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let (s, name) = (&self.0, name(id)?);
        let lifts = [http::lift_crc32c(
            "/payload/data",
            true,
            "/payload/dataCrc32c",
        )];
        let mut r = call(
            s,
            || request(s, "GET", &format!("/secrets/{name}/versions/latest:access")),
            &lifts,
        )?;
        match r.status {
            200 => r.take_lifted(0).map(Some).ok_or_else(|| {
                Error::Backend(format!("Secret Manager answered {name} without a payload"))
            }),
            404 => Ok(None),
            _ => Err(failure("Secret Manager", &r)),
        }
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        let (s, name) = (&self.0, name(id)?);
        let r = call(s, || request(s, "DELETE", &format!("/secrets/{name}")), &[])?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(failure("Secret Manager", &r)),
        }
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        let s = &self.0;
        let mut pages = 0;
        let names = collect_sorted(prefix, |_, token| {
            pages += 1;
            if pages > s.max_list_pages {
                return Err(Error::Backend(format!(
                    "the project lists more than {} pages of {LIST_PAGE} secrets: raise the \
                     setting `max-list-pages` (and the grant's requests per call)",
                    s.max_list_pages
                )));
            }
            let mut path = format!("/secrets?pageSize={LIST_PAGE}");
            if let Some(token) = token {
                path.push_str("&pageToken=");
                path.push_str(&http::query_escape(token));
            }
            let r = call(s, || request(s, "GET", &path), &[])?;
            if r.status != 200 {
                return Err(failure("Secret Manager", &r));
            }
            let json = r.json();
            let names = json["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|secret| secret["name"].as_str())
                .filter_map(|n| n.rsplit('/').next().map(str::to_owned))
                .collect();
            let next = json["nextPageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            Ok((names, next))
        })?;
        Ok(ListPage::from_sorted(names, cursor, limit))
    }
}

export_provider!(GcpSecretManager, name: "gcp-secret-manager", rules: RULES.clone());
