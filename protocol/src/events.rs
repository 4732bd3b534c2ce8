//! The JSON events: [`ClientEvent`] (client -> server) and [`ServerEvent`] (server -> client).
//!
//! Each event is a struct named after its GA `type` (`input_audio_buffer.append` ->
//! [`InputAudioBufferAppend`]); the enums are tagged by `type`. Unknown fields are ignored so that
//! OpenAI clients sending more than parley supports still work. Client `event_id`s are optional
//! (the client may set one to find the `error` that answers it); server `event_id`s are required.
//!
//! Session configs and response objects are boxed: they are big and rare, and boxing keeps the
//! enums (which travel through the per-connection queues with every audio chunk) small.

use serde::{Deserialize, Serialize};

use crate::audio::Pcm16Audio;
use crate::conversation::ConversationItem;
use crate::error::ProtocolError;
use crate::response::{ResponseCreateParams, ResponseObject};
use crate::session::SessionConfig;

// ---------------------------------------------------------------------------------------------
// Client events
// ---------------------------------------------------------------------------------------------

/// An event from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    #[serde(rename = "session.update")]
    SessionUpdate(SessionUpdate),
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend(InputAudioBufferAppend),
    #[serde(rename = "input_audio_buffer.commit")]
    InputAudioBufferCommit(InputAudioBufferCommit),
    #[serde(rename = "input_audio_buffer.clear")]
    InputAudioBufferClear(InputAudioBufferClear),
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate(ConversationItemCreate),
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate(ConversationItemTruncate),
    #[serde(rename = "conversation.item.delete")]
    ConversationItemDelete(ConversationItemDelete),
    #[serde(rename = "conversation.item.retrieve")]
    ConversationItemRetrieve(ConversationItemRetrieve),
    #[serde(rename = "response.create")]
    ResponseCreate(ResponseCreate),
    #[serde(rename = "response.cancel")]
    ResponseCancel(ResponseCancel),
}

impl ClientEvent {
    /// Every `type` a client may send, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "response.create",
        "response.cancel",
    ];

    /// The wire `type` of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            ClientEvent::SessionUpdate(_) => "session.update",
            ClientEvent::InputAudioBufferAppend(_) => "input_audio_buffer.append",
            ClientEvent::InputAudioBufferCommit(_) => "input_audio_buffer.commit",
            ClientEvent::InputAudioBufferClear(_) => "input_audio_buffer.clear",
            ClientEvent::ConversationItemCreate(_) => "conversation.item.create",
            ClientEvent::ConversationItemTruncate(_) => "conversation.item.truncate",
            ClientEvent::ConversationItemDelete(_) => "conversation.item.delete",
            ClientEvent::ConversationItemRetrieve(_) => "conversation.item.retrieve",
            ClientEvent::ResponseCreate(_) => "response.create",
            ClientEvent::ResponseCancel(_) => "response.cancel",
        }
    }

    /// The client's `event_id`, if it set one.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            ClientEvent::SessionUpdate(e) => e.event_id.as_deref(),
            ClientEvent::InputAudioBufferAppend(e) => e.event_id.as_deref(),
            ClientEvent::InputAudioBufferCommit(e) => e.event_id.as_deref(),
            ClientEvent::InputAudioBufferClear(e) => e.event_id.as_deref(),
            ClientEvent::ConversationItemCreate(e) => e.event_id.as_deref(),
            ClientEvent::ConversationItemTruncate(e) => e.event_id.as_deref(),
            ClientEvent::ConversationItemDelete(e) => e.event_id.as_deref(),
            ClientEvent::ConversationItemRetrieve(e) => e.event_id.as_deref(),
            ClientEvent::ResponseCreate(e) => e.event_id.as_deref(),
            ClientEvent::ResponseCancel(e) => e.event_id.as_deref(),
        }
    }

    /// The event as JSON text, ready for a WebSocket text frame.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(ProtocolError::Serialize)
    }

    /// `input_audio_buffer.append` of `samples` (converted to PCM16).
    pub fn append_audio(samples: &[f32]) -> Self {
        ClientEvent::InputAudioBufferAppend(InputAudioBufferAppend {
            event_id: None,
            audio: Pcm16Audio::from_samples(samples),
        })
    }
}

/// `session.update`: change the session configuration; answered by `session.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub session: Box<SessionConfig>,
}

