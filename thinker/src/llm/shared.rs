//! [`SharedGguf`]: what a GGUF file gives every conversation alike, loaded once.
//!
//! The weights, tokenizer, chat template and end-of-turn tokens are read-only after loading, so
//! N sessions ([`super::GgufThinker::new`]) share one copy through an `Arc`; each session owns
//! only its KV cache, history and sampler. candle's CPU kernels serialize concurrent callers on
//! their thread pool, so sessions on different threads are safe (they take turns per matmul).

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use candle_core::quantized::gguf_file;

use super::LlmError;
use super::chat_template::ChatTemplate;
use super::gguf_tokenizer::GgufTokenizer;
use super::model::{GgufWeights, ModelConfig};

/// A loaded GGUF model: weights, tokenizer and chat template.
#[derive(Debug)]
pub struct SharedGguf {
    weights: Arc<GgufWeights>,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    end_of_turn: Vec<u32>,
}

impl SharedGguf {
    /// Loads a GGUF model (llama or qwen2 architecture, byte-level BPE tokenizer, chat template
    /// in the metadata).
    pub fn load(path: impl AsRef<Path>) -> Result<Arc<Self>, LlmError> {
        let path = path.as_ref();
        let io_err = |source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io_err)?);
        let content = gguf_file::Content::read(&mut file).map_err(|e| LlmError::Gguf {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let tokenizer = GgufTokenizer::from_gguf(&content)?;
        if tokenizer.vocab_size() == 0 {
            return Err(LlmError::MissingMetadata("tokenizer.ggml.tokens".into()));
        }
        let template_source = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| LlmError::MissingMetadata("tokenizer.chat_template".into()))?;
        let token_text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token(id))
                .unwrap_or_default()
                .to_string()
        };
        let template = ChatTemplate::new(
            &template_source,
            &token_text(tokenizer.bos_id),
            &token_text(tokenizer.eos_id),
        )?;
        let weights = GgufWeights::from_gguf(&content, &mut file, &Device::Cpu)?;

        // End of an answer: eos / eot from the metadata and the token the template closes an
        // assistant message with (e.g. `<|im_end|>`), found by rendering, not by number.
        let mut end_of_turn: Vec<u32> = [tokenizer.eos_id, tokenizer.eot_id]
            .into_iter()
            .flatten()
            .collect();
        let suffix = template.assistant_suffix()?;
        if let Some(&first) = tokenizer.encode(&suffix)?.first()
            && tokenizer.is_control(first)
            && !end_of_turn.contains(&first)
        {
            end_of_turn.push(first);
        }
        Ok(Arc::new(Self {
            weights: Arc::new(weights),
            tokenizer,
            template,
            end_of_turn,
        }))
    }

    pub fn weights(&self) -> &Arc<GgufWeights> {
        &self.weights
    }

    pub fn model_config(&self) -> &ModelConfig {
        &self.weights.config
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Tokens that end an answer (besides any other control token).
    pub fn end_of_turn_ids(&self) -> &[u32] {
        &self.end_of_turn
    }
}
