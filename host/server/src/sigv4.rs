//! AWS Signature Version 4 on requests to the broker's AWS-compatible endpoints
//! (the Secrets Manager and SSM APIs): access keys mapped to roles as bearer
//! tokens are, and signatures verified by recomputing them with `aws-sigv4`, the
//! signer of the AWS SDK for Rust, over exactly the headers the client signed.
//!
//! Refusals carry AWS's error codes, so SDKs behave as they do against AWS: no
//! `Authorization` (`MissingAuthenticationTokenException`), a malformed one
//! (`IncompleteSignatureException`), an unknown key
//! (`UnrecognizedClientException`), a date outside the 15 minutes AWS allows, a
//! scope for another service or day, or a signature that does not match
//! (`InvalidSignatureException`).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::HeaderMap;
use base64::Engine as _;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use secret_broker::broker::Caller;
use secret_broker::policy::Role;
use secret_broker_runtime::SecretValue;

/// How far a request's `X-Amz-Date` may be from the broker's clock, as on AWS.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// One access key.
struct AwsKey {
    name: String,
    role: Role,
    access_key_id: String,
    secret: SecretValue,
    expires: Option<SystemTime>,
}

/// One line of the access keys file of earlier releases, its secret still
/// sealed.
#[derive(Debug, Clone)]
pub struct SealedKey {
    /// The key's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its access key id.
    pub access_key_id: String,
    /// Its secret, sealed by the keyring bound to [`seal_context`].
    pub sealed: Vec<u8>,
}

/// The access keys the broker accepts. `Debug` names the keys, never a secret.
#[derive(Default)]
pub struct AwsKeys {
    keys: Vec<AwsKey>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.name, &k.access_key_id)))
            .finish()
    }
}

/// Why a request's signature was refused. Messages name what to fix and never
/// carry a secret or the signature expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` or `X-Amz-Date` that cannot be read.
    Incomplete(String),
    /// An access key the broker does not know.
    UnknownKey,
    /// An access key past its expiry.
    KeyExpired,
    /// A date too far from the broker's clock.
    Expired(String),
    /// A credential scope for another service or day.
    WrongScope(String),
    /// The signature does not match the request.
    Mismatch,
}

impl SigError {
    /// AWS's error code for it (the `__type` of a JSON error).
    pub fn code(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::Incomplete(_) => "IncompleteSignatureException",
            SigError::UnknownKey => "UnrecognizedClientException",
            SigError::KeyExpired => "ExpiredTokenException",
            SigError::Expired(_) | SigError::WrongScope(_) | SigError::Mismatch => {
                "InvalidSignatureException"
            }
        }
    }

    /// The HTTP status AWS answers it with.
    pub fn status(&self) -> u16 {
        match self {
            SigError::Missing => 403,
            _ => 400,
        }
    }
}

impl std::fmt::Display for SigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigError::Missing => write!(
                f,
                "the request is not signed: sign it with AWS Signature Version 4 and an access \
                 key from `secret-broker token add --aws`"
            ),
            SigError::Incomplete(why) => write!(f, "{why}"),
            SigError::UnknownKey => write!(
                f,
                "the security token included in the request is invalid: the access key is not \
                 one the broker issued"
            ),
            SigError::KeyExpired => write!(
                f,
                "the access key has expired: create another with `secret-broker token add \
                 NAME --aws --role ROLE`"
            ),
            SigError::Expired(why) | SigError::WrongScope(why) => write!(f, "{why}"),
            SigError::Mismatch => write!(
                f,
                "the request signature we calculated does not match the signature you \
                 provided: check the secret access key and the signing method"
            ),
        }
    }
}

impl std::error::Error for SigError {}

/// The parts of a request the signature covers.
pub struct Request<'a> {
    /// The method.
    pub method: &'a str,
    /// The path and query as sent.
    pub path_and_query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// A request whose signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The caller the key stands for.
    pub caller: Caller,
    /// The region of the credential scope.
    pub region: String,
}

