//! The Secrets Manager operations: CreateSecret, UpdateSecret, PutSecretValue,
//! GetSecretValue, BatchGetSecretValue, DescribeSecret, DeleteSecret,
//! ListSecrets, TagResource and UntagResource, as the AWS SDKs call them.
//!
//! A secret's name is its broker id (OpenMetadata's `/cluster/...` ids are valid
//! names). Only the current version is kept, staged `AWSCURRENT`. A deletion is
//! immediate whatever recovery window is asked for, and the answer's
//! `DeletionDate` says so (it is the time of the deletion, not a date to come).

use base64::Engine as _;
use secret_broker_runtime::{PutOptions, SecretValue};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use super::meta::{SECRETS, SecretMeta};
use super::request::{self, Filter, Text, parse, required, within};
use super::{AwsError, Ctx, now, secret_value};
use crate::AppState;

/// The largest value Secrets Manager keeps.
const VALUE_LIMIT: usize = 65_536;
const CURRENT: &str = "AWSCURRENT";

/// The six characters AWS appends to a name in its ARN; here derived from the
/// name, so an ARN stays the same across restarts and servers.
fn suffix(name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    sha2::Sha256::digest(name.as_bytes())
        .iter()
        .take(6)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn arn(ctx: &Ctx, name: &str) -> String {
    format!(
        "arn:aws:secretsmanager:{}:{}:secret:{name}-{}",
        ctx.region,
        super::ACCOUNT,
        suffix(name)
    )
}

/// A secret's name, checked: `A-Za-z0-9/_+=.@-`, 1 to 512 characters.
fn check_name(ctx: &Ctx, field: &str, name: &str) -> Result<(), AwsError> {
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    {
        return Err(AwsError::invalid(
            ctx.api,
            format!(
                "{field}: a secret name is 1 to 512 of the characters A-Z a-z 0-9 / _ + = . @ -"
            ),
        ));
    }
    Ok(())
}

/// The name a `SecretId` (a name, or a full or partial ARN) stands for.
fn secret_name(ctx: &Ctx, id: &str) -> Result<String, AwsError> {
    let name = match id.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(6, ':').collect();
            let ["aws", "secretsmanager", _, _, tail] = parts[..5] else {
                return Err(AwsError::invalid(
                    ctx.api,
                    "SecretId: an ARN must be arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME",
                ));
            };
            let name = tail
                .strip_prefix("secret:")
                .or_else(|| parts.get(5).filter(|_| tail == "secret").copied())
                .ok_or_else(|| {
                    AwsError::invalid(ctx.api, "SecretId: the ARN does not name a secret")
                })?;
            // A full ARN ends in `-` and the six characters of the name.
            match name.len().checked_sub(7) {
                Some(cut)
                    if name.as_bytes()[cut] == b'-'
                        && name.is_char_boundary(cut)
                        && suffix(&name[..cut]) == name[cut + 1..] =>
                {
                    name[..cut].to_owned()
                }
                _ => name.to_owned(),
            }
        }
        None => id.to_owned(),
    };
    check_name(ctx, "SecretId", &name)?;
    Ok(name)
}

fn secret_id(ctx: &Ctx, id: Option<&str>) -> Result<String, AwsError> {
    secret_name(ctx, required(ctx.api, "SecretId", id)?)
}

/// The version id a write makes: the client's `ClientRequestToken` (32 to 64
/// characters, as AWS requires) or a new UUID.
fn version_for(ctx: &Ctx, token: Option<&str>) -> Result<String, AwsError> {
    match token {
        Some(t) if (32..=64).contains(&t.len()) => Ok(t.to_owned()),
        Some(_) => Err(AwsError::invalid(
            ctx.api,
            "ClientRequestToken must be 32 to 64 characters",
        )),
        None => Ok(super::new_uuid()),
    }
}

fn not_found(name: &str) -> AwsError {
    AwsError::new(
        "ResourceNotFoundException",
        format!("Secrets Manager can't find the specified secret ({name})."),
    )
}

fn metadata(s: &AppState, ctx: &Ctx) -> Result<super::AwsMetadata, AwsError> {
    s.aws_metadata()
        .ok_or_else(|| AwsError::internal(ctx.api, "this server keeps no AWS API metadata store"))
}

/// The metadata of `name`, answered as unknown when it cannot be read.
async fn meta_of(s: &AppState, name: &str) -> SecretMeta {
    match s.aws_metadata() {
        Some(m) => m.get_or_unknown(SECRETS, name).await.unwrap_or_default(),
        None => SecretMeta::default(),
    }
}

