//! The HTTP server a deployment runs: the broker on the configured provider, the
//! bearer tokens and AWS access keys from the record store ([`credentials`],
//! read again every [`CREDENTIALS_REFRESH`], so a token added or revoked by any
//! process on the same store takes effect without a restart), the key file
//! watched for versions another process adds, readiness, and the listener
//! (loopback, a unix socket, or TLS). [`Deployment::server`] builds and binds
//! it; [`Server::run`] serves until the shutdown future completes, then drains.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};

use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::openmetadata::owners::Owners;
use secret_broker::policy::Role;
use secret_broker_server::listen::{ConnOptions, TlsAcceptor};
use secret_broker_server::{self as server, AppState, ServerOptions};

use secret_broker_record_store::{RecordStore, StoreError};

use crate::RecordOwners;
use crate::credentials::{self, Credentials, Opener};
use crate::data_keys::{self, DataKeys};
use crate::deployment::Deployment;

/// Where the server listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// A TCP address: loopback only, unless TLS is configured.
    Tcp(SocketAddr),
    /// A unix socket at this path (created mode 0600).
    Unix(PathBuf),
}

/// How to serve, beside what the deployment's settings say.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: Listen,
    /// A PEM certificate chain and its private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// OpenMetadata's JSON Schemas for the `/v1/entities` routes (`None`: the
    /// ones embedded for [`crate::schemas::RELEASE`]).
    pub schemas: Option<PathBuf>,
    /// OpenMetadata's cluster name, the second segment of every id (`None`:
    /// the settings', [`Deployment::cluster_name`]).
    pub cluster_name: Option<String>,
    /// OpenMetadata's secrets manager prefix, the first segment when set
    /// (`None`: the settings').
    pub prefix: Option<String>,
    /// Body limit and request deadline.
    pub server: ServerOptions,
    /// Header deadline, connection cap, shutdown grace.
    pub conn: ConnOptions,
    /// How long to wait at start for a database that does not answer yet
    /// (it is retried meanwhile), before giving up with its error.
    pub store_wait: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 8686))),
            tls: None,
            schemas: None,
            cluster_name: None,
            prefix: None,
            server: ServerOptions::default(),
            conn: ConnOptions::default(),
            store_wait: Duration::from_secs(60),
        }
    }
}

enum Bound {
    Tcp(tokio::net::TcpListener, Option<TlsAcceptor>),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// A server built and bound, not yet serving.
pub struct Server {
    state: Arc<AppState>,
    creds: Credentials,
    /// The credentials' refresh and the key file's watcher.
    background: Vec<tokio::task::JoinHandle<()>>,
    bound: Bound,
    conn: ConnOptions,
    created_admin_token: Option<PathBuf>,
}

impl Deployment {
    /// The bearer tokens file of earlier releases in the data dir (imported
    /// into the record store at the first start).
    pub fn tokens_file(&self) -> PathBuf {
        self.data_dir().join("tokens")
    }

    /// The AWS access keys file of earlier releases in the data dir (imported
    /// into the record store at the first start).
    pub fn aws_keys_file(&self) -> PathBuf {
        self.data_dir().join("aws-keys")
    }

