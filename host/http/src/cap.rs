//! The `http` host functions: a grant's context (settings, client, kept
//! credentials), its view, and `send`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use secret_broker_runtime::bindings::WitError as Error;
use secret_broker_runtime::bindings::v0_2_0::secret_broker::provider0_2_0::http::{
    Checksum, ChecksumAlgorithm, Encoding, Host, Lift, LiftFrom, Part, Request, Response,
    add_to_linker as link,
};
use secret_broker_runtime::caps::{PACKAGE, not_granted};
use secret_broker_runtime::wasmtime::component::{HasData, Linker, Resource};
use secret_broker_runtime::{Grant, Granted, HostCalls, HostState, SecretValue, try_grant};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::address::{CheckedResolver, Refused, refusal};
use crate::settings::{HttpSettings, Origin, SettingsError, check_name};

/// Headers a provider may not set: the host writes them from the request itself.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

/// The `http` capability as granted to one provider instance: its settings, one
/// pooled client shared by the instance's Wasm instances, and the credentials the
/// provider kept from responses (a login's token).
pub struct HttpCtx {
    settings: HttpSettings,
    /// Digest keys: of values the host holds, and of values the provider made.
    digest_keys: [Zeroizing<[u8; 32]>; 2],
    client: reqwest::Client,
    /// Values kept from responses, with the origin that sent each: a kept token
    /// goes back to that origin only, or to the origins the grant binds its name to.
    kept: Mutex<HashMap<String, (SecretValue, Origin)>>,
    /// Each granted origin as text (`scheme://host:port`): a request naming one
    /// this way is matched without parsing it.
    origin_texts: Vec<(String, Origin)>,
    /// Credentials read from files, with the file's modification time and
    /// length when read: read again when either changes.
    files: Mutex<HashMap<String, (FileStamp, SecretValue)>>,
    /// Lifted values that failed their checksum, for this grant's life.
    checksum_failures: AtomicU32,
}

/// What tells a credential file changed.
type FileStamp = (Option<std::time::SystemTime>, u64);

