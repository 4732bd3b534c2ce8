//! The user's speech encoded while they are still talking: 16 kHz samples in, Thinker audio
//! embeddings out as each block (`n_window * 2` feature frames, 2 s for the published models)
//! completes, so at the end of the turn only the last partial block is left to encode.
//!
//! The encoder attends only within a block, so a block encoded on its own gives the same
//! embeddings as the whole clip encoded at once. The one thing that crosses blocks is the
//! average pooling of post-conv frame pairs: with an odd number of post-conv frames per block (a
//! config with an odd `n_window`) a block's last frame pairs with the next block's first, so it
//! is held back until that block arrives (and dropped at the end, like the reference's pooling).
//! Features follow [`super::features`]'s streaming rule: a block completed while the user talks
//! is normalized at the running maximum up to its end, what [`StreamingAudioEncoder::finish`]
//! encodes at the clip's maximum.

use std::sync::Arc;

use candle_core::{DType, Tensor};

use super::QwenError;
use super::audio_encoder::AudioEncoder;
use super::features::{StreamingFeatures, normalize};
use crate::stream::{Step, StreamingModule};

/// Audio-encoder state of one clip.
#[derive(Debug)]
pub struct StreamingAudioEncoder {
    encoder: Arc<AudioEncoder>,
    features: StreamingFeatures,
    /// Feature columns of the block being filled, one `[num_mel_bins]` column per frame: raw
    /// `log10` energies from samples, or finished features from [`Self::push_features`].
    columns: Vec<Vec<f32>>,
    /// Whether `columns` hold raw energies still to normalize.
    raw: bool,
    /// Largest raw energy of the blocks encoded so far (the streaming normalization rule).
    running_max: f32,
    /// A post-conv frame `[1, d_model]` waiting for its pooling partner.
    unpaired: Option<Tensor>,
    blocks_encoded: usize,
}

impl StreamingAudioEncoder {
    pub fn new(encoder: Arc<AudioEncoder>) -> Self {
        let bins = encoder.config().num_mel_bins;
        Self {
            encoder,
            features: StreamingFeatures::new(bins),
            columns: Vec::new(),
            raw: true,
            running_max: f32::NEG_INFINITY,
            unpaired: None,
            blocks_encoded: 0,
        }
    }

    /// Whole blocks encoded so far.
    pub fn blocks_encoded(&self) -> usize {
        self.blocks_encoded
    }

    /// Feeds finished feature frames (`[num_mel_bins, n]`, e.g. offline features) instead of
    /// samples; returns the embeddings of the blocks they complete. Don't mix with samples.
    pub fn push_features(&mut self, features: &Tensor) -> Result<Option<Tensor>, QwenError> {
        self.raw = false;
        let rows = features.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let n = rows.first().map_or(0, Vec::len);
        for frame in 0..n {
            self.columns
                .push(rows.iter().map(|row| row[frame]).collect());
        }
        self.encode_whole_blocks()
    }

    /// The clip has ended: embeddings of the rest (the last partial block), or `None`.
    pub fn finish(&mut self) -> Result<Option<Tensor>, QwenError> {
        if let Some((values, n)) = self.features.finish() {
            self.add_columns(&values, n);
        }
        if self.raw {
            // What is left is normalized at the clip's maximum, as offline: every frame still
            // held and the past-end frames the reference also counts.
            self.running_max = self
                .columns
                .iter()
                .flatten()
                .copied()
                .fold(self.running_max.max(self.features.past_end_max()), f32::max);
        }
        let mut out = self.encode_whole_blocks()?;
        if !self.columns.is_empty() {
            let tail = self.encode(self.columns.len())?;
            out = concat(out, tail)?;
        }
        // An odd post-conv frame at the very end has no partner: the reference drops it too.
        self.unpaired = None;
        Ok(out)
    }

    fn add_columns(&mut self, values: &[f32], n: usize) {
        let bins = self.features.num_mel_bins();
        for frame in 0..n {
            self.columns
                .push((0..bins).map(|b| values[b * n + frame]).collect());
        }
    }

    fn encode_whole_blocks(&mut self) -> Result<Option<Tensor>, QwenError> {
        let block = self.encoder.config().block_frames();
        let mut out = None;
        while self.columns.len() >= block {
            let embeddings = self.encode(block)?;
            self.blocks_encoded += 1;
            out = concat(out, embeddings)?;
        }
        Ok(out)
    }

    /// Encodes the first `frames` columns (one block, or the last partial one) and pools.
    fn encode(&mut self, frames: usize) -> Result<Option<Tensor>, QwenError> {
        let bins = self.features.num_mel_bins();
        let columns: Vec<Vec<f32>> = self.columns.drain(..frames).collect();
        let mut data = vec![0f32; bins * frames];
        for (t, column) in columns.iter().enumerate() {
            for (b, v) in column.iter().enumerate() {
                data[b * frames + t] = *v;
            }
        }
        if self.raw {
            self.running_max = data.iter().copied().fold(self.running_max, f32::max);
            normalize(&mut data, self.running_max);
        }
        let device = self.encoder.device().clone();
        let block =
            Tensor::from_vec(data, (1, bins, frames), &device)?.to_dtype(self.encoder.dtype())?;
        let mut encoded = self.encoder.encode_blocks(&block)?;
        if let Some(previous) = self.unpaired.take() {
            encoded = Tensor::cat(&[previous, encoded], 0)?;
        }
        let available = encoded.dim(0)?;
        let tokens = available / 2;
        if available % 2 == 1 {
            self.unpaired = Some(encoded.narrow(0, available - 1, 1)?);
        }
        if tokens == 0 {
            return Ok(None);
        }
        Ok(Some(self.encoder.pool_and_project(&encoded, tokens)?))
    }
}

fn concat(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>, QwenError> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(Tensor::cat(&[a, b], 0)?),
        (a, b) => a.or(b),
    })
}

impl StreamingModule for StreamingAudioEncoder {
    type Input = [f32];
    /// `[n, output_dim]` embeddings of the blocks the samples completed.
    type Output = Tensor;
    type Error = QwenError;

    fn step(&mut self, samples: &[f32]) -> Result<Step<Tensor>, QwenError> {
        if let Some((values, n)) = self.features.push(samples) {
            self.add_columns(&values, n);
        }
        Ok(match self.encode_whole_blocks()? {
            Some(embeddings) => Step::Ready(embeddings),
            None => Step::Pending,
        })
    }

    fn reset(&mut self) {
        self.features.reset();
        self.columns.clear();
        self.raw = true;
        self.running_max = f32::NEG_INFINITY;
        self.unpaired = None;
        self.blocks_encoded = 0;
    }
}
