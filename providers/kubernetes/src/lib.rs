//! The `kubernetes` provider: Kubernetes Secrets (core/v1 `Secret` objects in one
//! namespace), on the `http` capability alone. An id is the object's name, spelled
//! as OpenMetadata's Kubernetes secrets manager spells it
//! (`openmetadata-database-mysql-prod-authtype-password`: lowercase letters,
//! digits and single `-`); the value lives base64-encoded under the data key
//! `value`, with the labels OpenMetadata sets (`app: openmetadata`,
//! `managed-by: openmetadata-secrets-manager`). The provider never holds a value
//! or the token: it splices handles into requests and has the host lift the
//! value out of answers; it never even sees the data of the objects it reads.
//!
//! Settings: `server` (the API server, `https://host:port` with an optional path,
//! also granted in the http grant's `origins`), `namespace` (default `default`).
//! The grant's credential `token` is sent as the bearer token.
//!
//! A put replaces the object's data with `value` (as OpenMetadata does), keeping
//! its other metadata, conditional on the `resourceVersion` it read: a concurrent
//! change is a conflict, never overwritten. An update the API server finds
//! changes nothing keeps the `resourceVersion`, which is how a put of the same
//! value reports `unchanged`. Listing takes metadata only, labelled
//! `app=openmetadata`, and pages with `continue` tokens.

use secret_broker_guest_sdk::http::{self, Encoding, Part, Request, Response};
use secret_broker_guest_sdk::names;
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, config, export_provider,
};
use serde_json::{Value, json};

/// A Secret's data may total 1 MiB, but an answer carries it base64-encoded and
/// must fit the grant's response limit (1 MiB by default): values up to 512 KiB.
const MAX_VALUE: u64 = 512 << 10;
/// Objects asked for per list request.
const LIST_PAGE: usize = 250;
/// List requests one `list` call may send (the grant allows 16 requests a call).
const LIST_BUDGET: usize = 12;
/// The labels OpenMetadata puts on the Secrets it writes; listing selects the first.
const LABELS: [(&str, &str); 2] = [
    ("app", "openmetadata"),
    ("managed-by", "openmetadata-secrets-manager"),
];
/// A metadata-only list (`PartialObjectMetadataList`), so no data is sent at all.
const METADATA_ONLY: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

static RULES: std::sync::LazyLock<IdRules> = std::sync::LazyLock::new(|| IdRules {
    separator: "-".into(),
    allowed_chars: "a-z0-9-".into(),
    leading_separator: false,
    max_id_len: 253,
    max_levels: None,
    forbidden_prefixes: Vec::new(),
    max_value_bytes: MAX_VALUE,
});

struct Settings {
    /// `scheme://host:port`.
    origin: String,
    /// The server's path, without a trailing `/` (empty for most servers).
    base: String,
    namespace: String,
}

fn read_settings() -> Result<Settings, Error> {
    let server = config::get(names::kubernetes::SERVER).ok_or_else(|| {
        Error::Backend("the setting `server` (the API server's URL) is missing".into())
    })?;
    let (origin, base) = http::split_url(&server);
    let namespace = config::get(names::kubernetes::NAMESPACE)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    if !namespace
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(Error::Backend(format!(
            "namespace {namespace:?}: a namespace is lowercase letters, digits and `-`"
        )));
    }
    Ok(Settings {
        origin,
        base,
        namespace,
    })
}

/// The object name of an id: the id itself, once it is known to be a valid name
/// (the rules let `-` through anywhere; an object name starts and ends with a
/// letter or digit).
fn name(id: &str) -> Result<&str, Error> {
    if id.starts_with('-') || id.ends_with('-') {
        return Err(Error::InvalidId(format!(
            "{id:?} starts or ends with `-`: an object name starts and ends with a letter or digit"
        )));
    }
    Ok(id)
}

/// A request to the namespace's secrets (or the one `name`), carrying the
/// grant's credential `token` as the bearer token.
fn request<'a>(s: &Settings, method: &str, name: Option<&str>, query: &str) -> Request<'a> {
    let mut path = format!("{}/api/v1/namespaces/{}/secrets", s.base, s.namespace);
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    path.push_str(query);
    Request::new(method, &s.origin, path).bearer(names::kubernetes::TOKEN)
}

fn send(r: Request<'_>, lifts: &[http::Lift]) -> Result<Response, Error> {
    http::send(&r.header("Accept", http::bytes("application/json")), lifts)
}

/// The API server's `Status` answer as the provider's error.
fn failure(r: &Response) -> Error {
    let status = r.json();
    let reason = status["reason"].as_str().unwrap_or("");
    let text = format!(
        "the Kubernetes API answered {} {reason}: {}",
        r.status,
        status["message"].as_str().unwrap_or("")
    );
    let retry = r
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.clone());
    match r.status {
        401 => Error::AccessDenied(format!(
            "{text} (the token was refused: renew it in the grant)"
        )),
        403 => Error::AccessDenied(text),
        409 => Error::Conflict(text),
        429 | 500..=599 => Error::Unavailable(match retry {
            Some(after) => format!("{text}; retry after {after} s"),
            None => text,
        }),
        _ => Error::Backend(text),
    }
}

/// The object at `name`, its data left out (the provider never sees it).
fn read(s: &Settings, name: &str) -> Result<Option<Value>, Error> {
    let r = send(request(s, "GET", Some(name), ""), &[http::discard("/data")])?;
    match r.status {
        200 => Ok(Some(r.json())),
        404 => Ok(None),
        _ => Err(failure(&r)),
    }
}