impl std::fmt::Debug for HttpCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCtx")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpCtx {
    /// Builds the grant's client: no proxy from the environment, rustls with the
    /// system roots plus the CA file, the checked resolver, redirects within the
    /// origin only.
    pub fn new(settings: HttpSettings) -> Result<HttpCtx, SettingsError> {
        settings.check()?;
        crate::ensure_crypto_provider();
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system certificate rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        let mut add_pem = |what: String,
                           certs: Result<Vec<CertificateDer<'static>>, String>|
         -> Result<(), SettingsError> {
            let ca_error = |reason: String| SettingsError::CaFile {
                path: what.clone(),
                reason,
            };
            let certs = certs.map_err(ca_error)?;
            if certs.is_empty() {
                return Err(ca_error("holds no PEM certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ca_error(format!("a certificate rustls refuses: {e}")))?;
            }
            Ok(())
        };
        if let Some(path) = &settings.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| e.to_string())
                .and_then(|iter| {
                    iter.collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())
                });
            add_pem(path.display().to_string(), certs)?;
        }
        if let Some(pem) = &settings.ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem)
                .map(|c| c.map(CertificateDer::into_owned))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string());
            add_pem("(inline certificate-authority-data)".into(), certs)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingsError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let max_redirects = settings.max_redirects;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let previous = attempt.previous();
            if previous.len() > max_redirects {
                return attempt.error(Refused::Redirects(max_redirects));
            }
            let from = previous.first().and_then(Origin::of);
            let to = Origin::of(attempt.url());
            match (from, to) {
                (Some(from), Some(to)) if from == to => attempt.follow(),
                (from, _) => {
                    let to = attempt.url().origin().ascii_serialization();
                    attempt.error(Refused::CrossOrigin {
                        from: from.map(|o| o.to_string()).unwrap_or_default(),
                        to,
                    })
                }
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: settings.allow_private,
            }))
            .redirect(redirects)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SettingsError::Client(e.to_string()))?;
        let mut base = Zeroizing::new([0u8; 32]);
        match &settings.digest_key {
            Some(key) => base.copy_from_slice(&sha2::Sha256::digest(key.expose())),
            None => rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, base.as_mut()),
        }
        let derive = |label: &[u8]| {
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(base.as_ref())
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
            hmac::Mac::update(&mut mac, label);
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&hmac::Mac::finalize(mac).into_bytes());
            key
        };
        Ok(HttpCtx {
            digest_keys: [
                derive(b"http digest: host-held"),
                derive(b"http digest: provider-made"),
            ],
            origin_texts: settings
                .origins
                .iter()
                .map(|o| (o.to_string(), o.clone()))
                .collect(),
            settings,
            client,
            kept: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            checksum_failures: AtomicU32::new(0),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    fn credential(&self, name: &str) -> Option<SecretValue> {
        self.credential_for(name, None)
    }

    /// Whether the grant holds the credential `name`, without making its value
    /// (no assertion signed, no file read).
    fn holds(&self, name: &str) -> bool {
        self.settings.credentials.contains_key(name)
            || self.settings.credential_files.contains_key(name)
            || self.settings.signers.contains_key(name)
            || self
                .kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(name)
    }

    /// The credential `name`, if it may go to `origin` (any origin: `None`).
    fn credential_for(&self, name: &str, origin: Option<&Origin>) -> Option<SecretValue> {
        let allowed = || match (origin, self.settings.credential_origins.get(name)) {
            (Some(origin), Some(bound)) => bound.contains(origin),
            _ => true,
        };
        if let Some(v) = self.settings.credentials.get(name) {
            return allowed().then(|| v.clone());
        }
        if let Some(path) = self.settings.credential_files.get(name) {
            return if allowed() {
                self.file_credential(name, path)
            } else {
                None
            };
        }
        if let Some(signer) = self.settings.signers.get(name) {
            if !allowed() {
                return None;
            }
            return match signer.sign() {
                Ok(assertion) => Some(assertion),
                Err(e) => {
                    tracing::error!(credential = name, error = %e, "signing an assertion failed");
                    None
                }
            };
        }
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .filter(|(_, from)| {
                // Back to its origin, or where the grant binds the name (an OAuth
                // token is for the API, not for the authority that issued it).
                origin.is_none_or(|o| {
                    o == from
                        || self
                            .settings
                            .credential_origins
                            .get(name)
                            .is_some_and(|bound| bound.contains(o))
                })
            })
            .map(|(v, _)| v.clone())
    }

    /// The credential `name` from the file `path`: the value read before while
    /// the file is unchanged, else read again (trailing newlines removed). A
    /// file that cannot be read keeps the value read before, if any.
    fn file_credential(&self, name: &str, path: &std::path::Path) -> Option<SecretValue> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cached = files.get(name);
        if let (Some(stamp), Some((seen, value))) = (stamp, cached)
            && stamp == *seen
        {
            return Some(value.clone());
        }
        match (stamp, std::fs::read(path)) {
            (Some(stamp), Ok(bytes)) => {
                let mut bytes = Zeroizing::new(bytes);
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                let value = SecretValue::new(bytes.to_vec());
                files.insert(name.to_owned(), (stamp, value.clone()));
                Some(value)
            }
            (_, result) => {
                let reason = result
                    .err()
                    .map_or_else(|| "gone".to_owned(), |e| e.to_string());
                tracing::warn!(credential = name, path = %path.display(), %reason, "reading a credential file failed; keeping the value read before");
                cached.map(|(_, value)| value.clone())
            }
        }
    }

    /// Keeps a value lifted from a response as the credential `name`. It stays
    /// marked as the provider's own making: the provider shaped the request, so
    /// fetched back as a credential it must not compare as a value the host holds.
    fn keep(&self, name: &str, value: &SecretValue, from: &Origin) {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                name.to_owned(),
                (value.clone().marked_guest_made(), from.clone()),
            );
    }

    /// `hmac-sha256:<hex>` of `value` under the key of its provenance.
    pub fn digest(&self, value: &SecretValue) -> String {
        let key = &self.digest_keys[usize::from(value.is_guest_made())];
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        hmac::Mac::update(&mut mac, value.expose());
        format!(
            "hmac-sha256:{}",
            hex::encode(hmac::Mac::finalize(mac).into_bytes())
        )
    }

    fn allowed(&self, origin: &Origin) -> bool {
        self.settings.origins.contains(origin)
    }
}

/// What the `http` host functions see: the grant's context and the call.
pub struct HttpView<'a> {
    /// The grant; `None` when the instance was not granted `http`.
    pub ctx: Option<&'a HttpCtx>,
    /// The call in progress.
    pub host: HostCalls<'a>,
}

struct HttpData;

impl HasData for HttpData {
    type Data<'a> = HttpView<'a>;
}

/// Links the `http` interface, reaching its view through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HttpView<'_>,
) -> secret_broker_runtime::wasmtime::Result<()> {
    link::<T, HttpData>(linker, view)
}

impl Grant for HttpCtx {
    fn name(&self) -> &str {
        "http"
    }

    fn import(&self) -> String {
        format!(
            "{PACKAGE}/http@{}",
            secret_broker_runtime::caps::HTTP_VERSION
        )
    }

    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
    ) -> secret_broker_runtime::wasmtime::Result<()> {
        add_to_linker(linker, |state| {
            let (ctx, host) = Granted::view::<HttpCtx>(state);
            HttpView { ctx, host }
        })
    }
}