/// Records what a write changed; a failure is logged, never the write's
/// failure (the value is stored by then).
async fn record(s: &AppState, name: &str, change: impl FnMut(&mut SecretMeta)) -> SecretMeta {
    let Some(m) = s.aws_metadata() else {
        return SecretMeta::default();
    };
    match m.update(SECRETS, name, change).await {
        Ok(row) => row,
        Err(e) => {
            tracing::warn!(error = %e, "the secret's AWS API metadata could not be written");
            SecretMeta::default()
        }
    }
}

fn value_of(
    ctx: &Ctx,
    string: Option<Text>,
    binary: Option<Text>,
    required: bool,
) -> Result<Option<SecretValue>, AwsError> {
    let value = secret_value(
        ctx.api,
        ("SecretString", string),
        Some(("SecretBinary", binary)),
        VALUE_LIMIT,
    )?;
    if required && value.is_none() {
        return Err(AwsError::invalid(
            ctx.api,
            "send SecretString or SecretBinary: this server keeps no secret without a value",
        ));
    }
    Ok(value)
}

fn refuse_replicas(ctx: &Ctx, regions: Option<&Value>) -> Result<(), AwsError> {
    if regions.is_some_and(|v| !v.is_null()) {
        return Err(AwsError::invalid(
            ctx.api,
            "AddReplicaRegions: this server does not replicate secrets; send the request \
             without it",
        ));
    }
    Ok(())
}

pub(super) async fn create(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Create = parse(ctx.api, body)?;
    let name = required(ctx.api, "Name", req.name.as_deref())?;
    check_name(ctx, "Name", name)?;
    refuse_replicas(ctx, req.add_replica_regions.as_ref())?;
    let value = value_of(ctx, req.secret_string, req.secret_binary, true)?
        .unwrap_or_else(|| SecretValue::new(Vec::new()));
    let description = req.description;
    let tags = request::tags(ctx.api, req.tags)?.unwrap_or_default();
    let token = req.client_request_token;
    let version = version_for(ctx, token.as_deref())?;
    let options = PutOptions {
        description: description.clone(),
        tags: tags.clone(),
    };
    match s.broker.create(&ctx.caller, name, &value, &options).await {
        Ok(_) => {}
        Err(e @ secret_broker::broker::BrokerError::Exists { .. }) => {
            // A retried create (the same ClientRequestToken) that already
            // happened is answered as the first one was.
            let known = meta_of(s, name).await;
            if token.is_some() && known.version.as_deref() == Some(version.as_str()) {
                return Ok(json!({"ARN": arn(ctx, name), "Name": name, "VersionId": version}));
            }
            return Err(AwsError::new(
                "ResourceExistsException",
                format!("{e}: the secret {name} already exists"),
            ));
        }
        Err(e) => return Err(AwsError::broker(ctx.api, e)),
    }
    let at = now();
    record(s, name, |m| {
        *m = SecretMeta {
            description: description.clone(),
            tags: tags.clone(),
            created: Some(at),
            changed: Some(at),
            version: Some(version.clone()),
        };
    })
    .await;
    Ok(json!({"ARN": arn(ctx, name), "Name": name, "VersionId": version}))
}

/// Stores a new value of an existing secret; returns its version id.
async fn write_existing(
    s: &AppState,
    ctx: &Ctx,
    name: &str,
    value: &SecretValue,
    token: Option<&str>,
    description: Option<String>,
) -> Result<String, AwsError> {
    let version = version_for(ctx, token)?;
    let options = PutOptions {
        description: description.clone(),
        tags: Vec::new(),
    };
    let written = s
        .broker
        .put(&ctx.caller, name, value, &options)
        .await
        .map_err(|e| AwsError::broker(ctx.api, e))?;
    let at = now();
    let row = record(s, name, |m| {
        if description.is_some() {
            m.description.clone_from(&description);
        }
        if written != secret_broker::broker::Written::Unchanged || m.version.is_none() {
            m.version = Some(version.clone());
            m.changed = Some(at);
        }
        m.created.get_or_insert(at);
    })
    .await;
    Ok(row.version.unwrap_or(version))
}

async fn require_exists(s: &AppState, ctx: &Ctx, name: &str) -> Result<(), AwsError> {
    match s.broker.exists(&ctx.caller, name).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found(name)),
        Err(e) => Err(AwsError::broker(ctx.api, e)),
    }
}