    /// Builds the server this deployment describes and binds its listener: the
    /// broker on the configured provider, tokens (an admin token is created in
    /// `admin.token`, mode 0600, when there is no credential), AWS access keys
    /// and metadata, the credentials' refresh and readiness.
    pub async fn server(&self, options: ServeOptions) -> anyhow::Result<Server> {
        if let Listen::Tcp(addr) = &options.listen
            && options.tls.is_none()
            && !addr.ip().is_loopback()
        {
            bail!(
                "--listen {addr}: without TLS the server listens on loopback only (127.0.0.1 \
                 or [::1]) or on a unix socket (--unix PATH); give --tls-cert and --tls-key \
                 to listen on other addresses"
            );
        }
        // Read before anything else starts: a bad certificate or key stops here.
        let tls = match &options.tls {
            Some((cert, key)) => Some(server::listen::tls_acceptor(cert, key)?),
            None => None,
        };
        // The database first: a replica started before its database waits
        // for it rather than exiting (nothing listens meanwhile).
        let store = self.record_store_within(options.store_wait).await?;
        let runtime = self.runtime()?;
        let provider = self.provider(&runtime).await?;
        // The audit salt and signing key from the database, when they are there.
        self.audit_secrets().await?;
        // The entity routes run on the schemas given, else the embedded ones
        // (a binary built without them serves no entity routes).
        let manager = match (&options.schemas, crate::schemas::RELEASE) {
            (None, None) => {
                tracing::warn!(
                    "no OpenMetadata schemas (this binary embeds none; give --schemas):                      the /v1/entities routes are off"
                );
                None
            }
            (dir, _) => {
                let schemas = crate::schemas::load(dir.as_deref())?;
                let cluster = options
                    .cluster_name
                    .clone()
                    .unwrap_or_else(|| self.cluster_name());
                let prefix = options.prefix.as_ref().or(self.settings.prefix.as_ref());
                let ids =
                    IdBuilder::with_style(prefix.map(String::as_str), &cluster, self.id_style())?;
                let owners = Owners::new(RecordOwners::shared(store.clone()));
                Some(SecretsManager::with_schemas(
                    provider.clone(),
                    schemas,
                    ids,
                    owners,
                ))
            }
        };
        let broker = self.broker(provider, manager)?;
        // Data keys in the database: loaded now whenever there are any, so a
        // replica whose key-encryption key cannot unwrap them refuses to start.
        let data_keys = self.data_keys().await?;
        if let Some(keys) = &data_keys
            && self.loaded_keyring().is_none()
            && !keys.is_empty().await?
        {
            self.keyring().await?;
        }
        let creds = Credentials::new(store.clone());
        let imported = creds
            .import_files(&self.tokens_file(), &self.aws_keys_file())
            .await?;
        if imported > 0 {
            tracing::info!(
                imported,
                "imported the credentials of the files of an earlier release"
            );
        }
        let open = self.aws_key_opener(&creds).await?;
        let (mut tokens, mut keys) = creds.load(&*open).await?;
        let mut created_admin_token = None;
        if tokens.is_empty() && keys.is_empty() {
            created_admin_token = self.create_admin_token(&creds).await?;
            (tokens, keys) = creds.load(&*open).await?;
        }
        let state = AppState::new(broker, tokens, options.server);
        state.set_aws_keys(keys);
        state.set_aws_metadata(server::aws::AwsMetadata::new(store.clone()));
        state.set_readiness(Box::new(Ready {
            store: store.clone(),
        }));
        let mut background = vec![refresh_credentials(state.clone(), creds.clone(), open)];
        match (self.loaded_keyring(), data_keys) {
            (Some(keyring), Some(keys)) => {
                background.push(refresh_data_keys(keyring, keys));
            }
            (Some(keyring), None) if !self.master_key_from_env() => {
                background.push(watch_key_file(keyring, self.key_file()));
            }
            _ => {}
        }
        let bound = match options.listen {
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(&path);
                let listener = tokio::net::UnixListener::bind(&path)
                    .with_context(|| format!("binding unix socket {}", path.display()))?;
                set_mode(&path, 0o600)?;
                Bound::Unix(listener, path)
            }
            Listen::Tcp(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                Bound::Tcp(listener, tls)
            }
        };
        Ok(Server {
            state,
            creds,
            background,
            bound,
            conn: options.conn,
            created_admin_token,
        })
    }

