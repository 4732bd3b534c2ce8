//! `parley serve`'s server infrastructure, independent of the engine: configuration, API key,
//! session limit, `/healthz` and `/metrics`, signals and graceful shutdown. The engine plugs in
//! as a [`SessionRunner`], which gets each admitted session.
//!
//! ```text
//! TCP :8080 ── GET /healthz, /metrics ──> answered here
//!          └── upgrade /v1/realtime ── API key? (401) ── free slot? (error + 1013) ──> SessionRunner
//! ```
//!
//! Shutdown (Ctrl-C, SIGTERM, or the test trigger): stop accepting, raise every session's
//! [`ShutdownSignal`], wait up to `shutdown_grace` for the sessions to end (their connections
//! close with 1000), then close what is left with 1001.

pub mod auth;
pub mod config;
pub mod limit;
pub mod local;
pub mod metrics;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use parley_protocol::{HttpResponse, RealtimeServer, ServerConfig, ServerSession, UpgradeDecision};
use tokio::sync::watch;

use self::config::ServeConfig;
use self::limit::SessionSlots;
use self::metrics::{Metrics, RefusalReason};

/// Runs one session of the engine. Called once per admitted connection, on a tokio worker:
/// the future must not block (model work belongs on the engine's own threads).
///
/// The future should end when the client leaves (`session.recv()` gives `None`) or, after
/// `ctx.shutdown` fires, once the session has finished or cancelled its current response;
/// the connection then closes with 1000. A session still running at the end of the grace
/// period is closed with 1001.
pub trait SessionRunner: Send + Sync + 'static {
    fn run(
        &self,
        session: ServerSession,
        ctx: SessionContext,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// What a session gets besides its connection.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub peer_addr: SocketAddr,
    /// The `?model=` of the request, percent-decoded.
    pub model: Option<String>,
    /// Raised when the server starts shutting down.
    pub shutdown: ShutdownSignal,
    pub metrics: Metrics,
}

/// The server-is-stopping flag. Cheap to clone; usable from async code ([`wait`](Self::wait))
/// and from engine threads ([`is_raised`](Self::is_raised)).
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    flag: watch::Receiver<bool>,
}

impl ShutdownSignal {
    pub fn is_raised(&self) -> bool {
        *self.flag.borrow()
    }

    /// Resolves once the server is shutting down.
    pub async fn wait(&self) {
        let mut flag = self.flag.clone();
        // An error means the server is gone altogether, which is a shutdown too.
        let _ = flag.wait_for(|raised| *raised).await;
    }
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully. Binds `config.host:config.port`
/// and calls `ready` with the bound address once connections are accepted; prints nothing
/// itself.
pub async fn serve(
    config: ServeConfig,
    runner: Arc<dyn SessionRunner>,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    serve_until(config, runner, ready, termination_signal()).await
}

/// [`serve`] that shuts down when `trigger` resolves instead of on a signal (tests, embedding).
pub async fn serve_until(
    config: ServeConfig,
    runner: Arc<dyn SessionRunner>,
    ready: impl FnOnce(SocketAddr),
    trigger: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let slots = SessionSlots::new(config.max_sessions);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let transport = ServerConfig {
        // Room for refused connections on top of the sessions, so the over-limit client gets
        // its `error` event rather than the transport's bare 503.
        max_connections: ServerConfig::default()
            .max_connections
            .max(config.max_sessions * 2),
        ..ServerConfig::default()
    };
    let address = (config.host.as_str(), config.port);
    let server = RealtimeServer::bind(address, transport)
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?
        .with_upgrade_hook({
            let api_key = config.api_key.clone();
            let metrics = metrics.clone();
            move |request| {
                let decision = auth::check_bearer(api_key.as_ref(), request);
                if decision != UpgradeDecision::Accept {
                    metrics.session_refused(RefusalReason::Unauthorized);
                }
                decision
            }
        })
        .with_http_handler({
            let metrics = metrics.clone();
            let slots = slots.clone();
            move |path| http_route(path, &metrics, &slots)
        });
    let handle = server.handle();
    let handler = {
        let metrics = metrics.clone();
        let slots = slots.clone();
        move |session: ServerSession| {
            let runner = runner.clone();
            let slots = slots.clone();
            let metrics = metrics.clone();
            let shutdown = ShutdownSignal {
                flag: shutdown_rx.clone(),
            };
            async move {
                let Some(_slot) = slots.try_acquire() else {
                    tracing::info!(
                        peer = %session.info().peer_addr,
                        "session refused: {} sessions running", slots.max()
                    );
                    metrics.session_refused(RefusalReason::SessionLimit);
                    limit::refuse(session, slots.max()).await;
                    return;
                };
                let _active = metrics.session_opened();
                let info = session.info().clone();
                let ctx = SessionContext {
                    peer_addr: info.peer_addr,
                    model: info.model,
                    shutdown,
                    metrics,
                };
                runner.run(session, ctx).await;
            }
        }
    };
    let mut running = tokio::spawn(server.serve(handler));
    ready(handle.local_addr());

    tokio::select! {
        _ = trigger => {}
        // The server only ends by itself on a failure; nothing to shut down then.
        result = &mut running => return finished(result),
    }
    tracing::info!(
        "shutting down: {} session(s) get up to {:?} to finish",
        slots.active(),
        config.shutdown_grace
    );
    handle.stop_accepting();
    shutdown_tx.send_replace(true);
    match tokio::time::timeout(config.shutdown_grace, &mut running).await {
        Ok(result) => finished(result),
        Err(_) => {
            tracing::info!("grace period over; closing {} session(s)", slots.active());
            handle.shutdown();
            finished(running.await)
        }
    }
}

fn finished(
    result: Result<Result<(), parley_protocol::ProtocolError>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    result.context("the server task failed")??;
    Ok(())
}

/// `/healthz` and `/metrics`.
fn http_route(path: &str, metrics: &Metrics, slots: &SessionSlots) -> Option<HttpResponse> {
    match path {
        "/healthz" => {
            let body = serde_json::json!({
                "status": "ok",
                "sessions": slots.active(),
                "max_sessions": slots.max(),
            });
            Some(HttpResponse::json(200, body.to_string()))
        }
        "/metrics" => Some(HttpResponse::new(
            200,
            metrics::CONTENT_TYPE,
            metrics.render(),
        )),
        _ => None,
    }
}

/// Ctrl-C, or SIGTERM on Unix (what service managers and `docker stop` send).
async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot watch SIGTERM ({e}); stopping on Ctrl-C only"),
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        // Without any signal the server could never stop cleanly; run until killed.
        tracing::warn!("cannot watch Ctrl-C ({e}); stop the server by killing it");
        std::future::pending::<()>().await;
    }
}
