//! The serve loop over real sockets, with an echo [`SessionRunner`] as the test fixture for the
//! infrastructure (the engine is tested on its own): health and metrics routes, API key, session
//! limit, graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_protocol::loopback;
use parley_protocol::{
    ClientEvent, ProtocolError, RealtimeClient, ServerEvent, ServerSession, close,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::auth::ApiKey;
use super::config::ServeConfig;
use super::limit::SESSION_LIMIT_REACHED;
use super::{SessionContext, SessionRunner, serve_until};

/// Echoes audio (the protocol's loopback session). With `honors_shutdown` it ends its session
/// as soon as the server shuts down; without, it runs on until the connection is closed. It
/// counts one turn per session through its context's metrics handle, so tests can see that the
/// handle feeds `/metrics`.
struct EchoRunner {
    honors_shutdown: bool,
    models_seen: Mutex<Vec<Option<String>>>,
}

impl EchoRunner {
    fn new(honors_shutdown: bool) -> Arc<Self> {
        Arc::new(EchoRunner {
            honors_shutdown,
            models_seen: Mutex::new(Vec::new()),
        })
    }
}

impl SessionRunner for EchoRunner {
    fn run(
        &self,
        session: ServerSession,
        ctx: SessionContext,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        self.models_seen.lock().unwrap().push(ctx.model.clone());
        assert_eq!(ctx.peer_addr, session.info().peer_addr);
        assert!(!ctx.shutdown.is_raised());
        ctx.metrics.turn();
        let honors_shutdown = self.honors_shutdown;
        Box::pin(async move {
            tokio::select! {
                _ = loopback::run(session) => {}
                _ = ctx.shutdown.wait(), if honors_shutdown => {
                    // A panic here would close with 1011 and fail the test.
                    assert!(ctx.shutdown.is_raised());
                }
            }
        })
    }
}

struct TestServer {
    addr: SocketAddr,
    trigger: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start(config: ServeConfig, runner: Arc<dyn SessionRunner>) -> TestServer {
    let (addr_tx, addr_rx) = oneshot::channel();
    let (trigger, trigger_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(
        config,
        runner,
        move |addr| {
            let _ = addr_tx.send(addr);
        },
        async move {
            let _ = trigger_rx.await;
        },
    ));
    let addr = addr_rx.await.expect("ready is called");
    TestServer {
        addr,
        trigger,
        task,
    }
}

fn config() -> ServeConfig {
    ServeConfig {
        port: 0,
        ..ServeConfig::defaults()
    }
}

impl TestServer {
    fn url(&self) -> String {
        format!("ws://{}/v1/realtime?model=parley%2Dtest", self.addr)
    }

    async fn connect(&self, key: Option<&str>) -> Result<RealtimeClient, ProtocolError> {
        RealtimeClient::connect(&self.url(), key.map(str::to_owned)).await
    }

    /// `GET path`: status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let mut tcp = TcpStream::connect(self.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut bytes))
            .await
            .expect("answer and close")
            .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head[9..12].parse().unwrap(), body.to_owned())
    }

    async fn sessions(&self) -> u64 {
        let (status, body) = self.get("/healthz").await;
        assert_eq!(status, 200);
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "ok");
        health["sessions"].as_u64().unwrap()
    }

    async fn wait_for_sessions(&self, expected: u64) {
        let start = Instant::now();
        while self.sessions().await != expected {
            assert!(start.elapsed() < Duration::from_secs(5), "sessions stuck");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The value of one exposition line, e.g. `parley_sessions_total`.
    async fn metric(&self, series: &str) -> f64 {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing from\n{body}"))
            .parse()
            .unwrap()
    }

    async fn stop(self) -> Duration {
        let start = Instant::now();
        self.trigger.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("shutdown hung")
            .unwrap()
            .unwrap();
        start.elapsed()
    }
}

/// Consumes `session.created`.
async fn opened(client: Result<RealtimeClient, ProtocolError>) -> RealtimeClient {
    let mut client = client.expect("connected");
    match client.next_event().await {
        Some(ServerEvent::SessionCreated(created)) => {
            assert_eq!(created.session.model.as_deref(), Some("parley-test"))
        }
        other => panic!("expected session.created, got {other:?}"),
    }
    client
}

async fn assert_echoes(client: &mut RealtimeClient) {
    // A PCM16 value, so the echo through the wire format is exact.
    let samples = vec![parley_audio_io::pcm::i16_to_f32(16_384); 480];
    client
        .send(&ClientEvent::append_audio(&samples))
        .await
        .unwrap();
    match client.next_event().await {
        Some(ServerEvent::ResponseOutputAudioDelta(delta)) => {
            assert_eq!(delta.delta.to_samples(), samples)
        }
        other => panic!("expected the echo, got {other:?}"),
    }
}

/// Reads until the server closes; its close code.
async fn close_code(mut client: RealtimeClient) -> u16 {
    tokio::time::timeout(Duration::from_secs(10), async {
        while client.recv().await.is_some() {}
    })
    .await
    .expect("the server closes");
    client.close_info().expect("a close frame").code
}

fn rejection(result: Result<RealtimeClient, ProtocolError>) -> (u16, serde_json::Value) {
    match result {
        Err(ProtocolError::Rejected { status, body }) => {
            (status, serde_json::from_str(&body).expect("a JSON body"))
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_report_the_sessions() {
    let runner = EchoRunner::new(true);
    let server = start(config(), runner.clone()).await;
    assert_eq!(server.sessions().await, 0);
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["max_sessions"], 4);

    let mut client = opened(server.connect(None).await).await;
    assert_echoes(&mut client).await;
    assert_eq!(server.sessions().await, 1);
    assert_eq!(server.metric("parley_sessions_active").await, 1.0);
    assert_eq!(server.metric("parley_sessions_total").await, 1.0);
    assert_eq!(server.metric("parley_turns_total").await, 1.0);
    let (_, exposition) = server.get("/metrics").await;
    assert!(exposition.contains(r#"parley_stage_latency_seconds_count{stage="voice_to_voice"} 0"#));
    assert!(exposition.ends_with("# EOF\n"));
    assert_eq!(
        runner.models_seen.lock().unwrap().as_slice(),
        &[Some("parley-test".to_owned())]
    );

    client.close().await.unwrap();
    server.wait_for_sessions(0).await;
    assert_eq!(server.metric("parley_sessions_active").await, 0.0);
    assert_eq!(server.get("/nope").await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_api_key_gets_401_and_no_session() {
    let runner = EchoRunner::new(true);
    let server = start(
        ServeConfig {
            api_key: Some(ApiKey::new("k-123").unwrap()),
            ..config()
        },
        runner.clone(),
    )
    .await;

    let (status, body) = rejection(server.connect(None).await);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let (status, body) = rejection(server.connect(Some("k-124")).await);
    assert_eq!(status, 401);
    assert!(
        !body.to_string().contains("k-12"),
        "the key must not be echoed"
    );
    // No session ran for either.
    assert!(runner.models_seen.lock().unwrap().is_empty());
    assert_eq!(server.sessions().await, 0);
    assert_eq!(
        server
            .metric(r#"parley_sessions_refused_total{reason="unauthorized"}"#)
            .await,
        2.0
    );

    let mut client = opened(server.connect(Some("k-123")).await).await;
    assert_echoes(&mut client).await;
    // The health and metrics routes stay open without a key (probes carry none).
    assert_eq!(server.get("/metrics").await.0, 200);
    client.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_beyond_the_limit_is_refused_while_the_others_keep_working() {
    let runner = EchoRunner::new(true);
    let server = start(
        ServeConfig {
            max_sessions: 2,
            ..config()
        },
        runner.clone(),
    )
    .await;
    let mut first = opened(server.connect(None).await).await;
    let mut second = opened(server.connect(None).await).await;

    let mut third = server.connect(None).await.expect("upgraded, then refused");
    match third.next_event().await {
        Some(ServerEvent::Error(error)) => {
            assert_eq!(error.error.code.as_deref(), Some(SESSION_LIMIT_REACHED));
            assert!(
                error
                    .error
                    .message
                    .contains("maximum of 2 concurrent sessions"),
                "{}",
                error.error.message
            );
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while third.recv().await.is_some() {}
        third.close_info().cloned()
    })
    .await
    .unwrap()
    .expect("a close frame");
    assert_eq!(closed.code, close::TRY_AGAIN_LATER);
    assert!(closed.reason.contains('2'), "{}", closed.reason);

    // The running sessions did not notice.
    assert_echoes(&mut first).await;
    assert_echoes(&mut second).await;
    assert_eq!(server.sessions().await, 2);
    assert_eq!(runner.models_seen.lock().unwrap().len(), 2);
    assert_eq!(
        server
            .metric(r#"parley_sessions_refused_total{reason="session_limit"}"#)
            .await,
        1.0
    );

    // A slot frees when a client leaves.
    first.close().await.unwrap();
    server.wait_for_sessions(1).await;
    let mut fourth = opened(server.connect(None).await).await;
    assert_echoes(&mut fourth).await;
    assert_echoes(&mut second).await;
    assert_eq!(server.metric("parley_sessions_total").await, 3.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_sessions_finish_then_stops_accepting() {
    let server = start(
        ServeConfig {
            shutdown_grace: Duration::from_secs(5),
            ..config()
        },
        EchoRunner::new(true),
    )
    .await;
    let mut client = opened(server.connect(None).await).await;
    assert_echoes(&mut client).await;
    let addr = server.addr;
    let closing = tokio::spawn(close_code(client));
    let took = server.stop().await;
    // The session ended by itself on the signal: a normal close, well before the grace ran out.
    assert_eq!(closing.await.unwrap(), close::NORMAL);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_still_running_after_the_grace_period_are_closed_with_1001() {
    let grace = Duration::from_millis(600);
    let server = start(
        ServeConfig {
            shutdown_grace: grace,
            ..config()
        },
        EchoRunner::new(false),
    )
    .await;
    let mut client = opened(server.connect(None).await).await;
    assert_echoes(&mut client).await;
    let closing = tokio::spawn(close_code(client));
    let took = server.stop().await;
    assert_eq!(closing.await.unwrap(), close::GOING_AWAY);
    assert!(
        took >= grace,
        "closed after {took:?}, before the grace period"
    );
    assert!(took < grace + Duration::from_secs(3), "took {took:?}");
}
