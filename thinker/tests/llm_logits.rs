//! SmolLM2-135M logits: token-by-token decode against a float reference, and prefill against
//! decode.
//!
//! The golden `assets/goldens/llm/smollm2_decode_logits.json` holds the logits of the same
//! weights computed in f32 throughout (weights dequantized, no activation rounding), recorded by
//! the ignored test `record_decode_logits_golden` run with `CANDLE_DEQUANTIZE_ALL=1`. Measured
//! against it (worst over the checked positions, all recorded entries / top-16 entries):
//! - candle's AVX2 Q8_0 `vec_dot` (8-bit activations per 32 values, before padding): 1.45 / 0.79;
//! - the padded VNNI kernel (8-bit activations per 256 values, `llm::linear`): 4.1 / 3.5 at
//!   position 0 (the first token's activations have the largest outliers), <= 2.8 / 1.7 after;
//! - our kernels (`llm::quad`, the decode path wherever AVX2 is compiled in: Q4_1 and Q8_0
//!   weights as stored, 8-bit activations per 32 values): worst 1.24, mean 0.33.
//!
//! On CPUs with VNNI, prefill still runs the padded kernel (faster for many positions), so
//! prefill and decode differ by up to the sum of both paths' errors.
//!
//! Needs SmolLM2-135M-Instruct installed (`parley models fetch`); fails with that instruction
//! otherwise.

use std::path::PathBuf;

use parley_thinker::llm::{GgufModel, SharedGguf};
use serde::{Deserialize, Serialize};

/// The prompt whose positions are checked: a ChatML turn like the ones the Thinker runs.
const PROMPT: &str = "<|im_start|>system\nYou are a helpful voice assistant. Answer briefly, in \
    plain spoken sentences.<|im_end|>\n<|im_start|>user\nI am planning a trip to the mountains \
    next weekend. What should I pack?<|im_end|>\n<|im_start|>assistant\nPack warm layers, a rain \
    jacket, sturdy boots and plenty of water.";

/// Positions (token indices into the prompt) whose logits are recorded.
const CHECKED_EVERY: usize = 7;
/// Logit indices recorded at each checked position besides its top ones.
const SAMPLED_STRIDE: usize = 97;
const TOP: usize = 16;
/// Largest logit difference from the f32 reference allowed on the decode path (logits span
/// about -10..25; measured worst 1.24 with our kernels, see the top of this file).
const DECODE_TOLERANCE: f32 = 2.0;
/// Mean |diff| over the recorded entries of all checked positions (measured 0.33).
const DECODE_MEAN_TOLERANCE: f32 = 0.5;
/// Largest logit difference between prefill and decode of the same tokens: on VNNI CPUs the
/// padded kernel's error (up to 4.1) plus the decode path's (up to 1.24); measured 4.07-4.28.
const PREFILL_TOLERANCE: f32 = 5.5;

