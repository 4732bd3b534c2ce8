//! The client end of the transport (CLI, tests, benchmarks).
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_protocol::ProtocolError> {
//! use parley_protocol::{ClientEvent, RealtimeClient, ServerItem};
//!
//! let client = RealtimeClient::connect("ws://127.0.0.1:8080/v1/realtime?model=parley", None).await?;
//! let (mut tx, mut rx) = client.split();
//! tokio::spawn(async move {
//!     tx.send(&ClientEvent::append_audio(&[0.0; 480])).await
//! });
//! while let Some(item) = rx.recv().await {
//!     match item {
//!         Ok(ServerItem::Event(event)) => println!("{}", event.event_type()),
//!         Ok(ServerItem::Audio(frame)) => println!("{} audio bytes", frame.payload.len()),
//!         Err(e) => eprintln!("skipped: {e}"), // e.g. an event type this version does not know
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Only `ws://` (no TLS). Keep a task in [`ClientReceiver::recv`]: reading is also what answers
//! the server's pings, and a client that does not read is closed after the server's idle timeout.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::binary::AudioFrame;
use crate::close::{self, CloseInfo};
use crate::connection::{ServerItem, close_reason};
use crate::error::ProtocolError;
use crate::events::{ClientEvent, ServerEvent};
use crate::parse::parse_event;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Largest message accepted from the server.
    pub max_message_bytes: usize,
    /// Time allowed for TCP connect + HTTP upgrade.
    pub connect_timeout: Duration,
    /// Time [`RealtimeClient::close`] waits for the server to finish the close handshake.
    pub close_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_message_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// A connected client. Use it directly from one task, or [`split`](Self::split) it.
pub struct RealtimeClient {
    sender: ClientSender,
    receiver: ClientReceiver,
    close_timeout: Duration,
}

impl RealtimeClient {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8080/v1/realtime?model=parley`), sending
    /// `Authorization: Bearer <bearer>` when given. TCP_NODELAY is on.
    pub async fn connect(url: &str, bearer: Option<String>) -> Result<Self, ProtocolError> {
        Self::connect_with(url, bearer, ClientConfig::default()).await
    }

    pub async fn connect_with(
        url: &str,
        bearer: Option<String>,
        config: ClientConfig,
    ) -> Result<Self, ProtocolError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ProtocolError::InvalidRequest(format!("{url}: {e}")))?;
        if let Some(token) = bearer {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ProtocolError::InvalidRequest("bearer token is not a valid header value".into())
            })?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_message_bytes));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
        let (ws, _response) = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| ProtocolError::Timeout("connect"))?
            .map_err(|e| match e {
                WsError::Http(response) => ProtocolError::Rejected {
                    status: response.status().as_u16(),
                    body: response
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                },
                other => ProtocolError::WebSocket(other),
            })?;
        let (sink, stream) = ws.split();
        Ok(RealtimeClient {
            sender: ClientSender { sink },
            receiver: ClientReceiver {
                stream,
                close: None,
                finished: false,
            },
            close_timeout: config.close_timeout,
        })
    }

    pub async fn send(&mut self, event: &ClientEvent) -> Result<(), ProtocolError> {
        self.sender.send(event).await
    }

    pub async fn send_binary(&mut self, frame: &AudioFrame) -> Result<(), ProtocolError> {
        self.sender.send_binary(frame).await
    }

    pub async fn recv(&mut self) -> Option<Result<ServerItem, ProtocolError>> {
        self.receiver.recv().await
    }

    /// Receives until the next JSON event, skipping errors and binary frames; `None` at the end.
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        self.receiver.next_event().await
    }

    /// How the server closed the connection, once `recv` has returned `None`.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.receiver.close_info()
    }

    /// Separate halves for a sending task and a receiving task.
    pub fn split(self) -> (ClientSender, ClientReceiver) {
        (self.sender, self.receiver)
    }

    /// Closes with 1000 and waits (up to the close timeout) for the server to finish the close
    /// handshake; server items still in flight are dropped.
    pub async fn close(mut self) -> Result<(), ProtocolError> {
        self.sender.close(close::NORMAL, "client done").await?;
        let drain = async { while self.receiver.recv().await.is_some() {} };
        tokio::time::timeout(self.close_timeout, drain)
            .await
            .map_err(|_| ProtocolError::Timeout("close handshake"))
    }
}

/// The sending half of a client.
pub struct ClientSender {
    sink: SplitSink<Ws, Message>,
}

impl ClientSender {
    /// Sends a JSON event.
    pub async fn send(&mut self, event: &ClientEvent) -> Result<(), ProtocolError> {
        self.sink.send(Message::text(event.to_json()?)).await?;
        Ok(())
    }

    /// Sends a binary audio frame (after binary audio was confirmed by `session.updated`).
    pub async fn send_binary(&mut self, frame: &AudioFrame) -> Result<(), ProtocolError> {
        self.sink.send(Message::binary(frame.encode())).await?;
        Ok(())
    }

    /// Sends a close frame. The receiving half sees the server's answer and then ends.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), ProtocolError> {
        let frame = CloseFrame {
            code: code.into(),
            reason: close_reason(reason).into(),
        };
        match self.sink.send(Message::Close(Some(frame))).await {
            Ok(()) | Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The receiving half of a client.
pub struct ClientReceiver {
    stream: SplitStream<Ws>,
    close: Option<CloseInfo>,
    finished: bool,
}

impl ClientReceiver {
    /// The next server item. `Some(Err(_))` for an item that could not be parsed (an unknown
    /// event type, a bad frame): skip it and keep receiving. `None` once the connection has
    /// ended; [`close_info`](Self::close_info) then says how.
    pub async fn recv(&mut self) -> Option<Result<ServerItem, ProtocolError>> {
        while !self.finished {
            let message = match self.stream.next().await {
                None => {
                    self.finished = true;
                    return None;
                }
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    // tungstenite ends the stream after any error.
                    self.finished = true;
                    return Some(Err(e.into()));
                }
            };
            match message {
                Message::Text(text) => {
                    return Some(
                        parse_event::<ServerEvent>(&text, ServerEvent::TYPES)
                            .map(ServerItem::Event)
                            .map_err(ProtocolError::from),
                    );
                }
                Message::Binary(bytes) => {
                    return Some(
                        AudioFrame::decode(&bytes)
                            .map(ServerItem::Audio)
                            .map_err(ProtocolError::from),
                    );
                }
                Message::Close(frame) => {
                    // tungstenite replies; the stream ends when the server drops the socket.
                    self.close = Some(match frame {
                        Some(frame) => CloseInfo::new(frame.code.into(), frame.reason.as_str()),
                        None => CloseInfo::new(close::NO_STATUS, ""),
                    });
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
        None
    }

    /// Receives until the next JSON event, skipping errors and binary frames; `None` at the end.
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        loop {
            if let Ok(ServerItem::Event(event)) = self.recv().await? {
                return Some(event);
            }
        }
    }

    /// The server's close code and reason, once it sent a close frame.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close.as_ref()
    }
}
