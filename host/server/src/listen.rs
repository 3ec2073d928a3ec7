//! Serving connections with hyper's HTTP/1 directly (not `axum::serve`), for
//! what a server facing careless or hostile clients needs: a deadline to send a
//! request's headers, which also closes keep-alive connections left idle
//! (slowloris, hold-open), a cap on open connections (the next one waits in the
//! listen backlog until one closes), and a graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

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
    mut listener: L,
    app: Router,
    options: ConnOptions,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    L::Io: Unpin,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
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
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
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