pub(super) async fn update(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Write = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    let value = value_of(ctx, req.secret_string, req.secret_binary, false)?;
    let description = req.description;
    let token = req.client_request_token;
    require_exists(s, ctx, &name).await?;
    let mut answer = json!({"ARN": arn(ctx, &name), "Name": name});
    match value {
        Some(value) => {
            let version =
                write_existing(s, ctx, &name, &value, token.as_deref(), description).await?;
            answer["VersionId"] = json!(version);
        }
        None => {
            if description.is_some() {
                metadata(s, ctx)?
                    .update(SECRETS, &name, |m: &mut SecretMeta| {
                        m.description.clone_from(&description);
                        m.changed = Some(now());
                    })
                    .await
                    .map_err(|e| AwsError::internal(ctx.api, e.to_string()))?;
            }
        }
    }
    Ok(answer)
}

pub(super) async fn put_value(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Write = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    let value = value_of(ctx, req.secret_string, req.secret_binary, true)?
        .unwrap_or_else(|| SecretValue::new(Vec::new()));
    if let Some(stages) = &req.version_stages
        && stages.iter().any(|st| st != CURRENT)
    {
        return Err(AwsError::invalid(
            ctx.api,
            "VersionStages: this server keeps the current version only (AWSCURRENT)",
        ));
    }
    require_exists(s, ctx, &name).await?;
    let token = req.client_request_token.as_deref();
    let version = write_existing(s, ctx, &name, &value, token, None).await?;
    Ok(json!({
        "ARN": arn(ctx, &name),
        "Name": name,
        "VersionId": version,
        "VersionStages": [CURRENT],
    }))
}

/// A value as GetSecretValue answers it, or why not.
async fn read(s: &AppState, ctx: &Ctx, name: &str) -> Result<Map<String, Value>, AwsError> {
    // The metadata is read while the value is (it is never answered without it).
    let (value, meta) = tokio::join!(s.broker.get(&ctx.caller, name), meta_of(s, name));
    let value = value
        .map_err(|e| AwsError::broker(ctx.api, e))?
        .ok_or_else(|| not_found(name))?;
    // A value written through `/v1` or the CLI has no AWS metadata yet: its
    // first read here gives it a version and a creation date, kept from then on
    // (AWS always answers both).
    let meta = match meta.version {
        Some(_) => meta,
        None => {
            let (fresh, at) = (super::new_uuid(), now());
            let row = record(s, name, |m| {
                m.version.get_or_insert_with(|| fresh.clone());
                m.created.get_or_insert(at);
            })
            .await;
            SecretMeta {
                version: row.version.clone().or(Some(fresh)),
                created: row.created.or(Some(at)),
                ..row
            }
        }
    };
    let mut out = Map::new();
    out.insert("ARN".into(), json!(arn(ctx, name)));
    out.insert("Name".into(), json!(name));
    match value.expose_str() {
        Some(text) => out.insert("SecretString".into(), json!(text)),
        None => out.insert(
            "SecretBinary".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(value.expose())),
        ),
    };
    if let Some(v) = &meta.version {
        out.insert("VersionId".into(), json!(v));
    }
    out.insert("VersionStages".into(), json!([CURRENT]));
    if let Some(at) = meta.changed.or(meta.created) {
        out.insert("CreatedDate".into(), json!(at));
    }
    Ok(out)
}

pub(super) async fn get_value(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Get = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    if let Some(stage) = &req.version_stage
        && stage != CURRENT
    {
        return Err(AwsError::new(
            "ResourceNotFoundException",
            format!(
                "Secrets Manager can't find the specified secret value for staging label: \
                     {stage} (this server keeps the current version only)"
            ),
        ));
    }
    let out = read(s, ctx, &name).await?;
    if let Some(asked) = &req.version_id
        && out.get("VersionId").and_then(Value::as_str) != Some(asked.as_str())
    {
        super::wipe_json(&mut Value::Object(out));
        return Err(AwsError::new(
            "ResourceNotFoundException",
            format!(
                "Secrets Manager can't find the specified secret value for VersionId: \
                     {asked} (this server keeps the current version only)"
            ),
        ));
    }
    Ok(Value::Object(out))
}

