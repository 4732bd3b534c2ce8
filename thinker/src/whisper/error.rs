//! Errors of the Whisper ears.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// A model file is absent: the model was never fetched (or was deleted).
    #[error("Whisper model file {path} is missing; run `parley models fetch` to install it")]
    MissingModelFile { path: PathBuf },
    #[error("cannot read {path}: {message}")]
    BadModelFile { path: PathBuf, message: String },
    /// The tokenizer lacks a token Whisper decoding needs (wrong tokenizer.json).
    #[error("the Whisper tokenizer has no `{0}` token")]
    MissingSpecialToken(String),
    #[error("Whisper model error: {0}")]
    Model(#[from] candle_core::Error),
    #[error("Whisper tokenizer error: {0}")]
    Tokenizer(String),
    /// The work was cancelled through its `CancelGuard` before it finished.
    #[error("transcription cancelled")]
    Cancelled,
}
