//! Token2Wav while the Talker is still producing codes: audio in chunks of 48 mel frames
//! (0.48 s), the scheme Qwen ships in its vLLM engine (../shared/docs/qwen2_5_omni.md §5.6).
//!
//! - The DiT integrates a window around each chunk: 2 blocks (48 frames) of past and 1 block
//!   (24 frames) of future context, starting on a block boundary so the block partition is the
//!   utterance's. The noise comes from one tensor indexed by absolute mel frame, so overlapping
//!   windows start from the same noise.
//! - The vocoder runs over the previous chunk's last 40 mel frames plus the chunk and keeps the
//!   middle: 20 frames of overlap are trimmed on each side (the first chunk keeps its start, the
//!   last its end), so neighbouring chunks join on audio computed with context on both sides
//!   instead of at a hard edge.
//! - The first chunk needs 36 codes (48 frames + 24 of future).
//!
//! Against the whole utterance at once the mel differs (each window's ODE sees only its context);
//! `talker/tests/qwen_token2wav_stream.rs` bounds it.

use candle_core::{Device, Tensor};
use parley_thinker::stream::{CancelGuard, Step};

use super::dit::SpeakerConditioning;
use super::sampler::{SampleError, SamplerSettings, sample};
use super::token2wav::Token2Wav;

/// Mel frames per emitted chunk.
pub const CHUNK_FRAMES: usize = 48;
/// DiT context before a chunk.
pub const PAST_FRAMES: usize = 48;
/// DiT context after a chunk.
pub const FUTURE_FRAMES: usize = 24;
/// Vocoder overlap trimmed on each side of a chunk.
pub const OVERLAP_FRAMES: usize = 20;

/// One utterance's streaming Token2Wav state.
#[derive(Debug)]
pub struct Token2WavStream {
    codes: Vec<u32>,
    /// `[1, frames, mel_dim]`, indexed by absolute mel frame.
    noise: Tensor,
    settings: SamplerSettings,
    /// First mel frame of the next chunk.
    next_frame: usize,
    /// The previous chunk's mel `[1, mel_dim, frames]` (vocoder context).
    previous_mel: Option<Tensor>,
    finished: bool,
}

impl Token2WavStream {
    /// `noise` `[1, frames, mel_dim]` must cover the longest utterance (2 frames per code).
    pub fn new(noise: Tensor, settings: SamplerSettings) -> Self {
        Self {
            codes: Vec::new(),
            noise,
            settings,
            next_frame: 0,
            previous_mel: None,
            finished: false,
        }
    }

    /// Noise for utterances up to `max_codes` codes, from a seeded generator.
    pub fn noise(max_codes: usize, mel_dim: usize, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::randn(0f32, 1.0, (1, 2 * max_codes, mel_dim), device)
    }

    pub fn push_codes(&mut self, codes: &[u32]) {
        self.codes.extend_from_slice(codes);
    }

    /// No more codes: the rest is spoken without future context.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The next chunk of audio, `Pending` until enough codes are there, `Done` when all is
    /// spoken. Checks `cancel` before every DiT evaluation.
    pub fn next_audio(
        &mut self,
        model: &Token2Wav,
        speaker: &SpeakerConditioning,
        cancel: &CancelGuard,
    ) -> Result<Step<Vec<f32>>, SampleError> {
        let repeats = model.dit.config().repeats;
        let total = self.codes.len() * repeats;
        let start = self.next_frame;
        if start >= total {
            return Ok(if self.finished {
                Step::Done
            } else {
                Step::Pending
            });
        }
        let end = (start + CHUNK_FRAMES).min(total);
        let full_context = start + CHUNK_FRAMES + FUTURE_FRAMES <= total;
        if !full_context && !self.finished {
            return Ok(Step::Pending);
        }
        let last = self.finished && end == total;
        if total > self.noise.dim(1)? {
            return Err(SampleError::Model(candle_core::Error::Msg(format!(
                "{total} mel frames but noise for {}",
                self.noise.dim(1)?
            ))));
        }
        let w0 = start.saturating_sub(PAST_FRAMES);
        let w1 = (end + FUTURE_FRAMES).min(total);
        let codes = Tensor::from_slice(
            &self.codes[w0 / repeats..w1 / repeats],
            (1, (w1 - w0) / repeats),
            self.noise.device(),
        )?;
        let noise = self.noise.narrow(1, w0, w1 - w0)?;
        let window = sample(&model.dit, &codes, speaker, &noise, &self.settings, cancel)?;
        let chunk = window
            .narrow(1, start - w0, end - start)?
            .transpose(1, 2)?
            .contiguous()?;
        let hop = model.bigvgan.config().hop();
        let (input, context) = match &self.previous_mel {
            None => (chunk.clone(), 0),
            Some(previous) => {
                let context = previous.dim(2)?.min(2 * OVERLAP_FRAMES);
                let tail = previous.narrow(2, previous.dim(2)? - context, context)?;
                (Tensor::cat(&[&tail, &chunk], 2)?, context)
            }
        };
        if cancel.is_cancelled() {
            return Err(SampleError::Cancelled);
        }
        let wav = model.bigvgan.forward(&input)?.flatten_all()?;
        let first = context.saturating_sub(OVERLAP_FRAMES) * hop;
        let stop = if last {
            wav.dim(0)?
        } else {
            wav.dim(0)? - OVERLAP_FRAMES * hop
        };
        let audio = wav.narrow(0, first, stop - first)?.to_vec1::<f32>()?;
        self.previous_mel = Some(chunk);
        self.next_frame = end;
        Ok(Step::Ready(audio))
    }
}
