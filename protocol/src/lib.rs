//! parley's wire format and WebSocket transport.
//!
//! parley speaks a subset of the OpenAI Realtime API (GA naming and shapes) over WebSocket, plus
//! a small binary extension for clients that want raw PCM16 or Opus frames instead of base64 JSON.
//! `protocol/README.md` documents the whole wire format; this crate is its only implementation.
//!
//! Where to look:
//! - [`events`]: the typed JSON events ([`ClientEvent`], [`ServerEvent`]); the shared pieces
//!   they carry live in [`session`] (session config), [`conversation`] (items and content
//!   parts), [`response`] (the response object) and [`audio`] (base64 PCM16 audio fields).
//! - [`parse`]: text -> event, turning every malformed input into an [`EventError`] whose code
//!   goes out in an `error` event.
//! - [`binary`]: the binary audio frame ([`AudioFrame`]) and its 20-byte header.
//! - [`server`], [`connection`], [`client`]: the tokio + tungstenite transport. A server hands
//!   each accepted connection to a [`SessionHandler`] as a [`ServerSession`]; a
//!   [`RealtimeClient`] is the other end (CLI, tests, benchmarks).
//! - [`http`]: plain HTTP routes (`/healthz`, `/metrics`) on the WebSocket's port.
//! - [`loopback`]: a transport test fixture that echoes audio, used until the engine lands.

pub mod audio;
pub mod binary;
pub mod client;
pub mod close;
pub mod connection;
pub mod conversation;
pub mod error;
pub mod events;
pub mod http;
pub mod ids;
pub mod loopback;
pub mod parse;
pub mod response;
pub mod server;
pub mod session;

pub use audio::{AudioError, Pcm16Audio, decode_audio_base64, encode_audio_base64};
pub use binary::{AudioFrame, BinaryCodec, FrameError, FrameKind};
pub use client::{ClientConfig, ClientReceiver, ClientSender, RealtimeClient};
pub use close::CloseInfo;
pub use connection::{
    ClientItem, ConnectionInfo, ServerItem, ServerSession, SessionHandler, SessionSender,
    TrySendError,
};
pub use error::{ErrorCode, EventError, ProtocolError};
pub use events::{ClientEvent, ServerEvent};
pub use http::HttpResponse;
pub use ids::IdGenerator;
pub use parse::{parse_client_event, parse_server_event};
pub use server::{
    RealtimeServer, RunningServer, ServerConfig, ServerHandle, UpgradeDecision, UpgradeRequest,
};
