//! Serving connections with hyper's HTTP/1 directly (not `axum::serve`), for
//! what a server facing careless or hostile clients needs: a deadline to send a
//! request's headers, which also closes keep-alive connections left idle
//! (slowloris, hold-open), a cap on open connections (the next one waits in the
//! listen backlog until one closes), a graceful shutdown, and TLS (rustls)
//! for listeners off loopback.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
pub use tokio_rustls::TlsAcceptor;

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnOptions {
    /// Time a client has to send a request's headers, from the moment the
    /// server waits for them (a new connection, or one kept alive after a
    /// response): past it the connection is closed.
    pub header_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in
/// flight finish (up to the grace period).
pub async fn serve<L>(
    listener: L,
    app: Router,
    options: ConnOptions,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    L::Io: Unpin,
{
    serve_with(
        listener,
        app,
        options,
        shutdown,
        |io| async move { Some(io) },
    )
    .await;
}

/// Serves `app` over TLS on `listener`. The handshake runs on the connection's
/// own task, within the header deadline: a client that stalls it holds one
/// connection slot until then, never the accept loop.
pub async fn serve_tls<L>(
    listener: L,
    tls: TlsAcceptor,
    app: Router,
    options: ConnOptions,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    L::Io: Unpin,
{
    let deadline = options.header_timeout;
    serve_with(listener, app, options, shutdown, move |io| {
        let tls = tls.clone();
        async move {
            match tokio::time::timeout(deadline, tls.accept(io)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!("TLS handshake not finished within the header deadline");
                    None
                }
            }
        }
    })
    .await;
}

/// The accept loop; `open` turns an accepted connection into the stream HTTP is
/// spoken on (or drops it).
async fn serve_with<L, F, Fut, S>(
    mut listener: L,
    app: Router,
    options: ConnOptions,
    shutdown: impl Future<Output = ()>,
    open: F,
) where
    L: Listener,
    L::Io: Unpin,
    F: Fn(L::Io) -> Fut,
    Fut: Future<Output = Option<S>> + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        let opening = open(io);
        let (app, watcher, builder) = (app.clone(), graceful.watcher(), builder.clone());
        tokio::spawn(async move {
            if let Some(stream) = opening.await {
                let service = TowerToHyperService::new(app);
                let connection =
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running at shutdown were cut off");
    }
}

/// A TLS acceptor from PEM files: the certificate chain (leaf first) and its
/// private key. Errors name the file and what is wrong with it.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert {}: not a PEM certificate chain ({e})",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "--tls-cert {}: no certificate in it (expected PEM `BEGIN CERTIFICATE` blocks, \
             the server's first)",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "--tls-key {}: not a PEM private key (PKCS#8, PKCS#1 or SEC1) ({e})",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert {} and --tls-key {}: {e} (is the key the certificate's?)",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
