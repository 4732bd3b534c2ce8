//! Qwen2.5-Omni's Talker LM (`talker.*`): a Qwen2 decoder with TMRoPE that reads the Thinker's
//! hidden states + embeddings (projected by `thinker_to_talker_proj`) plus its own codec
//! embeddings, and predicts the next codec token with `codec_head`.
//!
//! The codec embedding table lives in the Thinker's space (`embedding_size` wide), so a step's
//! input is `codec_embed(code) + thinker_part`, projected to the Talker's width and run through
//! the decoder ([`parley_thinker::qwen::text_model::TextModel`], the same layers the Thinker uses)
//! with its KV cache.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use candle_nn::Linear;
use parley_thinker::qwen::text_model::TextModel;
use parley_thinker::qwen::{MropePositions, QwenError, TextConfig};
use serde::Deserialize;

use super::token2wav::weights;

pub const TALKER_PREFIX: &str = "talker";

/// `talker_config` of config.json: a decoder config plus the Talker's own fields. Where
/// config.json leaves a field out, transformers' class default applies (as it does there).
#[derive(Debug, Clone, Deserialize)]
pub struct TalkerConfig {
    #[serde(flatten)]
    pub decoder: TextConfig,
    /// Width of the Thinker's space (its hidden size), where the codec embeddings live.
    pub embedding_size: usize,
    #[serde(default = "defaults::codec_pad")]
    pub tts_codec_pad_token_id: u32,
    #[serde(default = "defaults::codec_start")]
    pub tts_codec_start_token_id: u32,
    #[serde(default = "defaults::codec_end")]
    pub tts_codec_end_token_id: u32,
    #[serde(default = "defaults::codec_mask")]
    pub tts_codec_mask_token_id: u32,
    /// Thinker ids whose embeddings the text track uses after the answer's tokens.
    #[serde(default = "defaults::text_end")]
    pub tts_text_end_token_id: u32,
    #[serde(default = "defaults::text_pad")]
    pub tts_text_pad_token_id: u32,
}

mod defaults {
    pub fn codec_pad() -> u32 {
        8292
    }
    pub fn codec_start() -> u32 {
        8293
    }
    pub fn codec_end() -> u32 {
        8294
    }
    pub fn codec_mask() -> u32 {
        8296
    }
    pub fn text_end() -> u32 {
        151861
    }
    pub fn text_pad() -> u32 {
        151859
    }
}

#[derive(Deserialize)]
struct TopLevel {
    talker_config: Option<serde_json::Value>,
}

impl TalkerConfig {
    /// Reads `talker_config` from a checkpoint directory's config.json.
    pub fn from_checkpoint_dir(dir: &Path) -> Result<Self, QwenError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| QwenError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |message: String| QwenError::BadConfig {
            path: path.clone(),
            message,
        };
        let top: TopLevel = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut value = top
            .talker_config
            .ok_or_else(|| bad("no `talker_config`: not a checkpoint with speech output".into()))?;
        // transformers' class default for the Talker's head_dim (not hidden / heads).
        if let Some(object) = value.as_object_mut() {
            object
                .entry("head_dim")
                .or_insert(serde_json::Value::from(128));
        }
        serde_json::from_value(value).map_err(|e| bad(format!("talker_config: {e}")))
    }
}

/// The Talker's weights and its KV cache.
#[derive(Debug, Clone)]
pub struct TalkerModel {
    config: TalkerConfig,
    thinker_to_talker_proj: Linear,
    /// Codec embeddings (in Thinker space), the decoder layers, the final norm and `codec_head`.
    decoder: TextModel,
}

impl TalkerModel {
    pub fn load(dir: &Path, device: &Device) -> Result<Self, QwenError> {
        let config = TalkerConfig::from_checkpoint_dir(dir)?;
        Self::new(config, weights(dir, device)?.pp(TALKER_PREFIX))
    }

    /// The Talker from weights under `vb` (a checkpoint's `talker.*`).
    pub fn new(config: TalkerConfig, vb: candle_nn::VarBuilder) -> Result<Self, QwenError> {
        let proj = candle_nn::linear(
            config.embedding_size,
            config.decoder.hidden_size,
            vb.pp("thinker_to_talker_proj"),
        )
        .map_err(|e| QwenError::Weights(format!("talker: {e}")))?;
        let decoder = TextModel::load_with_embedding_width(
            &config.decoder,
            vb.pp("model"),
            vb.pp("codec_head"),
            config.embedding_size,
        )?;
        Ok(Self {
            config,
            thinker_to_talker_proj: proj,
            decoder,
        })
    }

    pub fn config(&self) -> &TalkerConfig {
        &self.config
    }

    /// Codec embeddings `[1, len, embedding_size]` of `codes`.
    pub fn codec_embeddings(&self, codes: &[u32]) -> Result<Tensor, QwenError> {
        self.decoder.embed(codes)
    }

    /// Runs inputs in Thinker space `[1, len, embedding_size]` (Thinker part + codec part) at
    /// `positions` after the cache, keeps them in it, and returns the codec logits
    /// `[1, len, vocab]`.
    pub fn forward(
        &mut self,
        inputs: &Tensor,
        positions: &MropePositions,
    ) -> Result<Tensor, QwenError> {
        let projected = self.thinker_to_talker_proj.forward(inputs)?;
        let hidden = self.decoder.forward(&projected, positions)?;
        self.decoder.logits(&hidden)
    }

    pub fn cache_len(&self) -> usize {
        self.decoder.cache_len()
    }

    pub fn clear_cache(&mut self) {
        self.decoder.clear_cache();
    }

    /// Keeps the first `len` cached positions.
    pub fn truncate_cache(&mut self, len: usize) -> Result<(), QwenError> {
        self.decoder.truncate_cache(len)
    }
}
