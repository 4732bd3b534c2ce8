//! One accepted WebSocket connection on the server side.
//!
//! Three tasks per connection, joined by bounded queues:
//!
//! ```text
//!  socket --> reader --incoming (bounded)--> session handler --outgoing (bounded)--> writer --> socket
//!               |                                                                      ^
//!               +------------------------ control (bounded): error events, close ------+
//! ```
//!
//! - The **reader** parses text frames into [`ClientEvent`]s and binary frames into
//!   [`AudioFrame`]s. Bad input is answered with an `error` event through the control queue and
//!   the session goes on; the handler never sees it. When the handler is slow and `incoming` is
//!   full, the reader waits, stops reading the socket, and TCP flow control slows the client.
//! - The **writer** sends what the handler queues, the reader's error events, and a ping every
//!   `ping_interval`. When the client does not read, the writer blocks, `outgoing` fills and the
//!   handler's `send` waits (backpressure; `try_send` reports `Full`). If one write makes no
//!   progress for `write_timeout`, the connection is dropped: memory stays bounded by the queue
//!   capacities.
//! - The **session handler** ([`SessionHandler`]) gets a [`ServerSession`].
//!
//! The connection's supervisor (`run_connection`) ends all three: when the handler returns the
//! client gets close 1000 (1011 if it panicked); when the peer leaves, the handler's `recv`
//! returns `None` and its `send` fails, and a handler that ignores this for `handler_grace` is
//! aborted.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError as WsProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tracing::{debug, error, warn};

use crate::binary::{AudioFrame, BinaryCodec, FrameKind};
use crate::close::{self, CloseInfo};
use crate::error::{ErrorCode, EventError, ProtocolError};
use crate::events::{ClientEvent, ServerEvent};
use crate::ids::IdGenerator;
use crate::parse::parse_event;
use crate::server::ServerConfig;

/// Room for error events and close requests on their way to the writer. The reader waits when it
/// is full, so a client flooding bad input is slowed down like any other.
const CONTROL_CAPACITY: usize = 16;

type Ws = WebSocketStream<TcpStream>;

/// What the client sent: a JSON event or a binary audio frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientItem {
    Event(ClientEvent),
    Audio(AudioFrame),
}

/// What the server sends: a JSON event or a binary audio frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerItem {
    Event(ServerEvent),
    Audio(AudioFrame),
}

impl From<ServerEvent> for ServerItem {
    fn from(event: ServerEvent) -> Self {
        ServerItem::Event(event)
    }
}

impl From<AudioFrame> for ServerItem {
    fn from(frame: AudioFrame) -> Self {
        ServerItem::Audio(frame)
    }
}

/// Facts about an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Server-assigned, unique per server run (for logs).
    pub id: u64,
    pub peer_addr: SocketAddr,
    /// The request path (`/v1/realtime`).
    pub path: String,
    /// The `?model=` query parameter, percent-decoded.
    pub model: Option<String>,
}

/// What travels through the outgoing queue.
#[derive(Debug)]
enum Outgoing {
    Item(ServerItem),
    Close(CloseInfo),
}

/// `try_send` could not queue the item; it is handed back (boxed: this is the rare path).
#[derive(Debug, Error)]
pub enum TrySendError {
    #[error("the outgoing queue is full (the client is not keeping up)")]
    Full(Box<ServerItem>),
    #[error("the connection is closed")]
    Closed(Box<ServerItem>),
}

/// Queues items for the client. Cheap to clone; every clone feeds the same bounded queue.
#[derive(Debug, Clone)]
pub struct SessionSender {
    tx: mpsc::Sender<Outgoing>,
}

impl SessionSender {
    /// Queues an item, waiting while the queue is full (backpressure from a slow client).
    /// Fails once the connection is gone.
    pub async fn send(&self, item: impl Into<ServerItem>) -> Result<(), ProtocolError> {
        self.tx
            .send(Outgoing::Item(item.into()))
            .await
            .map_err(|_| ProtocolError::Closed)
    }