/// The names `Filters` select: `name` prefixes (case-sensitive).
fn name_filters(ctx: &Ctx, filters: Option<Vec<Filter>>) -> Result<Vec<String>, AwsError> {
    let Some(filters) = filters else {
        return Ok(vec![String::new()]);
    };
    let bad = |why: &str| AwsError::invalid(ctx.api, format!("Filters: {why}"));
    let mut prefixes = Vec::new();
    for filter in filters {
        let key = filter.key.as_deref().unwrap_or_default();
        if key != "name" {
            return Err(bad(&format!(
                "the key {key:?} is not supported; this server filters by `name` (a prefix of \
                 the name, case-sensitive)"
            )));
        }
        for value in filter.values.unwrap_or_default() {
            if value.starts_with('!') {
                return Err(bad("negated values (`!`) are not supported"));
            }
            prefixes.push(value);
        }
    }
    if prefixes.is_empty() {
        return Err(bad("give the name filter at least one value"));
    }
    prefixes.sort();
    prefixes.dedup();
    Ok(prefixes)
}

/// One page of names under `prefixes`, and the token of the next.
async fn page(
    s: &AppState,
    ctx: &Ctx,
    prefixes: &[String],
    token: Option<&str>,
    limit: u32,
) -> Result<(Vec<String>, Option<String>), AwsError> {
    let (mut index, mut cursor) = match token {
        Some(t) => super::decode_token(ctx.api, t)?,
        None => (0, None),
    };
    let mut names: Vec<String> = Vec::new();
    while index < prefixes.len() && (names.len() as u32) < limit {
        let page = s
            .broker
            .list(
                &ctx.caller,
                &prefixes[index],
                cursor.as_deref(),
                limit - names.len() as u32,
            )
            .await
            .map_err(|e| AwsError::broker(ctx.api, e))?;
        names.extend(
            page.ids
                .into_iter()
                .filter(|n| check_name(ctx, "", n).is_ok()),
        );
        cursor = page.next_cursor;
        if cursor.is_none() {
            index += 1;
        }
    }
    let next = (index < prefixes.len()).then(|| super::encode_token(index, cursor.as_deref()));
    Ok((names, next))
}

/// A secret's description; `stages` is the member its version ids go in
/// (DescribeSecret and ListSecrets name it differently).
fn described(ctx: &Ctx, name: &str, meta: &SecretMeta, stages: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("ARN".into(), json!(arn(ctx, name)));
    out.insert("Name".into(), json!(name));
    if let Some(d) = &meta.description {
        out.insert("Description".into(), json!(d));
    }
    if !meta.tags.is_empty() {
        out.insert("Tags".into(), super::tags_json(&meta.tags));
    }
    if let Some(at) = meta.created {
        out.insert("CreatedDate".into(), json!(at));
    }
    if let Some(at) = meta.changed {
        out.insert("LastChangedDate".into(), json!(at));
    }
    if let Some(v) = &meta.version {
        out.insert(stages.into(), json!({v: [CURRENT]}));
    }
    out
}

