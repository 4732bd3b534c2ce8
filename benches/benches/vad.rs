//! Cost of voice activity detection per 32 ms window (512 samples at 16 kHz), what every session
//! pays continuously while the microphone is open:
//! - silero: one window through the Silero VAD (real speech, cycling through
//!   `assets/audio/vad_two_phrases.wav` so the LSTM state stays realistic);
//! - endpointer: one labelled window through the `server_vad` endpointer.
//!
//! Measured on 2-core dev machines: silero 45-87 µs (50 µs on a Xeon with AVX-512), 170-302 µs
//! when `RAYON_NUM_THREADS` is unset (candle then reads /proc/cpuinfo on every matmul; `main`
//! below fixes it as the `parley` binary does); endpointer ≈20-30 ns.
//!
//! Needs the installed model (`parley models fetch`).
//! `cargo bench -p parley-benches --bench vad`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group};
use parley_audio_io::constants::MODEL_INPUT_RATE;
use parley_audio_io::wav::read_wav;
use parley_thinker::stream::{Step, StreamingModule};
use parley_thinker::vad::{EndpointConfig, Endpointer, SileroVad, VadWindow, WINDOW_SAMPLES};

fn speech() -> Vec<f32> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/audio/vad_two_phrases.wav");
    let mut samples = read_wav(&path, MODEL_INPUT_RATE).expect("committed test audio");
    samples.truncate(samples.len() / WINDOW_SAMPLES * WINDOW_SAMPLES);
    samples
}

fn silero(c: &mut Criterion) {
    let dir = parley_models::installed_model_dir(
        &parley_models::default_models_dir(),
        parley_models::catalog::SILERO_VAD,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut vad = SileroVad::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let samples = speech();
    let mut windows = samples.chunks_exact(WINDOW_SAMPLES).cycle();
    let mut group = c.benchmark_group("vad/silero_32ms_window");
    group.throughput(Throughput::Elements(WINDOW_SAMPLES as u64));
    group.bench_function("step", |b| {
        b.iter(|| {
            let window = windows.next().expect("cycle never ends");
            match vad.step(black_box(window)).expect("finite samples") {
                Step::Ready(p) => black_box(p),
                _ => unreachable!("a full window always yields a probability"),
            }
        })
    });
    group.finish();
}

fn endpointer(c: &mut Criterion) {
    let mut endpointer = Endpointer::new(EndpointConfig::default()).expect("default config");
    // Alternating 1 s speech / 1 s silence, so every state transition is exercised.
    let probs: Vec<f32> = (0..1000)
        .map(|i| if (i / 31) % 2 == 0 { 0.98 } else { 0.01 })
        .collect();
    let mut index = 0u64;
    let mut group = c.benchmark_group("vad/endpointer_32ms_window");
    group.bench_function("step", |b| {
        b.iter(|| {
            let prob = probs[(index % probs.len() as u64) as usize];
            let window = VadWindow::sequence(index, &[prob]);
            index += 1;
            black_box(
                endpointer
                    .step(black_box(&window))
                    .expect("ordered windows"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, silero, endpointer);

parley_benches::bench_main!(benches);
