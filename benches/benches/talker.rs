//! hibari Talker (CPU profile) latency and throughput:
//! - first_pcm: a complete first phrase has arrived ("The capital of France is Paris." plus the
//!   next token) → the first PCM chunk (G2P + acoustic model + the first vocoder hops);
//! - rtf_3s: one-shot synthesis of a ~3 s sentence (real-time factor = time / audio seconds,
//!   printed below);
//! - where the time goes for that sentence: G2P, the acoustic model's stages, the vocoder.
//!
//! Needs the installed model (`parley models fetch`).
//! `cargo bench -p parley-benches --bench talker`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group};
use parley_talker::Talker;
use parley_talker::hibari::dsp::DetNoise;
use parley_talker::hibari::talker::{HibariConfig, HibariTalker, HibariTts};
use parley_thinker::seam::ThinkerToken;
use parley_thinker::stream::{CancelGuard, Step};

const FIRST_PHRASE: &str = "The capital of France is Paris.";
const SENTENCE_3S: &str = "The quick brown fox jumps over the lazy dog near the river bank.";

fn load() -> Arc<HibariTts> {
    let root = parley_models::default_models_dir();
    let dir = parley_models::installed_model_dir(&root, parley_models::catalog::HIBARI)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(HibariTts::load(&dir).unwrap_or_else(|e| panic!("{e}")))
}

fn token(text: &str) -> ThinkerToken {
    ThinkerToken {
        id: 0,
        text: text.to_string(),
        hidden: None,
        embedding: None,
    }
}

fn talker(c: &mut Criterion) {
    let tts = load();
    let config = HibariConfig::default();
    let never = CancelGuard::never();

    let mut group = c.benchmark_group("talker/hibari");
    group.sample_size(30);
    group.bench_function("first_pcm", |b| {
        b.iter_batched(
            || {
                let mut t = HibariTalker::new(tts.clone(), config.clone());
                t.push_token(&token(FIRST_PHRASE)).unwrap();
                t.push_token(&token(" It")).unwrap();
                t
            },
            |mut t| {
                let step = t.next_chunk(&never).unwrap();
                assert!(matches!(step, Step::Ready(_)));
                t
            },
            BatchSize::SmallInput,
        )
    });

    let audio = tts.synthesize(SENTENCE_3S, &config).unwrap();
    let seconds = audio.len() as f64 / 24_000.0;
    eprintln!("rtf_3s sentence: {seconds:.2} s of audio; RTF = time / {seconds:.2} s");
    group.bench_function("rtf_3s", |b| {
        b.iter(|| black_box(tts.synthesize(black_box(SENTENCE_3S), &config).unwrap()))
    });

    // Where the time goes.
    let ids = tts.phrase_ids(SENTENCE_3S).unwrap().remove(0);
    let model = tts.model();
    group.bench_function("g2p", |b| {
        b.iter(|| black_box(tts.phrase_ids(black_box(SENTENCE_3S)).unwrap()))
    });
    group.bench_function("acoustic_total", |b| {
        b.iter(|| black_box(model.forward(black_box(&ids), 1.0).unwrap()))
    });
    let (tm, tp) = model.text_encoders(&ids).unwrap();
    let durations = model.forward(&ids, 1.0).unwrap().durations;
    group.bench_function("acoustic_text_encoders", |b| {
        b.iter(|| black_box(model.text_encoders(black_box(&ids)).unwrap()))
    });
    group.bench_function("acoustic_prosody", |b| {
        b.iter(|| black_box(model.prosody(&tp, &durations).unwrap()))
    });
    let pro = model.prosody(&tp, &durations).unwrap();
    group.bench_function("acoustic_decoder", |b| {
        b.iter(|| black_box(model.decode(&tm, &durations, &pro).unwrap()))
    });
    let out = model.forward(&ids, 1.0).unwrap();
    group.bench_function("vocoder", |b| {
        b.iter_batched(
            || (out.spectra.clone(), out.f0.clone()),
            |(s, f0)| black_box(tts.vocoder().synth(s, f0, DetNoise::new(0)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, talker);

parley_benches::bench_main!(benches);
