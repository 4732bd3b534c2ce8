//! hibari's signal processing: the acoustic model's five spectra per 12.5 ms frame and its f0
//! curve → 24 kHz waveform (a port of `hibari/dsp.py`, spec in `docs/hibari_port.md` §6).
//!
//! ```text
//! S = exp(lh) e^{iπ tanh θ} STFT(pulses(f0)) + exp(ln) Z + exp(lr) e^{iφ}      → iSTFT (n_fft 1200, hop 300)
//! ```
//!
//! Everything is frame-local except the pulse phase (a running f64 sum) and the overlap-add tail
//! (3 hops), so [`PhraseAudio`] renders a phrase hop by hop: the first 300 samples are ready after
//! three frames, which is what lets playout start before the whole phrase is rendered. The one-shot
//! [`Vocoder::synth`] is the same loop run to the end, so both give identical samples.

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// FFT size of the STFT (50 ms at 24 kHz).
pub const N_FFT: usize = 1200;
/// Hop between frames: one 12.5 ms acoustic frame.
pub const HOP: usize = 300;
/// Frequency bins per frame (`N_FFT / 2 + 1`).
pub const BINS: usize = N_FFT / 2 + 1;
/// The five spectra of one frame, in the order the model's head writes them.
pub const PARTS: usize = 5;
/// Hops per FFT window.
const HOPS_PER_WINDOW: usize = N_FFT / HOP;
/// Output sample rate: the Talker rate every part of parley agrees on.
pub const SAMPLE_RATE: u32 = parley_audio_io::constants::MODEL_OUTPUT_RATE;
/// f0 at or below this is unvoiced (no pulses).
const VOICED_HZ: f32 = 40.0;
/// Harmonics stop below this frequency.
const MAX_HARMONIC_HZ: f32 = 11_000.0;

/// One of the five spectra the model predicts per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Log magnitude of the harmonic (pulse-train) branch.
    Lh = 0,
    /// Phase shift of the harmonic branch, as π·tanh(θ).
    Theta = 1,
    /// Log magnitude of the noise branch.
    Ln = 2,
    /// Log magnitude of the free-phase branch.
    Lr = 3,
    /// Phase of the free-phase branch.
    Phi = 4,
}

impl Part {
    pub const ALL: [Part; PARTS] = [Part::Lh, Part::Theta, Part::Ln, Part::Lr, Part::Phi];
}

/// The acoustic model's spectra, frame-major: frame `k` holds `lh, theta, ln, lr, phi` (601 each)
/// contiguously, exactly as the model's head produces them, so the vocoder reads one slice per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectra {
    frames: usize,
    data: Vec<f32>,
}

/// Why spectra could not be built.
#[derive(Debug, thiserror::Error)]
#[error("spectra: {0}")]
pub struct SpectraError(String);

impl Spectra {
    /// Frame-major data `[frames, 5 × 601]`.
    pub fn from_frame_major(frames: usize, data: Vec<f32>) -> Result<Self, SpectraError> {
        if data.len() != frames * PARTS * BINS {
            return Err(SpectraError(format!(
                "{} values for {frames} frames; expected {}",
                data.len(),
                frames * PARTS * BINS
            )));
        }
        Ok(Self { frames, data })
    }

