//! Qwen2.5-Omni's Thinker on candle: the block-wise audio encoder and the TMRoPE language model,
//! loaded from a checkpoint directory in the Hugging Face layout.
//!
//! - [`config`]: `config.json` (`thinker_config.{audio_config, text_config}`), both rope layouts.
//! - [`hub`]: `--model Qwen/Qwen2.5-Omni-3B` through the HF cache/hub, or a local directory.
//! - [`device`]: CPU in f32, or (cargo feature `cuda`) the GPU in bf16.
//! - [`checkpoint`]: the directory (config + safetensors, sharded or not) and weight prefixes.
//! - [`features`]: 16 kHz samples -> the encoder's log-mel (offline and streaming).
//! - [`audio_encoder`]: log-mel -> Thinker embeddings, 2 s blocks, 25 tokens per second.
//! - [`audio_stream`]: the user's speech encoded block by block while they talk.
//! - [`mrope`]: TMRoPE rotary tables and the position ids of a prompt with audio.
//! - [`text_model`]: the Qwen2.5 decoder with its KV cache.
//! - [`thinker`]: [`QwenThinker`], the two put together (prompt embeddings with audio, prefill).
//! - [`tokenizer`]: `tokenizer.json`, special ids by name, streaming text pieces.
//! - [`prompt`]: the chat template (ChatML with audio turns) and the speech system prompt.
//! - [`session`]: [`QwenSession`], a conversation in the KV cache behind the `Thinker` seam.
//! - [`reference_check`]: one component on tensors from a safetensors file, for parity checks
//!   against transformers (`tools/reference/qwen_omni_goldens.py`).
//!
//! On the CPU everything runs in f32 (weights stored as bf16 are converted on load); with the
//! `cuda` feature the Thinker runs on the GPU in bf16.

pub mod audio_encoder;
pub mod audio_stream;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod features;
pub mod hub;
pub mod mrope;
pub mod prompt;
pub mod reference_check;
pub mod session;
pub mod text_model;
pub mod thinker;
pub mod tokenizer;

pub use checkpoint::Checkpoint;
pub use config::{AudioEncoderConfig, TextConfig, ThinkerConfig};
pub use error::QwenError;
pub use mrope::MropePositions;
pub use prompt::{Message, QwenChatTemplate, SPEECH_SYSTEM_PROMPT};
pub use session::{QwenSession, SessionConfig};
pub use thinker::{QwenThinker, ThinkerOutput};
pub use tokenizer::QwenTokenizer;
