//! Per-token decoding of the Qwen2.5-Omni Thinker on this CPU (f32), with about 100 positions in
//! the KV cache:
//!
//! - `qwen_session_token/tiny_a`: one `QwenSession::next_event` (what the engine pays per token:
//!   the decoder step, sampling, the token's hidden state and embedding for the Talker, its text
//!   piece) on the tiny_a checkpoint with its tokenizer.
//! - `qwen_decode_step/3b_36_layers`: one decoder step of the published 3B text shapes at full
//!   depth (36 layers x 2048, 16 / 2 heads, FFN 11008, vocabulary 151936, random weights): 12.4 GB
//!   of f32, so it runs only with `PARLEY_BENCH_3B=1` (this machine is shared; `qwen_thinker`
//!   measures 4 and 8 layers of the same shapes every time).
//!
//! `cargo bench -p parley-benches --bench qwen_decode`

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, SamplingMode, criterion_group};
use parley_thinker::qwen::text_model::TextModel;
use parley_thinker::qwen::{
    Checkpoint, Message, MropePositions, QwenSession, QwenThinker, QwenTokenizer, SessionConfig,
    ThinkerConfig,
};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

/// Positions in the KV cache before the measured step.
const CACHED: usize = 100;
/// Tokens decoded before the session's turn is opened again (cache stays at 100..132).
const TOKENS_PER_TURN: usize = 32;

const SYSTEM: &str = "You are a helpful assistant.";

/// A user turn that brings a fresh session's cache to about [`CACHED`] positions.
fn long_turn(tokenizer: &QwenTokenizer) -> String {
    let markup = tokenizer
        .chat_template()
        .render_ids(
            tokenizer,
            &[Message::system(SYSTEM), Message::user("")],
            true,
        )
        .unwrap()
        .len();
    let words = "Tell me a joke. Why is the ocean salty?".split(' ');
    let mut text = String::new();
    for word in words.cycle() {
        if markup + tokenizer.encode(&text).unwrap().len() >= CACHED {
            break;
        }
        text.push_str(word);
        text.push(' ');
    }
    text
}

fn bench_session(c: &mut Criterion) {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen/tiny_a/checkpoint");
    let checkpoint = Checkpoint::open(&dir).unwrap();
    let thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
    let tokenizer = QwenTokenizer::from_checkpoint_dir(&dir, &checkpoint.config).unwrap();
    let turn = long_turn(&tokenizer);
    let config = SessionConfig {
        system_prompt: SYSTEM.into(),
        max_tokens: TOKENS_PER_TURN,
        ..SessionConfig::default()
    };
    let mut session = QwenSession::new(thinker, tokenizer, config);
    session.user_turn(&turn).unwrap();
    eprintln!("tiny_a session: {} positions cached", session.cache_len());
    let never = CancelGuard::never();
    c.bench_function("qwen_session_token/tiny_a", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let started = Instant::now();
                let event = session.next_event(&never).unwrap();
                let elapsed = started.elapsed();
                match event {
                    ThinkerEvent::Token(_) => {
                        measured += elapsed;
                        done += 1;
                    }
                    // The answer ended (end of turn or the 32-token budget): ask again, the
                    // cache back where it was (not measured).
                    ThinkerEvent::Done { .. } => {
                        session.retract_turn().unwrap();
                        session.user_turn(&turn).unwrap();
                    }
                }
            }
            measured
        })
    });
}

fn full_size_3b() -> ThinkerConfig {
    ThinkerConfig::from_json(
        r#"{"audio_config": {"d_model": 1280, "encoder_layers": 32,
        "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "output_dim": 2048},
        "text_config": {"hidden_size": 2048, "intermediate_size": 11008,
        "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": true,
        "rope_scaling": {"mrope_section": [16, 24, 24], "type": "default"}}}"#,
    )
    .expect("the 3B text config parses")
}

fn bench_full_depth(c: &mut Criterion) {
    if std::env::var("PARLEY_BENCH_3B").as_deref() != Ok("1") {
        eprintln!("qwen_decode_step/3b_36_layers skipped: set PARLEY_BENCH_3B=1 (12.4 GB of f32)");
        return;
    }
    let config = full_size_3b();
    let varmap = VarMap::new();
    // Variables are created on first use with their layers' random init.
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut text = TextModel::load(&config.text_config, vb.pp("model"), vb.pp("lm_head")).unwrap();
    let ids: Vec<u32> = (0..CACHED as u32).map(|i| (i * 7919) % 151_000).collect();
    let embeds = text.embed(&ids).unwrap();
    text.forward(&embeds, &MropePositions::sequential(0, CACHED))
        .unwrap();
    let next = text.embed(&[42]).unwrap();
    let position = MropePositions::sequential(CACHED as i64, 1);
    let mut group = c.benchmark_group("qwen_decode_step");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(12));
    group.bench_function("3b_36_layers", |b| {
        b.iter(|| {
            let hidden = text.forward(&next, &position).unwrap();
            let logits = text.logits(&hidden).unwrap();
            text.truncate_cache(CACHED).unwrap();
            logits
        })
    });
    group.finish();
}

criterion_group!(qwen_decode, bench_session, bench_full_depth);

parley_benches::bench_main!(qwen_decode);
