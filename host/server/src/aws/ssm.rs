//! The SSM Parameter Store operations: PutParameter, GetParameter,
//! GetParameters, GetParametersByPath, DeleteParameter, DescribeParameters,
//! AddTagsToResource and ListTagsForResource, as the AWS SDKs call them.
//!
//! A parameter's name is its broker id, so a secret OpenMetadata keeps under
//! `/openmetadata/...` is the same value through either API and through `/v1`.
//! Only the current version is kept; its number counts the writes made through
//! this API. A `SecureString` read without `WithDecryption` answers the mask
//! `*********` (AWS would answer KMS ciphertext; there is none here).

use secret_broker::policy::MASK;
use secret_broker_runtime::{PutOptions, SecretValue};
use serde_json::{Map, Value, json};

use super::meta::{PARAMETERS, ParameterMeta};
use super::request::{self, Filter, parse, required, within};
use super::{AwsError, Ctx, now};
use crate::AppState;

const TYPES: [&str; 3] = ["String", "StringList", "SecureString"];

fn not_found(name: &str) -> AwsError {
    AwsError::new("ParameterNotFound", format!("Parameter {name} not found."))
}

fn arn(ctx: &Ctx, name: &str) -> String {
    let sep = if name.starts_with('/') { "" } else { "/" };
    format!(
        "arn:aws:ssm:{}:{}:parameter{sep}{name}",
        ctx.region,
        super::ACCOUNT
    )
}

/// A parameter name, checked as SSM checks it: `a-zA-Z0-9_.-/`, at most 2,048
/// characters and 15 levels, a hierarchy starting with `/`, and no `aws` or
/// `ssm` prefix.
fn check_name(ctx: &Ctx, field: &str, name: &str) -> Result<(), AwsError> {
    let bad = |why: &str| AwsError::invalid(ctx.api, format!("{field}: {why}"));
    if name.is_empty() || name.len() > 2048 {
        return Err(bad("a parameter name is 1 to 2,048 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
    {
        return Err(bad(
            "a parameter name uses only the characters a-z A-Z 0-9 _ . - /",
        ));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Err(bad("a hierarchical parameter name must start with /"));
    }
    if name.matches('/').count() > 15 {
        return Err(bad("a parameter name has at most 15 levels"));
    }
    let first = name.trim_start_matches('/').to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(bad(
            "a parameter name may not start with aws or ssm (reserved by AWS)",
        ));
    }
    Ok(())
}

/// A name with an optional `:version` selector.
fn selected(ctx: &Ctx, field: &str, text: &str) -> Result<(String, Option<u64>), AwsError> {
    let (name, version) = match text.rsplit_once(':') {
        Some((name, v)) => {
            let v = v.parse::<u64>().map_err(|_| {
                AwsError::invalid(
                    ctx.api,
                    format!("{field}: a selector must be a version number (labels are not kept)"),
                )
            })?;
            (name, Some(v))
        }
        None => (text, None),
    };
    check_name(ctx, field, name)?;
    Ok((name.to_owned(), version))
}

async fn meta_of(s: &AppState, name: &str) -> ParameterMeta {
    match s.aws_metadata() {
        Some(m) => m.get_or_unknown(PARAMETERS, name).await.unwrap_or_default(),
        None => ParameterMeta::default(),
    }
}

fn limit_of(ctx: &Ctx, tier: &str) -> Result<usize, AwsError> {
    match tier {
        "Standard" => Ok(4096),
        "Advanced" | "Intelligent-Tiering" => Ok(8192),
        _ => Err(AwsError::invalid(
            ctx.api,
            "Tier must be Standard, Advanced or Intelligent-Tiering",
        )),
    }
}

pub(super) async fn put(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Put = parse(ctx.api, body)?;
    let name = required(ctx.api, "Name", req.name.as_deref())?;
    check_name(ctx, "Name", name)?;
    let overwrite = req.overwrite.unwrap_or(false);
    let new_tags = request::tags(ctx.api, req.tags)?;
    if overwrite && new_tags.is_some() {
        return Err(AwsError::invalid(
            ctx.api,
            "Invalid request: tags and overwrite can't be used together. To create a parameter \
             with tags, please remove overwrite flag. To update tags for an existing parameter, \
             please use AddTagsToResource or RemoveTagsFromResource.",
        ));
    }
    let kind = req.kind.as_deref();
    if let Some(kind) = kind
        && !TYPES.contains(&kind)
    {
        return Err(AwsError::invalid(
            ctx.api,
            "Type must be String, StringList or SecureString",
        ));
    }
    let tier = req.tier.as_deref().unwrap_or("Standard");
    let limit = limit_of(ctx, tier)?;
    let value = super::secret_value(ctx.api, ("Value", req.value), None, limit)?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AwsError::invalid(ctx.api, "Value is required and may not be empty"))?;
    let description = req.description.clone();
    let options = PutOptions {
        description: description.clone(),
        tags: new_tags.clone().unwrap_or_default(),
    };
    // A write that made the parameter starts its versions at 1, with or
    // without `Overwrite`; any other counts one more.
    let created = if overwrite {
        s.broker
            .put(&ctx.caller, name, &value, &options)
            .await
            .map_err(|e| AwsError::broker(ctx.api, e))?
            == secret_broker::broker::Written::Created
    } else {
        if kind.is_none() {
            return Err(AwsError::invalid(
                ctx.api,
                "Type is required when creating a parameter (String, StringList or \
                 SecureString)",
            ));
        }
        s.broker
            .create(&ctx.caller, name, &value, &options)
            .await
            .map_err(|e| match e {
                secret_broker::broker::BrokerError::Exists { .. } => AwsError::new(
                    "ParameterAlreadyExists",
                    "The parameter already exists. To overwrite this value, set the overwrite \
                     option in the request to true.",
                ),
                e => AwsError::broker(ctx.api, e),
            })?;
        true
    };
    let at = now();
    let row = match s.aws_metadata() {
        Some(m) => m
            .update(PARAMETERS, name, |m: &mut ParameterMeta| {
                m.version = if created { 1 } else { m.version() + 1 };
                if created && !overwrite {
                    m.tags = new_tags.clone().unwrap_or_default();
                    m.description = None;
                }
                if let Some(kind) = kind {
                    m.kind = Some(kind.to_owned());
                }
                if description.is_some() {
                    m.description.clone_from(&description);
                }
                m.tier = Some(tier.to_owned());
                m.modified = Some(at);
            })
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the parameter's AWS API metadata could not be written");
                ParameterMeta::default()
            }),
        None => ParameterMeta::default(),
    };
    Ok(json!({"Version": row.version(), "Tier": row.tier()}))
}

