//! The WebSocket transport end to end, on 127.0.0.1 only: a loopback server and real clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use parley_audio_io::constants::{WIRE_PCM_RATE, frame_samples};
use parley_audio_io::pcm::i16_to_f32;
use parley_protocol::close;
use parley_protocol::events::{InputAudioBufferAppend, ResponseOutputAudioDelta, SessionUpdate};
use parley_protocol::loopback::{LOOPBACK_ITEM_ID, LOOPBACK_RESPONSE_ID, Loopback};
use parley_protocol::session::{BinaryAudioConfig, ParleySessionConfig, SessionConfig};
use parley_protocol::{
    AudioFrame, BinaryCodec, ClientEvent, ProtocolError, RealtimeClient, RealtimeServer,
    RunningServer, ServerConfig, ServerEvent, ServerHandle, ServerItem, ServerSession,
    UpgradeDecision,
};
use tokio_tungstenite::tungstenite::Message;

const FRAME: usize = frame_samples(WIRE_PCM_RATE); // 480 samples = 20 ms
const FRAME_PERIOD: Duration = Duration::from_millis(20);
const TEN_SECONDS_OF_FRAMES: usize = 500;

/// Audio whose values survive f32 -> PCM16 -> f32 exactly, so echoes can be compared with `==`.
/// A sweep plus a frame-dependent offset so that a lost or reordered frame cannot match.
fn frame_audio(frame_index: usize) -> Vec<f32> {
    (0..FRAME)
        .map(|i| {
            let t = (frame_index * FRAME + i) as f64;
            let v = 20_000.0 * (t * t * 1e-7).sin() + (frame_index % 97) as f64 * 50.0;
            i16_to_f32(v.round() as i16)
        })
        .collect()
}

async fn start(config: ServerConfig) -> RunningServer {
    RealtimeServer::bind("127.0.0.1:0", config)
        .await
        .unwrap()
        .spawn(Loopback)
}

fn url(server: &ServerHandle) -> String {
    format!("ws://{}/v1/realtime?model=loop%2D1", server.local_addr())
}

/// Connects and consumes `session.created`.
async fn connect(server: &ServerHandle) -> RealtimeClient {
    let mut client = RealtimeClient::connect(&url(server), None).await.unwrap();
    match client.next_event().await {
        Some(ServerEvent::SessionCreated(created)) => {
            assert_eq!(created.session.model.as_deref(), Some("loop-1"));
        }
        other => panic!("expected session.created, got {other:?}"),
    }
    client
}