pub(super) async fn batch_get(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::List = parse(ctx.api, body)?;
    let has_filters = req.filters.is_some();
    let (names, next) = match req.secret_id_list {
        Some(_) if has_filters => {
            return Err(AwsError::invalid(
                ctx.api,
                "send either SecretIdList or Filters, not both",
            ));
        }
        Some(ids) => {
            if ids.is_empty() || ids.len() > 20 {
                return Err(AwsError::invalid(
                    ctx.api,
                    "SecretIdList: 1 to 20 secret ids",
                ));
            }
            let mut names = Vec::new();
            for id in ids {
                let name = secret_name(ctx, &id)?;
                names.push((id, name));
            }
            (names, None)
        }
        None if has_filters => {
            let limit =
                within(ctx.api, "MaxResults", req.max_results, 1..=20)?.unwrap_or(20) as u32;
            let prefixes = name_filters(ctx, req.filters)?;
            let token = req.next_token.as_deref();
            let (names, next) = page(s, ctx, &prefixes, token, limit).await?;
            (names.into_iter().map(|n| (n.clone(), n)).collect(), next)
        }
        None => {
            return Err(AwsError::invalid(ctx.api, "send SecretIdList or Filters"));
        }
    };
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    for (id, name) in names {
        match read(s, ctx, &name).await {
            Ok(v) => values.push(Value::Object(v)),
            Err(e) => {
                errors.push(json!({"SecretId": id, "ErrorCode": e.code, "Message": e.message}))
            }
        }
    }
    let mut out = json!({"SecretValues": values, "Errors": errors});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

pub(super) async fn describe(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Describe = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    require_exists(s, ctx, &name).await?;
    let meta = meta_of(s, &name).await;
    Ok(Value::Object(described(
        ctx,
        &name,
        &meta,
        "VersionIdsToStages",
    )))
}

pub(super) async fn delete(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Delete = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    let force = req.force_delete_without_recovery.unwrap_or(false);
    let window = within(
        ctx.api,
        "RecoveryWindowInDays",
        req.recovery_window_in_days,
        7..=30,
    )?;
    if force && window.is_some() {
        return Err(AwsError::invalid(
            ctx.api,
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let existed = s
        .broker
        .delete(&ctx.caller, &name)
        .await
        .map_err(|e| AwsError::broker(ctx.api, e))?;
    if !existed {
        return Err(not_found(&name));
    }
    if let Some(m) = s.aws_metadata()
        && let Err(e) = m.remove(SECRETS, &name).await
    {
        tracing::warn!(error = %e, "a deleted secret's AWS API metadata could not be removed");
    }
    // No recovery window is kept: the secret is gone now, and the date says so.
    Ok(json!({"ARN": arn(ctx, &name), "Name": name, "DeletionDate": now()}))
}

pub(super) async fn list(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::List = parse(ctx.api, body)?;
    let limit = within(ctx.api, "MaxResults", req.max_results, 1..=100)?.unwrap_or(100) as u32;
    let prefixes = name_filters(ctx, req.filters)?;
    let token = req.next_token.as_deref();
    let (names, next) = page(s, ctx, &prefixes, token, limit).await?;
    let mut list = Vec::with_capacity(names.len());
    for name in &names {
        let meta = meta_of(s, name).await;
        list.push(Value::Object(described(
            ctx,
            name,
            &meta,
            "SecretVersionsToStages",
        )));
    }
    let mut out = json!({"SecretList": list});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

pub(super) async fn tag(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Tagging = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    let added = request::tags(ctx.api, req.tags)?
        .ok_or_else(|| AwsError::invalid(ctx.api, "Tags is required"))?;
    require_exists(s, ctx, &name).await?;
    metadata(s, ctx)?
        .update(SECRETS, &name, |m: &mut SecretMeta| {
            for (k, v) in &added {
                m.tags.retain(|(key, _)| key != k);
                m.tags.push((k.clone(), v.clone()));
            }
        })
        .await
        .map_err(|e| AwsError::internal(ctx.api, e.to_string()))?;
    Ok(json!({}))
}

pub(super) async fn untag(s: &AppState, ctx: &Ctx, body: &Value) -> Result<Value, AwsError> {
    let req: request::sm::Tagging = parse(ctx.api, body)?;
    let name = secret_id(ctx, req.secret_id.as_deref())?;
    let keys: Vec<String> = req
        .tag_keys
        .ok_or_else(|| AwsError::invalid(ctx.api, "TagKeys is required"))?;
    require_exists(s, ctx, &name).await?;
    metadata(s, ctx)?
        .update(SECRETS, &name, |m: &mut SecretMeta| {
            m.tags.retain(|(k, _)| !keys.contains(k));
        })
        .await
        .map_err(|e| AwsError::internal(ctx.api, e.to_string()))?;
    Ok(json!({}))
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
            region: "eu-west-1".into(),
            api: super::super::Api::SecretsManager,
        }
    }

    #[test]
    fn an_arn_names_its_secret_and_round_trips() {
        let c = ctx();
        let name = "/openmetadata/database/mysql/password";
        let full = arn(&c, name);
        assert!(full.starts_with("arn:aws:secretsmanager:eu-west-1:000000000000:secret:/open"));
        assert_eq!(secret_name(&c, &full).unwrap(), name);
        // A partial ARN (without the six characters) names the same secret.
        let partial = full[..full.len() - 7].to_owned();
        assert_eq!(secret_name(&c, &partial).unwrap(), name);
        assert_eq!(secret_name(&c, name).unwrap(), name);
        // A name that merely ends like a suffix keeps it.
        assert_eq!(secret_name(&c, "db-abcdef").unwrap(), "db-abcdef");
        let e = secret_name(&c, "arn:aws:s3:::bucket").unwrap_err();
        assert!(e.message.contains("SecretId"), "{}", e.message);
        let e = secret_name(&c, "bad name!").unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
    }
}
