//! The CPU Thinker (SmolLM2-135M-Instruct Q4_1 GGUF) through `GgufThinker`:
//! - decode: one `next_event` (forward of the previous token + sampling + text), with the
//!   conversation at ~40-100 positions; target >= 80 tokens/s;
//! - prefill: `user_turn` of a 50-token turn after a system prompt and an earlier exchange;
//!   target <= 100 ms.
//!
//! Needs the model installed (`parley models fetch`). candle's CPU thread pool synchronizes with
//! spinning barriers, which collapses when the cores are shared with other busy processes; compare
//! with `CANDLE_NUM_THREADS=1`.
//! `cargo bench -p parley-benches --bench llm`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use parley_thinker::llm::{GgufThinker, SessionConfig};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

/// A user turn whose new tokens (end of the previous answer, the ChatML wrapping and the text)
/// number exactly 50 for SmolLM2's tokenizer; checked at startup.
const TURN_50: &str = "I am planning a trip to the mountains next weekend with friends. \
    We want to hike, camp by a lake, and cook outside. What should we pack, \
    and how can we stay safe?";

fn load() -> GgufThinker {
    let dir = parley_models::default_models_dir();
    let path = parley_models::installed_model_dir(&dir, parley_models::catalog::SMOLLM2_135M)
        .unwrap_or_else(|e| panic!("{e}"))
        .join("model.gguf");
    let config = SessionConfig {
        max_tokens: 64,
        ..SessionConfig::default()
    };
    GgufThinker::load(path, config).expect("load SmolLM2")
}

fn decode(c: &mut Criterion) {
    let mut thinker = load();
    let never = CancelGuard::never();
    let mut group = c.benchmark_group("llm/smollm2_135m_q4_1");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("decode_token", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                // A new answer whenever the last one ended; only token steps are timed.
                thinker.reset();
                thinker
                    .user_turn("Tell me a story about a lighthouse keeper.")
                    .unwrap();
                // The first token comes from the prefill's logits (no forward pass): not timed.
                if let ThinkerEvent::Done { .. } = thinker.next_event(&never).unwrap() {
                    continue;
                }
                loop {
                    let start = Instant::now();
                    let event = thinker.next_event(&never).unwrap();
                    let elapsed = start.elapsed();
                    match event {
                        ThinkerEvent::Token(_) => {
                            total += elapsed;
                            done += 1;
                            if done == iters {
                                break;
                            }
                        }
                        ThinkerEvent::Done { .. } => break,
                    }
                }
            }
            total
        })
    });
    group.finish();
}

fn prefill(c: &mut Criterion) {
    let mut thinker = load();
    // Earlier exchange: system prompt, a greeting and an answer the user heard in full.
    let setup = |thinker: &mut GgufThinker| {
        thinker.reset();
        thinker.user_turn("Hello!").unwrap();
        thinker.truncate_answer("").unwrap();
    };
    setup(&mut thinker);
    thinker.user_turn(TURN_50).unwrap();
    assert_eq!(
        thinker.last_prefill_tokens(),
        50,
        "TURN_50 must be 50 new tokens"
    );
    let mut group = c.benchmark_group("llm/smollm2_135m_q4_1");
    group.sample_size(20);
    group.throughput(Throughput::Elements(50));
    group.bench_function("prefill_50_token_turn", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                setup(&mut thinker);
                let start = Instant::now();
                thinker.user_turn(TURN_50).unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, decode, prefill);

parley_benches::bench_main!(benches);