    /// Queues an item without waiting; for code that must not block (drop or retry instead).
    pub fn try_send(&self, item: impl Into<ServerItem>) -> Result<(), TrySendError> {
        let item = item.into();
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Outgoing::Item(item));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(TrySendError::Full(Box::new(item))),
            Err(mpsc::error::TrySendError::Closed(())) => Err(TrySendError::Closed(Box::new(item))),
        }
    }

    /// Asks the writer to close the connection with `code` after everything queued before.
    pub async fn close(&self, code: u16, reason: impl Into<String>) -> Result<(), ProtocolError> {
        self.tx
            .send(Outgoing::Close(CloseInfo::new(code, reason)))
            .await
            .map_err(|_| ProtocolError::Closed)
    }

    /// Resolves when the connection is gone (the writer stopped): nothing sent will arrive.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Free slots in the outgoing queue right now.
    pub fn free_capacity(&self) -> usize {
        self.tx.capacity()
    }
}

/// One client session as the session handler sees it.
#[derive(Debug)]
pub struct ServerSession {
    info: ConnectionInfo,
    incoming: mpsc::Receiver<ClientItem>,
    sender: SessionSender,
}

impl ServerSession {
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The next item from the client; `None` once the client has left (or the connection is
    /// closing). Malformed input never shows up here: the transport answered it already.
    pub async fn recv(&mut self) -> Option<ClientItem> {
        self.incoming.recv().await
    }

    /// See [`SessionSender::send`].
    pub async fn send(&self, item: impl Into<ServerItem>) -> Result<(), ProtocolError> {
        self.sender.send(item).await
    }

    /// See [`SessionSender::try_send`].
    pub fn try_send(&self, item: impl Into<ServerItem>) -> Result<(), TrySendError> {
        self.sender.try_send(item)
    }

    /// See [`SessionSender::close`].
    pub async fn close(&self, code: u16, reason: impl Into<String>) -> Result<(), ProtocolError> {
        self.sender.close(code, reason).await
    }

    /// A sender to move into other tasks.
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// Splits the session for handlers that read and write from different tasks.
    pub fn into_parts(self) -> (ConnectionInfo, mpsc::Receiver<ClientItem>, SessionSender) {
        (self.info, self.incoming, self.sender)
    }
}

/// Runs one session per accepted connection. Implemented for async closures
/// `Fn(ServerSession) -> impl Future<Output = ()>`.
///
/// The future should return when [`ServerSession::recv`] yields `None` (the client left) or
/// when the session is over. When it returns, the client gets close 1000 after everything
/// already queued; if it panics, close 1011.
pub trait SessionHandler: Send + Sync + 'static {
    fn run(&self, session: ServerSession) -> impl Future<Output = ()> + Send;
}

impl<F, Fut> SessionHandler for F
where
    F: Fn(ServerSession) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn run(&self, session: ServerSession) -> impl Future<Output = ()> + Send {
        self(session)
    }
}

/// State the reader and writer share.
struct LinkState {
    started: Instant,
    /// Milliseconds after `started` when the reader last got a frame from the peer.
    last_heard_ms: AtomicU64,
    /// The reader is waiting for room in `incoming`: the peer's silence is not its fault then.
    reader_waiting: AtomicBool,
    /// Binary audio codec confirmed by the last `session.created/updated`: see `codec_byte`.
    binary_codec: AtomicU8,
    /// Ids for the error events the transport sends itself.
    ids: IdGenerator,
}

