//! Sending: the origin and path checked against the grant, the request built
//! from spliced parts, sent on the grant's client within the call's deadline,
//! the answer read within the size limit, lifted, and scrubbed; transport
//! failures named with the setting to change.

use std::time::Instant;

use secret_broker_runtime::bindings::WitError as Error;
use secret_broker_runtime::bindings::v0_2_0::secret_broker::provider0_2_0::http::{
    Lift, LiftFrom, Request, Response,
};
use secret_broker_runtime::try_grant;
use zeroize::Zeroizing;

use crate::address::{Refused, refusal};
use crate::cap::{HostResult, HttpView, denied};
use crate::ctx::HttpCtx;
use crate::lift::lift_out;
use crate::scrub::scrub_answer;
use crate::settings::{Origin, check_name};

/// Headers a provider may not set: the host writes them from the request itself.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

impl HttpView<'_> {
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

    pub(crate) async fn send_checked(
        &mut self,
        request: Request,
        lifts: Vec<Lift>,
    ) -> HostResult<Response> {
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
        let (body, lifted) = try_grant!(lift_out(body, &lifts, &ctx.checksum_failures));
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
        let (body, headers) = scrub_answer(&self.host.scrubber(), body, response_headers);
        Ok(Ok(Response {
            status,
            headers,
            body,
            lifted: handles,
        }))
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
