//! The one error type of the audio crate. Every fallible public function returns
//! [`Result<T>`](Result) with an [`AudioError`] that says what went wrong and, for files, which file.

use std::path::PathBuf;

/// Shorthand for results in this crate.
pub type Result<T, E = AudioError> = std::result::Result<T, E>;

/// Everything that can go wrong in audio I/O.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A WAV file could not be opened, parsed or written.
    #[error("WAV file {}: {source}", path.display())]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },

    /// A WAV file uses a sample layout parley cannot turn into `f32` (e.g. 64-bit float).
    #[error("WAV file {}: unsupported sample format ({bits}-bit {format})", path.display())]
    UnsupportedWavFormat {
        path: PathBuf,
        bits: u16,
        format: &'static str,
    },

    /// A WAV file whose header makes no sense (0 Hz, 0 channels).
    #[error("WAV file {}: {problem}", path.display())]
    InvalidWav { path: PathBuf, problem: String },

    /// A sample rate of 0 or one a component does not support (Opus takes 24 or 48 kHz only).
    #[error("{what}: unsupported sample rate {rate} Hz")]
    UnsupportedRate { what: &'static str, rate: u32 },

    /// A channel count of 0 (or one a component does not support).
    #[error("{what}: unsupported channel count {channels}")]
    UnsupportedChannels { what: &'static str, channels: u16 },

    /// A ring or queue was asked to have no room at all.
    #[error("{what}: capacity must be at least one frame")]
    ZeroCapacity { what: &'static str },

    /// rubato refused to build or run a resampler.
    #[error("resampler {from} Hz -> {to} Hz: {message}")]
    Resampler { from: u32, to: u32, message: String },

    /// An Opus frame was not exactly 20 ms long.
    #[error("Opus frame must be exactly {expected} samples (20 ms), got {got}")]
    OpusFrameLength { expected: usize, got: usize },

    /// libopus reported an error (corrupt packet, bad argument, ...).
    #[error("Opus: {0}")]
    Opus(#[from] opus::Error),

    /// No input/output device with this name exists (the known names are listed).
    #[error("no {direction} audio device named {name:?} (available: {available:?})")]
    DeviceNotFound {
        direction: &'static str,
        name: String,
        available: Vec<String>,
    },

    /// The host has no default input/output device.
    #[error("no default {direction} audio device")]
    NoDefaultDevice { direction: &'static str },

    /// cpal failed while enumerating, configuring or starting a device.
    #[error("audio device {context}: {message}")]
    Device {
        context: &'static str,
        message: String,
    },

    /// The playout buffer already holds as much audio as it may; nothing was enqueued.
    #[error(
        "playout buffer full: {queued_ms} ms queued, adding {adding_ms} ms exceeds the {max_ms} ms limit"
    )]
    PlayoutFull {
        queued_ms: u64,
        adding_ms: u64,
        max_ms: u64,
    },

    /// Audio arrived for a response that was already cut off by `clear()` (barge-in); it is not
    /// played.
    #[error("response {0} was cleared (barge-in); its audio is not played")]
    ResponseCleared(u64),

    /// A worker thread could not be started.
    #[error("could not start thread {name}: {source}")]
    Thread {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}