/// `input_audio_buffer.append`: add audio to the input buffer. Not acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAudioBufferAppend {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Base64 PCM16 24 kHz mono.
    pub audio: Pcm16Audio,
}

/// `input_audio_buffer.commit`: make the buffered audio a user item (needed without turn
/// detection); answered by `input_audio_buffer.committed`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputAudioBufferCommit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `input_audio_buffer.clear`: drop the buffered audio; answered by
/// `input_audio_buffer.cleared`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputAudioBufferClear {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `conversation.item.create`: insert an item; answered by `conversation.item.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationItemCreate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Insert after this item; at the end when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
    pub item: ConversationItem,
}

/// `conversation.item.truncate`: cut an assistant item's audio at what the user actually heard
/// (barge-in); answered by `conversation.item.truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationItemTruncate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub item_id: String,
    /// 0 for the audio part.
    pub content_index: u32,
    /// Whole milliseconds of audio played; must be an integer.
    pub audio_end_ms: u64,
}

/// `conversation.item.retrieve`: ask for an item as the server holds it now (e.g. an answer after
/// truncation); answered by `conversation.item.retrieved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationItemRetrieve {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub item_id: String,
}

/// `conversation.item.delete`: remove an item; answered by `conversation.item.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationItemDelete {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub item_id: String,
}

/// `response.create`: ask for a response (needed when turn detection does not do it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseCreate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseCreateParams>,
}

/// `response.cancel`: stop the current (or the given) response; answered by `response.done`
/// with status `cancelled`, or an `error` when nothing is running.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponseCancel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Server events
// ---------------------------------------------------------------------------------------------

/// An event from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    #[serde(rename = "session.created")]
    SessionCreated(SessionCreated),
    #[serde(rename = "session.updated")]
    SessionUpdated(SessionUpdated),
    #[serde(rename = "error")]
    Error(ErrorEvent),
    #[serde(rename = "input_audio_buffer.speech_started")]
    InputAudioBufferSpeechStarted(InputAudioBufferSpeechStarted),
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    InputAudioBufferSpeechStopped(InputAudioBufferSpeechStopped),
    #[serde(rename = "input_audio_buffer.committed")]
    InputAudioBufferCommitted(InputAudioBufferCommitted),
    #[serde(rename = "input_audio_buffer.cleared")]
    InputAudioBufferCleared(InputAudioBufferCleared),
    #[serde(rename = "conversation.item.added")]
    ConversationItemAdded(ConversationItemAdded),
    #[serde(rename = "conversation.item.done")]
    ConversationItemDone(ConversationItemDone),
    #[serde(rename = "conversation.item.truncated")]
    ConversationItemTruncated(ConversationItemTruncated),
    #[serde(rename = "conversation.item.deleted")]
    ConversationItemDeleted(ConversationItemDeleted),
    #[serde(rename = "conversation.item.retrieved")]
    ConversationItemRetrieved(ConversationItemRetrieved),
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    InputAudioTranscriptionDelta(InputAudioTranscriptionDelta),
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputAudioTranscriptionCompleted(InputAudioTranscriptionCompleted),
    #[serde(rename = "response.created")]
    ResponseCreated(ResponseCreated),
    #[serde(rename = "response.done")]
    ResponseDone(ResponseDone),
    #[serde(rename = "response.output_audio.delta")]
    ResponseOutputAudioDelta(ResponseOutputAudioDelta),
    #[serde(rename = "response.output_audio.done")]
    ResponseOutputAudioDone(ResponseOutputAudioDone),
    #[serde(rename = "response.output_audio_transcript.delta")]
    ResponseOutputAudioTranscriptDelta(ResponseOutputAudioTranscriptDelta),
    #[serde(rename = "response.output_audio_transcript.done")]
    ResponseOutputAudioTranscriptDone(ResponseOutputAudioTranscriptDone),
    #[serde(rename = "response.output_text.delta")]
    ResponseOutputTextDelta(ResponseOutputTextDelta),
    #[serde(rename = "response.output_text.done")]
    ResponseOutputTextDone(ResponseOutputTextDone),
}