    /// The record store, retried while a database server is unavailable
    /// (refused, not answering) for up to `wait`, with a warning per attempt;
    /// any other error, or the last one after `wait`, is returned.
    async fn record_store_within(&self, wait: Duration) -> anyhow::Result<Arc<RecordStore>> {
        // SQLite in-process is there or not: only a database server is waited for.
        let remote = self
            .settings
            .store_url
            .as_deref()
            .is_some_and(|url| !url.starts_with("sqlite:"));
        let wait = if remote { wait } else { Duration::ZERO };
        let deadline = tokio::time::Instant::now() + wait;
        let mut delay = Duration::from_millis(250);
        loop {
            match self.record_store().await {
                Ok(store) => return Ok(store),
                Err(e)
                    if matches!(
                        e.downcast_ref::<StoreError>(),
                        Some(StoreError::Unavailable { .. })
                    ) && tokio::time::Instant::now() + delay < deadline =>
                {
                    tracing::warn!("waiting for the database, retrying in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "the database did not answer within {} s (--store-wait-secs)",
                        wait.as_secs()
                    )));
                }
            }
        }
    }

    /// Creates the admin token when no credential exists, in `admin.token`
    /// (mode 0600), and returns that file. Two replicas starting at once on one
    /// database: one creates it, the other finds it taken and makes none.
    async fn create_admin_token(&self, creds: &Credentials) -> anyhow::Result<Option<PathBuf>> {
        let Some(token) = creds.try_add_token("admin", Role::Admin, None).await? else {
            return Ok(None);
        };
        let token_file = self.data_dir().join("admin.token");
        secret_broker_runtime::fs::overwrite_private(
            &token_file,
            format!("{}\n", token.as_str()).as_bytes(),
        )
        .with_context(|| format!("writing {}", token_file.display()))?;
        Ok(Some(token_file))
    }

    /// What opens the AWS access keys' secrets: the keyring, loaded for them
    /// only when the deployment has one in use or access keys exist (a
    /// deployment on AWS alone gets no master key it never needed).
    async fn aws_key_opener(&self, creds: &Credentials) -> anyhow::Result<Arc<Opener<'static>>> {
        let keyring = match self.loaded_keyring() {
            Some(ring) => Some(ring),
            None if creds.has_aws_keys().await? => Some(self.keyring().await?),
            None => None,
        };
        Ok(Arc::new(move |sealed: &[u8], aad: &[u8]| match &keyring {
            Some(ring) => Ok(ring.open(sealed, aad)?),
            None => bail!(
                "access keys were added after the server started on a deployment without a \
                 keyring in use; restart the server to load them"
            ),
        }))
    }
}

/// `/health/ready`'s checks: the record store answers.
struct Ready {
    store: Arc<RecordStore>,
}

#[async_trait::async_trait]
impl server::Readiness for Ready {
    async fn check(&self) -> Result<(), String> {
        self.store
            .ping()
            .await
            .map_err(|e| format!("the database does not answer: {e}"))
    }
}

impl Server {
    /// Where it listens: `http://ADDR`, `https://ADDR` or `unix:PATH`.
    pub fn address(&self) -> anyhow::Result<String> {
        Ok(match &self.bound {
            Bound::Tcp(listener, tls) => {
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{}", listener.local_addr()?)
            }
            Bound::Unix(_, path) => format!("unix:{}", path.display()),
        })
    }

    /// The file of the admin token created because no token was configured.
    pub fn created_admin_token(&self) -> Option<&Path> {
        self.created_admin_token.as_deref()
    }

    /// The server's state (broker, tokens, keys).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains: `/health/ready` answers
    /// 503, no connection is accepted, the requests in flight finish (within
    /// the connection options' grace), the credentials' last uses are recorded
    /// and a `server.stop` entry is synced to the audit log after every entry
    /// of those requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing the requests in flight");
            state.start_draining();
        };
        let app = server::router(self.state.clone());
        match self.bound {
            Bound::Unix(listener, _) => {
                server::listen::serve(listener, app, self.conn, shutdown).await;
            }
            Bound::Tcp(listener, Some(tls)) => {
                server::listen::serve_tls(listener, tls, app, self.conn, shutdown).await;
            }
            Bound::Tcp(listener, None) => {
                server::listen::serve(listener, app, self.conn, shutdown).await;
            }
        }
        for task in &self.background {
            task.abort();
        }
        if let Err(e) = self.creds.record_uses(&self.state.take_uses()).await {
            tracing::warn!("could not record when credentials were last used: {e}");
        }
        if let Err(e) = self.state.broker().audit_event("server.stop").await {
            tracing::error!("could not write the audit entry of the shutdown: {e}");
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return ctrl_c.await.unwrap_or(());
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Calls `on_change` whenever the file at `path` changes (checked every second).
fn watch_file(
    path: PathBuf,
    mut on_change: impl FnMut(&Path) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now != seen {
                seen = now;
                on_change(&path);
            }
        }
    })
}