/// A parameter as the Get operations answer it. `value` is `None` for a
/// `SecureString` read without decryption.
fn parameter(ctx: &Ctx, name: &str, meta: &ParameterMeta, value: Option<&SecretValue>) -> Value {
    let mut out = Map::new();
    out.insert("Name".into(), json!(name));
    out.insert("Type".into(), json!(meta.kind()));
    let text = match value {
        Some(v) => v.expose_str().map_or_else(
            || String::from_utf8_lossy(v.expose()).into_owned(),
            str::to_owned,
        ),
        None => MASK.to_owned(),
    };
    out.insert("Value".into(), Value::String(text));
    out.insert("Version".into(), json!(meta.version()));
    if let Some(at) = meta.modified {
        out.insert("LastModifiedDate".into(), json!(at));
    }
    out.insert("ARN".into(), json!(arn(ctx, name)));
    out.insert("DataType".into(), json!("text"));
    Value::Object(out)
}

/// One parameter, or `None` when it does not exist.
async fn read(
    s: &AppState,
    ctx: &Ctx,
    name: &str,
    version: Option<u64>,
    decrypt: bool,
) -> Result<Option<Value>, AwsError> {
    let meta = meta_of(s, name).await;
    let masked = !decrypt && meta.kind() == "SecureString";
    let value = if masked {
        let found = s
            .broker
            .exists(&ctx.caller, name)
            .await
            .map_err(|e| AwsError::broker(ctx.api, e))?;
        if !found {
            return Ok(None);
        }
        None
    } else {
        match s
            .broker
            .get(&ctx.caller, name)
            .await
            .map_err(|e| AwsError::broker(ctx.api, e))?
        {
            Some(v) => Some(v),
            None => return Ok(None),
        }
    };
    // A value written through another API may be over what SSM holds: refused
    // as AWS refuses such a value, never answered over the limit.
    if let Some(v) = &value {
        let limit = limit_of(ctx, meta.tier())?;
        if v.len() > limit {
            return Err(AwsError::new(
                "ValidationException",
                format!(
                    "{name}: its value is {} bytes, over the {} tier's limit of {limit} \
                     (it was written through another API); read it through Secrets Manager \
                     or the broker's /v1 API, or store a smaller value",
                    v.len(),
                    meta.tier()
                ),
            ));
        }
    }
    if let Some(v) = version
        && v != meta.version()
    {
        return Err(AwsError::new(
            "ParameterVersionNotFound",
            format!(
                "Systems Manager could not find version {v} of {name}; this server keeps \
                     the current version ({}) only",
                meta.version()
            ),
        ));
    }
    Ok(Some(parameter(ctx, name, &meta, value.as_ref())))
}

