//! Plain HTTP routes on the WebSocket's port, JSON upgrade rejections, and `stop_accepting`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parley_protocol::loopback::Loopback;
use parley_protocol::{
    HttpResponse, ProtocolError, RealtimeClient, RealtimeServer, RunningServer, ServerConfig,
    ServerEvent, UpgradeDecision,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP/1.1 response read until the server closed.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is (bytes may be split in `parts` sent 30 ms apart) and reads the reply.
async fn raw_request(server: &RunningServer, parts: &[&str]) -> Reply {
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        tcp.write_all(part.as_bytes()).await.unwrap();
    }
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut bytes))
        .await
        .expect("the server must answer and close")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|line| {
            let (n, v) = line.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n")
}

async fn start_with_routes(calls: Arc<AtomicUsize>) -> RunningServer {
    RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .with_http_handler(move |path| {
            calls.fetch_add(1, Ordering::SeqCst);
            match path {
                "/healthz" => Some(HttpResponse::json(200, r#"{"status":"ok"}"#)),
                "/metrics" => Some(HttpResponse::new(200, "text/plain; version=0.0.4", "x 1\n")),
                _ => None,
            }
        })
        .spawn(Loopback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_routes_share_the_port_with_the_websocket() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = start_with_routes(calls.clone()).await;

    let health = raw_request(&server, &[&get("/healthz?probe=1")]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.header("connection"), Some("close"));
    assert_eq!(health.header("content-length"), Some("15"));
    assert_eq!(health.body, r#"{"status":"ok"}"#);

    let metrics = raw_request(&server, &[&get("/metrics")]).await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.body, "x 1\n");

    // A head that arrives in pieces is waited for.
    let split = raw_request(
        &server,
        &["GET /healthz HT", "TP/1.1\r\nHost: x\r\n", "\r\n"],
    )
    .await;
    assert_eq!(split.status, 200);

    // HEAD: same headers, no body.
    let head = raw_request(&server, &["HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("15"));
    assert_eq!(head.body, "");

    let missing = raw_request(&server, &[&get("/nope")]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("/nope"), "{}", missing.body);

    let post = raw_request(
        &server,
        &["POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"],
    )
    .await;
    assert_eq!(post.status, 405);

    // The WebSocket path without an upgrade says what it is.
    let plain_ws = raw_request(&server, &[&get("/v1/realtime")]).await;
    assert_eq!(plain_ws.status, 426);

    let garbage = raw_request(&server, &["hello there\r\n\r\n"]).await;
    assert_eq!(garbage.status, 400);

    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let too_large = raw_request(&server, &[&huge_header]).await;
    assert_eq!(too_large.status, 431);

    // GET and HEAD of /healthz, /metrics, /nope: the handler saw exactly those.
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // And the WebSocket still works on the same port.
    let url = format!("ws://{}/v1/realtime?model=m", server.local_addr());
    let mut client = RealtimeClient::connect(&url, None).await.unwrap();
    assert!(matches!(
        client.next_event().await,
        Some(ServerEvent::SessionCreated(_))
    ));
    client.close().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rejections_reach_the_client_with_their_status_and_body() {
    let body =
        r#"{"error":{"type":"invalid_request_error","code":"invalid_api_key","message":"no"}}"#;
    let server = RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .with_upgrade_hook(move |_| UpgradeDecision::reject_json(401, body))
        .spawn(Loopback);
    let url = format!("ws://{}/v1/realtime", server.local_addr());
    match RealtimeClient::connect(&url, None).await {
        Err(ProtocolError::Rejected { status, body: got }) => {
            assert_eq!(status, 401);
            assert_eq!(got, body);
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected despite the rejection"),
    }
    // Raw: the content type says JSON.
    let upgrade = "GET /v1/realtime HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let reply = raw_request(&server, &[upgrade]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, body);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_accepting_refuses_new_connections_but_keeps_open_ones() {
    let server = RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .spawn(Loopback);
    let url = format!("ws://{}/v1/realtime", server.local_addr());
    let mut client = RealtimeClient::connect(&url, None).await.unwrap();
    assert!(client.next_event().await.is_some());

    server.handle().stop_accepting();
    // The listener closes once the accept loop has seen the flag.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(server.local_addr()).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The open session still echoes.
    let samples = vec![0.25f32; 480];
    client
        .send(&parley_protocol::ClientEvent::append_audio(&samples))
        .await
        .unwrap();
    match client.next_event().await {
        Some(ServerEvent::ResponseOutputAudioDelta(delta)) => {
            assert_eq!(delta.delta.to_samples().len(), 480)
        }
        other => panic!("expected an echo, got {other:?}"),
    }
    assert_eq!(server.live_connections(), 1);

    // A later shutdown closes it with 1001.
    let reader = tokio::spawn(async move {
        while client.recv().await.is_some() {}
        client.close_info().cloned()
    });
    server.shutdown().await.unwrap();
    let closed = reader.await.unwrap().expect("a close frame");
    assert_eq!(closed.code, parley_protocol::close::GOING_AWAY);
}
