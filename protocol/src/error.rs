//! The crate's error type, and the `error` event codes the transport answers bad input with.

use std::fmt;

use thiserror::Error;

use crate::audio::AudioError;
use crate::binary::FrameError;
use crate::events::{ErrorDetails, ErrorEvent, ServerEvent};

/// `error.type` for problems caused by what the client sent (the OpenAI value).
pub const INVALID_REQUEST_ERROR: &str = "invalid_request_error";
/// `error.type` for problems on the server side (the OpenAI value).
pub const SERVER_ERROR: &str = "server_error";

/// The `error.code` values the transport itself produces. The engine may send other codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The text frame is not valid JSON.
    InvalidJson,
    /// The JSON has a `type` this server does not know (or does not support).
    UnknownEventType,
    /// The `type` is known but a field is missing, has the wrong type or a bad value, or the
    /// JSON is not an object with a string `type`.
    InvalidEvent,
    /// An audio field is not valid base64 or does not hold whole PCM16 samples.
    InvalidAudio,
    /// A binary frame could not be decoded, or its kind does not match the negotiated codec.
    InvalidBinaryFrame,
    /// A binary frame arrived before `session.updated` confirmed binary audio.
    BinaryAudioNotEnabled,
    /// The message is larger than the server's limit; the connection closes with 1009 after it.
    MessageTooLarge,
}

impl ErrorCode {
    /// The string that goes in `error.code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownEventType => "unknown_event_type",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::InvalidAudio => "invalid_audio",
            ErrorCode::InvalidBinaryFrame => "invalid_binary_frame",
            ErrorCode::BinaryAudioNotEnabled => "binary_audio_not_enabled",
            ErrorCode::MessageTooLarge => "message_too_large",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an incoming message could not be turned into an event. Everything needed for the `error`
/// event is here, including the offending event's `event_id` when it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {message}")]
pub struct EventError {
    pub code: ErrorCode,
    pub message: String,
    /// The field the error is about, when known (`error.param`).
    pub param: Option<String>,
    /// The `type` of the bad event, when it could be read.
    pub event_type: Option<String>,
    /// The `event_id` of the bad event, when it could be read (`error.event_id`).
    pub event_id: Option<String>,
}

impl EventError {
    /// An error with only a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        EventError {
            code,
            message: message.into(),
            param: None,
            event_type: None,
            event_id: None,
        }
    }

    /// The `error` server event that answers this error; `event_id` is the server's own id for
    /// the new event.
    pub fn to_server_event(&self, event_id: String) -> ServerEvent {
        ServerEvent::Error(ErrorEvent {
            event_id,
            error: ErrorDetails {
                error_type: INVALID_REQUEST_ERROR.to_owned(),
                code: Some(self.code.as_str().to_owned()),
                message: self.message.clone(),
                param: self.param.clone(),
                event_id: self.event_id.clone(),
            },
        })
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// A JSON event could not be parsed or validated (boxed: it is the largest variant).
    #[error("bad event: {0}")]
    Event(Box<EventError>),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("could not serialize an event: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid URL or request: {0}")]
    InvalidRequest(String),
    #[error("the server refused the WebSocket upgrade with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("the connection is closed")]
    Closed,
}

impl From<EventError> for ProtocolError {
    fn from(e: EventError) -> Self {
        ProtocolError::Event(Box::new(e))
    }
}

impl ProtocolError {
    /// The [`EventError`] inside, if this is a bad-event error.
    pub fn as_event_error(&self) -> Option<&EventError> {
        match self {
            ProtocolError::Event(e) => Some(e),
            _ => None,
        }
    }
}