pub(super) async fn get(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Read = parse(ctx.api, body)?;
    let (name, version) = selected(ctx, "Name", required(ctx.api, "Name", req.name.as_deref())?)?;
    let decrypt = req.with_decryption.unwrap_or(false);
    match read(s, ctx, &name, version, decrypt).await? {
        Some(p) => Ok(json!({"Parameter": p})),
        None => Err(not_found(&name)),
    }
}

pub(super) async fn get_many(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Read = parse(ctx.api, body)?;
    let names = req.names.unwrap_or_default();
    if names.is_empty() || names.len() > 10 {
        return Err(AwsError::invalid(ctx.api, "Names: 1 to 10 parameter names"));
    }
    let decrypt = req.with_decryption.unwrap_or(false);
    let (mut found, mut invalid) = (Vec::new(), Vec::new());
    for text in names.iter().map(String::as_str) {
        let (name, version) = selected(ctx, "Names", text)?;
        match read(s, ctx, &name, version, decrypt).await {
            Ok(Some(p)) => found.push(p),
            Ok(None) => invalid.push(json!(text)),
            Err(e) if e.code == "ParameterVersionNotFound" => invalid.push(json!(text)),
            Err(e) => return Err(e),
        }
    }
    Ok(json!({"Parameters": found, "InvalidParameters": invalid}))
}

fn refuse_parameter_filters(ctx: &Ctx, filters: Option<&Value>) -> Result<(), AwsError> {
    if filters
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
    {
        return Err(AwsError::invalid(
            ctx.api,
            "ParameterFilters are not supported by GetParametersByPath here; filter with Path \
             and Recursive",
        ));
    }
    Ok(())
}

/// Names under `prefix` from the token on, the ones `keep` accepts, at most
/// `limit`; with the token of the rest.
async fn names_under(
    s: &AppState,
    ctx: &Ctx,
    prefix: &str,
    token: Option<&str>,
    limit: u32,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, Option<String>), AwsError> {
    let mut cursor = match token {
        Some(t) => super::decode_token(ctx.api, t)?.1,
        None => None,
    };
    let mut names = Vec::new();
    loop {
        let page = s
            .broker
            .list(
                &ctx.caller,
                prefix,
                cursor.as_deref(),
                limit - names.len() as u32,
            )
            .await
            .map_err(|e| AwsError::broker(ctx.api, e))?;
        names.extend(page.ids.into_iter().filter(|n| keep(n)));
        cursor = page.next_cursor;
        if cursor.is_none() || names.len() as u32 >= limit {
            break;
        }
    }
    Ok((names, cursor.map(|c| super::encode_token(0, Some(&c)))))
}

/// Whether `name` is in the hierarchy under `path` (`/a/b`), one level down
/// only unless `recursive`.
fn under(path: &str, name: &str, recursive: bool) -> bool {
    let base = path.trim_end_matches('/');
    let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/')) && check_ok(name)
}

/// Whether an id is a valid parameter name (ids kept by other means may not be).
fn check_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
}

fn path_prefix(ctx: &Ctx, path: &str) -> Result<String, AwsError> {
    if !path.starts_with('/') || !check_ok(path) {
        return Err(AwsError::invalid(
            ctx.api,
            "Path must start with / and use only a-z A-Z 0-9 _ . - /",
        ));
    }
    let base = path.trim_end_matches('/');
    Ok(format!("{base}/"))
}