/// What the `Authorization` header says.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn incomplete(why: &str) -> SigError {
    SigError::Incomplete(format!(
        "{why}: the Authorization header must be `{ALGORITHM} Credential=KEY/DATE/REGION/\
         SERVICE/aws4_request, SignedHeaders=..., Signature=...`"
    ))
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| incomplete(&format!("the algorithm is not {ALGORITHM}")))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("no Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete(
            "the Credential is not KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete("the Signature is not 64 hex digits"));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// `20261201T080500Z` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(num(0..4)?).ok()?, month, num(6..8)? as u8)
            .ok()?;
    let clock =
        time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    let seconds = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// What a key's sealed secret is bound to: its own id, so a sealed secret moved
/// to another line does not open.
pub fn seal_context(access_key_id: &str) -> Vec<u8> {
    format!("aws-key/{access_key_id}").into_bytes()
}

impl AwsKeys {
    /// Parses the access keys file of earlier releases: `NAME ROLE KEY-ID
    /// sealed:<base64>` per line, each secret sealed by the deployment's keyring.
    /// Errors name the line and never hold a secret.
    pub fn parse_sealed(text: &str) -> anyhow::Result<Vec<SealedKey>> {
        let mut keys: Vec<SealedKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| {
                anyhow::anyhow!(
                    "access keys file line {}: {why}; each line is `NAME ROLE KEY-ID \
                     sealed:<base64>`",
                    n + 1
                )
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, role, id, sealed] = parts[..] else {
                return Err(bad("expected four fields"));
            };
            let role =
                Role::from_name(role).ok_or_else(|| bad("the role must be admin, user or bot"))?;
            let sealed = sealed
                .strip_prefix("sealed:")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .ok_or_else(|| bad("the secret must be `sealed:` and base64"))?;
            if keys.iter().any(|k| k.name == name || k.access_key_id == id) {
                return Err(bad(
                    "this name or key id is already used by an earlier line",
                ));
            }
            keys.push(SealedKey {
                name: name.to_owned(),
                role,
                access_key_id: id.to_owned(),
                sealed,
            });
        }
        Ok(keys)
    }

    /// Reads the access keys file of earlier releases; a missing file is no
    /// keys.
    pub fn load_sealed(path: &std::path::Path) -> anyhow::Result<Vec<SealedKey>> {
        match std::fs::read_to_string(path) {
            Ok(text) => AwsKeys::parse_sealed(&text)
                .map_err(|e| anyhow::anyhow!("in access keys file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(anyhow::anyhow!(
                "reading access keys file {}: {e}",
                path.display()
            )),
        }
    }

    /// Adds a key in memory.
    pub fn insert(&mut self, name: &str, role: Role, access_key_id: &str, secret: SecretValue) {
        self.insert_expiring(name, role, access_key_id, secret, None);
    }

    /// Adds a key in memory that stops being accepted at `expires`.
    pub fn insert_expiring(
        &mut self,
        name: &str,
        role: Role,
        access_key_id: &str,
        secret: SecretValue,
        expires: Option<SystemTime>,
    ) {
        self.keys.push(AwsKey {
            name: name.to_owned(),
            role,
            access_key_id: access_key_id.to_owned(),
            secret,
            expires,
        });
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller a request signed for `service` stands for, at `now`, and the
    /// region it was signed for.
    pub fn verify(
        &self,
        service: &str,
        request: &Request<'_>,
        now: SystemTime,
    ) -> Result<Verified, SigError> {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let auth = parse_authorization(header("authorization").ok_or(SigError::Missing)?)?;
        if auth.service != service {
            return Err(SigError::WrongScope(format!(
                "the credential scope names the service {:?}; this endpoint is {service:?}",
                auth.service
            )));
        }
        let amz_date = header("x-amz-date").ok_or_else(|| {
            SigError::Incomplete("the request has no X-Amz-Date header, which it must sign".into())
        })?;
        let at = parse_amz_date(amz_date).ok_or_else(|| {
            SigError::Incomplete(format!(
                "X-Amz-Date {amz_date:?} is not of the form 20261201T080500Z"
            ))
        })?;
        let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
        if skew > MAX_SKEW {
            return Err(SigError::Expired(format!(
                "signature expired: X-Amz-Date {amz_date} is more than 15 minutes from the \
                 broker's clock; check the client's clock"
            )));
        }
        if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(SigError::WrongScope(format!(
                "the credential scope's date {:?} is not the day of X-Amz-Date {amz_date}",
                auth.date
            )));
        }
        if header("x-amz-security-token").is_some() {
            return Err(SigError::UnknownKey);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.access_key_id == auth.access_key_id)
            .ok_or(SigError::UnknownKey)?;

        for required in ["host", "x-amz-date"] {
            if !auth.signed_headers.contains(&required) {
                return Err(incomplete(&format!(
                    "SignedHeaders does not include {required}"
                )));
            }
        }
        // Exactly the headers the client signed, every value of each.
        let mut signed: Vec<(&str, &str)> = Vec::new();
        for name in &auth.signed_headers {
            let values = request.headers.get_all(*name);
            let mut any = false;
            for value in values {
                let value = value.to_str().map_err(|_| SigError::Mismatch)?;
                signed.push((name, value));
                any = true;
            }
            if !any {
                return Err(incomplete(&format!(
                    "the signed header {name} is not in the request"
                )));
            }
        }
        let host = header("host").ok_or(SigError::Mismatch)?;
        let expected = self.signature(key, &auth, host, &signed, request, at)?;
        if bool::from(
            expected
                .as_bytes()
                .ct_eq(auth.signature.to_ascii_lowercase().as_bytes()),
        ) {
            // Only a request signed with the key learns that it expired.
            if key.expires.is_some_and(|at| now >= at) {
                return Err(SigError::KeyExpired);
            }
            Ok(Verified {
                caller: Caller {
                    name: key.name.clone(),
                    role: key.role,
                },
                region: auth.region.to_owned(),
            })
        } else {
            Err(SigError::Mismatch)
        }
    }

    /// The signature `key` makes of the request, by the AWS SDK's signer.
    fn signature(
        &self,
        key: &AwsKey,
        auth: &Authorization<'_>,
        host: &str,
        signed: &[(&str, &str)],
        request: &Request<'_>,
        at: SystemTime,
    ) -> Result<Zeroizing<String>, SigError> {
        let secret = key.secret.expose_str().ok_or(SigError::Mismatch)?;
        let identity: Identity =
            Credentials::new(&key.access_key_id, secret, None, None, "secret-broker").into();
        let mut settings = SigningSettings::default();
        // The client chose what to sign; every header it named is signed again.
        settings.excluded_headers = None;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(auth.region)
            .name(auth.service)
            .time(at)
            .settings(settings)
            .build()
            .map_err(|_| SigError::Mismatch)?;
        let uri = format!("http://{host}{}", request.path_and_query);
        let signable = SignableRequest::new(
            request.method,
            uri,
            signed.iter().copied(),
            SignableBody::Bytes(request.body),
        )
        .map_err(|_| SigError::Mismatch)?;
        let output = sign(signable, &params.into()).map_err(|_| SigError::Mismatch)?;
        Ok(Zeroizing::new(output.signature().to_owned()))
    }
}