type HostResult<T> = secret_broker_runtime::wasmtime::Result<Result<T, Error>>;

fn denied(message: String) -> Error {
    Error::AccessDenied(message)
}

/// Writes `value` into `out` in `encoding`.
fn encode(value: &[u8], encoding: Encoding, out: &mut Vec<u8>) -> Result<(), Error> {
    match encoding {
        Encoding::Raw => out.extend_from_slice(value),
        Encoding::JsonString => {
            let text = std::str::from_utf8(value).map_err(|_| {
                Error::Backend("a secret spliced as a JSON string is not UTF-8 text".into())
            })?;
            let json = Zeroizing::new(serde_json::Value::from(text).to_string());
            out.extend_from_slice(json.as_bytes());
        }
        Encoding::Base64 => {
            let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value));
            out.extend_from_slice(text.as_bytes());
        }
        Encoding::Url => {
            let text = Zeroizing::new(
                percent_encoding::percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
            out.extend_from_slice(text.as_bytes());
        }
    }
    Ok(())
}

impl<'a> HttpView<'a> {
    fn ctx(&self) -> Result<&'a HttpCtx, Error> {
        self.ctx.ok_or_else(|| denied(not_granted("http")))
    }

    /// Concatenates `parts`, splicing secrets and credentials.
    fn assemble(&mut self, parts: Vec<Part>, to: &Origin) -> HostResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        for part in parts {
            match part {
                Part::Bytes(bytes) => {
                    self.host.charge(bytes.len())?;
                    out.extend_from_slice(&bytes);
                }
                Part::Secret((handle, encoding)) => {
                    let value = self.host.splice_value(&handle)?;
                    try_grant!(encode(value.expose(), encoding, &mut out));
                }
                Part::Credential((name, encoding)) => {
                    self.host.charge(name.len())?;
                    let ctx = try_grant!(self.ctx());
                    let Some(value) = ctx.credential_for(&name, Some(to)) else {
                        if ctx.holds(&name) {
                            return Ok(Err(denied(format!(
                                "the credential `{name}` may not be sent to {to}: it is bound to \
                                 other origins (its `origins` in the http grant's credentials)"
                            ))));
                        }
                        return Ok(Err(denied(format!(
                            "the http grant holds no credential `{name}`: configure it in the \
                             grant's `credentials`, or keep one from a response (`keep-as`)"
                        ))));
                    };
                    self.host.touch(&value);
                    try_grant!(encode(value.expose(), encoding, &mut out));
                }
            }
        }
        Ok(Ok(out))
    }

    /// Checks the origin and path, and builds the URL.
    fn url(&mut self, origin: &str, path: &str) -> Result<url::Url, Error> {
        let ctx = self.ctx()?;
        let parsed = match ctx.origin_texts.iter().find(|(text, _)| text == origin) {
            Some((_, granted)) => granted.clone(),
            None => Origin::parse(origin).map_err(|reason| {
                denied(format!("origin {origin:?} is not an origin: {reason}"))
            })?,
        };
        if !ctx.allowed(&parsed) {
            return Err(denied(format!(
                "origin {parsed} is not granted: add it to the http grant's `origins` (granted: {})",
                ctx.settings
                    .origins
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if !path.starts_with('/')
            || path.starts_with("//")
            || path.contains('#')
            || path.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(Error::Backend(
                "the request path must start with a single `/` and hold no fragment, space or \
                 control character"
                    .into(),
            ));
        }
        let url = url::Url::parse(&format!("{parsed}{path}"))
            .map_err(|e| Error::Backend(format!("the request path does not make a URL: {e}")))?;
        if Origin::of(&url).as_ref() != Some(&parsed) {
            return Err(denied(format!(
                "the request path leaves the origin {parsed}"
            )));
        }
        if let Some(ip) = url.host().and_then(|h| match h {
            url::Host::Ipv4(v4) => Some(std::net::IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(std::net::IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        }) && let Some(refused) = refusal(&parsed.host, ip, ctx.settings.allow_private)
        {
            return Err(denied(refused.to_string()));
        }
        Ok(url)
    }

    async fn send_checked(&mut self, request: Request, lifts: Vec<Lift>) -> HostResult<Response> {
        let ctx = try_grant!(self.ctx());
        let limit = ctx.settings.max_requests_per_call;
        if self.host.count("http.requests") > limit {
            return Ok(Err(denied(format!(
                "more than {limit} HTTP requests in one call: the http grant's \
                 `max_requests_per_call`"
            ))));
        }
        self.host
            .charge(request.method.len() + request.origin.len() + request.path_and_query.len())?;
        let url = try_grant!(self.url(&request.origin, &request.path_and_query));
        let Some(to) = Origin::of(&url) else {
            return Ok(Err(Error::Backend("the request URL has no origin".into())));
        };
        let method = try_grant!(
            reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| Error::Backend(format!("{:?} is not an HTTP method", request.method)))
        );
        let mut headers = reqwest::header::HeaderMap::new();
        for header in request.headers {
            self.host.charge(header.name.len())?;
            let name = try_grant!(
                reqwest::header::HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
                    Error::Backend(format!("{:?} is not a header name", header.name))
                })
            );
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Ok(Err(Error::Backend(format!(
                    "the header `{name}` is written by the host"
                ))));
            }
            let bytes = try_grant!(self.assemble(header.value, &to)?);
            let mut value = try_grant!(reqwest::header::HeaderValue::from_bytes(&bytes).map_err(
                |_| {
                    Error::Backend(format!(
                        "the value of header `{name}` holds a byte a header may not (CR, LF, NUL)"
                    ))
                }
            ));
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let body = try_grant!(self.assemble(request.body, &to)?);
        for lift in &lifts {
            if let LiftFrom::Pointer(p) | LiftFrom::Discard(p) = &lift.source {
                self.host.charge(p.len())?;
            }
            if let Some(check) = &lift.check {
                self.host.charge(check.pointer.len())?;
            }
            if let Some(name) = &lift.keep_as {
                self.host.charge(name.len())?;
                if check_name(name).is_err()
                    || ctx.settings.credentials.contains_key(name)
                    || ctx.settings.credential_files.contains_key(name)
                    || ctx.settings.signers.contains_key(name)
                {
                    return Ok(Err(denied(format!(
                        "cannot keep a value as `{name}`: not a plain name, or a credential the \
                         grant configures"
                    ))));
                }
            }
        }
        // The call's own deadline already bounds the request (the host stops the
        // whole call then); a timer of its own is set only when the grant's
        // timeout is the shorter, so a request arms no second timer.
        let timeout = ctx.settings.timeout;
        let own_timer = self
            .host
            .deadline()
            .is_none_or(|d| timeout < d.saturating_duration_since(Instant::now()));
        let origin = to.to_string();
        let started = Instant::now();
        let mut builder = ctx.client.request(method.clone(), url).headers(headers);
        if own_timer {
            builder = builder.timeout(timeout);
        }
        if !body.is_empty() {
            builder = builder.body(body.to_vec());
        }
        let sent = builder.send().await;
        drop(body);
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Ok(Err(self.clean(request_error(&e, &origin, ctx)))),
        };
        let status = response.status().as_u16();
        let mut response_headers = Vec::new();
        for (name, value) in response.headers() {
            response_headers.push((
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        let max = ctx.settings.max_response_bytes;
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Ok(Err(Error::Backend(format!(
                "the response from {origin} is over {max} bytes: the http grant's \
                 `max_response_kib`"
            ))));
        }
        let mut body = Zeroizing::new(Vec::new());
        let mut response = response;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Ok(Err(Error::Backend(format!(
                            "the response from {origin} is over {max} bytes: the http grant's \
                             `max_response_kib`"
                        ))));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Ok(Err(self.clean(request_error(&e, &origin, ctx)))),
            }
        }
        tracing::debug!(
            method = %method,
            origin = %origin,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "provider http request"
        );
        let (mut body, lifted) = try_grant!(lift_out(body, &lifts, &ctx.checksum_failures));
        let mut handles = Vec::with_capacity(lifted.len());
        for (value, lift) in lifted.into_iter().zip(&lifts) {
            match value {
                None => handles.push(None),
                Some(value) => {
                    if let Some(name) = &lift.keep_as {
                        ctx.keep(name, &value, &to);
                    }
                    handles.push(Some(self.host.new_lifted_handle(value)?));
                }
            }
        }
        // Everything the provider receives is scrubbed of what the call spliced
        // (and of what was lifted): an echoing backend is no oracle.
        let scrubber = self.host.scrubber();
        // One search over the body and every header value together first: an
        // answer seldom holds a value the call touched, and then nothing is
        // searched twice or copied. Each text is a substring of the joined one,
        // so no match there means none in any of them.
        let mut joined = Zeroizing::new(Vec::with_capacity(
            body.len()
                + response_headers
                    .iter()
                    .map(|(_, v)| v.len() + 1)
                    .sum::<usize>(),
        ));
        joined.extend_from_slice(&body);
        for (_, value) in &response_headers {
            joined.push(b'\n');
            joined.extend_from_slice(value.as_bytes());
        }
        let (body, headers) = if scrubber.matches_bytes(&joined) {
            let headers = response_headers
                .into_iter()
                .map(|(n, v)| (n, scrubber.scrub(&v).into_owned()))
                .collect();
            (scrubber.scrub_bytes(&body).into_owned(), headers)
        } else {
            (std::mem::take(&mut *body), response_headers)
        };
        Ok(Ok(Response {
            status,
            headers,
            body,
            lifted: handles,
        }))
    }

    fn clean(&self, error: Error) -> Error {
        self.host.clean_error(error)
    }
}

