//! Helpers shared by the integration tests: test signals, an FFT peak finder, temp paths.
#![allow(dead_code)]

use rustfft::{FftPlanner, num_complex::Complex};
use std::f64::consts::PI;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `n` samples of a sine at `freq` Hz, amplitude `amp`.
pub fn sine(freq: f64, rate: u32, n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f64 / rate as f64).sin() as f32)
        .collect()
}

/// Frequency (Hz) of the strongest FFT bin of `signal` (Hann-windowed), and the bin width.
pub fn fft_peak_hz(signal: &[f32], rate: u32) -> (f64, f64) {
    let n = signal.len();
    let mut buf: Vec<Complex<f64>> = signal
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos();
            Complex::new(s as f64 * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let (peak, _) = buf[..n / 2]
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.norm()))
        .fold((0, 0.0), |best, x| if x.1 > best.1 { x } else { best });
    let bin = rate as f64 / n as f64;
    (peak as f64 * bin, bin)
}

/// A speech-like test signal: a voiced source with a gliding pitch (110..230 Hz), 1/k harmonics
/// up to ~4 kHz, and a syllable-rate (4 Hz) amplitude envelope with short pauses.
pub fn speech_like(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (rate as f64 * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let f0 = 170.0 + 60.0 * (2.0 * PI * 0.7 * t).sin();
            phase += 2.0 * PI * f0 / rate as f64;
            let harmonics = (4000.0 / f0) as usize;
            let voiced: f64 = (1..=harmonics)
                .map(|k| (k as f64 * phase).sin() / k as f64)
                .sum();
            let syllable = (2.0 * PI * 4.0 * t).sin().max(0.0).powf(0.7);
            (0.25 * syllable * voiced) as f32
        })
        .collect()
}

/// Power ratio of `reference` to `reference - test`, in dB.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let signal: f64 = reference.iter().map(|&s| (s as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// The lag in `0..=max_lag` at which `delayed[lag..]` best matches `reference` (normalised
/// cross-correlation).
pub fn best_lag(reference: &[f32], delayed: &[f32], max_lag: usize) -> usize {
    let len = reference.len().min(delayed.len().saturating_sub(max_lag));
    (0..=max_lag)
        .map(|lag| {
            let (mut xy, mut yy) = (0.0f64, 0.0f64);
            for i in 0..len {
                let y = delayed[i + lag] as f64;
                xy += reference[i] as f64 * y;
                yy += y * y;
            }
            (lag, xy / yy.sqrt().max(1e-30))
        })
        .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best })
        .0
}

/// A fresh path in the system temp dir (the file is not created).
pub fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "parley-audio-test-{}-{n}-{name}",
        std::process::id()
    ))
}

/// Deletes the file when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str) -> Self {
        Self(temp_path(name))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
