//! parley's Thinker: hears the user and thinks.
//!
//! - [`stream`]: the streaming vocabulary (`Step`, `StreamingModule`, cancellation) all stages use.
//! - [`seam`]: what the Thinker streams to the Talker (`ThinkerToken`) and the `Thinker` trait.
//!
//! The CPU profile's models (Silero VAD, Whisper, GGUF LLM) and Qwen2.5-Omni's audio encoder and
//! Thinker live here, one file per model component.

pub mod llm;
pub mod qwen;
pub mod seam;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod simd;
pub mod stream;
pub mod vad;
pub mod whisper;
