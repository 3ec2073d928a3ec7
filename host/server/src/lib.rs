//! The secrets manager API over HTTP for the metadata
//! server, JSON in and out. Every `/v1` route needs a bearer token mapped to a role;
//! the broker applies the policy and writes the audit log. Bodies are size-limited,
//! every request has a deadline (a slow or broken provider answers 503 with a clear
//! body, never a hang), and errors never carry a secret value. Handlers, error
//! mapping, extractors and middleware live in files of their own.
#![deny(missing_docs)]

#[cfg(feature = "aws-api")]
pub mod aws;
mod errors;
mod extractors;
mod handlers;
pub mod listen;
pub mod metrics;
mod middleware;
#[cfg(feature = "aws-api")]
pub mod sigv4;
mod strict;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use secret_broker::broker::{Broker, Caller};

#[cfg(feature = "aws-api")]
use self::aws::AwsMetadata;
pub use self::errors::ApiError;
pub use self::extractors::ApiJson;
use self::metrics::Metrics;
#[cfg(feature = "aws-api")]
use self::sigv4::AwsKeys;
use self::tokens::Tokens;

/// The OpenAPI document, served at [`OPENAPI_PATH`].
pub const OPENAPI: &str = include_str!("openapi.json");
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request body accepted, bytes (413 above).
    pub body_limit: usize,
    /// Deadline of one request (503 after it).
    pub request_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: 256 << 10,
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// What `/health/ready` asks before answering 200: the deployment's own
/// checks (its database reachable, its keyring loaded). An error says what is
/// not ready, never a secret.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    /// `Ok` when this replica can serve.
    async fn check(&self) -> Result<(), String>;
}

/// Which kind of credential a caller used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A bearer token of `/v1`.
    Token,
    /// An AWS access key of the AWS APIs.
    AwsKey,
}

/// When each credential was last accepted, by kind and name.
#[derive(Default)]
struct Uses {
    tokens: std::collections::HashMap<String, SystemTime>,
    aws_keys: std::collections::HashMap<String, SystemTime>,
}

/// What the handlers share.
pub struct AppState {
    pub(crate) broker: Broker,
    tokens: std::sync::RwLock<Tokens>,
    /// When each credential was last accepted, since the last
    /// [`AppState::take_uses`].
    uses: std::sync::Mutex<Uses>,
    readiness: std::sync::OnceLock<Box<dyn Readiness>>,
    draining: std::sync::atomic::AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) options: ServerOptions,
    #[cfg(feature = "aws-api")]
    aws_keys: std::sync::RwLock<Arc<AwsKeys>>,
    #[cfg(feature = "aws-api")]
    aws_metadata: std::sync::OnceLock<AwsMetadata>,
}

impl AppState {
    /// The caller a presented token stands for, now (an expired token stands
    /// for nobody).
    pub(crate) fn authenticate(&self, presented: &str) -> Option<Caller> {
        let now = SystemTime::now();
        let caller = self
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .authenticate(presented, now)?;
        self.used(CredentialKind::Token, &caller.name, now);
        Some(caller)
    }

    /// Notes that a credential was accepted at `now`.
    pub(crate) fn used(&self, kind: CredentialKind, name: &str, now: SystemTime) {
        let mut uses = self
            .uses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let of_kind = match kind {
            CredentialKind::Token => &mut uses.tokens,
            CredentialKind::AwsKey => &mut uses.aws_keys,
        };
        // No allocation for a credential already noted.
        match of_kind.get_mut(name) {
            Some(at) => *at = now,
            None => {
                of_kind.insert(name.to_owned(), now);
            }
        }
    }

    /// The credentials accepted since the last call, each with the last time
    /// (for the deployment to record as "last used").
    pub fn take_uses(&self) -> Vec<(CredentialKind, String, SystemTime)> {
        let uses = std::mem::take(
            &mut *self
                .uses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let tokens = uses
            .tokens
            .into_iter()
            .map(|(name, at)| (CredentialKind::Token, name, at));
        let keys = uses
            .aws_keys
            .into_iter()
            .map(|(name, at)| (CredentialKind::AwsKey, name, at));
        tokens.chain(keys).collect()
    }

    /// The broker the handlers call.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Sets the checks of `/health/ready` (once, before serving).
    pub fn set_readiness(&self, readiness: Box<dyn Readiness>) {
        let _ = self.readiness.set(readiness);
    }

    /// From now on `/health/ready` answers 503: the replica is shutting down.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this replica can serve: not draining, and the deployment's
    /// checks pass.
    pub(crate) async fn ready(&self) -> Result<(), String> {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        match self.readiness.get() {
            Some(checks) => checks.check().await,
            None => Ok(()),
        }
    }

    /// Replaces the tokens (a reloaded tokens file).
    pub fn set_tokens(&self, tokens: Tokens) {
        *self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
    }

    #[cfg(feature = "aws-api")]
    /// Replaces the AWS access keys (a reloaded access keys file).
    pub fn set_aws_keys(&self, keys: AwsKeys) {
        *self
            .aws_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    #[cfg(feature = "aws-api")]
    /// The AWS access keys in use.
    pub(crate) fn aws_keys(&self) -> Arc<AwsKeys> {
        self.aws_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    #[cfg(feature = "aws-api")]
    /// Where the AWS APIs keep what only AWS has (descriptions, tags, version
    /// ids, dates); set once, before serving.
    pub fn set_aws_metadata(&self, metadata: AwsMetadata) {
        let _ = self.aws_metadata.set(metadata);
    }

    #[cfg(feature = "aws-api")]
    pub(crate) fn aws_metadata(&self) -> Option<AwsMetadata> {
        self.aws_metadata.get().cloned()
    }

    /// State for [`router`].
    pub fn new(broker: Broker, tokens: Tokens, options: ServerOptions) -> Arc<AppState> {
        Arc::new(AppState {
            broker,
            tokens: std::sync::RwLock::new(tokens),
            uses: std::sync::Mutex::default(),
            readiness: std::sync::OnceLock::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics: Metrics::default(),
            options,
            #[cfg(feature = "aws-api")]
            aws_keys: std::sync::RwLock::new(Arc::new(AwsKeys::default())),
            #[cfg(feature = "aws-api")]
            aws_metadata: std::sync::OnceLock::new(),
        })
    }
}

/// The HTTP API.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/secrets/get", post(handlers::secret_get))
        .route("/v1/secrets/put", post(handlers::secret_put))
        .route("/v1/secrets/delete", post(handlers::secret_delete))
        .route("/v1/secrets/list", post(handlers::secret_list))
        .route("/v1/secrets/resolve", post(handlers::secret_resolve))
        .route("/v1/entities/encrypt", post(handlers::entity_encrypt))
        .route("/v1/entities/decrypt", post(handlers::entity_decrypt))
        .route("/v1/entities/delete", post(handlers::entity_delete))
        .route("/metrics", get(handlers::metrics_text))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    let root = Router::new();
    // The AWS Secrets Manager and SSM APIs, when built in.
    #[cfg(feature = "aws-api")]
    let root = root.route("/", post(aws::entry));
    root.route("/health", get(handlers::health))
        .route("/health/live", get(handlers::health))
        .route("/health/ready", get(handlers::ready))
        .route(OPENAPI_PATH, get(handlers::openapi))
        .merge(api)
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panicked,
        ))
        .layer(DefaultBodyLimit::max(state.options.body_limit))
        .with_state(state)
}
