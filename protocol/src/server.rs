//! The WebSocket server: bind, accept (TCP_NODELAY), answer plain HTTP requests (see
//! [`crate::http`]), check the HTTP upgrade, hand each connection to the [`SessionHandler`],
//! shut down gracefully.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_protocol::ProtocolError> {
//! use parley_protocol::{RealtimeServer, ServerConfig, UpgradeDecision, loopback::Loopback};
//!
//! let server = RealtimeServer::bind("127.0.0.1:8080", ServerConfig::default())
//!     .await?
//!     .with_upgrade_hook(|request| match request.bearer_token() {
//!         Some("secret") => UpgradeDecision::Accept,
//!         _ => UpgradeDecision::reject(401, "missing or wrong bearer token"),
//!     });
//! let running = server.spawn(Loopback);
//! // ... later
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info, warn};

use crate::connection::{ConnectionInfo, SessionHandler, linger, run_connection, wait_until_true};
use crate::error::ProtocolError;
use crate::http::{self, HttpHandler, HttpResponse, Peeked};

/// Server settings. The defaults suit a local voice agent; see the README for what each limit
/// protects against.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The only path that is upgraded; others get 404.
    pub path: String,
    /// Largest accepted message (text or binary). Bigger: `error` event, then close 1009.
    pub max_message_bytes: usize,
    /// Connections served at once (including ones in the handshake); more get HTTP 503.
    pub max_connections: usize,
    /// Parsed client items waiting for the session handler.
    pub incoming_capacity: usize,
    /// Server items waiting for the writer (at 20 ms per audio delta, 128 = 2.56 s of audio).
    pub outgoing_capacity: usize,
    /// The server pings this often; also how often silence is checked.
    pub ping_interval: Duration,
    /// A peer that sends nothing (not even a pong) for this long is closed with 1008.
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long means the peer does not read: dropped.
    pub write_timeout: Duration,
    /// Time allowed for the HTTP request head and the upgrade (or the plain HTTP answer).
    pub handshake_timeout: Duration,
    /// Time allowed for the peer to answer our close frame.
    pub close_timeout: Duration,
    /// Time a session handler gets to return after its connection closed before it is aborted.
    pub handler_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            path: "/v1/realtime".to_owned(),
            max_message_bytes: 1 << 20,
            max_connections: 64,
            incoming_capacity: 64,
            outgoing_capacity: 128,
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            handler_grace: Duration::from_secs(5),
        }
    }
}

/// The HTTP upgrade request, as the upgrade hook sees it.
#[derive(Debug)]
pub struct UpgradeRequest<'a> {
    peer_addr: SocketAddr,
    request: &'a Request,
}

impl UpgradeRequest<'_> {
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    pub fn path(&self) -> &str {
        self.request.uri().path()
    }

    /// A query parameter, percent-decoded (`model` for `?model=...`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.request.uri().query()?, name)
    }

    pub fn model(&self) -> Option<String> {
        self.query_param("model")
    }

    /// A header value, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers().get(name)?.to_str().ok()
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }
}

/// What the upgrade hook decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeDecision {
    Accept,
    /// Answer with this HTTP response instead of upgrading (e.g. 401, 403, 503).
    Reject(HttpResponse),
}

impl UpgradeDecision {
    /// Rejects with a plain-text body.
    pub fn reject(status: u16, body: impl Into<String>) -> Self {
        UpgradeDecision::Reject(HttpResponse::text(status, body))
    }

    /// Rejects with a JSON body (`body` is JSON text), as OpenAI-style clients expect.
    pub fn reject_json(status: u16, body: impl Into<String>) -> Self {
        UpgradeDecision::Reject(HttpResponse::json(status, body))
    }
}

type UpgradeHook = Arc<dyn Fn(&UpgradeRequest<'_>) -> UpgradeDecision + Send + Sync>;

/// State shared by the accept loop, the connections and every [`ServerHandle`].
#[derive(Debug)]
struct Shared {
    live_connections: AtomicUsize,
    next_connection_id: AtomicU64,
    /// Set: the accept loop ends, open connections go on.
    stop_accepting: watch::Sender<bool>,
    /// Set: the accept loop ends and open connections are closed with 1001.
    shutdown: watch::Sender<bool>,
}

/// Counts a connection as live from accept until its task ends, however it ends.
struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A bound server, not yet serving.
pub struct RealtimeServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Arc<ServerConfig>,
    hook: Option<UpgradeHook>,
    http: Option<HttpHandler>,
    shared: Arc<Shared>,
}

