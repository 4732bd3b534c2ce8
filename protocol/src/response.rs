//! The response object of `response.created` / `response.done`, its status and usage, and the
//! parameters of `response.create`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::conversation::ConversationItem;
use crate::session::{AudioFormat, MaxOutputTokens, Modality, Voice};

/// A response (`response` field of `response.created` / `response.done`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseObject {
    /// `resp_...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.response`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Items the response produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<ConversationItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<ResponseAudio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// parley extension: ties binary audio frames to this response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parley: Option<ParleyResponseInfo>,
}

/// `response.parley`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ParleyResponseInfo {
    /// The `stream_id` of the binary audio frames carrying this response's audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_stream_id: Option<u32>,
    /// Where the time went (in `response.done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<TurnTimings>,
}

/// `response.parley.timings`: the server's stage timings of one turn. Times are milliseconds from
/// the moment the last sample of the user's speech reached the server (`None`: the stage did not
/// happen, e.g. a response without a spoken turn, or cancelled before its first audio).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TurnTimings {
    /// The end of the turn was decided (the endpoint's silence, plus processing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_ms: Option<f64>,
    /// The user's transcript was ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcribe_ms: Option<f64>,
    /// The Thinker was asked to answer: before the endpoint when it answered ahead on the
    /// transcript made at the first silence (its audio is held back until the endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_started_ms: Option<f64>,
    /// The Thinker's first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// The first audio was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_audio_ms: Option<f64>,
    /// Talker compute time over the duration of the audio it produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talker_rtf: Option<f64>,
    /// Audio sent for this response.
    pub audio_ms: f64,
    /// Thinker tokens generated.
    pub tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    Completed,
    Cancelled,
    Incomplete,
    Failed,
    InProgress,
}

/// `status_details`: why a response ended the way it did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusDetails {
    /// Repeats the status (`completed`, `cancelled`, `incomplete`, `failed`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<StatusReason>,
    /// Set when the status is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
}

/// `status_details.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusReason {
    /// Cancelled because the server VAD heard the user start speaking (barge-in).
    TurnDetected,
    /// Cancelled by a `response.cancel`.
    ClientCancelled,
    /// Incomplete: hit `max_output_tokens`.
    MaxOutputTokens,
    /// Incomplete: stopped by a content filter.
    ContentFilter,
    /// A reason this version does not know (the GA list keeps growing); serializes as `other`.
    #[serde(other)]
    Other,
}

/// `status_details.error`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusError {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Token usage of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<InputTokenDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_token_details: Option<OutputTokenDetails>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputTokenDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputTokenDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u32>,
}

/// `response.audio` (output audio settings of one response).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponseAudio {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<ResponseAudioOutput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponseAudioOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
}

/// The optional `response` of `response.create`: overrides for this one response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseCreateParams {
    /// `auto` (default conversation) or `none` (out-of-band response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Items to use as the input instead of the conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<ConversationItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<ResponseAudio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}
