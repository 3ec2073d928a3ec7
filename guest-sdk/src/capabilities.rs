//! Typed access to the host capabilities. Each module is usable only when the
//! provider's configuration grants it; otherwise the host refuses to instantiate the
//! provider and names the missing grant.

/// Envelope encryption by the host (grant `keyring`).
pub mod keyring {
    pub use crate::__bindings::secret_broker::provider0_1_0::keyring::{open, reseal, seal};
}

/// Versioned rows namespaced to this provider instance (grant `record-store`).
pub mod record_store {
    pub use crate::__bindings::secret_broker::provider0_1_0::record_store::{
        Condition, Row, Write, apply, get, put, remove, scan,
    };
}

/// AWS Secrets Manager scoped to the grant's prefix (grant `aws-secrets-manager`).
pub mod aws_secrets_manager {
    pub use crate::__bindings::secret_broker::provider0_1_0::aws_secrets_manager::{
        create_secret, delete_secret, get_secret_value, list_secrets, update_secret,
    };
}

/// AWS SSM Parameter Store scoped to the grant's prefix (grant `aws-ssm`).
pub mod aws_ssm {
    pub use crate::__bindings::secret_broker::provider0_1_0::aws_ssm::{
        delete_parameter, get_parameter, get_parameters_by_path, put_parameter,
    };
}

/// Lines to the host log, scrubbed of secret values by the host.
pub mod log {
    pub use crate::__bindings::secret_broker::provider0_1_0::log::{Level, log};

    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
}

/// The provider instance's settings from the host configuration.
pub mod config {
    pub use crate::__bindings::secret_broker::provider0_1_0::config::{get, get_all};
}

/// Plaintext of a secret (grant `reveal`; first-party providers never need it).
pub mod reveal {
    pub use crate::__bindings::secret_broker::provider0_1_0::reveal::reveal;
}

/// HTTP to the origins the grant allows (grant `http`, contract 0.2.0). Secrets are
/// spliced into header values and bodies by the host ([`Part::Secret`],
/// [`Part::Credential`]) and lifted out of responses into handles ([`Lift`]); the
/// provider never holds their bytes.
pub mod http {
    pub use crate::__bindings::secret_broker::provider0_2_0::http::{
        Checksum, ChecksumAlgorithm, Encoding, Header, Lift, LiftFrom, Part, Request, Response,
        credential, digest, forget, has_credential, send,
    };

