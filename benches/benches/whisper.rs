//! Whisper tiny.en ears, CPU profile: the transcript of the ~3 s bench utterance
//! (assets/audio/bench_3s.wav) from its samples, and where the time goes:
//! - whisper/transcribe_3s: mel + encoder + greedy decoding (13 tokens + end), end to end;
//! - whisper/mel_3s: the log-mel front end alone;
//! - whisper/encoder_3s: the encoder on the utterance's 306 frames (153 positions).
//!
//! The decoder's share is transcribe - mel - encoder; per token, divide by the decoder steps
//! printed once at start-up. Target: transcript ready <= 150 ms after the last sample (without the
//! speculative head start). Needs the installed model (`parley models fetch`).
//!
//! `cargo bench -p parley-benches --bench whisper`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group};
use parley_audio_io::constants::MODEL_INPUT_RATE;
use parley_models::catalog::WHISPER_TINY_EN;
use parley_thinker::stream::CancelGuard;
use parley_thinker::whisper::Transcriber;

fn bench_whisper(c: &mut Criterion) {
    let dir =
        parley_models::installed_model_dir(&parley_models::default_models_dir(), WHISPER_TINY_EN)
            .unwrap_or_else(|e| panic!("{e}"));
    let mut transcriber = Transcriber::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/audio/bench_3s.wav");
    let samples = parley_audio_io::wav::read_wav(&wav, MODEL_INPUT_RATE).unwrap();
    let never = CancelGuard::never();

    let (text, timings) = transcriber
        .transcribe_timed(&samples, &never, |_| {})
        .unwrap();
    assert_eq!(text, "It is a lovely day for a long walk in the park.");
    eprintln!(
        "whisper bench_3s: {:.2} s of audio, one run: mel {:?}, encoder {:?}, decoder {:?} over {} steps ({:?}/step)",
        samples.len() as f64 / MODEL_INPUT_RATE as f64,
        timings.mel,
        timings.encoder,
        timings.decoder,
        timings.decoder_steps,
        timings.decoder / timings.decoder_steps.max(1) as u32,
    );

    let mut group = c.benchmark_group("whisper");
    group.sample_size(20);
    group.bench_function("transcribe_3s", |b| {
        b.iter(|| {
            transcriber
                .transcribe(black_box(&samples), &never, |_| {})
                .unwrap()
        })
    });
    group.bench_function("mel_3s", |b| {
        b.iter(|| transcriber.log_mel(black_box(&samples)).unwrap())
    });
    let mel = transcriber.log_mel(&samples).unwrap();
    group.bench_function("encoder_3s", |b| {
        b.iter(|| transcriber.encode(black_box(&mel)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_whisper);

parley_benches::bench_main!(benches);