    /// From five bin-major `[601, frames]` arrays (the layout of the ONNX outputs and goldens),
    /// in [`Part::ALL`] order.
    pub fn from_bin_major(frames: usize, parts: [&[f32]; PARTS]) -> Result<Self, SpectraError> {
        let mut data = vec![0.0; frames * PARTS * BINS];
        for (p, part) in parts.iter().enumerate() {
            if part.len() != frames * BINS {
                return Err(SpectraError(format!(
                    "{:?} has {} values; expected 601 × {frames}",
                    Part::ALL[p],
                    part.len()
                )));
            }
            for b in 0..BINS {
                for k in 0..frames {
                    data[(k * PARTS + p) * BINS + b] = part[b * frames + k];
                }
            }
        }
        Ok(Self { frames, data })
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The 601 values of `part` in frame `k`.
    pub fn frame_part(&self, k: usize, part: Part) -> &[f32] {
        let at = (k * PARTS + part as usize) * BINS;
        &self.data[at..at + BINS]
    }

    /// `part` as a bin-major `[601, frames]` array (the ONNX output layout).
    pub fn bin_major(&self, part: Part) -> Vec<f32> {
        let mut out = vec![0.0; BINS * self.frames];
        for k in 0..self.frames {
            for (b, v) in self.frame_part(k, part).iter().enumerate() {
                out[b * self.frames + k] = *v;
            }
        }
        out
    }
}

/// The deterministic noise of the goldens (`DetNoise` in `tools/reference/hibari_goldens.py`):
/// value `k` of the row-major `[601, 2F]` block is splitmix64 of `seed + (k+1)·golden`, mapped to a
/// unit-variance uniform. Counter-based, so any value can be drawn in any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetNoise {
    pub seed: u64,
}

impl DetNoise {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// Value number `k` (bit-exact with the Python reference).
    pub fn value(&self, k: u64) -> f32 {
        let mut z = self
            .seed
            .wrapping_add((k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
        (u - 0.5) * 3.464_101_6
    }
}

/// FFT plans and windows, shared by every phrase. Cheap to clone.
#[derive(Clone)]
pub struct Vocoder {
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// Periodic Hann window (f32, as numpy computes it).
    window: Arc<[f32]>,
    /// Hann / 300: a unit cosine then peaks at 1 in the source STFT.
    source_window: Arc<[f32]>,
    /// Interpolation weight `u` of the later f0 frame for sample `j` of a hop; `v = 1 - u`.
    interp_u: Arc<[f32]>,
}

impl std::fmt::Debug for Vocoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocoder").finish_non_exhaustive()
    }
}

impl Default for Vocoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Vocoder {
    pub fn new() -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let window: Vec<f32> = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * PI * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        let source_window: Vec<f32> = window.iter().map(|w| w / (N_FFT / 4) as f32).collect();
        let interp_u: Vec<f32> = (0..HOP)
            .map(|j| ((j as f64 + 0.5) / HOP as f64 - 0.5).rem_euclid(1.0) as f32)
            .collect();
        Self {
            forward: planner.plan_fft_forward(N_FFT),
            inverse: planner.plan_fft_inverse(N_FFT),
            window: window.into(),
            source_window: source_window.into(),
            interp_u: interp_u.into(),
        }
    }

    /// Starts rendering one phrase. `f0` has one value per frame of `spectra`.
    pub fn start(
        &self,
        spectra: Spectra,
        f0: Vec<f32>,
        noise: DetNoise,
    ) -> Result<PhraseAudio, SpectraError> {
        if f0.len() != spectra.frames {
            return Err(SpectraError(format!(
                "f0 has {} frames, spectra {}",
                f0.len(),
                spectra.frames
            )));
        }
        let frames = spectra.frames;
        Ok(PhraseAudio {
            vocoder: self.clone(),
            pulses: Vec::with_capacity(frames * HOP),
            phase_sum: 0.0,
            spectra,
            f0,
            noise,
            next_frame: 0,
            hops_emitted: 0,
            recent: vec![0.0; HOPS_PER_WINDOW * N_FFT],
            time: self.forward.make_input_vec(),
            freq: self.forward.make_output_vec(),
            scratch: self.forward.make_scratch_vec(),
            inverse_scratch: self.inverse.make_scratch_vec(),
        })
    }

    /// The whole phrase at once: `F × 300` samples.
    pub fn synth(
        &self,
        spectra: Spectra,
        f0: Vec<f32>,
        noise: DetNoise,
    ) -> Result<Vec<f32>, SpectraError> {
        let mut phrase = self.start(spectra, f0, noise)?;
        let mut out = Vec::with_capacity(phrase.total_samples());
        while phrase.render_hop(&mut out) {}
        Ok(out)
    }
}