    /// Bytes of the provider's own as a part.
    pub fn bytes(text: impl Into<Vec<u8>>) -> Part<'static> {
        Part::Bytes(text.into())
    }

    /// The grant's credential `name`, written raw.
    pub fn credential_part(name: &str) -> Part<'static> {
        Part::Credential((name.to_owned(), Encoding::Raw))
    }

    /// A JSON-pointer lift (removed from the body the provider receives),
    /// base64-decoded if asked, and kept as the grant's credential `keep_as`.
    pub fn lift(pointer: &str, base64: bool, keep_as: Option<&str>) -> Lift {
        Lift {
            source: LiftFrom::Pointer(pointer.to_owned()),
            base64,
            keep_as: keep_as.map(str::to_owned),
            check: None,
        }
    }

    /// Removes the member at `pointer` from the body the provider receives,
    /// lifting nothing.
    pub fn discard(pointer: &str) -> Lift {
        Lift {
            source: LiftFrom::Discard(pointer.to_owned()),
            base64: false,
            keep_as: None,
            check: None,
        }
    }

    /// A JSON-pointer lift, base64-decoded, that the host checks against the
    /// CRC32C the answer carries at `crc32c` (removed from the body too).
    pub fn lift_crc32c(pointer: &str, base64: bool, crc32c: &str) -> Lift {
        Lift {
            check: Some(Checksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                pointer: crc32c.to_owned(),
            }),
            ..lift(pointer, base64, None)
        }
    }

    /// A plain JSON-pointer lift.
    pub fn pointer(pointer: &str) -> Lift {
        lift(pointer, false, None)
    }

    /// A header of one part.
    pub fn header<'a>(name: &str, value: Part<'a>) -> Header<'a> {
        Header {
            name: name.to_owned(),
            value: vec![value],
        }
    }

    /// A URL's `scheme://host[:port]` (a request's origin) and the path after
    /// it, without a trailing `/` (empty for most backends).
    pub fn split_url(url: &str) -> (String, String) {
        let url = url.trim().trim_end_matches('/');
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        match url[after_scheme..].find('/') {
            Some(i) => {
                let (origin, path) = url.split_at(after_scheme + i);
                (origin.to_owned(), path.to_owned())
            }
            None => (url.to_owned(), String::new()),
        }
    }

    /// Percent-encodes a query parameter value.
    pub fn query_escape(value: &str) -> String {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    impl<'a> Request<'a> {
        /// A request with no headers and no body.
        pub fn new(method: &str, origin: &str, path_and_query: impl Into<String>) -> Self {
            Request {
                method: method.to_owned(),
                origin: origin.to_owned(),
                path_and_query: path_and_query.into(),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }

        /// Adds a header of one part.
        pub fn header(mut self, name: &str, value: Part<'a>) -> Self {
            self.headers.push(header(name, value));
            self
        }

        /// Adds `Authorization: Bearer <the grant's credential `credential`>`.
        pub fn bearer(mut self, credential: &str) -> Self {
            self.headers.push(Header {
                name: "Authorization".to_owned(),
                value: vec![bytes("Bearer "), credential_part(credential)],
            });
            self
        }

        /// Sets the body, with `Content-Type: application/json`.
        pub fn json(mut self, body: Vec<Part<'a>>) -> Self {
            self.body = body;
            self.header("Content-Type", bytes("application/json"))
        }
    }

    /// The token requests of OAuth2 that a [`Token`]'s login sends: a form
    /// posted to the token endpoint, whose secret part is a credential of the
    /// grant the host splices URL-encoded (the provider never holds it).
    pub mod oauth {
        use super::{Encoding, Part, Request, bytes};

        /// A form post to `origin` + `path`, starting with `fields`
        /// (URL-encoded here) and ending with `secret_field=` and the grant's
        /// credential `credential`.
        fn form(
            origin: &str,
            path: String,
            fields: &[(&str, &str)],
            secret_field: &str,
            credential: &str,
        ) -> Request<'static> {
            let mut head = String::new();
            for (name, value) in fields {
                head.push_str(name);
                head.push('=');
                head.push_str(&super::query_escape(value));
                head.push('&');
            }
            head.push_str(secret_field);
            head.push('=');
            let mut r = Request::new("POST", origin, path)
                .header("Content-Type", bytes("application/x-www-form-urlencoded"))
                .header("Accept", bytes("application/json"));
            r.body = vec![
                bytes(head),
                Part::Credential((credential.to_owned(), Encoding::Url)),
            ];
            r
        }

        /// Client credentials (RFC 6749 section 4.4): `client_id`, `scope`, and
        /// the grant's credential `secret` as the `client_secret`.
        pub fn client_credentials(
            origin: &str,
            path: String,
            client_id: &str,
            scope: &str,
            secret: &str,
        ) -> Request<'static> {
            let fields = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("scope", scope),
            ];
            form(origin, path, &fields, "client_secret", secret)
        }

        /// A JWT bearer assertion (RFC 7523 section 2.1): the grant's signer
        /// credential `assertion`, which the host signs afresh for each request.
        pub fn jwt_bearer(origin: &str, path: String, assertion: &str) -> Request<'static> {
            let fields = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")];
            form(origin, path, &fields, "assertion", assertion)
        }
    }

    /// How a backend hands out a token and wants it back: where its login
    /// answer carries the token and its life (seconds, a number or text), what
    /// else in that answer the provider must not see, the header the token goes
    /// in, and the status that means it was refused.
    pub struct TokenShape {
        /// JSON pointer to the token in the login answer.
        pub token: &'static str,
        /// JSON pointer to its life in seconds.
        pub life: &'static str,
        /// JSON pointers removed from the answer unseen.
        pub discard: &'static [&'static str],
        /// The header it goes in; `None`: `Authorization: Bearer <token>`.
        pub header: Option<&'static str>,
        /// The status that means the backend refused it.
        pub refused: u16,
    }

    /// OAuth2 (RFC 6749): `access_token`, `expires_in`, a bearer, 401.
    pub const OAUTH: TokenShape = TokenShape {
        token: "/access_token",
        life: "/expires_in",
        discard: &["/refresh_token", "/id_token"],
        header: None,
        refused: 401,
    };

    /// OpenBao / Vault auth methods: `auth.client_token`, `auth.lease_duration`,
    /// `X-Vault-Token`, 403 (the accessor is discarded unseen).
    pub const VAULT: TokenShape = TokenShape {
        token: "/auth/client_token",
        life: "/auth/lease_duration",
        discard: &["/auth/accessor"],
        header: Some("X-Vault-Token"),
        refused: 403,
    };

    /// A token the grant keeps under a name (the provider never holds it):
    /// renewed at two thirds of its life, and once more when the backend
    /// refuses it (revoked or expired early). Keep one per instance, a field
    /// of your provider.
    pub struct Token {
        name: &'static str,
        shape: &'static TokenShape,
        renew_at: std::cell::Cell<Option<std::time::Instant>>,
    }

    impl Token {
        /// An OAuth2 access token kept as the grant's credential `name`.
        pub const fn new(name: &'static str) -> Self {
            Self::shaped(name, &OAUTH)
        }

        /// A token of another shape kept as the grant's credential `name`.
        pub const fn shaped(name: &'static str, shape: &'static TokenShape) -> Self {
            Token {
                name,
                shape,
                renew_at: std::cell::Cell::new(None),
            }
        }

        /// The credential name it is kept under.
        pub fn name(&self) -> &'static str {
            self.name
        }

        /// `r` carrying the token (held by the grant, spliced by the host).
        pub fn attach<'a>(&self, r: Request<'a>) -> Request<'a> {
            match self.shape.header {
                Some(header) => r.header(header, credential_part(self.name)),
                None => r.bearer(self.name),
            }
        }

        /// Sends the login (or renewal) request `r`: the answer's token is
        /// kept, its life sets the renewal. An answer without a token comes
        /// back as `Err(answer)` for the provider to explain in its backend's
        /// words.
        pub fn login(&self, r: &Request<'_>) -> Result<Result<(), Response>, crate::Error> {
            let mut lifts = vec![lift(self.shape.token, false, Some(self.name))];
            lifts.extend(self.shape.discard.iter().map(|p| discard(p)));
            let mut answer = send(r, &lifts)?;
            if answer.status != 200 || answer.take_lifted(0).is_none() {
                return Ok(Err(answer));
            }
            let json = answer.json();
            let life = json.pointer(self.shape.life).and_then(|l| {
                l.as_u64()
                    .or_else(|| l.as_str().and_then(|t| t.parse().ok()))
            });
            self.renew_at
                .set(life.filter(|l| *l > 0).map(|l| {
                    std::time::Instant::now() + std::time::Duration::from_secs(l * 2 / 3)
                }));
            Ok(Ok(()))
        }

        /// Sends `make()` carrying the token: `login` first when there is no
        /// token or it is due (the token is still held then, so `login` may
        /// renew it), and once more, with the token forgotten, when the backend
        /// refuses it.
        pub fn call<'a>(
            &self,
            make: impl Fn() -> Request<'a>,
            lifts: &[Lift],
            login: impl Fn() -> Result<(), crate::Error>,
        ) -> Result<Response, crate::Error> {
            let due = self
                .renew_at
                .get()
                .is_some_and(|at| std::time::Instant::now() >= at);
            if due || !has_credential(self.name) {
                login()?;
            }
            let r = send(&self.attach(make()), lifts)?;
            if r.status != self.shape.refused {
                return Ok(r);
            }
            forget(self.name);
            login()?;
            send(&self.attach(make()), lifts)
        }
    }

    impl Response {
        /// The body as JSON; `Null` when it is not JSON.
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
        }

        /// The value of the header `name` (any case), if sent.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// `{who} answered {status} {code}: {message}`, read from the usual
        /// JSON error shapes: `{"error": {"code" or "status", "message"}}`
        /// (Azure, Google), OAuth's `{"error", "error_description"}` and
        /// Vault's `{"errors": [...]}`.
        pub fn error_text(&self, who: &str) -> String {
            use serde_json::Value;
            let json = self.json();
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            let (code, message) = match (&json["error"], &json["errors"]) {
                (Value::Object(e), _) => (
                    ["status", "code"]
                        .iter()
                        .find_map(|k| e.get(*k).and_then(Value::as_str))
                        .unwrap_or("")
                        .to_owned(),
                    text(&e["message"]),
                ),
                (Value::String(code), _) => (code.clone(), text(&json["error_description"])),
                (_, Value::Array(errors)) => (
                    String::new(),
                    errors
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => (String::new(), String::new()),
            };
            let code = if code.is_empty() {
                code
            } else {
                format!(" {code}")
            };
            format!("{who} answered {}{code}: {message}", self.status)
        }

        /// The provider error an HTTP status means, with `text`: 401 and 403
        /// access denied, 409 a conflict, 429 and 5xx unavailable (naming the
        /// answer's `Retry-After`), anything else a backend error.
        pub fn status_error(&self, text: String) -> crate::Error {
            match self.status {
                401 | 403 => crate::Error::AccessDenied(text),
                409 => crate::Error::Conflict(text),
                429 | 500..=599 => crate::Error::Unavailable(match self.header("retry-after") {
                    Some(after) => format!("{text}; retry after {after} s"),
                    None => text,
                }),
                _ => crate::Error::Backend(text),
            }
        }

        /// Takes the `i`th lifted handle.
        pub fn take_lifted(&mut self, i: usize) -> Option<crate::Secret> {
            self.lifted.get_mut(i).and_then(Option::take)
        }
    }
}
