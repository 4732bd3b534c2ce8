//! Voice activity detection and turn endpointing.
//!
//! - [`silero`]: the Silero VAD v6 16 kHz model in candle, one speech probability per 32 ms window.
//! - [`endpoint`]: OpenAI `server_vad` turn detection over that probability stream.
//!
//! Glue between them: remember [`SileroVad::windows_done`] before a step, then label the
//! probabilities it returns with [`VadWindow::sequence`] and feed those to the [`Endpointer`].

pub mod endpoint;
pub mod error;
pub mod silero;

pub use endpoint::{EndpointConfig, EndpointEvent, Endpointer};
pub use error::VadError;
pub use silero::SileroVad;

/// Sample rate Silero's 16 kHz model was trained for: the models' input rate.
pub const SAMPLE_RATE: u32 = parley_audio_io::constants::MODEL_INPUT_RATE;
/// Samples per VAD window (32 ms): one probability each.
pub const WINDOW_SAMPLES: usize = 512;
/// Samples of the previous window the model sees in front of each window.
pub const CONTEXT_SAMPLES: usize = 64;

/// One VAD window: its sample span in the stream and its speech probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadWindow {
    /// First sample of the window (16 kHz stream position).
    pub start_sample: u64,
    /// One past the last sample of the window.
    pub end_sample: u64,
    pub prob: f32,
}

impl VadWindow {
    /// Labels consecutive Silero windows, the first being window number `first_index` of the
    /// stream (window `i` covers samples `[512 i, 512 i + 512)`).
    pub fn sequence(first_index: u64, probs: &[f32]) -> Vec<VadWindow> {
        let window = WINDOW_SAMPLES as u64;
        probs
            .iter()
            .zip(first_index..)
            .map(|(&prob, i)| VadWindow {
                start_sample: i * window,
                end_sample: (i + 1) * window,
                prob,
            })
            .collect()
    }
}

/// Whole milliseconds at [`SAMPLE_RATE`], rounded down.
pub(crate) fn samples_to_ms(samples: u64) -> u64 {
    parley_audio_io::constants::samples_to_ms(samples, SAMPLE_RATE)
}

/// Samples covered by `ms` at [`SAMPLE_RATE`], rounded down.
pub(crate) fn ms_to_samples(ms: u32) -> u64 {
    parley_audio_io::constants::ms_to_samples(u64::from(ms), SAMPLE_RATE)
}