/// One phrase being rendered hop by hop (see the module doc).
pub struct PhraseAudio {
    vocoder: Vocoder,
    spectra: Spectra,
    f0: Vec<f32>,
    noise: DetNoise,
    /// The pulse train computed so far (extended on demand).
    pulses: Vec<f32>,
    /// Running f64 sum of the instantaneous frequency (the pulse phase before `mod 1`).
    phase_sum: f64,
    /// Next STFT frame to compute.
    next_frame: usize,
    /// Hops written so far.
    hops_emitted: usize,
    /// Windowed iSTFT output of the last four frames; frame `k` at slot `k % 4`.
    recent: Vec<f32>,
    time: Vec<f32>,
    freq: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    inverse_scratch: Vec<Complex<f32>>,
}

impl PhraseAudio {
    /// Samples of the whole phrase (`F × 300`).
    pub fn total_samples(&self) -> usize {
        self.spectra.frames * HOP
    }

    /// Samples still to come.
    pub fn remaining_samples(&self) -> usize {
        (self.spectra.frames - self.hops_emitted) * HOP
    }

    /// Appends the next 300 samples (one hop) to `out`; `false` once the phrase is complete.
    pub fn render_hop(&mut self, out: &mut Vec<f32>) -> bool {
        let frames = self.spectra.frames;
        if self.hops_emitted >= frames {
            return false;
        }
        // Output hop h is overlap-add row r = h + 2 (the centred iSTFT drops n_fft/2 samples);
        // row r sums frames r-3..=r, so it is complete once frame min(r, F-1) is.
        let row = self.hops_emitted + 2;
        while self.next_frame <= row.min(frames - 1) {
            self.compute_frame(self.next_frame);
            self.next_frame += 1;
        }
        self.emit_row(row, out);
        self.hops_emitted += 1;
        true
    }

    /// Extends the pulse train to at least `n` samples (`pulses()` of dsp.py, sample by sample).
    fn pulses_up_to(&mut self, n: usize) {
        let total = self.total_samples();
        let n = n.min(total);
        let f0 = &self.f0;
        let frames = f0.len();
        // Edge-padded f0: fp[0] = f0[0], fp[k+1] = f0[k], fp[F+1] = f0[F-1].
        let fp = |i: usize| f0[i.saturating_sub(1).min(frames - 1)];
        while self.pulses.len() < n {
            let i = self.pulses.len();
            let (k, j) = (i / HOP, i % HOP);
            let u = self.vocoder.interp_u[j];
            let v = 1.0 - u;
            // Linear interpolation between frame centres (align_corners = False).
            let f = if j < HOP / 2 {
                fp(k) * v + fp(k + 1) * u
            } else {
                fp(k + 1) * v + fp(k + 2) * u
            };
            let voiced = f > VOICED_HZ;
            let f = f.max(VOICED_HZ);
            self.phase_sum += f as f64;
            let t = ((self.phase_sum * (1.0 / SAMPLE_RATE as f64)).fract() * (2.0 * PI)) as f32;
            let harmonics = (MAX_HARMONIC_HZ / f).floor() + 0.5;
            // Σ_{h=1..H} cos(h t) = sin((H + 1/2) t) / (2 sin(t/2)) - 1/2, with its limit at t → 0.
            let s = (t * 0.5).sin() * 2.0;
            let e = if s.abs() <= 2e-3 {
                harmonics
            } else {
                (harmonics * t).sin() / s
            };
            self.pulses.push(if voiced { e - 0.5 } else { 0.0 });
        }
    }

    /// Pulse sample at position `i` of the reflect-padded signal (`np.pad(..., N_FFT/2, "reflect")`).
    fn padded_pulse(&self, i: usize) -> f32 {
        let len = self.total_samples() as i64;
        if len == 1 {
            return self.pulses[0];
        }
        let period = 2 * (len - 1);
        let mut n = (i as i64 - (N_FFT / 2) as i64).rem_euclid(period);
        if n >= len {
            n = period - n;
        }
        self.pulses[n as usize]
    }