/// Polls until the server's live-connection count is `expected`.
async fn wait_for_live(server: &ServerHandle, expected: usize, limit: Duration) {
    let start = Instant::now();
    while server.live_connections() != expected {
        assert!(
            start.elapsed() < limit,
            "live connections stuck at {} (expected {expected})",
            server.live_connections()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends an append and checks the exact echo.
async fn assert_echo_works(client: &mut RealtimeClient) {
    let samples = frame_audio(3);
    client
        .send(&ClientEvent::append_audio(&samples))
        .await
        .unwrap();
    loop {
        match client.next_event().await {
            Some(ServerEvent::ResponseOutputAudioDelta(delta)) => {
                assert_eq!(delta.delta.to_samples(), samples);
                return;
            }
            Some(_) => continue,
            None => panic!("connection ended before the echo"),
        }
    }
}

struct StreamStats {
    elapsed: Duration,
    max_latency: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_audio_streams_ten_seconds_in_real_time_without_loss() {
    let server = start(ServerConfig::default()).await;
    let client = connect(server.handle()).await;
    let (mut tx, mut rx) = client.split();

    let start = tokio::time::Instant::now();
    let sender = tokio::spawn(async move {
        for k in 0..TEN_SECONDS_OF_FRAMES {
            // Absolute deadlines: a late frame does not push the later ones back.
            tokio::time::sleep_until(start + FRAME_PERIOD * k as u32).await;
            let event = ClientEvent::InputAudioBufferAppend(InputAudioBufferAppend {
                event_id: Some(format!("a{k}")),
                audio: parley_protocol::Pcm16Audio::from_samples(&frame_audio(k)),
            });
            tx.send(&event).await.unwrap();
        }
        tx
    });

    let mut received: Vec<f32> = Vec::with_capacity(TEN_SECONDS_OF_FRAMES * FRAME);
    let mut max_latency = Duration::ZERO;
    let mut frames = 0;
    while frames < TEN_SECONDS_OF_FRAMES {
        let item = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("echo stalled")
            .expect("connection ended")
            .unwrap();
        let ServerItem::Event(ServerEvent::ResponseOutputAudioDelta(ResponseOutputAudioDelta {
            response_id,
            item_id,
            delta,
            ..
        })) = item
        else {
            panic!("unexpected {item:?}");
        };
        assert_eq!(
            (response_id.as_str(), item_id.as_str()),
            (LOOPBACK_RESPONSE_ID, LOOPBACK_ITEM_ID)
        );
        assert_eq!(delta.sample_count(), FRAME);
        max_latency = max_latency.max(start.elapsed().saturating_sub(FRAME_PERIOD * frames as u32));
        delta.append_samples(&mut received);
        frames += 1;
    }
    let stats = StreamStats {
        elapsed: start.elapsed(),
        max_latency,
    };
    let tx = sender.await.unwrap();

    let expected: Vec<f32> = (0..TEN_SECONDS_OF_FRAMES).flat_map(frame_audio).collect();
    assert_eq!(received.len(), expected.len());
    assert!(
        received == expected,
        "echoed samples differ from the sent ones"
    );
    check_real_time(&stats);

    drop(tx);
    drop(rx);
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_pcm16_streams_ten_seconds_in_real_time_without_loss() {
    let server = start(ServerConfig::default()).await;
    let mut client = connect(server.handle()).await;

    // Negotiate: binary frames are refused until session.updated confirms them.
    let update = ClientEvent::SessionUpdate(SessionUpdate {
        event_id: Some("bin".into()),
        session: Box::new(SessionConfig {
            parley: Some(ParleySessionConfig {
                binary_audio: Some(BinaryAudioConfig {
                    enabled: true,
                    codec: BinaryCodec::Pcm16,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    });
    client.send(&update).await.unwrap();
    match client.next_event().await {
        Some(ServerEvent::SessionUpdated(updated)) => {
            assert_eq!(updated.session.binary_codec(), Some(BinaryCodec::Pcm16));
        }
        other => panic!("expected session.updated, got {other:?}"),
    }

    let (mut tx, mut rx) = client.split();
    let start = tokio::time::Instant::now();
    let sender = tokio::spawn(async move {
        for k in 0..TEN_SECONDS_OF_FRAMES {
            tokio::time::sleep_until(start + FRAME_PERIOD * k as u32).await;
            let frame = AudioFrame::pcm16(1000 + k as u32, (k * FRAME) as u64, 0, &frame_audio(k));
            tx.send_binary(&frame).await.unwrap();
        }
        tx
    });

    let mut received: Vec<f32> = Vec::with_capacity(TEN_SECONDS_OF_FRAMES * FRAME);
    let mut max_latency = Duration::ZERO;
    for k in 0..TEN_SECONDS_OF_FRAMES {
        let item = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("echo stalled")
            .expect("connection ended")
            .unwrap();
        let ServerItem::Audio(frame) = item else {
            panic!("unexpected {item:?}");
        };
        // The server numbers its own frames from 0; the timestamp is carried through.
        assert_eq!(frame.sequence, k as u32);
        assert_eq!(frame.timestamp, (k * FRAME) as u64);
        max_latency = max_latency.max(start.elapsed().saturating_sub(FRAME_PERIOD * k as u32));
        frame.append_pcm16_samples(&mut received).unwrap();
    }
    let stats = StreamStats {
        elapsed: start.elapsed(),
        max_latency,
    };
    let tx = sender.await.unwrap();

    let expected: Vec<f32> = (0..TEN_SECONDS_OF_FRAMES).flat_map(frame_audio).collect();
    assert!(
        received == expected,
        "echoed samples differ from the sent ones"
    );
    check_real_time(&stats);

    drop(tx);
    drop(rx);
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;
    server.shutdown().await.unwrap();
}

fn check_real_time(stats: &StreamStats) {
    eprintln!(
        "10 s stream: elapsed {:?}, worst echo latency {:?}",
        stats.elapsed, stats.max_latency
    );
    // The last frame leaves at 9.98 s, so the stream cannot finish earlier; a transport that
    // buffered or stalled would finish late or show a large echo latency.
    assert!(
        stats.elapsed >= Duration::from_millis(9_980),
        "{:?}",
        stats.elapsed
    );
    assert!(
        stats.elapsed < Duration::from_secs(12),
        "{:?}",
        stats.elapsed
    );
    assert!(
        stats.max_latency < Duration::from_secs(1),
        "{:?}",
        stats.max_latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_frees_connections_dropped_mid_stream_and_keeps_serving() {
    let server = start(ServerConfig::default()).await;

    // 1. A client whose socket resets (SO_LINGER 0): no close frame, no FIN.
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    #[allow(deprecated)] // blocking on drop is the point: we want an immediate reset
    tcp.set_linger(Some(Duration::ZERO)).unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url(server.handle()), tcp)
        .await
        .unwrap();
    for k in 0..25 {
        let text = serde_json::to_string(&ClientEvent::append_audio(&frame_audio(k))).unwrap();
        ws.send(Message::text(text)).await.unwrap();
    }
    wait_for_live(server.handle(), 1, Duration::from_secs(1)).await;
    drop(ws);
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;

    // 2. A client that just drops its connection (FIN, no close frame) while streaming.
    let client = connect(server.handle()).await;
    let (mut tx, rx) = client.split();
    for k in 0..25 {
        tx.send(&ClientEvent::append_audio(&frame_audio(k)))
            .await
            .unwrap();
    }
    drop(tx);
    drop(rx);
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;

    // 3. The server still works.
    let mut client = connect(server.handle()).await;
    assert_echo_works(&mut client).await;
    client.close().await.unwrap();
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_gets_an_error_event_and_close_1009() {
    let config = ServerConfig {
        max_message_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    let server = start(config).await;
    let mut client = connect(server.handle()).await;

    // 50 000 samples = 100 kB of PCM16 = 133 kB of base64: over the 64 KiB limit.
    let big = ClientEvent::append_audio(&vec![0.25; 50_000]);
    client.send(&big).await.unwrap();

    let mut codes = Vec::new();
    while let Some(item) = client.recv().await {
        if let Ok(ServerItem::Event(ServerEvent::Error(e))) = item {
            codes.push(e.error.code.unwrap_or_default());
        }
    }
    assert_eq!(codes, vec!["message_too_large".to_owned()]);
    let closed = client.close_info().expect("server sent a close frame");
    assert_eq!(closed.code, close::TOO_BIG);
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;

    // A message just under the limit is fine on a new connection.
    let mut client = connect(server.handle()).await;
    assert_echo_works(&mut client).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_answered_and_the_session_continues() {
    let server = start(ServerConfig::default()).await;
    // A raw socket, so the bad text reaches the server exactly as written.
    let (mut ws, _) = tokio_tungstenite::connect_async(url(server.handle()))
        .await
        .unwrap();
    let bad = [
        "{\"type\":\"input_audio_buffer.append\",",
        r#"{"type":"bogus.event","event_id":"c1"}"#,
        r#"{"type":"input_audio_buffer.append","event_id":"c2","audio":"!!!"}"#,
        r#"{"type":"conversation.item.truncate","event_id":"c3","item_id":"x"}"#,
    ];
    for text in bad {
        ws.send(Message::text(text)).await.unwrap();
    }
    // A binary frame before binary audio was negotiated.
    ws.send(Message::binary(
        AudioFrame::pcm16(0, 0, 0, &[0.5; 4]).encode(),
    ))
    .await
    .unwrap();
    let samples = frame_audio(1);
    let good = serde_json::to_string(&ClientEvent::append_audio(&samples)).unwrap();
    ws.send(Message::text(good)).await.unwrap();

    let mut errors = Vec::new();
    let mut echoed = None;
    while echoed.is_none() {
        let message = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut ws),
        )
        .await
        .expect("no answer")
        .expect("connection ended")
        .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        match parley_protocol::parse_server_event(&text).unwrap() {
            ServerEvent::Error(e) => errors.push((e.error.code.unwrap(), e.error.event_id)),
            ServerEvent::ResponseOutputAudioDelta(d) => echoed = Some(d.delta.to_samples()),
            _ => {}
        }
    }
    let id = |s: &str| Some(s.to_owned());
    assert_eq!(
        errors,
        vec![
            ("invalid_json".to_owned(), None),
            ("unknown_event_type".to_owned(), id("c1")),
            ("invalid_audio".to_owned(), id("c2")),
            ("invalid_event".to_owned(), id("c3")),
            ("binary_audio_not_enabled".to_owned(), None),
        ]
    );
    assert_eq!(echoed.unwrap(), samples);
    assert_eq!(server.live_connections(), 1, "the session is still open");
    drop(ws);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_closed_by_keepalive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let config = ServerConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        close_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start(config).await;
    // A hand-made client that upgrades and then only listens: it never answers a ping. (A
    // tungstenite client answers pings by itself whenever it reads.)
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let request = "GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut bytes))
        .await
        .expect("the server never closed the silent connection")
        .unwrap();
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(400),
        "closed too early: {closed_after:?}"
    );
    wait_for_live(server.handle(), 0, Duration::from_secs(2)).await;

    let header_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(bytes.starts_with(b"HTTP/1.1 101"));
    let frames = server_frames(&bytes[header_end..]);
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    assert_eq!(
        opcodes.first(),
        Some(&0x1),
        "session.created first: {opcodes:?}"
    );
    assert!(
        opcodes.iter().filter(|&&op| op == 0x9).count() >= 3,
        "pings: {opcodes:?}"
    );
    let (last_op, last_payload) = frames.last().unwrap();
    assert_eq!(*last_op, 0x8, "ends with a close frame: {opcodes:?}");
    let code = u16::from_be_bytes([last_payload[0], last_payload[1]]);
    assert_eq!(code, close::POLICY);
    assert_eq!(&last_payload[2..], b"keepalive timeout");
    server.shutdown().await.unwrap();
}

/// Splits unmasked server frames into (opcode, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        frames.push((opcode, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_pings_keeps_a_quiet_client_connected() {
    let config = ServerConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..ServerConfig::default()
    };
    let server = start(config).await;
    let client = connect(server.handle()).await;
    let (mut tx, mut rx) = client.split();
    // The receiver reads (and so answers pings) but nothing is sent for 1.5 s.
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(Ok(ServerItem::Event(event))) = rx.recv().await {
            let done = matches!(event, ServerEvent::ResponseOutputAudioDelta(_));
            events.push(event);
            if done {
                break;
            }
        }
        events
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.live_connections(), 1);
    tx.send(&ClientEvent::append_audio(&frame_audio(0)))
        .await
        .unwrap();
    let events = reader.await.unwrap();
    assert!(matches!(
        events.last(),
        Some(ServerEvent::ResponseOutputAudioDelta(_))
    ));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_gets_backpressure_then_is_dropped() {
    const DELTA_BYTES: usize = FRAME * 2;
    let saw_full = Arc::new(AtomicBool::new(false));
    let bytes_queued = Arc::new(AtomicUsize::new(0));
    let handler_done = Arc::new(AtomicBool::new(false));
    let handler = {
        let (saw_full, bytes_queued, handler_done) =
            (saw_full.clone(), bytes_queued.clone(), handler_done.clone());
        move |session: ServerSession| {
            let (saw_full, bytes_queued, handler_done) =
                (saw_full.clone(), bytes_queued.clone(), handler_done.clone());
            async move {
                // Produce audio as fast as possible, like a model faster than real time.
                let delta = ResponseOutputAudioDelta {
                    event_id: "e".into(),
                    response_id: "r".into(),
                    item_id: "i".into(),
                    output_index: 0,
                    content_index: 0,
                    delta: parley_protocol::Pcm16Audio::from_samples(&frame_audio(0)),
                };
                loop {
                    let event = ServerEvent::ResponseOutputAudioDelta(delta.clone());
                    match session.try_send(event) {
                        Ok(()) => {}
                        Err(parley_protocol::TrySendError::Full(event)) => {
                            saw_full.store(true, Ordering::SeqCst);
                            if session.send(*event).await.is_err() {
                                break;
                            }
                        }
                        Err(parley_protocol::TrySendError::Closed(_)) => break,
                    }
                    bytes_queued.fetch_add(DELTA_BYTES, Ordering::SeqCst);
                }
                handler_done.store(true, Ordering::SeqCst);
            }
        }
    };
    let config = ServerConfig {
        outgoing_capacity: 8,
        write_timeout: Duration::from_millis(500),
        close_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = RealtimeServer::bind("127.0.0.1:0", config)
        .await
        .unwrap()
        .spawn(handler);
    let client = RealtimeClient::connect(&url(server.handle()), None)
        .await
        .unwrap();

    // The client reads nothing. Kernel buffers fill, then the writer stalls, the queue fills,
    // the handler waits, and after the write timeout the connection is dropped.
    wait_for_live(server.handle(), 0, Duration::from_secs(20)).await;
    assert!(
        saw_full.load(Ordering::SeqCst),
        "the outgoing queue never filled"
    );
    assert!(
        handler_done.load(Ordering::SeqCst),
        "the handler was not released"
    );
    let queued = bytes_queued.load(Ordering::SeqCst);
    eprintln!("audio accepted before the drop: {} kB", queued / 1000);
    // Bounded by socket buffers + queue, not by how long the handler runs.
    assert!(
        queued < 64 << 20,
        "{queued} bytes accepted from a client that reads nothing"
    );
    drop(client);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_connections_with_1001_and_stops_accepting() {
    let server = start(ServerConfig::default()).await;
    let handle = server.handle().clone();
    let mut client = connect(&handle).await;
    let reader = tokio::spawn(async move {
        while client.recv().await.is_some() {}
        client.close_info().cloned()
    });
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
    let closed = reader.await.unwrap().expect("a close frame");
    assert_eq!(closed.code, close::GOING_AWAY);
    assert_eq!(handle.live_connections(), 0);
    assert!(RealtimeClient::connect(&url(&handle), None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_hook_path_and_connection_limit_reject_with_http_status() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = RealtimeServer::bind("127.0.0.1:0", config)
        .await
        .unwrap()
        .with_upgrade_hook(|request| match request.bearer_token() {
            Some("sekrit") => UpgradeDecision::Accept,
            _ => UpgradeDecision::reject(401, "bad token"),
        })
        .spawn(Loopback);
    let url = url(server.handle());

    let status = |result: Result<RealtimeClient, ProtocolError>| match result {
        Err(ProtocolError::Rejected { status, body }) => (status, body),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected"),
    };
    assert_eq!(
        status(RealtimeClient::connect(&url, None).await),
        (401, "bad token".to_owned())
    );
    assert_eq!(
        status(RealtimeClient::connect(&url, Some("wrong".into())).await).0,
        401
    );
    let wrong_path = format!("ws://{}/v1/other", server.local_addr());
    assert_eq!(
        status(RealtimeClient::connect(&wrong_path, Some("sekrit".into())).await).0,
        404
    );

    let mut first = RealtimeClient::connect(&url, Some("sekrit".into()))
        .await
        .unwrap();
    let Some(ServerEvent::SessionCreated(created)) = first.next_event().await else {
        panic!("no session.created");
    };
    assert_eq!(created.session.model.as_deref(), Some("loop-1"));
    assert_eq!(
        status(RealtimeClient::connect(&url, Some("sekrit".into())).await).0,
        503
    );
    first.close().await.unwrap();
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;
    let mut again = RealtimeClient::connect(&url, Some("sekrit".into()))
        .await
        .unwrap();
    assert!(again.next_event().await.is_some());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_end_closes_with_1000_and_a_panic_with_1011() {
    // A handler that answers the first event and returns: everything queued arrives, then 1000.
    let server = RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .spawn(|mut session: ServerSession| async move {
            if let Some(_first) = session.recv().await {
                for k in 0..50 {
                    let delta = ResponseOutputAudioDelta {
                        event_id: format!("e{k}"),
                        response_id: "r".into(),
                        item_id: "i".into(),
                        output_index: 0,
                        content_index: 0,
                        delta: parley_protocol::Pcm16Audio::from_samples(&frame_audio(k)),
                    };
                    let _ = session
                        .send(ServerEvent::ResponseOutputAudioDelta(delta))
                        .await;
                }
            }
        });
    let mut client = RealtimeClient::connect(&url(server.handle()), None)
        .await
        .unwrap();
    client
        .send(&ClientEvent::append_audio(&[0.0; 4]))
        .await
        .unwrap();
    let mut ids = Vec::new();
    while let Some(item) = client.recv().await {
        if let Ok(ServerItem::Event(event)) = item {
            ids.push(event.event_id().to_owned());
        }
    }
    let expected: Vec<String> = (0..50).map(|k| format!("e{k}")).collect();
    assert_eq!(ids, expected, "all queued events arrive before the close");
    assert_eq!(client.close_info().map(|c| c.code), Some(close::NORMAL));
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;
    server.shutdown().await.unwrap();

    // A handler that panics: close 1011, and the connection is freed.
    let server = RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .spawn(|mut session: ServerSession| async move {
            if session.recv().await.is_some() {
                panic!("deliberate test panic in a session handler");
            }
        });
    let mut client = RealtimeClient::connect(&url(server.handle()), None)
        .await
        .unwrap();
    client
        .send(&ClientEvent::append_audio(&[0.0; 4]))
        .await
        .unwrap();
    while client.recv().await.is_some() {}
    assert_eq!(
        client.close_info().map(|c| c.code),
        Some(close::INTERNAL_ERROR)
    );
    wait_for_live(server.handle(), 0, Duration::from_secs(5)).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_skips_server_events_it_does_not_know() {
    // A plain tungstenite server standing in for a newer server (or OpenAI), which sends event
    // types this version does not model.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let texts = [
            r#"{"type":"rate_limits.updated","event_id":"e1","rate_limits":[]}"#,
            r#"{"type":"input_audio_buffer.cleared","event_id":"e2"}"#,
        ];
        for text in texts {
            ws.send(Message::text(text)).await.unwrap();
        }
        ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        ws.close(None).await.unwrap();
        while futures_util::StreamExt::next(&mut ws).await.is_some() {}
    });

    let mut client = RealtimeClient::connect(&format!("ws://{addr}/"), None)
        .await
        .unwrap();
    let first = client.recv().await.unwrap().unwrap_err();
    assert_eq!(
        first.as_event_error().map(|e| e.code),
        Some(parley_protocol::ErrorCode::UnknownEventType)
    );
    let second = client.recv().await.unwrap().unwrap();
    assert!(matches!(
        second,
        ServerItem::Event(ServerEvent::InputAudioBufferCleared(_))
    ));
    let third = client.recv().await.unwrap().unwrap_err();
    assert!(matches!(third, ProtocolError::Frame(_)), "{third}");
    assert!(client.recv().await.is_none());
    assert_eq!(client.close_info().map(|c| c.code), Some(close::NO_STATUS));
    server.await.unwrap();
}