/// The body without the lifted members, and the lifted values in order.
#[allow(clippy::type_complexity)]
fn lift_out(
    body: Zeroizing<Vec<u8>>,
    lifts: &[Lift],
    checksum_failures: &AtomicU32,
) -> Result<(Zeroizing<Vec<u8>>, Vec<Option<SecretValue>>), Error> {
    if lifts.is_empty() {
        return Ok((body, Vec::new()));
    }
    let failed = checksum_failures.load(Ordering::Relaxed);
    if failed >= MAX_CHECKSUM_FAILURES && lifts.iter().any(|l| l.check.is_some()) {
        return Err(Error::AccessDenied(format!(
            "this grant's provider has failed {failed} checksum checks: checked reads are \
             refused until the host restarts (a corrupting backend looks like this, and so \
             does a provider testing guesses of a value against checksums it planted)"
        )));
    }
    let decode = |bytes: Vec<u8>, base64: bool| -> Result<SecretValue, Error> {
        let bytes = Zeroizing::new(bytes);
        if !base64 {
            return Ok(SecretValue::new(bytes.to_vec()));
        }
        base64::engine::general_purpose::STANDARD
            .decode(bytes.as_slice())
            .map(SecretValue::new)
            .map_err(|_| Error::Backend("a value lifted as base64 is not base64".into()))
    };
    // Wiped however this returns: the answer's other members may be secret.
    let mut json = WipeOnDrop(None);
    let mut whole = false;
    let mut out = Vec::with_capacity(lifts.len());
    for lift in lifts {
        match &lift.source {
            LiftFrom::Body => {
                whole = true;
                out.push(Some(decode(body.to_vec(), lift.base64)?));
            }
            LiftFrom::Discard(pointer) => {
                if json.0.is_none() {
                    json.0 = serde_json::from_slice(&body).ok();
                }
                // Wiped here, never handed over (nor made a value to scrub).
                if let Some(discarded) = json.0.as_mut().and_then(|j| take(j, pointer)) {
                    wipe(discarded);
                }
                out.push(None);
            }
            LiftFrom::Pointer(pointer) => {
                if json.0.is_none() {
                    json.0 = serde_json::from_slice(&body).ok();
                }
                let taken = json.0.as_mut().and_then(|j| take(j, pointer));
                let value = match taken {
                    None => None,
                    Some(serde_json::Value::String(s)) => {
                        Some(decode(Zeroizing::new(s).as_bytes().to_vec(), lift.base64)?)
                    }
                    Some(other) => {
                        let text = Zeroizing::new(other.to_string());
                        wipe(other);
                        Some(decode(text.as_bytes().to_vec(), lift.base64)?)
                    }
                };
                if let Some(check) = &lift.check {
                    // Taken out whatever follows: the provider never sees it.
                    let expected = json.0.as_mut().and_then(|j| take(j, &check.pointer));
                    if let Some(value) = &value
                        && let Err(e) = verify(value, pointer, check, expected)
                    {
                        // Each failure says one guess was wrong: a provider gets
                        // few of them.
                        checksum_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(pointer, "a lifted value failed its checksum");
                        return Err(e);
                    }
                }
                out.push(value);
            }
        }
        if lift.check.is_some() && !matches!(lift.source, LiftFrom::Pointer(_)) {
            return Err(Error::Backend(
                "a checksum is checked for a value lifted by JSON pointer only".into(),
            ));
        }
    }
    let body = if whole {
        Zeroizing::new(Vec::new())
    } else if let Some(rest) = &json.0 {
        Zeroizing::new(serde_json::to_vec(rest).unwrap_or_default())
    } else {
        body
    };
    Ok((body, out))
}