    /// STFT of the pulses at frame `k`, the spectral combination, and the windowed inverse FFT
    /// into `recent`.
    fn compute_frame(&mut self, k: usize) {
        let frames = self.spectra.frames;
        // Frame k covers padded samples 300k .. 300k + 1200, i.e. pulses up to 300k + 600
        // (or all of them near the end, where the reflection reaches back).
        let need = if (k * HOP + N_FFT / 2) >= self.total_samples() {
            self.total_samples()
        } else {
            k * HOP + N_FFT / 2 + 1
        };
        self.pulses_up_to(need);
        for i in 0..N_FFT {
            self.time[i] = self.padded_pulse(k * HOP + i) * self.vocoder.source_window[i];
        }
        // The buffers are sized by the plan, so this cannot fail.
        let _ = self.vocoder.forward.process_with_scratch(
            &mut self.time,
            &mut self.freq,
            &mut self.scratch,
        );
        let lh = self.spectra.frame_part(k, Part::Lh);
        let theta = self.spectra.frame_part(k, Part::Theta);
        let ln = self.spectra.frame_part(k, Part::Ln);
        let lr = self.spectra.frame_part(k, Part::Lr);
        let phi = self.spectra.frame_part(k, Part::Phi);
        let ex = |x: f32| x.min(7.0).exp();
        for b in 0..BINS {
            let c = theta[b].tanh() * std::f32::consts::PI;
            let g = ex(lh[b]);
            let rot = Complex::new(c.cos() * g, c.sin() * g);
            let mut s = self.freq[b] * rot;
            // Z[b, k] = z[b·2F + 2k] + i z[b·2F + 2k + 1] over the row-major [601, 2F] block.
            let z_at = (b * 2 * frames + 2 * k) as u64;
            let gn = ex(ln[b]);
            s.re += self.noise.value(z_at) * gn;
            s.im += self.noise.value(z_at + 1) * gn;
            let gr = ex(lr[b]);
            s.re += phi[b].cos() * gr;
            s.im += phi[b].sin() * gr;
            self.freq[b] = s;
        }
        // irfft ignores the imaginary parts of the DC and Nyquist bins (as numpy does).
        self.freq[0].im = 0.0;
        self.freq[BINS - 1].im = 0.0;
        let _ = self.vocoder.inverse.process_with_scratch(
            &mut self.freq,
            &mut self.time,
            &mut self.inverse_scratch,
        );
        let slot = (k % HOPS_PER_WINDOW) * N_FFT;
        let scale = 1.0 / N_FFT as f32;
        for i in 0..N_FFT {
            self.recent[slot + i] = self.time[i] * scale * self.vocoder.window[i];
        }
    }

    /// Overlap-adds row `r` from frames r, r-1, r-2, r-3 (numpy's summation order) and
    /// normalizes by the summed squared window of the same frames.
    fn emit_row(&self, row: usize, out: &mut Vec<f32>) {
        let frames = self.spectra.frames;
        let mut acc = [0.0f32; HOP];
        let mut wsum = [0.0f32; HOP];
        for sub in 0..HOPS_PER_WINDOW {
            let Some(frame) = row.checked_sub(sub) else {
                continue;
            };
            if frame >= frames {
                continue;
            }
            let slot = (frame % HOPS_PER_WINDOW) * N_FFT + sub * HOP;
            let win = &self.vocoder.window[sub * HOP..(sub + 1) * HOP];
            for i in 0..HOP {
                acc[i] += self.recent[slot + i];
                wsum[i] += win[i] * win[i];
            }
        }
        out.extend(
            acc.iter()
                .zip(wsum.iter())
                .map(|(a, w)| a * (1.0 / w.max(1e-11))),
        );
    }
}
