//! parley's Talker: turns the Thinker's streaming tokens into 24 kHz speech, chunk by chunk, so
//! audio starts while the Thinker is still writing.
//!
//! The CPU profile's hibari TTS and Qwen2.5-Omni's Talker + Token2Wav live here, one file per
//! model component. Both implement [`Talker`].

pub mod hibari;
pub mod qwen;

use parley_thinker::seam::{AnswerContext, ThinkerToken};
use parley_thinker::stream::{CancelGuard, Step};

/// A streaming speech generator for one answer at a time.
pub trait Talker: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A new answer begins (after `reset`), with what the Thinker's `answer_context` returned.
    /// Talkers that speak from text alone ignore it.
    fn start_answer(&mut self, context: Option<AnswerContext>) -> Result<(), Self::Error> {
        let _ = context;
        Ok(())
    }

    /// Feeds the next Thinker token of the current answer.
    fn push_token(&mut self, token: &ThinkerToken) -> Result<(), Self::Error>;

    /// The current answer's text is complete: speak whatever is left.
    fn finish(&mut self);

    /// The next chunk of 24 kHz mono PCM. `Pending` while waiting for more text (e.g. the first
    /// phrase boundary), `Done` once the finished answer is fully spoken. Checks `cancel` before
    /// every model step.
    fn next_chunk(&mut self, cancel: &CancelGuard) -> Result<Step<Vec<f32>>, Self::Error>;

    /// Drops the current answer (barge-in) and starts clean.
    fn reset(&mut self);

    /// The voices this Talker speaks with; the first is its default.
    fn voices(&self) -> Vec<String>;

    /// Speaks with `voice` (one of [`Talker::voices`], any case) from the next answer on; an
    /// answer in progress keeps its voice.
    fn set_voice(&mut self, voice: &str) -> Result<(), Self::Error>;

    /// The phrase the chunk last returned by `next_chunk` belongs to: its text and its length
    /// in samples, when the Talker knows them. The engine uses them to keep only what the
    /// listener heard after a barge-in.
    fn spoken_phrase(&self) -> Option<(&str, u64)> {
        None
    }
}