impl LinkState {
    fn new() -> Self {
        LinkState {
            started: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            reader_waiting: AtomicBool::new(false),
            binary_codec: AtomicU8::new(codec_byte(None)),
            ids: IdGenerator::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn heard_from_peer(&self) {
        self.last_heard_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = self.last_heard_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    fn binary_codec(&self) -> Option<BinaryCodec> {
        match self.binary_codec.load(Ordering::Relaxed) {
            1 => Some(BinaryCodec::Pcm16),
            2 => Some(BinaryCodec::Opus),
            _ => None,
        }
    }
}

fn codec_byte(codec: Option<BinaryCodec>) -> u8 {
    match codec {
        None => 0,
        Some(BinaryCodec::Pcm16) => 1,
        Some(BinaryCodec::Opus) => 2,
    }
}

/// Reader -> writer (and supervisor -> writer) messages.
#[derive(Debug)]
enum Control {
    Send(ServerEvent),
    Close(CloseInfo),
}

/// How the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderEnd {
    /// The peer finished the close handshake or the stream ended.
    PeerClosed,
    /// The connection broke (reset, I/O error).
    PeerVanished,
    /// We asked the writer to close because of bad input; the peer may still be sending.
    Violation,
}

/// How the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// It sent a close frame.
    Closed,
    /// The reader saw the peer leave; nothing more can be delivered.
    PeerGone,
    /// A write made no progress for `write_timeout`: the peer does not read.
    Stalled,
    /// A write failed.
    Failed,
}

/// Serves one upgraded connection until every task for it has ended.
pub(crate) async fn run_connection<H: SessionHandler>(
    ws: Ws,
    info: ConnectionInfo,
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let connection_id = info.id;
    let (ws_tx, ws_rx) = ws.split();
    let link = Arc::new(LinkState::new());
    let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1));
    let (outgoing_tx, outgoing_rx) = mpsc::channel(config.outgoing_capacity.max(1));
    let (control_tx, control_rx) = mpsc::channel(CONTROL_CAPACITY);
    let (reader_done_tx, reader_done_rx) = watch::channel(false);

    let mut reader = tokio::spawn({
        let control_tx = control_tx.clone();
        let link = link.clone();
        let max_message_bytes = config.max_message_bytes;
        async move {
            let out = read_loop(ws_rx, incoming_tx, control_tx, link, max_message_bytes).await;
            let _ = reader_done_tx.send(true);
            out
        }
    });
    let mut writer = tokio::spawn(write_loop(
        ws_tx,
        outgoing_rx,
        control_rx,
        shutdown,
        reader_done_rx,
        link,
        config.clone(),
    ));
    let session = ServerSession {
        info,
        incoming: incoming_rx,
        sender: SessionSender { tx: outgoing_tx },
    };
    let mut session_task = tokio::spawn(async move { handler.run(session).await });

    // Until the session finishes or the writer stops (peer gone, shutdown, close, stall).
    let mut session_result = None;
    let mut writer_result = None;
    tokio::select! {
        result = &mut session_task => session_result = Some(result),
        result = &mut writer => writer_result = Some(result),
    }
    if let Some(result) = &session_result {
        let close = match result {
            Ok(()) => CloseInfo::new(close::NORMAL, "session ended"),
            Err(e) => {
                error!(connection = connection_id, "session handler failed: {e}");
                CloseInfo::new(close::INTERNAL_ERROR, "internal server error")
            }
        };
        // Bounded: a stalled writer is ended by its own write timeout.
        let _ = tokio::time::timeout(config.write_timeout, control_tx.send(Control::Close(close)))
            .await;
    }
    drop(control_tx);

    // The writer delivers what is queued and the close frame.
    let writer_result = match writer_result {
        Some(result) => Some(result),
        None => join_or_abort(&mut writer, config.write_timeout + config.close_timeout).await,
    };
    // The reader sees the peer's close reply (or the drop).
    let reader_result = join_or_abort(&mut reader, config.close_timeout).await;
    // The session notices the peer left: recv() gives None, send() fails.
    if session_result.is_none()
        && join_or_abort(&mut session_task, config.handler_grace)
            .await
            .is_none()
    {
        warn!(
            connection = connection_id,
            "session handler kept running {:?} after the connection closed; aborted",
            config.handler_grace
        );
    }
    // After closing on bad input the peer may still be sending. Dropping a socket with unread
    // data makes the kernel send a reset that can destroy our close frame before the peer reads
    // it, so shut down our side and drain for a moment first.
    if let (Some(Ok((rx, ReaderEnd::Violation))), Some(Ok((tx, WriterEnd::Closed)))) =
        (reader_result, writer_result)
        && let Ok(ws) = rx.reunite(tx)
    {
        linger(ws.into_inner(), config.close_timeout).await;
    }
    debug!(connection = connection_id, "connection finished");
}

