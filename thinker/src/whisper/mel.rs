//! Whisper's log-mel front end, computed for the utterance only (no 30 s padding).
//!
//! It reproduces openai-whisper's `log_mel_spectrogram(pad_or_trim(audio))` column for column:
//! periodic Hann window of `n_fft` samples, STFT centred on each hop with reflect padding at the
//! start, power spectrum, slaney-normalised mel filterbank (librosa's default), `log10` floored at
//! `1e-10`, dynamic range clamped to `max - 8`, then `(x + 4) / 4`. The reference pads the clip with
//! zeros to 30 s; columns past the clip's end are silence and cannot raise the maximum, so the
//! columns computed here equal the reference's first columns.
//!
//! candle-transformers' `audio::pcm_to_mel` is not used: it always pads to at least 30 s
//! (3000 frames), does not centre the frames (every frame is shifted by half a window against the
//! reference) and runs a recursive radix-2/DFT transform on threads per call.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// Window length of the STFT (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms at 16 kHz): one mel frame per `HOP` samples.
pub const HOP: usize = 160;
/// Whisper's dynamic range: values more than 8 (log10 units) below the maximum are clamped.
const DYNAMIC_RANGE: f32 = 8.0;

/// One mel band: its first FFT bin and the weights of the bins from there on.
#[derive(Debug, Clone)]
struct MelBand {
    first_bin: usize,
    weights: Vec<f32>,
}