impl RealtimeServer {
    /// Binds the listening socket.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: ServerConfig,
    ) -> Result<Self, ProtocolError> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let (stop_accepting, _) = watch::channel(false);
        Ok(RealtimeServer {
            listener,
            local_addr,
            config: Arc::new(config),
            hook: None,
            http: None,
            shared: Arc::new(Shared {
                live_connections: AtomicUsize::new(0),
                next_connection_id: AtomicU64::new(1),
                stop_accepting,
                shutdown,
            }),
        })
    }

    /// Installs the upgrade hook: called for every upgrade request on the right path, before
    /// the WebSocket is accepted (auth, admission control). It runs inside the handshake, so it
    /// must be quick and must not block.
    pub fn with_upgrade_hook(
        mut self,
        hook: impl Fn(&UpgradeRequest<'_>) -> UpgradeDecision + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Installs the handler for plain HTTP requests on the same port (health checks, metrics):
    /// called with the path (no query) of every `GET`/`HEAD` that is not a WebSocket upgrade;
    /// `None` answers 404. Like the hook, it must be quick and must not block.
    pub fn with_http_handler(
        mut self,
        handler: impl Fn(&str) -> Option<HttpResponse> + Send + Sync + 'static,
    ) -> Self {
        self.http = Some(Arc::new(handler));
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to watch and stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
        }
    }

    /// Accepts connections until [`ServerHandle::shutdown`] (or
    /// [`ServerHandle::stop_accepting`]), then returns when every connection has ended. After
    /// `shutdown` the open connections are closed with 1001; after `stop_accepting` they go on
    /// until their sessions end (or a later `shutdown`).
    pub async fn serve<H: SessionHandler>(self, handler: H) -> Result<(), ProtocolError> {
        let RealtimeServer {
            listener,
            local_addr,
            config,
            hook,
            http,
            shared,
        } = self;
        let handler = Arc::new(handler);
        let mut shutdown = shared.shutdown.subscribe();
        let mut stop_accepting = shared.stop_accepting.subscribe();
        let mut connections = JoinSet::new();
        info!(
            "serving the realtime API on ws://{local_addr}{}",
            config.path
        );
        loop {
            tokio::select! {
                _ = wait_until_true(&mut shutdown) => break,
                _ = wait_until_true(&mut stop_accepting) => break,
                // Reap finished connection tasks so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer_addr)) => {
                        shared.live_connections.fetch_add(1, Ordering::SeqCst);
                        let guard = LiveGuard(shared.clone());
                        connections.spawn(accept_connection(
                            tcp,
                            peer_addr,
                            guard,
                            handler.clone(),
                            config.clone(),
                            hook.clone(),
                            http.clone(),
                            shared.clone(),
                        ));
                    }
                    Err(e) => {
                        // Usually out of file descriptors; back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        info!(
            "shutting down; waiting for {} connection(s)",
            connections.len()
        );
        while connections.join_next().await.is_some() {}
        Ok(())
    }

    /// Runs [`serve`](Self::serve) on a new task.
    pub fn spawn<H: SessionHandler>(self, handler: H) -> RunningServer {
        let handle = self.handle();
        let task = tokio::spawn(self.serve(handler));
        RunningServer { handle, task }
    }
}

/// Watches and stops a server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections accepted and not yet finished (including ones in the handshake).
    pub fn live_connections(&self) -> usize {
        self.shared.live_connections.load(Ordering::SeqCst)
    }

    /// Asks the server to stop: no new connections, close 1001 for the open ones.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Closes the listener (new connections are refused) but lets open connections run: the
    /// first step of a graceful shutdown. [`shutdown`](Self::shutdown) closes them later.
    pub fn stop_accepting(&self) {
        self.shared.stop_accepting.send_replace(true);
    }
}

/// A server serving on its own task.
pub struct RunningServer {
    handle: ServerHandle,
    task: JoinHandle<Result<(), ProtocolError>>,
}