/// Resolves once the flag is `true`, or its sender is gone (the task that owned it ended).
/// The borrow guard `wait_for` returns is dropped here so callers' futures stay `Send`.
pub(crate) async fn wait_until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|value| *value).await;
}

/// Waits up to `limit` for a task; aborts it if it takes longer.
async fn join_or_abort<T>(
    task: &mut JoinHandle<T>,
    limit: Duration,
) -> Option<Result<T, JoinError>> {
    match tokio::time::timeout(limit, &mut *task).await {
        Ok(result) => Some(result),
        Err(_) => {
            task.abort();
            None
        }
    }
}

/// Half-closes and drains the socket for up to `limit`, so that what was just written is not
/// destroyed by the reset a close with unread data would send.
pub(crate) async fn linger(mut tcp: TcpStream, limit: Duration) {
    let _ = tcp.shutdown().await;
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(limit, async {
        while let Ok(n) = tcp.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn read_loop(
    mut ws_rx: SplitStream<Ws>,
    incoming: mpsc::Sender<ClientItem>,
    control: mpsc::Sender<Control>,
    link: Arc<LinkState>,
    max_message_bytes: usize,
) -> (SplitStream<Ws>, ReaderEnd) {
    // After the handler is gone the reader keeps reading (and dropping) until the peer answers
    // our close frame.
    let mut session_open = true;
    let end = loop {
        let message = match ws_rx.next().await {
            None => break ReaderEnd::PeerClosed,
            Some(Ok(message)) => message,
            Some(Err(e)) => break read_error(e, &control, &link, max_message_bytes).await,
        };
        link.heard_from_peer();
        let item = match message {
            Message::Text(text) => match parse_event::<ClientEvent>(&text, ClientEvent::TYPES) {
                Ok(event) => ClientItem::Event(event),
                Err(e) => {
                    report(&control, &link, e).await;
                    continue;
                }
            },
            Message::Binary(bytes) => match accept_binary(&bytes, link.binary_codec()) {
                Ok(frame) => ClientItem::Audio(frame),
                Err(e) => {
                    report(&control, &link, e).await;
                    continue;
                }
            },
            // tungstenite answers pings and close frames itself.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
        };
        if session_open {
            link.reader_waiting.store(true, Ordering::Relaxed);
            session_open = incoming.send(item).await.is_ok();
            link.reader_waiting.store(false, Ordering::Relaxed);
            // We were not reading while we waited, so the peer gets the benefit of the doubt.
            link.heard_from_peer();
        }
    };
    (ws_rx, end)
}

/// Checks a binary message against the negotiated codec and decodes it.
fn accept_binary(bytes: &[u8], codec: Option<BinaryCodec>) -> Result<AudioFrame, EventError> {
    let Some(codec) = codec else {
        return Err(EventError::new(
            ErrorCode::BinaryAudioNotEnabled,
            "binary audio frames are accepted only after `session.updated` confirms \
             `parley.binary_audio.enabled`",
        ));
    };
    let frame = AudioFrame::decode(bytes)
        .map_err(|e| EventError::new(ErrorCode::InvalidBinaryFrame, e.to_string()))?;
    if frame.kind != FrameKind::EndOfAudio && frame.kind != codec.frame_kind() {
        return Err(EventError::new(
            ErrorCode::InvalidBinaryFrame,
            format!(
                "{:?} frame, but the session's binary codec is {codec:?}",
                frame.kind
            ),
        ));
    }
    Ok(frame)
}

/// Answers bad input with an `error` event.
async fn report(control: &mpsc::Sender<Control>, link: &LinkState, error: EventError) {
    debug!("bad client input: {error}");
    let event = error.to_server_event(link.ids.next("evt"));
    // If the writer is gone there is nobody to tell.
    let _ = control.send(Control::Send(event)).await;
}

async fn read_error(
    error: WsError,
    control: &mpsc::Sender<Control>,
    link: &LinkState,
    max_message_bytes: usize,
) -> ReaderEnd {
    let close = match error {
        WsError::Capacity(capacity) => {
            let message = match capacity {
                CapacityError::MessageTooLong { size, .. } => format!(
                    "message of {size} bytes is over this server's limit of {max_message_bytes} bytes"
                ),
                other => other.to_string(),
            };
            report(
                control,
                link,
                EventError::new(ErrorCode::MessageTooLarge, message),
            )
            .await;
            CloseInfo::new(close::TOO_BIG, "message too large")
        }
        WsError::Utf8(_) => CloseInfo::new(close::INVALID_PAYLOAD, "text frame is not valid UTF-8"),
        WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake) => {
            return ReaderEnd::PeerVanished;
        }
        WsError::Protocol(e) => CloseInfo::new(close::PROTOCOL_ERROR, e.to_string()),
        other => {
            debug!("connection lost: {other}");
            return ReaderEnd::PeerVanished;
        }
    };
    let _ = control.send(Control::Close(close)).await;
    ReaderEnd::Violation
}

/// One step of the writer loop.
enum WriterStep {
    Send(ServerItem),
    Ping,
    /// Close after writing what the session queued before this point.
    DrainAndClose(CloseInfo),
    Close(CloseInfo),
    /// The session dropped every sender; wait for the supervisor's close.
    OutgoingClosed,
    Stop(WriterEnd),
}

async fn write_loop(
    mut ws_tx: SplitSink<Ws, Message>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut control: mpsc::Receiver<Control>,
    mut shutdown: watch::Receiver<bool>,
    mut reader_done: watch::Receiver<bool>,
    link: Arc<LinkState>,
    config: Arc<ServerConfig>,
) -> (SplitSink<Ws, Message>, WriterEnd) {
    let write_timeout = config.write_timeout;
    // A zero period would make `interval_at` panic.
    let ping_interval = config.ping_interval.max(Duration::from_millis(1));
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut outgoing_open = true;
    let end = loop {
        // Control first: error events for the reader, and a close must not wait behind a
        // full outgoing queue.
        let step = tokio::select! {
            biased;
            control = control.recv() => match control {
                Some(Control::Send(event)) => WriterStep::Send(ServerItem::Event(event)),
                Some(Control::Close(info)) => WriterStep::DrainAndClose(info),
                None => WriterStep::Stop(WriterEnd::PeerGone),
            },
            _ = wait_until_true(&mut reader_done) => WriterStep::Stop(WriterEnd::PeerGone),
            _ = wait_until_true(&mut shutdown) => {
                WriterStep::Close(CloseInfo::new(close::GOING_AWAY, "server shutting down"))
            }
            out = outgoing.recv(), if outgoing_open => match out {
                Some(Outgoing::Item(item)) => WriterStep::Send(item),
                Some(Outgoing::Close(info)) => WriterStep::Close(info),
                // Every sender is gone, but the close code is the supervisor's call: a handler
                // that panicked drops its session before the supervisor learns of the panic.
                None => WriterStep::OutgoingClosed,
            },
            _ = ping.tick() => {
                let silent = link.silent_for();
                if silent >= config.idle_timeout && !link.reader_waiting.load(Ordering::Relaxed) {
                    warn!("peer silent for {silent:?}; closing");
                    WriterStep::Close(CloseInfo::new(close::POLICY, "keepalive timeout"))
                } else {
                    WriterStep::Ping
                }
            }
        };
        match step {
            WriterStep::Send(item) => {
                if let Err(end) = write_item(&mut ws_tx, item, &link, write_timeout).await {
                    break end;
                }
            }
            WriterStep::Ping => {
                let ping = Message::Ping(Bytes::new());
                if let Err(end) = write_message(&mut ws_tx, ping, write_timeout).await {
                    break end;
                }
            }
            WriterStep::DrainAndClose(mut info) => {
                loop {
                    match outgoing.try_recv() {
                        Ok(Outgoing::Item(item)) => {
                            if let Err(end) =
                                write_item(&mut ws_tx, item, &link, write_timeout).await
                            {
                                return (ws_tx, end);
                            }
                        }
                        // The session asked for its own close code first; it wins.
                        Ok(Outgoing::Close(own)) => {
                            info = own;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                break send_close(&mut ws_tx, info, write_timeout).await;
            }
            WriterStep::Close(info) => break send_close(&mut ws_tx, info, write_timeout).await,
            WriterStep::OutgoingClosed => outgoing_open = false,
            WriterStep::Stop(end) => break end,
        }
    };
    (ws_tx, end)
}

async fn write_item(
    ws_tx: &mut SplitSink<Ws, Message>,
    item: ServerItem,
    link: &LinkState,
    write_timeout: Duration,
) -> Result<(), WriterEnd> {
    let message = match item {
        ServerItem::Event(event) => {
            track_binary_negotiation(&event, link);
            match serde_json::to_string(&event) {
                Ok(text) => Message::text(text),
                Err(e) => {
                    // Our event types always serialize; if one ever does not, skip it rather
                    // than end the session.
                    error!("could not serialize {}: {e}", event.event_type());
                    return Ok(());
                }
            }
        }
        ServerItem::Audio(frame) => Message::binary(frame.encode()),
    };
    write_message(ws_tx, message, write_timeout).await
}

/// Binary audio is on once the server confirms it: `session.created` / `session.updated` with
/// `parley.binary_audio`. Watching the outgoing events keeps that rule in one place.
fn track_binary_negotiation(event: &ServerEvent, link: &LinkState) {
    let session = match event {
        ServerEvent::SessionCreated(e) => &e.session,
        ServerEvent::SessionUpdated(e) => &e.session,
        _ => return,
    };
    if let Some(binary) = session.parley.as_ref().and_then(|p| p.binary_audio) {
        let codec = binary.enabled.then_some(binary.codec);
        link.binary_codec
            .store(codec_byte(codec), Ordering::Relaxed);
    }
}

async fn write_message(
    ws_tx: &mut SplitSink<Ws, Message>,
    message: Message,
    write_timeout: Duration,
) -> Result<(), WriterEnd> {
    match tokio::time::timeout(write_timeout, ws_tx.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            debug!("write failed: {e}");
            Err(WriterEnd::Failed)
        }
        Err(_) => {
            warn!("peer has not read anything for {write_timeout:?}; dropping the connection");
            Err(WriterEnd::Stalled)
        }
    }
}

async fn send_close(
    ws_tx: &mut SplitSink<Ws, Message>,
    info: CloseInfo,
    write_timeout: Duration,
) -> WriterEnd {
    debug!(code = info.code, reason = %info.reason, "closing connection");
    let frame = CloseFrame {
        code: info.code.into(),
        reason: close_reason(&info.reason).into(),
    };
    match write_message(ws_tx, Message::Close(Some(frame)), write_timeout).await {
        Ok(()) => WriterEnd::Closed,
        Err(end) => end,
    }
}

/// A close frame's reason must fit in 123 bytes; cut at a character boundary.
pub(crate) fn close_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_to_123_bytes_on_char_boundaries() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = close_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len(), 122);
    }

    #[test]
    fn binary_frames_need_negotiation_and_the_right_codec() {
        let pcm = AudioFrame::pcm16(0, 0, 0, &[0.1, 0.2]).encode();
        let opus = AudioFrame::opus(0, 0, 0, vec![1, 2, 3]).encode();
        let end = AudioFrame::end_of_audio(0, 0, 0).encode();
        assert_eq!(
            accept_binary(&pcm, None).unwrap_err().code,
            ErrorCode::BinaryAudioNotEnabled
        );
        assert!(accept_binary(&pcm, Some(BinaryCodec::Pcm16)).is_ok());
        assert!(accept_binary(&end, Some(BinaryCodec::Pcm16)).is_ok());
        assert_eq!(
            accept_binary(&opus, Some(BinaryCodec::Pcm16))
                .unwrap_err()
                .code,
            ErrorCode::InvalidBinaryFrame
        );
        assert!(accept_binary(&opus, Some(BinaryCodec::Opus)).is_ok());
        assert_eq!(
            accept_binary(&pcm[..5], Some(BinaryCodec::Pcm16))
                .unwrap_err()
                .code,
            ErrorCode::InvalidBinaryFrame
        );
    }
}