impl ServerEvent {
    /// Every `type` a parley server sends, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "session.created",
        "session.updated",
        "error",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_text.delta",
        "response.output_text.done",
    ];

    /// The wire `type` of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            ServerEvent::SessionCreated(_) => "session.created",
            ServerEvent::SessionUpdated(_) => "session.updated",
            ServerEvent::Error(_) => "error",
            ServerEvent::InputAudioBufferSpeechStarted(_) => "input_audio_buffer.speech_started",
            ServerEvent::InputAudioBufferSpeechStopped(_) => "input_audio_buffer.speech_stopped",
            ServerEvent::InputAudioBufferCommitted(_) => "input_audio_buffer.committed",
            ServerEvent::InputAudioBufferCleared(_) => "input_audio_buffer.cleared",
            ServerEvent::ConversationItemAdded(_) => "conversation.item.added",
            ServerEvent::ConversationItemDone(_) => "conversation.item.done",
            ServerEvent::ConversationItemTruncated(_) => "conversation.item.truncated",
            ServerEvent::ConversationItemDeleted(_) => "conversation.item.deleted",
            ServerEvent::ConversationItemRetrieved(_) => "conversation.item.retrieved",
            ServerEvent::InputAudioTranscriptionDelta(_) => {
                "conversation.item.input_audio_transcription.delta"
            }
            ServerEvent::InputAudioTranscriptionCompleted(_) => {
                "conversation.item.input_audio_transcription.completed"
            }
            ServerEvent::ResponseCreated(_) => "response.created",
            ServerEvent::ResponseDone(_) => "response.done",
            ServerEvent::ResponseOutputAudioDelta(_) => "response.output_audio.delta",
            ServerEvent::ResponseOutputAudioDone(_) => "response.output_audio.done",
            ServerEvent::ResponseOutputAudioTranscriptDelta(_) => {
                "response.output_audio_transcript.delta"
            }
            ServerEvent::ResponseOutputAudioTranscriptDone(_) => {
                "response.output_audio_transcript.done"
            }
            ServerEvent::ResponseOutputTextDelta(_) => "response.output_text.delta",
            ServerEvent::ResponseOutputTextDone(_) => "response.output_text.done",
        }
    }

    /// The event as JSON text, ready for a WebSocket text frame.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(ProtocolError::Serialize)
    }

    /// The server's `event_id`.
    pub fn event_id(&self) -> &str {
        match self {
            ServerEvent::SessionCreated(e) => &e.event_id,
            ServerEvent::SessionUpdated(e) => &e.event_id,
            ServerEvent::Error(e) => &e.event_id,
            ServerEvent::InputAudioBufferSpeechStarted(e) => &e.event_id,
            ServerEvent::InputAudioBufferSpeechStopped(e) => &e.event_id,
            ServerEvent::InputAudioBufferCommitted(e) => &e.event_id,
            ServerEvent::InputAudioBufferCleared(e) => &e.event_id,
            ServerEvent::ConversationItemAdded(e) => &e.event_id,
            ServerEvent::ConversationItemDone(e) => &e.event_id,
            ServerEvent::ConversationItemTruncated(e) => &e.event_id,
            ServerEvent::ConversationItemDeleted(e) => &e.event_id,
            ServerEvent::ConversationItemRetrieved(e) => &e.event_id,
            ServerEvent::InputAudioTranscriptionDelta(e) => &e.event_id,
            ServerEvent::InputAudioTranscriptionCompleted(e) => &e.event_id,
            ServerEvent::ResponseCreated(e) => &e.event_id,
            ServerEvent::ResponseDone(e) => &e.event_id,
            ServerEvent::ResponseOutputAudioDelta(e) => &e.event_id,
            ServerEvent::ResponseOutputAudioDone(e) => &e.event_id,
            ServerEvent::ResponseOutputAudioTranscriptDelta(e) => &e.event_id,
            ServerEvent::ResponseOutputAudioTranscriptDone(e) => &e.event_id,
            ServerEvent::ResponseOutputTextDelta(e) => &e.event_id,
            ServerEvent::ResponseOutputTextDone(e) => &e.event_id,
        }
    }
}

/// `session.created`: the first event of every connection, with the effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub event_id: String,
    pub session: Box<SessionConfig>,
}

/// `session.updated`: answers `session.update` with the whole effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdated {
    pub event_id: String,
    pub session: Box<SessionConfig>,
}