impl RunningServer {
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr
    }

    pub fn live_connections(&self) -> usize {
        self.handle.live_connections()
    }

    /// Stops the server and waits until every connection has ended.
    pub async fn shutdown(self) -> Result<(), ProtocolError> {
        self.handle.shutdown();
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ProtocolError::Io(std::io::Error::other(format!(
                "server task failed: {e}"
            )))),
        }
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
async fn accept_connection<H: SessionHandler>(
    tcp: TcpStream,
    peer_addr: SocketAddr,
    _live: LiveGuard,
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    hook: Option<UpgradeHook>,
    http_handler: Option<HttpHandler>,
    shared: Arc<Shared>,
) {
    // Audio frames are small and latency matters more than packet count.
    if let Err(e) = tcp.set_nodelay(true) {
        debug!("TCP_NODELAY failed for {peer_addr}: {e}");
    }
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    // Upgrades go on to tungstenite; everything else is answered here.
    let (head, response) = match tokio::time::timeout_at(deadline, http::peek_head(&tcp)).await {
        Ok(Ok(Peeked::Head(head))) if head.wants_websocket => (None, None),
        Ok(Ok(Peeked::Head(head))) => {
            let response = http::route(&head, &config.path, http_handler.as_deref());
            (Some(head), Some(response))
        }
        Ok(Ok(Peeked::Malformed)) => (None, Some(HttpResponse::text(400, "not an HTTP request"))),
        Ok(Ok(Peeked::TooLarge)) => (
            None,
            Some(HttpResponse::text(431, "request head too large")),
        ),
        Ok(Ok(Peeked::Closed)) | Ok(Err(_)) => return,
        Err(_) => {
            debug!("request head from {peer_addr} timed out");
            return;
        }
    };
    if let Some(response) = response {
        debug!(%peer_addr, path = ?head.as_ref().map(|h| &h.path), status = response.status, "plain HTTP request");
        match http::respond(tcp, head.as_ref(), &response, config.write_timeout).await {
            Ok(tcp) => linger(tcp, config.close_timeout).await,
            Err(e) => debug!("HTTP response to {peer_addr} failed: {e}"),
        }
        return;
    }
    let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let mut accepted: Option<ConnectionInfo> = None;
    #[allow(clippy::result_large_err)] // the error type is tungstenite's callback contract
    let callback = |request: &Request, response: Response| {
        check_upgrade(
            request,
            response,
            peer_addr,
            id,
            &config,
            hook.as_deref(),
            &shared,
            &mut accepted,
        )
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(ws_config));
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!("upgrade from {peer_addr} failed: {e}");
            return;
        }
        Err(_) => {
            debug!("upgrade from {peer_addr} timed out");
            return;
        }
    };
    let Some(info) = accepted else {
        // Only reachable if tungstenite accepted without calling the callback, which it does not.
        return;
    };
    debug!(connection = id, %peer_addr, model = ?info.model, "connection accepted");
    let shutdown = shared.shutdown.subscribe();
    run_connection(ws, info, handler, config, shutdown).await;
}

/// The upgrade callback: path, capacity, then the hook.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
#[allow(clippy::result_large_err)] // the error type is tungstenite's callback contract
fn check_upgrade(
    request: &Request,
    response: Response,
    peer_addr: SocketAddr,
    id: u64,
    config: &ServerConfig,
    hook: Option<&(dyn Fn(&UpgradeRequest<'_>) -> UpgradeDecision + Send + Sync)>,
    shared: &Shared,
    accepted: &mut Option<ConnectionInfo>,
) -> Result<Response, ErrorResponse> {
    let path = request.uri().path();
    if path != config.path {
        return Err(http_error(HttpResponse::text(
            404,
            format!("no WebSocket endpoint at {path}; use {}", config.path),
        )));
    }
    // The count includes this connection.
    if shared.live_connections.load(Ordering::SeqCst) > config.max_connections {
        return Err(http_error(HttpResponse::text(
            503,
            "server is at its connection limit",
        )));
    }
    let upgrade = UpgradeRequest { peer_addr, request };
    if let Some(hook) = hook
        && let UpgradeDecision::Reject(response) = hook(&upgrade)
    {
        return Err(http_error(response));
    }
    *accepted = Some(ConnectionInfo {
        id,
        peer_addr,
        path: path.to_owned(),
        model: upgrade.model(),
    });
    Ok(response)
}

fn http_error(rejection: HttpResponse) -> ErrorResponse {
    let HttpResponse {
        status,
        content_type,
        body,
    } = rejection;
    let content_length = body.len();
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Header values that are not valid text are left out rather than failing the rejection.
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(content_length));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Finds `name` in a query string and percent-decodes its value (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_and_decoded() {
        let q = "foo=1&model=gpt-realtime%2Dmini&x=a+b&empty";
        assert_eq!(
            query_param(q, "model").as_deref(),
            Some("gpt-realtime-mini")
        );
        assert_eq!(query_param(q, "x").as_deref(), Some("a b"));
        assert_eq!(query_param(q, "empty").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        // Broken escapes are kept as text, not dropped.
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let request = Request::builder()
            .uri("/v1/realtime?model=m")
            .header("Authorization", "bearer  tok123 ")
            .body(())
            .unwrap();
        let upgrade = UpgradeRequest {
            peer_addr: "127.0.0.1:1".parse().unwrap(),
            request: &request,
        };
        assert_eq!(upgrade.bearer_token(), Some("tok123"));
        assert_eq!(upgrade.model().as_deref(), Some("m"));
        assert_eq!(upgrade.path(), "/v1/realtime");
    }
}