/// Checks `value`, lifted from `pointer`, against the checksum the answer
/// carried (`expected`, taken from `check.pointer`).
fn verify(
    value: &SecretValue,
    pointer: &str,
    check: &Checksum,
    expected: Option<serde_json::Value>,
) -> Result<(), Error> {
    let ChecksumAlgorithm::Crc32c = check.algorithm;
    let expected = match expected {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => {
            return Err(Error::Backend(format!(
                "the answer carries no CRC32C at {} for the value at {pointer}: the \
                 backend is not the one the provider expects",
                check.pointer
            )));
        }
    };
    let actual = u64::from(CRC32C.checksum(value.expose()));
    if expected != Some(actual) {
        return Err(Error::Backend(format!(
            "the value at {pointer} fails its CRC32C check ({}): it was corrupted on the \
             way or at rest; retry, and if it persists restore an earlier version",
            check.pointer
        )));
    }
    Ok(())
}

/// Checksum failures a grant's provider may meet before checked reads are
/// refused: a mismatch tells the provider its planted checksum was not the
/// value's, so unbounded failures would let it test a dictionary of guesses.
/// Real corruption is rare enough that an honest provider never comes near.
pub(crate) const MAX_CHECKSUM_FAILURES: u32 = 8;

/// CRC32C (Castagnoli, as iSCSI uses it).
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A parsed answer, wiped when dropped.
struct WipeOnDrop(Option<serde_json::Value>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            wipe(value);
        }
    }
}

