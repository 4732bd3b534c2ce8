//! The audio encoder's input: Whisper-style log-mel at 16 kHz (128 bins for Qwen2.5-Omni), as
//! the Qwen2.5-Omni processor computes it with transformers' `WhisperFeatureExtractor`: the clip
//! zero-padded (to 300 s), frames kept for `ceil(samples / 160)`, `log10` energies clamped to the
//! clip's maximum minus 8, then `(x + 4) / 4`. The STFT and filterbank are the Whisper front end's
//! ([`crate::whisper::mel::LogMel`]).
//!
//! The reference takes that maximum over every frame of the padded clip, and the one or two frames
//! just past the kept ones still see the clip's last 200 samples through their windows: a clip cut
//! off loud has its maximum there (up to 0.26 off in the features otherwise, see the test). Those
//! frames ([`past_end_frames`]) count for the maximum and are not kept.
//!
//! ## Streaming rule
//!
//! The clamp needs the whole clip's maximum, which a stream does not know yet. The stream computes
//! raw `log10` frames as soon as their windows are complete ([`StreamingFeatures`]) and the block
//! encoder normalizes each block when it is complete, at the **running maximum** (over every frame
//! up to the end of that block) minus 8; whatever is left when the clip ends (the last, partial
//! block) uses the clip's maximum, past-end frames included, as the reference does. The rule
//! depends on block boundaries only, not on how the samples were chunked.
//! Since the running maximum never exceeds the clip's, a streamed value differs from the offline
//! one only where the offline value sits on its floor, i.e. more than 80 dB below the loudest
//! frame of the clip, and only in blocks before the one holding that frame: there the stream keeps
//! the (quieter) true energy instead of the floor, lower by at most (clip maximum - that block's
//! running maximum) / 4. `thinker/tests/qwen_streaming.rs` checks both on a 1.1 s utterance in
//! 0.5 s blocks: 4295 of 14080 values lower, by up to 0.148 (running maximum 5.9 dB under the
//! clip's); the embeddings from the loudest block on equal the offline ones.

use candle_core::{Device, Tensor};

use super::QwenError;
use crate::whisper::mel::{HOP, LogMel, N_FFT};

pub use crate::whisper::mel::normalize;

/// Sample rate the audio encoder's features are computed at.
pub const SAMPLE_RATE: u32 = 16_000;

/// Number of feature frames of a clip of `samples` samples (the processor's attention mask).
pub fn frames_for(samples: usize) -> usize {
    LogMel::frames_for(samples)
}

/// Frames after the kept ones whose windows still reach into a clip of `samples` samples (frame
/// `f` reads samples up to `f * 160 + 200`); later frames see only the zero padding.
pub fn past_end_frames(samples: usize) -> std::ops::Range<usize> {
    frames_for(samples)..frames_for(samples + N_FFT / 2)
}

/// Largest raw `log10` energy of a clip's [`past_end_frames`]: part of the reference's maximum.
/// `samples` starts at clip sample `offset` and runs to the clip's end.
fn past_end_max(mel: &LogMel, samples: &[f32], offset: usize) -> f32 {
    let frames = past_end_frames(offset + samples.len());
    mel.log10_frames(samples, offset, frames.start, frames.len())
        .into_iter()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Offline features of a whole clip: `[num_mel_bins, frames_for(samples.len())]`.
pub fn features(mel: &LogMel, samples: &[f32], device: &Device) -> Result<Tensor, QwenError> {
    let frames = frames_for(samples.len());
    let mut values = mel.log10_frames(samples, 0, 0, frames);
    let max = values
        .iter()
        .copied()
        .fold(past_end_max(mel, samples, 0), f32::max);
    normalize(&mut values, max);
    Ok(Tensor::from_vec(values, (mel.n_mels(), frames), device)?)
}

/// Raw `log10` mel frames of a clip that arrives a piece at a time (normalized later, by the
/// module's streaming rule).
#[derive(Debug, Clone)]
pub struct StreamingFeatures {
    mel: LogMel,
    /// Samples from `offset` on; earlier ones no frame still to come needs.
    samples: Vec<f32>,
    offset: usize,
    total_samples: usize,
    /// Frames emitted so far.
    emitted: usize,
}

impl StreamingFeatures {
    pub fn new(num_mel_bins: usize) -> Self {
        Self {
            mel: LogMel::new(num_mel_bins, SAMPLE_RATE),
            samples: Vec::new(),
            offset: 0,
            total_samples: 0,
            emitted: 0,
        }
    }

    pub fn num_mel_bins(&self) -> usize {
        self.mel.n_mels()
    }

    /// Frames emitted so far.
    pub fn frames_emitted(&self) -> usize {
        self.emitted
    }

    /// Adds samples; returns the raw `log10` frames whose windows they complete,
    /// `[num_mel_bins, n]` as a row-major vector with `n`, or `None` when no frame is complete.
    pub fn push(&mut self, samples: &[f32]) -> Option<(Vec<f32>, usize)> {
        self.samples.extend_from_slice(samples);
        self.total_samples += samples.len();
        // Frame f is centred on sample f * HOP and reads N_FFT / 2 samples after it.
        let complete = match self.total_samples.checked_sub(N_FFT / 2) {
            Some(last) => last / HOP + 1,
            None => 0,
        };
        let ready = complete.min(frames_for(self.total_samples));
        self.emit(ready)
    }

    /// The clip has ended: the remaining frames (the clip is zero past its end, as in the
    /// processor's padding).
    pub fn finish(&mut self) -> Option<(Vec<f32>, usize)> {
        self.emit(frames_for(self.total_samples))
    }

    fn emit(&mut self, up_to: usize) -> Option<(Vec<f32>, usize)> {
        let n = up_to.checked_sub(self.emitted).filter(|&n| n > 0)?;
        let values = self
            .mel
            .log10_frames(&self.samples, self.offset, self.emitted, n);
        self.emitted = up_to;
        // The next frame starts N_FFT / 2 samples before its centre; keep from there on.
        let keep_from = (self.emitted * HOP).saturating_sub(N_FFT / 2);
        if keep_from > self.offset {
            let drop = (keep_from - self.offset).min(self.samples.len());
            self.samples.drain(..drop);
            self.offset += drop;
        }
        Some((values, n))
    }

    /// After [`Self::finish`]: the largest raw energy of the clip's [`past_end_frames`] (not
    /// emitted, but part of the reference's maximum).
    pub fn past_end_max(&self) -> f32 {
        past_end_max(&self.mel, &self.samples, self.offset)
    }

    pub fn reset(&mut self) {
        self.samples.clear();
        self.offset = 0;
        self.total_samples = 0;
        self.emitted = 0;
    }
}