/// `error`. Most errors are recoverable: the session stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub event_id: String,
    pub error: ErrorDetails,
}

/// The `error` object of an `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// `invalid_request_error` or `server_error`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Machine-readable code (see README, "Error codes").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    /// The field the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The `event_id` of the client event that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `input_audio_buffer.speech_started`: the VAD heard speech begin (the barge-in trigger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAudioBufferSpeechStarted {
    pub event_id: String,
    /// Milliseconds since the session's first input audio.
    pub audio_start_ms: u64,
    /// The user item the speech will become.
    pub item_id: String,
}

/// `input_audio_buffer.speech_stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAudioBufferSpeechStopped {
    pub event_id: String,
    pub audio_end_ms: u64,
    pub item_id: String,
}

/// `input_audio_buffer.committed`: the buffer became a user item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAudioBufferCommitted {
    pub event_id: String,
    pub item_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
}

/// `input_audio_buffer.cleared`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAudioBufferCleared {
    pub event_id: String,
}

/// `conversation.item.added`: an item entered the conversation (content may still grow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationItemAdded {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
    pub item: ConversationItem,
}

/// `conversation.item.done`: an item is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationItemDone {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
    pub item: ConversationItem,
}

/// `conversation.item.truncated`: answers `conversation.item.truncate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationItemTruncated {
    pub event_id: String,
    pub item_id: String,
    pub content_index: u32,
    pub audio_end_ms: u64,
}

/// `conversation.item.retrieved`: answers `conversation.item.retrieve` with the item as the server
/// holds it (an answer's transcript is what stayed in the conversation after truncation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationItemRetrieved {
    pub event_id: String,
    pub item: ConversationItem,
}

/// `conversation.item.deleted`: answers `conversation.item.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationItemDeleted {
    pub event_id: String,
    pub item_id: String,
}

/// `conversation.item.input_audio_transcription.delta`: a piece of a user item's transcript, in
/// order; the pieces joined are the `completed` event's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAudioTranscriptionDelta {
    pub event_id: String,
    pub item_id: String,
    pub content_index: u32,
    pub delta: String,
}

/// `conversation.item.input_audio_transcription.completed`: the transcript of a user item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAudioTranscriptionCompleted {
    pub event_id: String,
    pub item_id: String,
    pub content_index: u32,
    pub transcript: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<TranscriptionUsage>,
}

/// Usage of a transcription: tokens or seconds of audio, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptionUsage {
    Tokens {
        input_tokens: u32,
        output_tokens: u32,
        total_tokens: u32,
    },
    Duration {
        seconds: f64,
    },
}

/// `response.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseCreated {
    pub event_id: String,
    pub response: Box<ResponseObject>,
}

/// `response.done`: the response ended; `response.status` says how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseDone {
    pub event_id: String,
    pub response: Box<ResponseObject>,
}

/// `response.output_audio.delta`: a chunk of response audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseOutputAudioDelta {
    pub event_id: String,
    pub response_id: String,
    pub item_id: String,
    pub output_index: u32,
    pub content_index: u32,
    /// Base64 PCM16 24 kHz mono.
    pub delta: Pcm16Audio,
}

/// `response.output_audio.done`: no more audio for this content part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseOutputAudioDone {
    pub event_id: String,
    pub response_id: String,
    pub item_id: String,
    pub output_index: u32,
    pub content_index: u32,
}

/// `response.output_audio_transcript.delta`: text of what the audio says, as it is produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseOutputAudioTranscriptDelta {
    pub event_id: String,
    pub response_id: String,
    pub item_id: String,
    pub output_index: u32,
    pub content_index: u32,
    pub delta: String,
}

/// `response.output_audio_transcript.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseOutputAudioTranscriptDone {
    pub event_id: String,
    pub response_id: String,
    pub item_id: String,
    pub output_index: u32,
    pub content_index: u32,
    pub transcript: String,
}

/// `response.output_text.delta` (text-only responses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseOutputTextDelta {
    pub event_id: String,
    pub response_id: String,
    pub item_id: String,
    pub output_index: u32,
    pub content_index: u32,
    pub delta: String,
}

/// `response.output_text.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseOutputTextDone {
    pub event_id: String,
    pub response_id: String,
    pub item_id: String,
    pub output_index: u32,
    pub content_index: u32,
    pub text: String,
}
