//! Errors of the VAD and the endpointer.

use std::path::PathBuf;

/// Why the VAD could not be loaded or run, or why the endpointer refused its input.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error(
        "Silero VAD weights not found at {path}; run `parley models fetch` to install the models"
    )]
    ModelMissing { path: PathBuf },
    #[error("{path}: cannot load the Silero VAD weights: {source}")]
    Load {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("Silero VAD inference failed: {0}")]
    Inference(#[from] candle_core::Error),
    /// A NaN or infinite sample would poison the LSTM state for the rest of the stream, so the
    /// whole chunk is refused before any of it is absorbed.
    #[error("audio sample {index} of this chunk is {value}, not a finite number")]
    NonFiniteSample { index: usize, value: f32 },
    #[error(
        "VAD window starting at sample {start} overlaps the previous one (ended at {previous_end})"
    )]
    WindowOutOfOrder { start: u64, previous_end: u64 },
    #[error("VAD window [{start}, {end}) is empty or reversed")]
    EmptyWindow { start: u64, end: u64 },
    #[error("VAD probability {0} is not within [0, 1]")]
    InvalidProbability(f32),
    #[error("invalid endpointer config: {0}")]
    InvalidConfig(String),
}
