//! The ears of the CPU profile: Whisper tiny.en speech recognition on candle.
//!
//! - [`mel`]: the log-mel front end, computed for the utterance only (no 30 s padding).
//! - [`decoder`]: Whisper's text decoder with a self-attention KV cache (the encoder is
//!   candle-transformers' own).
//! - [`f16_matrix`]: the decoder's matrix x vector products on f16 weights (bandwidth-bound).
//! - [`transcriber`]: loading the model and transcribing one utterance, streaming its text.
//! - [`speculative`]: transcribing when silence starts, so the text is ready at the endpoint.
//!
//! Model files: `parley models fetch` installs `whisper-tiny.en/{config.json, model.safetensors,
//! tokenizer.json}` under the models directory; [`Transcriber::load`] takes that directory.

pub mod decoder;
pub mod error;
pub mod f16_matrix;
pub mod mel;
pub mod speculative;
pub mod transcriber;

pub use error::WhisperError;
pub use speculative::{Finished, SpeculativeTranscriber};
pub use transcriber::{SpecialTokens, StageTimings, Transcriber};