/// Zeroizes every string of `value`, member names too, as it is dropped: a
/// member the provider was not to see may hold another field of the secret.
/// (Nesting is bounded by the JSON parser's depth limit.)
fn wipe(value: serde_json::Value) {
    use zeroize::Zeroize as _;
    match value {
        serde_json::Value::String(mut text) => text.zeroize(),
        serde_json::Value::Array(items) => items.into_iter().for_each(wipe),
        serde_json::Value::Object(map) => {
            for (mut name, member) in map {
                name.zeroize();
                wipe(member);
            }
        }
        _ => {}
    }
}

/// Removes the member `pointer` names from `json` and returns it.
fn take(json: &mut serde_json::Value, pointer: &str) -> Option<serde_json::Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let key = last.replace("~1", "/").replace("~0", "~");
    match json.pointer_mut(parent)? {
        serde_json::Value::Object(map) => map.remove(&key),
        serde_json::Value::Array(items) => {
            let i: usize = key.parse().ok()?;
            items
                .get_mut(i)
                .map(|v| std::mem::replace(v, serde_json::Value::Null))
        }
        _ => None,
    }
}

/// A reqwest failure as the provider's error, naming what to change.
fn request_error(e: &reqwest::Error, origin: &str, ctx: &HttpCtx) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return match refused {
                Refused::Unresolved { .. } => Error::Unavailable(refused.to_string()),
                _ => denied(format!("{refused}: nothing was sent there")),
            };
        }
        source = s.source();
    }
    if e.is_timeout() {
        return Error::Unavailable(format!(
            "{origin} did not answer in time (the http grant's `timeout_ms` is {} ms, \
             `connect_timeout_ms` {} ms, and the provider call's own deadline applies)",
            ctx.settings.timeout.as_millis(),
            ctx.settings.connect_timeout.as_millis()
        ));
    }
    let text = chain(e);
    // rustls's error is not reachable by type through hyper's layers (an
    // io::Error's `source` skips it): its text names it.
    if text.contains("certificate") || text.contains("TLS") || text.contains("tls") {
        return Error::Unavailable(format!(
            "TLS with {origin} failed: {text} (a private CA goes in the http grant's `ca_file`)"
        ));
    }
    if e.is_connect() {
        return Error::Unavailable(format!("connecting to {origin}: {text}"));
    }
    Error::Unavailable(format!("request to {origin} failed: {text}"))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Host for HttpView<'_> {
    async fn send(&mut self, request: Request, lifts: Vec<Lift>) -> HostResult<Response> {
        self.send_checked(request, lifts).await
    }

    async fn has_credential(
        &mut self,
        name: String,
    ) -> secret_broker_runtime::wasmtime::Result<bool> {
        self.host.charge(name.len())?;
        Ok(self.ctx.is_some_and(|ctx| ctx.holds(&name)))
    }

    async fn credential(&mut self, name: String) -> HostResult<Resource<SecretValue>> {
        self.host.charge(name.len())?;
        let ctx = try_grant!(self.ctx());
        let Some(value) = ctx.credential(&name) else {
            return Ok(Err(denied(format!(
                "the http grant holds no credential `{name}`"
            ))));
        };
        Ok(Ok(self.host.new_handle(value)?))
    }

    async fn digest(
        &mut self,
        value: Resource<SecretValue>,
    ) -> secret_broker_runtime::wasmtime::Result<String> {
        let value = self.host.secret(&value)?;
        Ok(match self.ctx {
            Some(ctx) => ctx.digest(&value),
            None => String::new(),
        })
    }

    async fn forget(&mut self, name: String) -> secret_broker_runtime::wasmtime::Result<()> {
        self.host.charge(name.len())?;
        if let Some(ctx) = self.ctx {
            ctx.kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allocator that, while armed, looks into every block freed for the
    /// canary below: what a test of plaintext left in freed memory needs. The
    /// only unsafe code in the project: a test's allocator cannot be written
    /// without it.
    #[allow(unsafe_code)]
    mod freed {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::sync::atomic::{AtomicBool, Ordering};

        pub const CANARY: &[u8] = b"canary-other-field-4f1d9a";
        pub static ARMED: AtomicBool = AtomicBool::new(false);
        pub static SEEN: AtomicBool = AtomicBool::new(false);

        struct Scanning;

        // SAFETY: every call is passed on to the system allocator unchanged; a
        // block is only read, before it is freed.
        unsafe impl GlobalAlloc for Scanning {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                if ARMED.load(Ordering::SeqCst) {
                    // SAFETY: the block is live until the call below.
                    let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                    if block.windows(CANARY.len()).any(|w| w == CANARY) {
                        SEEN.store(true, Ordering::SeqCst);
                    }
                }
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        #[global_allocator]
        static ALLOCATOR: Scanning = Scanning;
    }

    /// The other fields of a secret, discarded so the provider never sees
    /// them, and the rest of the answer once re-serialized, are wiped before
    /// their memory is freed.
    #[test]
    fn discarded_members_leave_no_plaintext_in_freed_memory() {
        use std::sync::atomic::Ordering;
        let canary = String::from_utf8(freed::CANARY.to_vec()).unwrap();
        let body = Zeroizing::new(
            format!(
                r#"{{"data":{{"data":{{"value":"s3cr3t-xyz","password":"{canary}"}}}},"note":"{canary}"}}"#
            )
            .into_bytes(),
        );
        let lifts = vec![
            Lift {
                source: LiftFrom::Pointer("/data/data/value".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
            Lift {
                source: LiftFrom::Discard("/data/data".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
            Lift {
                source: LiftFrom::Discard("/note".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
        ];
        freed::SEEN.store(false, Ordering::SeqCst);
        freed::ARMED.store(true, Ordering::SeqCst);
        let (rest, lifted) = lift_out(body, &lifts, &AtomicU32::new(0)).unwrap();
        drop((rest, lifted));
        freed::ARMED.store(false, Ordering::SeqCst);
        drop(canary);
        assert!(
            !freed::SEEN.load(Ordering::SeqCst),
            "a discarded field's plaintext was freed without being wiped"
        );
    }

    #[test]
    fn a_checksum_is_checked_and_never_reaches_the_provider() {
        // CRC32C("123456789") = 0xE3069283, Google's `dataCrc32c` as text.
        let answer = |crc: &str| {
            Zeroizing::new(
                format!(r#"{{"name":"v/1","payload":{{"data":"MTIzNDU2Nzg5"{crc}}}}}"#)
                    .into_bytes(),
            )
        };
        let lifts = [Lift {
            source: LiftFrom::Pointer("/payload/data".into()),
            base64: true,
            keep_as: None,
            check: Some(Checksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                pointer: "/payload/dataCrc32c".into(),
            }),
        }];
        let failures = AtomicU32::new(0);
        for good in [
            r#","dataCrc32c":"3808858755""#,
            r#","dataCrc32c":3808858755"#,
        ] {
            let (rest, lifted) = lift_out(answer(good), &lifts, &failures).unwrap();
            assert_eq!(lifted[0].as_ref().unwrap().expose_str(), Some("123456789"));
            let rest = String::from_utf8(rest.to_vec()).unwrap();
            assert!(
                !rest.contains("3808858755") && rest.contains("v/1"),
                "{rest}"
            );
        }
        let bad = lift_out(answer(r#","dataCrc32c":"3808858756""#), &lifts, &failures).unwrap_err();
        assert!(
            format!("{bad:?}").contains("fails its CRC32C check"),
            "{bad:?}"
        );
        let missing = lift_out(answer(""), &lifts, &failures).unwrap_err();
        assert!(format!("{missing:?}").contains("no CRC32C"), "{missing:?}");
        // A provider testing guesses against checksums it planted gets few
        // answers: after the budget, checked reads are refused, even right ones.
        for guess in 1..MAX_CHECKSUM_FAILURES {
            let planted = format!(r#","dataCrc32c":"{guess}""#);
            assert!(lift_out(answer(&planted), &lifts, &failures).is_err());
        }
        let refused =
            lift_out(answer(r#","dataCrc32c":"3808858755""#), &lifts, &failures).unwrap_err();
        assert!(
            matches!(&refused, Error::AccessDenied(m) if m.contains("until the host restarts")),
            "{refused:?}"
        );
        // Reads without a check go on.
        let plain = [Lift {
            check: None,
            ..lifts[0].clone()
        }];
        assert!(lift_out(answer(""), &plain, &failures).unwrap().1[0].is_some());
    }

    #[test]
    fn lifting_removes_members_and_keeps_the_rest() {
        let body = Zeroizing::new(
            br#"{"data":{"data":{"value":"s3cr3t-xyz","other":1}},"auth":null}"#.to_vec(),
        );
        let mut lifts = vec![
            Lift {
                source: LiftFrom::Pointer("/data/data/value".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
            Lift {
                source: LiftFrom::Pointer("/nope/x".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
        ];
        lifts.push(Lift {
            source: LiftFrom::Discard("/data/data".into()),
            base64: false,
            keep_as: None,
            check: None,
        });
        let (rest, lifted) = lift_out(body, &lifts, &AtomicU32::new(0)).unwrap();
        assert!(lifted[2].is_none(), "a discarded member lifts nothing");
        assert_eq!(lifted[0].as_ref().unwrap().expose_str(), Some("s3cr3t-xyz"));
        assert!(lifted[1].is_none());
        let rest = String::from_utf8(rest.to_vec()).unwrap();
        assert!(
            !rest.contains("s3cr3t-xyz") && !rest.contains("other") && rest.contains("auth"),
            "{rest}"
        );
    }

    #[test]
    fn a_kept_value_stays_the_providers_own_and_digests_apart() {
        let ctx = HttpCtx::new(
            HttpSettings::new(&["http://127.0.0.1:1"])
                .unwrap()
                .credential("token", SecretValue::from_string("configured-token".into()))
                .unwrap(),
        )
        .unwrap();
        let echoed = SecretValue::from_string("a-guess-1234".into());
        let origin = Origin::parse("http://127.0.0.1:1").unwrap();
        ctx.keep("session", &echoed, &origin);
        let elsewhere = Origin::parse("http://127.0.0.1:2").unwrap();
        assert!(
            ctx.credential_for("session", Some(&elsewhere)).is_none(),
            "a kept token goes back to its origin only"
        );
        let kept = ctx.credential("session").unwrap();
        assert!(kept.is_guest_made(), "a kept value would launder a guess");
        assert!(!ctx.credential("token").unwrap().is_guest_made());
        let host_held = SecretValue::from_string("a-guess-1234".into());
        assert_ne!(ctx.digest(&kept), ctx.digest(&host_held));
        assert_eq!(ctx.digest(&host_held), ctx.digest(&host_held.clone()));
    }

    /// An OAuth token comes from the authority and is for the API: the grant
    /// may bind the kept name to the API's origin; no other origin gets it.
    #[test]
    fn a_kept_value_goes_where_the_grant_binds_its_name() {
        let (authority, api, other) = (
            "https://127.0.0.1:1",
            "https://127.0.0.1:2",
            "https://127.0.0.1:3",
        );
        let ctx = HttpCtx::new(
            HttpSettings::new(&[authority, api, other])
                .unwrap()
                .bind_credential("access-token", &[api])
                .unwrap(),
        )
        .unwrap();
        let o = |t| Origin::parse(t).unwrap();
        ctx.keep(
            "access-token",
            &SecretValue::from_string("tok".into()),
            &o(authority),
        );
        assert!(ctx.credential_for("access-token", Some(&o(api))).is_some());
        assert!(
            ctx.credential_for("access-token", Some(&o(authority)))
                .is_some()
        );
        assert!(
            ctx.credential_for("access-token", Some(&o(other)))
                .is_none()
        );
    }

    #[test]
    fn a_credential_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first-token\n").unwrap();
        let ctx = HttpCtx::new(
            HttpSettings::new(&["http://127.0.0.1:1"])
                .unwrap()
                .credential_file("token", &path)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            ctx.credential("token").unwrap().expose_str(),
            Some("first-token")
        );
        // Rotated (another length, so the change shows whatever the clock's
        // resolution): the next use reads the new token.
        std::fs::write(&path, "second-token-rotated\n").unwrap();
        assert_eq!(
            ctx.credential("token").unwrap().expose_str(),
            Some("second-token-rotated")
        );
        // Gone for a moment (a rotation's rename): the token read before serves.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            ctx.credential("token").unwrap().expose_str(),
            Some("second-token-rotated")
        );
        assert!(
            HttpSettings::new(&["http://127.0.0.1:1"])
                .unwrap()
                .credential_file("token", dir.path().join("missing"))
                .is_err()
        );
    }

    #[test]
    fn encodings() {
        let mut out = Vec::new();
        encode(b"a\"b", Encoding::JsonString, &mut out).unwrap();
        encode(b"/x y", Encoding::Url, &mut out).unwrap();
        encode(b"hi", Encoding::Base64, &mut out).unwrap();
        assert_eq!(out, b"\"a\\\"b\"%2Fx%20yaGk=");
    }
}
