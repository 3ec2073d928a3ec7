//! The HTTP server a deployment runs: the broker on the configured provider, the
//! bearer tokens and AWS access keys from the data dir (each file watched, so
//! `token add` needs no restart), the key file watched for versions another
//! process adds, and the listener (loopback, a unix socket, or TLS).
//! [`Deployment::server`] builds and binds it; [`Server::run`] serves until the
//! shutdown future completes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use secret_broker::openmetadata::ids::IdBuilder;
use secret_broker::openmetadata::manager::SecretsManager;
use secret_broker::openmetadata::owners::Owners;
use secret_broker::policy::Role;
use secret_broker_server::listen::{ConnOptions, TlsAcceptor};
use secret_broker_server::{self as server, AppState, ServerOptions, tokens};

use crate::RecordOwners;
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
    bound: Bound,
    conn: ConnOptions,
    created_admin_token: Option<PathBuf>,
}

impl Deployment {
    /// The bearer tokens file in the data dir.
    pub fn tokens_file(&self) -> PathBuf {
        self.data_dir().join("tokens")
    }

    /// The AWS access keys file in the data dir (secrets sealed by the keyring).
    pub fn aws_keys_file(&self) -> PathBuf {
        self.data_dir().join("aws-keys")
    }

    /// Builds the server this deployment describes and binds its listener: the
    /// broker on the configured provider, tokens (an admin token is created in
    /// `admin.token`, mode 0600, when there are none), AWS access keys and
    /// metadata, and the watchers of their files.
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
        let runtime = self.runtime()?;
        let provider = self.provider(&runtime).await?;
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
                let owners = Owners::new(RecordOwners::shared(self.record_store().await?));
                Some(SecretsManager::with_schemas(
                    provider.clone(),
                    schemas,
                    ids,
                    owners,
                ))
            }
        };
        let broker = self.broker(provider, manager)?;
        let (tokens, created_admin_token) = self.load_tokens()?;
        let state = AppState::new(broker, tokens, options.server);
        watch_tokens(state.clone(), self.tokens_file());
        self.add_aws_api(&state).await?;
        if let Some(keyring) = self
            .loaded_keyring()
            .filter(|_| !self.master_key_from_env())
        {
            watch_key_file(keyring, self.key_file());
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
            bound,
            conn: options.conn,
            created_admin_token,
        })
    }

    /// The tokens file, with an admin token created when it holds none (its
    /// file returned).
    fn load_tokens(&self) -> anyhow::Result<(tokens::Tokens, Option<PathBuf>)> {
        let path = self.tokens_file();
        let tokens = tokens::Tokens::load(&path)?;
        if !tokens.is_empty() {
            return Ok((tokens, None));
        }
        let token = tokens::generate();
        tokens::append(&path, "admin", Role::Admin, &token)?;
        let token_file = self.data_dir().join("admin.token");
        secret_broker_runtime::fs::overwrite_private(
            &token_file,
            format!("{}\n", token.as_str()).as_bytes(),
        )
        .with_context(|| format!("writing {}", token_file.display()))?;
        Ok((tokens::Tokens::load(&path)?, Some(token_file)))
    }

    /// The AWS APIs: access keys sealed by the keyring, metadata in the record
    /// store. The keyring is loaded for them only when the deployment has one in
    /// use or access keys exist (a deployment on AWS alone gets no master key it
    /// never needed).
    async fn add_aws_api(&self, state: &Arc<AppState>) -> anyhow::Result<()> {
        let keys_path = self.aws_keys_file();
        let keyring = match self.loaded_keyring() {
            Some(ring) => Some(ring),
            None if keys_path.exists() => Some(self.keyring()?),
            None => None,
        };
        let open = move |sealed: &[u8], aad: &[u8]| match &keyring {
            Some(ring) => Ok(ring.open(sealed, aad)?),
            None => bail!(
                "access keys were added after the server started on a deployment without a \
                 keyring in use; restart the server to load them"
            ),
        };
        state.set_aws_keys(server::sigv4::AwsKeys::load(&keys_path, &open)?);
        state.set_aws_metadata(server::aws::AwsMetadata::new(self.record_store().await?));
        watch_aws_keys(state.clone(), keys_path, open);
        Ok(())
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

    /// Serves until `shutdown` completes, then lets requests in flight finish
    /// (within the connection options' grace).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let app = server::router(self.state);
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

/// Calls `on_change` whenever the file at `path` changes (checked every 2 s).
fn watch_file(path: PathBuf, mut on_change: impl FnMut(&Path) + Send + 'static) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now != seen {
                seen = now;
                on_change(&path);
            }
        }
    });
}

/// Reloads the tokens file when it changes, so `token add` takes effect without a
/// restart. A file that no longer parses keeps the tokens in use, with an error.
fn watch_tokens(state: Arc<AppState>, path: PathBuf) {
    watch_file(path, move |path| match tokens::Tokens::load(path) {
        Ok(tokens) => {
            tracing::info!(tokens = tokens.len(), "reloaded the tokens file");
            state.set_tokens(tokens);
        }
        Err(e) => tracing::error!("keeping the tokens in use: {e:#}"),
    });
}

/// Reloads the access keys file when it changes (`token add --aws`). A file
/// that no longer reads keeps the keys in use, with an error.
fn watch_aws_keys(
    state: Arc<AppState>,
    path: PathBuf,
    open: impl Fn(&[u8], &[u8]) -> anyhow::Result<secret_broker::SecretValue> + Send + 'static,
) {
    watch_file(path, move |path| {
        match server::sigv4::AwsKeys::load(path, &open) {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "reloaded the AWS access keys file");
                state.set_aws_keys(keys);
            }
            Err(e) => tracing::error!("keeping the AWS access keys in use: {e:#}"),
        }
    });
}

/// Picks up key versions another process added (`keyring rotate`), so values it
/// re-sealed stay readable here and new values are sealed under the newest key.
fn watch_key_file(keyring: Arc<secret_broker_keyring::Keyring>, path: PathBuf) {
    watch_file(path, move |path| match keyring.reload_file(path) {
        Ok(added) if !added.is_empty() => {
            tracing::info!(?added, "picked up new master key versions");
        }
        Ok(_) => {}
        Err(e) => tracing::error!("keeping the master keys in use: {e}"),
    });
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
