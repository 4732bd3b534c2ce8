//! Errors of the Qwen2.5-Omni Thinker.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QwenError {
    /// A checkpoint file is absent (wrong directory, or an incomplete download).
    #[error(
        "{path} is missing: a Qwen2.5-Omni checkpoint directory holds config.json and *.safetensors"
    )]
    MissingFile { path: PathBuf },
    /// The hub could not provide a checkpoint (offline, unknown repo, no access).
    #[error(
        "could not fetch {repo} from the Hugging Face hub: {message}. Download the checkpoint \
         elsewhere (e.g. `huggingface-cli download {repo}`) and pass its directory instead of the \
         repo id"
    )]
    Hub { repo: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// config.json is not valid JSON or lacks the Thinker's configuration.
    #[error("{path}: {message}")]
    BadConfig { path: PathBuf, message: String },
    /// The configuration parses but describes something this port cannot run.
    #[error("unsupported Qwen2.5-Omni configuration: {0}")]
    Unsupported(String),
    /// A weight is missing or has the wrong shape.
    #[error("checkpoint weights: {0}")]
    Weights(String),
    /// A caller-supplied tensor (token ids, features) does not fit the model.
    #[error("bad input `{name}`: {message}")]
    BadInput { name: String, message: String },
    #[error(
        "unknown reference-check component `{0}` (known: audio-encoder, thinker, talker, \
         generate, dit, bigvgan, token2wav)"
    )]
    UnknownComponent(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to render, or rewrote turns already in the KV cache.
    #[error("chat template: {0}")]
    Template(String),
    /// An answer was asked for (next token, truncation) before a user turn.
    #[error("no answer in progress: send a user turn first")]
    NoAnswer,
    /// The conversation no longer fits the model's context.
    #[error("the conversation needs {needed} positions but the model holds {limit}")]
    ContextFull { needed: usize, limit: usize },
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl QwenError {
    pub fn bad_input(name: &str, message: impl Into<String>) -> Self {
        Self::BadInput {
            name: name.to_string(),
            message: message.into(),
        }
    }
}