/// A new access key: an id (`SBAK` and 16 hex digits, 20 characters as AWS's
/// own are) and a secret (40 base64 characters).
pub fn generate() -> (String, Zeroizing<String>) {
    let mut id = [0u8; 8];
    let mut secret = Zeroizing::new([0u8; 30]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, secret.as_mut());
    let secret = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(secret.as_ref()));
    (format!("SBAK{}", hex::encode_upper(id)), secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const URL: &str = "http://127.0.0.1:4566/";
    const HOST: &str = "127.0.0.1:4566";
    const BODY: &str = r#"{"SecretId":"/openmetadata/database/mysql_prod/password"}"#;

    /// Signs a Secrets Manager request with botocore (the signer of boto3 and the
    /// AWS CLI), and returns the headers it would send.
    fn botocore(key: &str, secret: &str, service: &str, target: &str, body: &str) -> HeaderMap {
        let script = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
a = json.loads(sys.stdin.read())
req = AWSRequest(method="POST", url=a["url"], data=a["body"].encode(), headers={
    "X-Amz-Target": a["target"], "Content-Type": "application/x-amz-json-1.1"})
SigV4Auth(Credentials(a["key"], a["secret"]), a["service"], "us-east-1").add_auth(req)
print(json.dumps(dict(req.headers.items())))
"#;
        let input = serde_json::json!({
            "url": URL, "body": body, "target": target, "key": key, "secret": secret,
            "service": service,
        });
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with botocore (tests/setup installs boto3)");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes())
            .unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "botocore failed");
        let sent: std::collections::BTreeMap<String, String> =
            serde_json::from_slice(&out.stdout).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in sent {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        // What the HTTP client adds on the wire.
        headers.insert("host", HeaderValue::from_static(HOST));
        headers.insert("user-agent", HeaderValue::from_static("Boto3/1.35 test"));
        headers
    }

    fn keys() -> (AwsKeys, String, Zeroizing<String>) {
        let (id, secret) = generate();
        let mut keys = AwsKeys::default();
        keys.insert(
            "om-server",
            Role::Bot,
            &id,
            SecretValue::from_string(secret.to_string()),
        );
        let (other, other_secret) = generate();
        keys.insert(
            "viewer",
            Role::User,
            &other,
            SecretValue::from_string(other_secret.to_string()),
        );
        (keys, id, secret)
    }

    fn request<'a>(headers: &'a HeaderMap, body: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            path_and_query: "/",
            headers,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn a_request_botocore_signed_is_its_keys_caller() {
        let (keys, id, secret) = keys();
        let headers = botocore(
            &id,
            &secret,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            BODY,
        );
        let verified = keys
            .verify(
                "secretsmanager",
                &request(&headers, BODY),
                SystemTime::now(),
            )
            .unwrap();
        assert_eq!(verified.region, "us-east-1");
        let caller = verified.caller;
        assert_eq!(
            (caller.name.as_str(), caller.role),
            ("om-server", Role::Bot)
        );
        // A few minutes of clock difference are allowed, as on AWS.
        let later = SystemTime::now() + Duration::from_secs(14 * 60);
        assert!(
            keys.verify("secretsmanager", &request(&headers, BODY), later)
                .is_ok()
        );
    }

    #[test]
    fn anything_changed_after_signing_is_refused() {
        let (keys, id, secret) = keys();
        let headers = botocore(
            &id,
            &secret,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            BODY,
        );
        let now = SystemTime::now();
        // Another body: another secret asked for.
        let other = BODY.replace("password", "username");
        let err = keys
            .verify("secretsmanager", &request(&headers, &other), now)
            .unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("InvalidSignatureException", 400)
        );
        // Another operation under the same signature.
        let mut swapped = headers.clone();
        swapped.insert(
            "x-amz-target",
            HeaderValue::from_static("secretsmanager.DeleteSecret"),
        );
        let err = keys
            .verify("secretsmanager", &request(&swapped, BODY), now)
            .unwrap_err();
        assert_eq!(err, SigError::Mismatch);
        // Another host.
        let mut moved = headers.clone();
        moved.insert("host", HeaderValue::from_static("127.0.0.1:4567"));
        let err = keys
            .verify("secretsmanager", &request(&moved, BODY), now)
            .unwrap_err();
        assert_eq!(err, SigError::Mismatch);
    }

    #[test]
    fn a_wrong_secret_an_unknown_key_or_another_service_is_refused() {
        let (keys, id, _) = keys();
        let now = SystemTime::now();
        let (_, wrong) = generate();
        let headers = botocore(
            &id,
            &wrong,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            BODY,
        );
        let err = keys
            .verify("secretsmanager", &request(&headers, BODY), now)
            .unwrap_err();
        assert_eq!(err, SigError::Mismatch);
        assert!(!err.to_string().contains(wrong.as_str()));

        let (stranger, stranger_secret) = generate();
        let headers = botocore(&stranger, &stranger_secret, "secretsmanager", "x", BODY);
        let err = keys
            .verify("secretsmanager", &request(&headers, BODY), now)
            .unwrap_err();
        assert_eq!(err.code(), "UnrecognizedClientException");

        let (keys, id, secret) = super::tests::keys();
        let headers = botocore(&id, &secret, "ssm", "AmazonSSM.GetParameter", BODY);
        let err = keys
            .verify("secretsmanager", &request(&headers, BODY), now)
            .unwrap_err();
        assert!(matches!(err, SigError::WrongScope(_)), "{err}");
        assert!(keys.verify("ssm", &request(&headers, BODY), now).is_ok());
    }

    #[test]
    fn an_expired_key_is_refused_only_to_its_signer() {
        let (id, secret) = generate();
        let now = SystemTime::now();
        let mut keys = AwsKeys::default();
        keys.insert_expiring(
            "ci",
            Role::Bot,
            &id,
            SecretValue::from_string(secret.to_string()),
            Some(now + Duration::from_secs(60)),
        );
        let headers = botocore(&id, &secret, "secretsmanager", "x", BODY);
        assert!(
            keys.verify("secretsmanager", &request(&headers, BODY), now)
                .is_ok()
        );
        let later = now + Duration::from_secs(61);
        let err = keys
            .verify("secretsmanager", &request(&headers, BODY), later)
            .unwrap_err();
        assert_eq!(err, SigError::KeyExpired);
        assert_eq!(err.code(), "ExpiredTokenException");
        // A wrong secret for that key learns nothing of its expiry.
        let (_, wrong) = generate();
        let headers = botocore(&id, &wrong, "secretsmanager", "x", BODY);
        let err = keys
            .verify("secretsmanager", &request(&headers, BODY), later)
            .unwrap_err();
        assert_eq!(err, SigError::Mismatch);
    }

    #[test]
    fn unsigned_stale_or_malformed_requests_get_awss_codes() {
        let (keys, id, secret) = keys();
        let headers = botocore(
            &id,
            &secret,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            BODY,
        );
        let stale = SystemTime::now() + Duration::from_secs(16 * 60);
        let err = keys
            .verify("secretsmanager", &request(&headers, BODY), stale)
            .unwrap_err();
        assert!(matches!(err, SigError::Expired(_)), "{err}");
        assert_eq!(err.code(), "InvalidSignatureException");

        let mut unsigned = headers.clone();
        unsigned.remove("authorization");
        let err = keys.verify(
            "secretsmanager",
            &request(&unsigned, BODY),
            SystemTime::now(),
        );
        let err = err.unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("MissingAuthenticationTokenException", 403)
        );

        for bad in [
            "Bearer sbt_x",
            "AWS4-HMAC-SHA256 Credential=K/20261201/us-east-1/secretsmanager/aws4_request",
            "AWS4-HMAC-SHA256 Credential=K/x, SignedHeaders=host;x-amz-date, Signature=00",
        ] {
            let mut h = headers.clone();
            h.insert("authorization", HeaderValue::from_str(bad).unwrap());
            let err = keys
                .verify("secretsmanager", &request(&h, BODY), SystemTime::now())
                .unwrap_err();
            assert_eq!(err.code(), "IncompleteSignatureException", "{bad}: {err}");
        }
    }

    #[test]
    fn debug_names_keys_never_secrets() {
        let (keys, id, secret) = keys();
        let shown = format!("{keys:?}");
        assert!(shown.contains(&id) && shown.contains("om-server"));
        assert!(!shown.contains(secret.as_str()));
    }
}