#[derive(Debug, Serialize, Deserialize)]
struct Golden {
    prompt_ids: Vec<u32>,
    positions: Vec<PositionLogits>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PositionLogits {
    position: usize,
    /// (index, logit) of the largest logits, largest first.
    top: Vec<(u32, f32)>,
    /// Logits at indices 0, SAMPLED_STRIDE, 2 * SAMPLED_STRIDE, ...
    sampled: Vec<f32>,
}

fn shared() -> std::sync::Arc<SharedGguf> {
    let dir = parley_models::default_models_dir();
    let path = parley_models::installed_model_dir(&dir, parley_models::catalog::SMOLLM2_135M)
        .unwrap_or_else(|e| panic!("{e}"))
        .join("model.gguf");
    SharedGguf::load(path).expect("load SmolLM2")
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens/llm/smollm2_decode_logits.json")
}

/// Logits after each prompt token, fed one at a time (the decode path).
fn decode_logits(shared: &std::sync::Arc<SharedGguf>, ids: &[u32]) -> Vec<Vec<f32>> {
    let mut model = GgufModel::new(std::sync::Arc::clone(shared.weights()));
    ids.iter()
        .map(|&id| model.forward(&[id]).unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

fn record(position: usize, logits: &[f32]) -> PositionLogits {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    PositionLogits {
        position,
        top: order[..TOP]
            .iter()
            .map(|&i| (i, logits[i as usize]))
            .collect(),
        sampled: logits.iter().step_by(SAMPLED_STRIDE).copied().collect(),
    }
}

#[test]
#[ignore = "rewrites the golden; run on purpose with CANDLE_DEQUANTIZE_ALL=1"]
fn record_decode_logits_golden() {
    assert_eq!(
        std::env::var("CANDLE_DEQUANTIZE_ALL").as_deref(),
        Ok("1"),
        "the golden is the f32 reference: run with CANDLE_DEQUANTIZE_ALL=1"
    );
    let shared = shared();
    let prompt_ids = shared.tokenizer().encode(PROMPT).unwrap();
    let logits = decode_logits(&shared, &prompt_ids);
    let positions = (0..prompt_ids.len())
        .step_by(CHECKED_EVERY)
        .map(|p| record(p, &logits[p]))
        .collect();
    let golden = Golden {
        prompt_ids,
        positions,
    };
    std::fs::write(golden_path(), serde_json::to_string(&golden).unwrap()).unwrap();
}

fn load_golden() -> Golden {
    let text = std::fs::read_to_string(golden_path()).expect("read the logits golden");
    serde_json::from_str(&text).expect("parse the logits golden")
}

/// |a - b| over the recorded entries of one position.
fn diffs(golden: &PositionLogits, logits: &[f32]) -> Vec<f32> {
    let top = golden
        .top
        .iter()
        .map(|&(i, v)| (logits[i as usize] - v).abs());
    let sampled = golden
        .sampled
        .iter()
        .zip(logits.iter().step_by(SAMPLED_STRIDE))
        .map(|(g, l)| (g - l).abs());
    top.chain(sampled).collect()
}

/// Decode logits stay within `DECODE_TOLERANCE` of the golden at every checked position, and the
/// most likely token is the golden's wherever the golden's top two are further apart than that.
#[test]
fn decode_logits_match_the_golden() {
    let golden = load_golden();
    let shared = shared();
    let prompt_ids = shared.tokenizer().encode(PROMPT).unwrap();
    assert_eq!(prompt_ids, golden.prompt_ids, "tokenizer changed");
    let logits = decode_logits(&shared, &prompt_ids);
    let mut worst = 0.0f32;
    let mut all = Vec::new();
    for g in &golden.positions {
        let l = &logits[g.position];
        let d = diffs(g, l);
        let diff = d.iter().copied().fold(0.0, f32::max);
        eprintln!("position {}: max |diff| {diff:.4}", g.position);
        worst = worst.max(diff);
        all.extend(d);
        let argmax = (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
        if g.top[0].1 - g.top[1].1 > 2.0 * DECODE_TOLERANCE {
            assert_eq!(argmax as u32, g.top[0].0, "position {}", g.position);
        }
    }
    let mean = all.iter().sum::<f32>() / all.len() as f32;
    eprintln!("worst |diff| {worst:.4}, mean {mean:.4}");
    assert!(worst <= DECODE_TOLERANCE, "worst |diff| {worst}");
    assert!(mean <= DECODE_MEAN_TOLERANCE, "mean |diff| {mean}");
}

/// Prefill (many positions per forward) and decode (one per forward) hold the same KV cache and
/// give the same logits up to `PREFILL_TOLERANCE`: prefill computes attention with different
/// matrix shapes, so float sums round differently, and a flipped 8-bit rounding of an activation
/// then moves the logits by up to a few tenths.
#[test]
fn prefill_logits_match_decode_logits() {
    let shared = shared();
    let ids = shared.tokenizer().encode(PROMPT).unwrap();
    let decoded = decode_logits(&shared, &ids);
    let mut worst = 0.0f32;
    // One forward of the whole prompt, and a prefill in pieces continued by decode steps.
    for split in [ids.len(), 23, 40] {
        let mut model = GgufModel::new(std::sync::Arc::clone(shared.weights()));
        let mut logits = model
            .forward(&ids[..split])
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut at = split - 1;
        loop {
            let reference = &decoded[at];
            let diff = logits
                .iter()
                .zip(reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("split {split} position {at}: max |diff| {diff:.4}");
            worst = worst.max(diff);
            at += 1;
            if at == ids.len() {
                break;
            }
            let step = (ids.len() - at).min(7);
            logits = model
                .forward(&ids[at..at + step])
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            at += step - 1;
        }
        assert_eq!(model.position(), ids.len());
    }
    eprintln!("worst |diff| {worst:.4}");
    assert!(worst <= PREFILL_TOLERANCE, "worst |diff| {worst}");
}
