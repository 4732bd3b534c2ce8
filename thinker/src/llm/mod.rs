//! The CPU profile's Thinker: a GGUF LLM (llama or qwen2 architecture) that keeps the
//! conversation in its KV cache and streams its answer token by token.
//!
//! - [`gguf_tokenizer`]: byte-level BPE built from the GGUF vocabulary and merges.
//! - [`chat_template`]: the model's Jinja chat template from the GGUF metadata.
//! - [`linear`]: a projection prepared at load for the fastest CPU kernel.
//! - [`quad`]: our Q4_1 and Q8_0 kernels (AVX2, rows interleaved by four).
//! - [`model`]: the quantized decoder ([`GgufWeights`], shared) and one conversation's
//!   truncatable KV cache over them ([`GgufModel`]).
//! - [`shared`]: [`SharedGguf`], a model loaded once for many sessions.
//! - [`sampling`]: greedy / temperature / nucleus sampling.
//! - [`session`]: [`GgufThinker`], the conversation, sampling and the `Thinker` trait.

pub mod chat_template;
pub mod gguf_tokenizer;
pub mod linear;
pub mod model;
pub mod quad;
pub mod sampling;
pub mod session;
pub mod shared;
mod spm;

pub use chat_template::{ChatMessage, ChatTemplate};
pub use gguf_tokenizer::GgufTokenizer;
pub use model::{GgufModel, GgufWeights, ModelConfig};
pub use session::{GgufThinker, SessionConfig};
pub use shared::SharedGguf;

use std::path::PathBuf;

/// Why the LLM could not load or run.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable GGUF file: {message}")]
    Gguf { path: PathBuf, message: String },
    #[error("GGUF architecture `{0}` is not supported (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),
    #[error("unsupported tokenizer: {0}")]
    UnsupportedTokenizer(String),
    #[error("GGUF metadata `{0}` is missing")]
    MissingMetadata(String),
    #[error("GGUF metadata `{0}` is invalid: {1}")]
    BadMetadata(String, String),
    #[error("GGUF weights: {0}")]
    Weights(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("tokenizing: {0}")]
    Tokenize(String),
    #[error(
        "the turn needs {needed} positions but the context holds {limit}; shorten the turn or \
         raise `context_tokens`"
    )]
    ContextFull { needed: usize, limit: usize },
    #[error("no answer is in progress; call `user_turn` first")]
    NoAnswer,
    #[error("invalid session config: {0}")]
    Config(String),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("internal error: {0}")]
    Internal(String),
}