/// Computes log-mel spectrograms; owns the window, filterbank and FFT plan (build once, reuse).
#[derive(Clone)]
pub struct LogMel {
    n_mels: usize,
    window: Vec<f32>,
    bands: Vec<MelBand>,
    fft: Arc<dyn Fft<f32>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// A front end with `n_mels` bands over 0..`sample_rate / 2`.
    pub fn new(n_mels: usize, sample_rate: u32) -> Self {
        let window = (0..N_FFT)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64;
                (0.5 - 0.5 * phase.cos()) as f32
            })
            .collect();
        let bands = slaney_mel_bands(n_mels, sample_rate);
        let fft = FftPlanner::new().plan_fft_forward(N_FFT);
        Self {
            n_mels,
            window,
            bands,
            fft,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Number of frames whose window centre lies inside `n_samples` samples.
    pub fn frames_for(n_samples: usize) -> usize {
        n_samples.div_ceil(HOP)
    }

    /// The log-mel spectrogram of `samples` (zero-extended past their end), `n_frames` columns,
    /// row-major `[n_mels][n_frames]` as the encoder's conv1 expects.
    pub fn compute(&self, samples: &[f32], n_frames: usize) -> Vec<f32> {
        let mut mel = self.log10_frames(samples, 0, 0, n_frames);
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        normalize(&mut mel, max);
        mel
    }

    /// Raw `log10` mel energies (before the dynamic-range clamp and scaling) of frames
    /// `first_frame..first_frame + n_frames`, row-major `[n_mels][n_frames]`. `samples` starts at
    /// sample `sample_offset` of the clip (a stream may drop samples no later frame needs); the
    /// clip is reflected before its start and zero past the end of `samples`.
    pub fn log10_frames(
        &self,
        samples: &[f32],
        sample_offset: usize,
        first_frame: usize,
        n_frames: usize,
    ) -> Vec<f32> {
        let n_bins = N_FFT / 2 + 1;
        let half = N_FFT / 2;
        let mut mel = vec![0f32; self.n_mels * n_frames];
        let mut buf = vec![Complex::new(0f32, 0f32); N_FFT];
        let mut scratch = vec![Complex::new(0f32, 0f32); self.fft.get_inplace_scratch_len()];
        let mut power = vec![0f32; n_bins];
        for column in 0..n_frames {
            let frame = first_frame + column;
            // Frame `frame` is centred on sample `frame * HOP`: it starts `half` samples earlier.
            for (j, slot) in buf.iter_mut().enumerate() {
                let pos = (frame * HOP + j) as isize - half as isize;
                *slot = Complex::new(sample_at(samples, sample_offset, pos) * self.window[j], 0.0);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            for (p, c) in power.iter_mut().zip(&buf[..n_bins]) {
                *p = c.norm_sqr();
            }
            for (band_index, band) in self.bands.iter().enumerate() {
                let energy: f32 = band
                    .weights
                    .iter()
                    .zip(&power[band.first_bin..])
                    .map(|(w, p)| w * p)
                    .sum();
                mel[band_index * n_frames + column] = energy.max(1e-10).log10();
            }
        }
        mel
    }
}

/// Whisper's normalisation of raw `log10` energies: clamp to `max - 8`, then `(x + 4) / 4`.
pub fn normalize(values: &mut [f32], max: f32) {
    let floor = max - DYNAMIC_RANGE;
    for v in values.iter_mut() {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
}

/// The sample at `pos` of the reference's padded signal: reflected before the start (numpy
/// `pad(mode="reflect")`), zero after the end (the reference's 30 s zero padding). `samples`
/// begins at clip sample `offset`; earlier samples count as zero (callers never ask for them).
fn sample_at(samples: &[f32], offset: usize, pos: isize) -> f32 {
    let index = if pos < 0 { -pos } else { pos } as usize;
    index
        .checked_sub(offset)
        .and_then(|i| samples.get(i))
        .copied()
        .unwrap_or(0.0)
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` defaults: slaney mel scale (linear below 1 kHz,
/// logarithmic above) and slaney area normalisation (each triangle scaled by 2 / its width in Hz).
fn slaney_mel_bands(n_mels: usize, sample_rate: u32) -> Vec<MelBand> {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    let hz_to_mel = |hz: f64| {
        if hz >= MIN_LOG_HZ {
            MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step
        } else {
            hz / F_SP
        }
    };
    let mel_to_hz = |mel: f64| {
        if mel >= MIN_LOG_MEL {
            MIN_LOG_HZ * (log_step * (mel - MIN_LOG_MEL)).exp()
        } else {
            mel * F_SP
        }
    };
    let n_bins = N_FFT / 2 + 1;
    let nyquist = sample_rate as f64 / 2.0;
    let bin_hz: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * nyquist / (n_bins - 1) as f64)
        .collect();
    let max_mel = hz_to_mel(nyquist);
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, centre, hi) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = 2.0 / (hi - lo);
            let weights: Vec<f32> = bin_hz
                .iter()
                .map(|&f| {
                    let rising = (f - lo) / (centre - lo);
                    let falling = (hi - f) / (hi - centre);
                    (rising.min(falling).max(0.0) * norm) as f32
                })
                .collect();
            let first_bin = weights.iter().position(|&w| w > 0.0).unwrap_or(n_bins);
            let last_bin = weights
                .iter()
                .rposition(|&w| w > 0.0)
                .map_or(first_bin, |i| i + 1);
            MelBand {
                first_bin,
                weights: weights[first_bin..last_bin.max(first_bin)].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filterbank_is_slaney_normalised_and_covers_the_spectrum() {
        let bands = slaney_mel_bands(80, 16_000);
        assert_eq!(bands.len(), 80);
        // Slaney normalisation: each triangle integrates to ~1 over Hz (area = height * width / 2,
        // height = 2 / width), so the sum of weights times the bin spacing (40 Hz) is close to 1
        // once the triangles are wider than a bin.
        for band in &bands[20..] {
            let area: f32 = band.weights.iter().sum::<f32>() * 40.0;
            assert!((area - 1.0).abs() < 0.1, "area {area}");
        }
        // Bands are ordered by frequency and the last one reaches the top bins.
        assert!(bands.windows(2).all(|w| w[0].first_bin <= w[1].first_bin));
        let last = bands.last().unwrap();
        assert!(last.first_bin + last.weights.len() >= 195);
    }

    #[test]
    fn a_tone_lights_up_the_band_around_its_frequency() {
        let mel = LogMel::new(80, 16_000);
        let samples: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let frames = LogMel::frames_for(samples.len());
        assert_eq!(frames, 100);
        let spec = mel.compute(&samples, frames);
        let column = 50;
        let loudest = (0..80)
            .max_by(|&a, &b| spec[a * frames + column].total_cmp(&spec[b * frames + column]))
            .unwrap();
        // 1 kHz is mel 15 on the slaney scale; 80 bands span 0..~45.2 mel, ~0.56 mel apart.
        assert!((25..=27).contains(&loudest), "loudest band {loudest}");
        // Normalisation: the maximum maps to (max + 4) / 4 and the floor is 2 below it.
        let max = spec.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = spec.iter().copied().fold(f32::INFINITY, f32::min);
        assert!((max - min - 2.0).abs() < 1e-4, "range {}", max - min);
    }
}
