//! The Thinker assembled: audio encoder + language model loaded from one checkpoint, and the
//! prompt path (embed the ids, put the audio embeddings in place of the `<|AUDIO|>` tokens, run
//! the decoder at the TMRoPE positions).

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::QwenError;
use super::audio_encoder::AudioEncoder;
use super::checkpoint::{
    AUDIO_TOWER_PREFIX, Checkpoint, LM_HEAD_PREFIX, LoadProgress, TEXT_MODEL_PREFIX,
};
use super::config::ThinkerConfig;
use super::mrope::{MropePositions, prompt_positions};
use super::text_model::TextModel;

/// Final-norm hidden states and logits of a run of tokens.
#[derive(Debug)]
pub struct ThinkerOutput {
    /// `[1, len, hidden]`, after the final RMSNorm (what the Talker consumes).
    pub hidden_states: Tensor,
    /// `[1, len, vocab]`
    pub logits: Tensor,
}

#[derive(Debug, Clone)]
pub struct QwenThinker {
    config: ThinkerConfig,
    /// Shared with the streaming encoders of the sessions' user turns.
    audio: Arc<AudioEncoder>,
    text: TextModel,
}

impl QwenThinker {
    /// Loads the Thinker of a checkpoint directory (the talker and vision weights are ignored).
    /// Computes in f32 on the CPU and bf16 on a GPU ([`super::device::compute_dtype`]).
    pub fn load(checkpoint: &Checkpoint, device: &Device) -> Result<Self, QwenError> {
        Self::load_with_dtype(checkpoint, device, super::device::compute_dtype(device))
    }

    /// Loads the weights as `dtype` and computes in it (logits stay f32).
    pub fn load_with_dtype(
        checkpoint: &Checkpoint,
        device: &Device,
        dtype: candle_core::DType,
    ) -> Result<Self, QwenError> {
        Self::load_with_progress(checkpoint, device, dtype, None)
    }

    /// [`Self::load_with_dtype`], calling `progress` with the bytes of each weight as it is
    /// read (they add up to the [`super::checkpoint::WeightReport::loaded_bytes`] of `dtype`).
    pub fn load_with_progress(
        checkpoint: &Checkpoint,
        device: &Device,
        dtype: candle_core::DType,
        progress: Option<LoadProgress>,
    ) -> Result<Self, QwenError> {
        let started = std::time::Instant::now();
        let report = checkpoint.weight_report(dtype)?;
        tracing::info!(dir = %checkpoint.dir.display(), "loading the Qwen Thinker: {report}");
        let vb = checkpoint.var_builder_with_progress(device, dtype, progress)?;
        let config = checkpoint.config.clone();
        Ok(Self {
            audio: Arc::new(AudioEncoder::load(
                &config.audio_config,
                vb.pp(AUDIO_TOWER_PREFIX),
            )?),
            text: TextModel::load(
                &config.text_config,
                vb.pp(TEXT_MODEL_PREFIX),
                vb.pp(LM_HEAD_PREFIX),
            )?,
            config,
        })
        .inspect(|_| {
            tracing::info!(
                "Qwen Thinker loaded in {:.1} s",
                started.elapsed().as_secs_f64()
            )
        })
    }

    pub fn config(&self) -> &ThinkerConfig {
        &self.config
    }

    pub fn audio_encoder(&self) -> &AudioEncoder {
        &self.audio
    }

    /// The audio encoder, for a [`super::audio_stream::StreamingAudioEncoder`].
    pub fn shared_audio_encoder(&self) -> Arc<AudioEncoder> {
        Arc::clone(&self.audio)
    }

    /// Positions held in the KV cache.
    pub fn cache_len(&self) -> usize {
        self.text.cache_len()
    }

    pub fn text_model(&mut self) -> &mut TextModel {
        &mut self.text
    }