/// The body of a Secret: `head` (its JSON without `data`, as bytes ending
/// before the closing brace) then `data: {value}` holding `value` as base64.
fn secret_body<'a>(head: String, value: &'a Secret) -> Vec<Part<'a>> {
    vec![
        http::bytes(format!("{head},\"data\":{{\"value\":\"")),
        Part::Secret((value, Encoding::Base64)),
        http::bytes("\"}}"),
    ]
}

/// Labels OpenMetadata's, on top of what the object had.
fn add_labels(metadata: &mut Value) {
    let labels = metadata
        .as_object_mut()
        .map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(Value::Object(labels)) = labels {
        for (k, v) in LABELS {
            labels.entry(k).or_insert_with(|| Value::from(v));
        }
    }
}

/// One instance's provider: its settings, read once (an instance's grant
/// never changes).
struct Kubernetes(Settings);

impl Provider for Kubernetes {
    fn new() -> Result<Self, Error> {
        Ok(Kubernetes(read_settings()?))
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let (s, name) = (&self.0, name(id)?);
        match read(s, name)? {
            None => {
                let mut metadata = json!({ "name": name });
                add_labels(&mut metadata);
                let head = format!(
                    "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"Opaque\",\"metadata\":{metadata}"
                );
                let r = send(
                    request(s, "POST", None, "").json(secret_body(head, &value)),
                    &[http::discard("/data")],
                )?;
                match r.status {
                    201 | 200 => Ok(PutOutcome::Created),
                    _ => Err(failure(&r)),
                }
            }
            Some(current) => {
                let mut metadata = current["metadata"].clone();
                let version = metadata["resourceVersion"].as_str().map(str::to_owned);
                add_labels(&mut metadata);
                if let Some(m) = metadata.as_object_mut() {
                    // Written by the server; `resourceVersion` stays as the condition.
                    m.remove("managedFields");
                }
                let kind = current["type"].as_str().unwrap_or("Opaque");
                let head = format!(
                    "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":{},\"metadata\":{metadata}",
                    Value::from(kind)
                );
                let r = send(
                    request(s, "PUT", Some(name), "").json(secret_body(head, &value)),
                    &[http::discard("/data")],
                )?;
                if r.status != 200 {
                    return Err(failure(&r));
                }
                let after = r.json()["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_owned);
                Ok(if after.is_some() && after == version {
                    PutOutcome::Unchanged
                } else {
                    PutOutcome::Updated
                })
            }
        }
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let (s, name) = (&self.0, name(id)?);
        let lifts = [
            http::lift("/data/value", true, None),
            // Whatever else the object holds is discarded unseen.
            http::discard("/data"),
        ];
        let mut r = send(request(s, "GET", Some(name), ""), &lifts)?;
        match r.status {
            // An object without `value` holds no value of ours (as OpenMetadata reads it).
            200 => Ok(r.take_lifted(0)),
            404 => Ok(None),
            _ => Err(failure(&r)),
        }
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        let (s, name) = (&self.0, name(id)?);
        let r = send(
            request(s, "DELETE", Some(name), ""),
            &[http::discard("/data")],
        )?;
        match r.status {
            200 | 202 => Ok(true),
            404 => Ok(false),
            _ => Err(failure(&r)),
        }
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        let s = &self.0;
        let limit = limit.max(1) as usize;
        // The cursor: the last id listed, then the `continue` token of the page
        // holding what follows it (empty for the first page).
        let (mut after, mut token) = match cursor.and_then(|c| c.split_once(':')) {
            Some((last, t)) => (Some(last.to_owned()), t.to_owned()),
            None => (None, String::new()),
        };
        let selector = http::query_escape(&format!("{}={}", LABELS[0].0, LABELS[0].1));
        // A server that ignores the metadata-only ask still hands over no data.
        let lifts: Vec<http::Lift> = (0..LIST_PAGE)
            .map(|i| http::discard(&format!("/items/{i}/data")))
            .collect();
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..LIST_BUDGET {
            let mut query = format!("?limit={LIST_PAGE}&labelSelector={selector}");
            if !token.is_empty() {
                query.push_str("&continue=");
                query.push_str(&http::query_escape(&token));
            }
            let r = request(s, "GET", None, &query).header("Accept", http::bytes(METADATA_ONLY));
            let r = http::send(&r, &lifts)?;
            match r.status {
                200 => {}
                410 => {
                    return Err(Error::Unavailable(
                        "the list's continue token expired: list again from the start".into(),
                    ));
                }
                _ => return Err(failure(&r)),
            }
            let json = r.json();
            let names = json["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| item["metadata"]["name"].as_str());
            for name in names {
                if after.as_deref().is_some_and(|a| name <= a) {
                    continue;
                }
                if name.starts_with(prefix) {
                    if ids.len() == limit {
                        let last = ids.last().cloned().unwrap_or_default();
                        return Ok(ListPage {
                            ids,
                            next_cursor: Some(format!("{last}:{token}")),
                        });
                    }
                    ids.push(name.to_owned());
                } else if name > prefix {
                    // Names come in order: nothing later starts with the prefix.
                    return Ok(ListPage {
                        ids,
                        next_cursor: None,
                    });
                }
            }
            match json["metadata"]["continue"]
                .as_str()
                .filter(|c| !c.is_empty())
            {
                Some(next) => token = next.to_owned(),
                None => {
                    return Ok(ListPage {
                        ids,
                        next_cursor: None,
                    });
                }
            }
            if let Some(last) = ids.last() {
                after = Some(last.clone());
            }
        }
        // Out of requests for this call: resume at the next page.
        let last = ids.last().cloned().or(after).unwrap_or_default();
        Ok(ListPage {
            ids,
            next_cursor: Some(format!("{last}:{token}")),
        })
    }
}

export_provider!(Kubernetes, name: "kubernetes", rules: RULES.clone());