/// How often a server reads the credentials again: a token or access key
/// added, revoked or expired on any replica takes effect here within it.
pub const CREDENTIALS_REFRESH: Duration = Duration::from_millis(500);

/// Reads the credentials again every [`CREDENTIALS_REFRESH`] (rebuilding them
/// only when a row changed), and records when each was last accepted (at most
/// every [`credentials::USE_RESOLUTION`] per credential). A database that does
/// not answer keeps the credentials in use, with an error in the log.
fn refresh_credentials(
    state: Arc<AppState>,
    creds: Credentials,
    open: Arc<Opener<'static>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: Option<Vec<(String, u64)>> = None;
        let mut written: HashMap<(server::CredentialKind, String), SystemTime> = HashMap::new();
        let mut failing = false;
        let mut tick = tokio::time::interval(CREDENTIALS_REFRESH);
        loop {
            tick.tick().await;
            let result = async {
                let now = creds.fingerprint().await?;
                if seen.as_ref() != Some(&now) {
                    let (tokens, keys) = creds.load(&*open).await?;
                    tracing::debug!(
                        tokens = tokens.len(),
                        keys = keys.len(),
                        "credentials changed"
                    );
                    state.set_tokens(tokens);
                    state.set_aws_keys(keys);
                    seen = Some(now);
                }
                let due: Vec<_> = state
                    .take_uses()
                    .into_iter()
                    .filter(|(kind, name, at)| {
                        written.get(&(*kind, name.clone())).is_none_or(|last| {
                            at.duration_since(*last).unwrap_or_default()
                                >= credentials::USE_RESOLUTION
                        })
                    })
                    .collect();
                creds.record_uses(&due).await?;
                for (kind, name, at) in due {
                    written.insert((kind, name), at);
                }
                Ok::<_, secret_broker_record_store::StoreError>(())
            }
            .await;
            match result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("reading the credentials again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!("keeping the credentials in use: {e}");
                }
                Err(_) => {}
            }
        }
    })
}

/// Re-reads the data keys in the database every [`data_keys::REFRESH`]: a
/// version another replica's `keyring rotate` added opens here before any value
/// is sealed with it, and seals here once that rotation activates it.
fn refresh_data_keys(
    keyring: Arc<secret_broker_keyring::Keyring>,
    keys: Arc<DataKeys>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(data_keys::REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let before = keyring.current_version();
            match keys.refresh(&keyring).await {
                Ok(added) => {
                    if failing {
                        failing = false;
                        tracing::info!("reading the data keys again");
                    }
                    if !added.is_empty() {
                        tracing::info!(?added, "loaded data key versions another replica added");
                    }
                    let now = keyring.current_version();
                    if now != before {
                        tracing::info!(version = now, "sealing with data key version");
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!("keeping the data keys in use: {e:#}");
                }
                Err(_) => {}
            }
        }
    })
}

/// Picks up key versions another process added (`keyring rotate`), so values it
/// re-sealed stay readable here and new values are sealed under the newest key.
fn watch_key_file(
    keyring: Arc<secret_broker_keyring::Keyring>,
    path: PathBuf,
) -> tokio::task::JoinHandle<()> {
    watch_file(path, move |path| match keyring.reload_file(path) {
        Ok(added) if !added.is_empty() => {
            tracing::info!(?added, "picked up new master key versions");
        }
        Ok(_) => {}
        Err(e) => tracing::error!("keeping the master keys in use: {e}"),
    })
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