    /// Input embeddings `[1, len, hidden]` of a prompt: token embeddings, with the rows of the
    /// `<|AUDIO|>` tokens replaced in order by `audio_embeds` `[n, hidden]` (n = their count).
    /// Plain token embeddings `[1, len, hidden]`, every id looked up as text (what the session
    /// feeds: audio goes through [`Self::prefill_audio`], and an `<|AUDIO|>` the model writes
    /// is just a token).
    pub fn token_embeddings(&self, ids: &[u32]) -> Result<Tensor, QwenError> {
        self.text.embed(ids)
    }

    pub fn prompt_embeddings(
        &self,
        input_ids: &[u32],
        audio_embeds: Option<&Tensor>,
    ) -> Result<Tensor, QwenError> {
        let audio_slots: Vec<usize> = input_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| **id == self.config.audio_token_index)
            .map(|(i, _)| i)
            .collect();
        let available = match audio_embeds {
            Some(a) => a.dim(0)?,
            None => 0,
        };
        if audio_slots.len() != available {
            return Err(QwenError::bad_input(
                "input_ids",
                format!(
                    "{} <|AUDIO|> tokens (id {}) but the audio encodes to {available} embeddings",
                    audio_slots.len(),
                    self.config.audio_token_index
                ),
            ));
        }
        let text = self.text.embed(input_ids)?.squeeze(0)?;
        let Some(audio) = audio_embeds.filter(|_| !audio_slots.is_empty()) else {
            return Ok(text.unsqueeze(0)?);
        };
        // Gather from [text rows; audio rows]: row i is text i, or audio k for the k-th slot.
        let len = input_ids.len();
        let mut source: Vec<u32> = (0..len as u32).collect();
        for (k, &slot) in audio_slots.iter().enumerate() {
            source[slot] = (len + k) as u32;
        }
        let table = Tensor::cat(&[&text, &audio.to_dtype(text.dtype())?], 0)?;
        let index = Tensor::from_vec(source, len, table.device())?;
        Ok(table.index_select(&index, 0)?.unsqueeze(0)?)
    }

    /// Runs a prompt of text and at most one audio clip (`features` `[num_mel_bins, frames]`)
    /// after what the KV cache holds, and keeps it in the cache.
    pub fn prefill(
        &mut self,
        input_ids: &[u32],
        features: Option<&Tensor>,
    ) -> Result<ThinkerOutput, QwenError> {
        let audio = features.map(|f| self.audio.forward(f)).transpose()?;
        let embeds = self.prompt_embeddings(input_ids, audio.as_ref())?;
        let positions = self.prompt_positions(input_ids)?;
        self.forward_embeds(&embeds, &positions)
    }

    /// TMRoPE ids of `input_ids` placed after what the KV cache holds.
    pub fn prompt_positions(&self, input_ids: &[u32]) -> Result<MropePositions, QwenError> {
        // Text and audio ids are consecutive, so the next free id is the cache length.
        prompt_positions(input_ids, self.text.cache_len() as i64, &self.config)
    }

    /// Prefills audio embeddings `[n, hidden]` (one block of the user's speech, from a
    /// [`super::audio_stream::StreamingAudioEncoder`]) after what the cache holds, in place of
    /// `n` `<|AUDIO|>` tokens: audio position ids are consecutive, like text ids, so a prompt
    /// prefilled in pieces gets the ids of the whole (`get_rope_index`).
    pub fn prefill_audio(&mut self, embeddings: &Tensor) -> Result<ThinkerOutput, QwenError> {
        let n = embeddings.dim(0)?;
        let positions = MropePositions::sequential(self.text.cache_len() as i64, n);
        let embeds = embeddings.to_dtype(self.text.dtype())?.unsqueeze(0)?;
        self.forward_embeds(&embeds, &positions)
    }

    /// Decoder pass over prepared embeddings (e.g. one chunk of a prefill).
    pub fn forward_embeds(
        &mut self,
        embeds: &Tensor,
        positions: &MropePositions,
    ) -> Result<ThinkerOutput, QwenError> {
        let hidden_states = self.text.forward(embeds, positions)?;
        let logits = self.text.logits(&hidden_states)?;
        Ok(ThinkerOutput {
            hidden_states,
            logits,
        })
    }
}
