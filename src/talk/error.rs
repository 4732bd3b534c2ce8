//! What can stop `parley talk` from starting. Trouble after the session started (the server
//! closing, the microphone path failing) ends the conversation with
//! [`TalkReport::failure`](super::TalkReport::failure) set instead, keeping what was recorded.

use std::time::Duration;

use parley_audio_io::{AudioError, EchoError};
use parley_client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum TalkError {
    /// Connecting or upgrading failed (refused, wrong path, bad API key, server full).
    #[error(transparent)]
    Connect(#[from] ClientError),

    /// The server answered the connection with an `error` event instead of `session.created`.
    #[error("the server refused the session: {message} (error code `{code}`)")]
    SessionRefused { code: String, message: String },

    #[error("no session.created from the server within {0:?}")]
    NoSession(Duration),

    #[error("the server closed the connection before the session started")]
    ClosedBeforeSession,

    /// Setting up the audio path (rings, resamplers, threads) failed.
    #[error("audio: {0}")]
    Audio(#[from] AudioError),

    /// The echo canceller could not be built with the given settings.
    #[error(transparent)]
    Echo(#[from] EchoError),
}