pub(super) async fn by_path(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Read = parse(ctx.api, body)?;
    let path = required(ctx.api, "Path", req.path.as_deref())?;
    let prefix = path_prefix(ctx, path)?;
    let recursive = req.recursive.unwrap_or(false);
    let decrypt = req.with_decryption.unwrap_or(false);
    refuse_parameter_filters(ctx, req.parameter_filters.as_ref())?;
    let limit = within(ctx.api, "MaxResults", req.max_results, 1..=10)?.unwrap_or(10) as u32;
    let token = req.next_token.as_deref();
    let (names, next) =
        names_under(s, ctx, &prefix, token, limit, |n| under(path, n, recursive)).await?;
    let mut found = Vec::new();
    for name in names {
        // One deleted between the listing and the read is left out.
        if let Some(p) = read(s, ctx, &name, None, decrypt).await? {
            found.push(p);
        }
    }
    let mut out = json!({"Parameters": found});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

pub(super) async fn delete(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Read = parse(ctx.api, body)?;
    let name = required(ctx.api, "Name", req.name.as_deref())?;
    check_name(ctx, "Name", name)?;
    let existed = s
        .broker
        .delete(&ctx.caller, name)
        .await
        .map_err(|e| AwsError::broker(ctx.api, e))?;
    if !existed {
        return Err(not_found(name));
    }
    if let Some(m) = s.aws_metadata()
        && let Err(e) = m.remove(PARAMETERS, name).await
    {
        tracing::warn!(error = %e, "a deleted parameter's AWS API metadata could not be removed");
    }
    Ok(json!({}))
}

/// What DescribeParameters' filters select: a prefix to list and a test.
struct Selection {
    prefix: String,
    exact: Option<String>,
    path: Option<(String, bool)>,
    kinds: Option<Vec<String>>,
}

fn selection(
    ctx: &Ctx,
    parameter_filters: Option<Vec<Filter>>,
    filters: Option<Vec<Filter>>,
) -> Result<Selection, AwsError> {
    let mut sel = Selection {
        prefix: String::new(),
        exact: None,
        path: None,
        kinds: None,
    };
    let bad = |why: String| AwsError::new("InvalidFilterKey", why);
    // `Filters` (the older form) has no option: it means `Equals`.
    let plain = filters
        .into_iter()
        .flatten()
        .map(|f| Filter { option: None, ..f });
    let all = parameter_filters.into_iter().flatten().chain(plain);
    for f in all {
        let key = f.key.unwrap_or_default();
        let option = f.option.unwrap_or_else(|| "Equals".to_owned());
        let values = f.values.unwrap_or_default();
        match (key.as_str(), option.as_str()) {
            ("Name", "Equals" | "BeginsWith") => {
                let [value] = &values[..] else {
                    return Err(bad("the Name filter takes one value here".into()));
                };
                sel.prefix.clone_from(value);
                if option == "Equals" {
                    sel.exact = Some(value.clone());
                }
            }
            ("Path", "Recursive" | "OneLevel" | "Equals") => {
                let [value] = &values[..] else {
                    return Err(bad("the Path filter takes one value here".into()));
                };
                sel.prefix = path_prefix(ctx, value)?;
                sel.path = Some((value.clone(), option == "Recursive"));
            }
            ("Type", "Equals") => sel.kinds = Some(values),
            _ => {
                return Err(bad(format!(
                    "the filter {key:?} with option {option:?} is not supported; use Name \
                     (Equals, BeginsWith), Path (Recursive, OneLevel) or Type (Equals)"
                )));
            }
        }
    }
    Ok(sel)
}

pub(super) async fn describe(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Describe = parse(ctx.api, body)?;
    let sel = selection(ctx, req.parameter_filters, req.filters)?;
    let limit = within(ctx.api, "MaxResults", req.max_results, 1..=50)?.unwrap_or(50) as u32;
    let token = req.next_token.as_deref();
    let (names, next) = names_under(s, ctx, &sel.prefix, token, limit, |n| {
        check_ok(n)
            && sel.exact.as_deref().is_none_or(|e| e == n)
            && sel
                .path
                .as_ref()
                .is_none_or(|(p, recursive)| under(p, n, *recursive))
    })
    .await?;
    let mut out = Vec::new();
    for name in names {
        let meta = meta_of(s, &name).await;
        if sel
            .kinds
            .as_ref()
            .is_some_and(|k| !k.iter().any(|k| k == meta.kind()))
        {
            continue;
        }
        let mut p = Map::new();
        p.insert("Name".into(), json!(name));
        p.insert("ARN".into(), json!(arn(ctx, &name)));
        p.insert("Type".into(), json!(meta.kind()));
        p.insert("Version".into(), json!(meta.version()));
        p.insert("Tier".into(), json!(meta.tier()));
        p.insert("DataType".into(), json!("text"));
        p.insert("Policies".into(), json!([]));
        if let Some(at) = meta.modified {
            p.insert("LastModifiedDate".into(), json!(at));
        }
        if let Some(d) = &meta.description {
            p.insert("Description".into(), json!(d));
        }
        out.push(Value::Object(p));
    }
    let mut answer = json!({"Parameters": out});
    if let Some(next) = next {
        answer["NextToken"] = json!(next);
    }
    Ok(answer)
}

/// The parameter a tagging request names (`ResourceType` must be `Parameter`).
fn tagged(ctx: &Ctx, req: &request::ssm::Tagging) -> Result<String, AwsError> {
    let kind = required(ctx.api, "ResourceType", req.resource_type.as_deref())?;
    if kind != "Parameter" {
        return Err(AwsError::new(
            "InvalidResourceType",
            "ResourceType must be Parameter: this server keeps parameters only",
        ));
    }
    let id = required(ctx.api, "ResourceId", req.resource_id.as_deref())?;
    check_name(ctx, "ResourceId", id)?;
    Ok(id.to_owned())
}

async fn require_exists(s: &AppState, ctx: &Ctx, name: &str) -> Result<(), AwsError> {
    match s.broker.exists(&ctx.caller, name).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(AwsError::new(
            "InvalidResourceId",
            format!("the parameter {name} does not exist"),
        )),
        Err(e) => Err(AwsError::broker(ctx.api, e)),
    }
}

pub(super) async fn add_tags(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Tagging = parse(ctx.api, body)?;
    let name = tagged(ctx, &req)?;
    let added = request::tags(ctx.api, req.tags)?
        .ok_or_else(|| AwsError::invalid(ctx.api, "Tags is required"))?;
    require_exists(s, ctx, &name).await?;
    let m = s.aws_metadata().ok_or_else(|| {
        AwsError::internal(ctx.api, "this server keeps no AWS API metadata store")
    })?;
    m.update(PARAMETERS, &name, |m: &mut ParameterMeta| {
        for (k, v) in &added {
            m.tags.retain(|(key, _)| key != k);
            m.tags.push((k.clone(), v.clone()));
        }
    })
    .await
    .map_err(|e| AwsError::internal(ctx.api, e.to_string()))?;
    Ok(json!({}))
}

pub(super) async fn list_tags(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::ssm::Tagging = parse(ctx.api, body)?;
    let name = tagged(ctx, &req)?;
    require_exists(s, ctx, &name).await?;
    let meta = meta_of(s, &name).await;
    Ok(json!({"TagList": super::tags_json(&meta.tags)}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_broker::broker::Caller;
    use secret_broker::policy::Role;

    fn ctx() -> Ctx {
        Ctx {
            caller: Caller {
                name: "t".into(),
                role: Role::Admin,
            },
            region: "us-east-1".into(),
            api: super::super::Api::Ssm,
        }
    }

    #[test]
    fn names_are_checked_as_ssm_checks_them() {
        let c = ctx();
        for good in ["/openmetadata/db/mysql/password", "plain", "a.b-c_d"] {
            check_name(&c, "Name", good).unwrap();
        }
        for bad in [
            "",
            "a/b",
            "/aws/x",
            "ssm-thing",
            "/has space",
            "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p",
        ] {
            let e = check_name(&c, "Name", bad).unwrap_err();
            assert_eq!(e.code, "ValidationException", "{bad}");
            assert!(e.message.starts_with("Name: "), "{}", e.message);
        }
        assert_eq!(
            arn(&c, "/a/b"),
            "arn:aws:ssm:us-east-1:000000000000:parameter/a/b"
        );
        assert_eq!(
            arn(&c, "plain"),
            "arn:aws:ssm:us-east-1:000000000000:parameter/plain"
        );
    }

    #[test]
    fn a_path_holds_its_children_and_recursively_their_children() {
        assert!(under("/a", "/a/b", false));
        assert!(!under("/a", "/a/b/c", false));
        assert!(under("/a/", "/a/b/c", true));
        assert!(!under("/a", "/ab", true));
        assert!(!under("/a", "/a/", true));
    }

    #[test]
    fn a_version_selector_is_a_number() {
        let c = ctx();
        assert_eq!(
            selected(&c, "Name", "/a:3").unwrap(),
            ("/a".into(), Some(3))
        );
        assert_eq!(selected(&c, "Name", "/a").unwrap(), ("/a".into(), None));
        assert!(selected(&c, "Name", "/a:label").is_err());
    }
}
