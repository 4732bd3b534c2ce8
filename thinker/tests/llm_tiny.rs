//! Both supported architectures on tiny random GGUF models (`tools/make_tiny_gguf.py`,
//! `assets/goldens/llm/tiny_{qwen2,llama}.gguf`): our decoder against candle-transformers'
//! own `quantized_qwen2` / `quantized_llama` models, and a whole turn through `GgufThinker`.
//!
//! The tiny models' weights are f16, which both sides compute in f32, so the logits agree to
//! float rounding (`TOLERANCE`), not to 8-bit activation rounding.

use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use parley_thinker::llm::{ChatMessage, GgufModel, GgufThinker, SessionConfig, SharedGguf};
use parley_thinker::seam::{StopReason, Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

/// Largest logit difference from candle-transformers' model for f16 weights (logits are O(1)
/// here; measured about 1.5e-6).
const TOLERANCE: f32 = 1e-4;
/// The same for Q8_0 weights: candle-transformers rounds activations to 8 bits per 32 values,
/// our padded kernel per 256 (see `llm::linear`), so the logits differ by that rounding
/// (measured 0.08 with padding, ~0 on CPUs without 8-bit dot-product instructions).
const Q8_TOLERANCE: f32 = 0.15;

fn tiny(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../assets/goldens/llm/tiny_{arch}.gguf"))
}

/// candle-transformers' model of the same file.
enum Reference {
    Qwen2(candle_transformers::models::quantized_qwen2::ModelWeights),
    Llama(candle_transformers::models::quantized_llama::ModelWeights),
}

impl Reference {
    fn load(name: &str) -> Self {
        let path = tiny(name);
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        match name.split('_').next() {
            Some("qwen2") => Self::Qwen2(
                candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(
                    content,
                    &mut file,
                    &Device::Cpu,
                )
                .unwrap(),
            ),
            _ => Self::Llama(
                candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
                    content,
                    &mut file,
                    &Device::Cpu,
                )
                .unwrap(),
            ),
        }
    }

    /// Logits after the last of `ids`, which start at position `start`.
    fn forward(&mut self, ids: &[u32], start: usize) -> Vec<f32> {
        let x = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = match self {
            Self::Qwen2(m) => m.forward(&x, start).unwrap(),
            Self::Llama(m) => m.forward(&x, start).unwrap(),
        };
        logits.flatten_all().unwrap().to_vec1().unwrap()
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32
}

fn prompt(shared: &SharedGguf) -> Vec<u32> {
    let rendered = shared
        .template()
        .render(
            &[
                ChatMessage::system("Be brief."),
                ChatMessage::user("What is the capital of France?"),
            ],
            true,
        )
        .unwrap();
    shared.tokenizer().encode(&rendered).unwrap()
}

fn forward_matches_candle_transformers(name: &str, tolerance: f32) {
    let arch = name.split('_').next().unwrap();
    let shared = SharedGguf::load(tiny(name)).unwrap();
    assert_eq!(shared.model_config().architecture, arch);
    let ids = prompt(&shared);
    let mut reference = Reference::load(name);
    let mut ours = GgufModel::new(std::sync::Arc::clone(shared.weights()));

    // Prefill of the prompt, then decode steps (one token each), then a short chunk.
    let expected = reference.forward(&ids, 0);
    let got = ours.forward(&ids).unwrap().to_vec1::<f32>().unwrap();
    let spread = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.5, "degenerate logits: {spread}");
    let mut worst = max_diff(&expected, &got);
    let mut next = argmax(&expected);
    for _ in 0..6 {
        let position = ours.position();
        let expected = reference.forward(&[next], position);
        let got = ours.forward(&[next]).unwrap().to_vec1::<f32>().unwrap();
        worst = worst.max(max_diff(&expected, &got));
        next = argmax(&expected);
    }
    let chunk = [next, 3, 100, 42];
    let expected = reference.forward(&chunk, ours.position());
    let got = ours.forward(&chunk).unwrap().to_vec1::<f32>().unwrap();
    worst = worst.max(max_diff(&expected, &got));
    eprintln!("{name}: max |diff| {worst}, largest |logit| {spread}");
    assert!(worst <= tolerance, "{name}: max |diff| {worst}");
}

#[test]
fn qwen2_forward_matches_candle_transformers() {
    forward_matches_candle_transformers("qwen2", TOLERANCE);
}

#[test]
fn qwen2_q8_0_forward_matches_candle_transformers() {
    forward_matches_candle_transformers("qwen2_q8_0", Q8_TOLERANCE);
}

#[test]
fn llama_forward_matches_candle_transformers() {
    forward_matches_candle_transformers("llama", TOLERANCE);
}

fn thinker_runs_a_turn(arch: &str) {
    let shared = SharedGguf::load(tiny(arch)).unwrap();
    let config = SessionConfig {
        system_prompt: Some("Be brief.".into()),
        temperature: 0.0,
        // The reference chain below is plain argmax.
        repeat_penalty: 1.0,
        max_tokens: 8,
        ..SessionConfig::default()
    };
    let mut thinker = GgufThinker::new(std::sync::Arc::clone(&shared), config).unwrap();
    let im_end = shared.tokenizer().token_id("<|im_end|>").unwrap();
    assert!(thinker.end_of_turn_ids().contains(&im_end));

    thinker.user_turn("What is the capital of France?").unwrap();
    let ids = prompt(&shared);
    assert_eq!(thinker.cached_tokens(), &ids[..]);
    // The byte-level BPE merges apply (the corpus they were learned from had this phrase) and
    // decoding gives the text back.
    let text = " the capital of france is paris.";
    let encoded = shared.tokenizer().encode(text).unwrap();
    assert!(encoded.len() * 2 < text.len(), "{encoded:?}");
    assert_eq!(shared.tokenizer().decode(&encoded), text);

    // The greedy answer is the reference model's argmax chain (until an end token).
    let mut reference = Reference::load(arch);
    let mut expected_logits = reference.forward(&ids, 0);
    let never = CancelGuard::never();
    let mut answer = Vec::new();
    loop {
        let expected = argmax(&expected_logits);
        match thinker.next_event(&never).unwrap() {
            ThinkerEvent::Token(t) => {
                assert_eq!(t.id, expected, "{arch}: token {}", answer.len());
                answer.push(t.id);
                expected_logits = reference.forward(&[t.id], ids.len() + answer.len() - 1);
            }
            ThinkerEvent::Done { reason, tokens } => {
                assert_eq!(tokens, answer.len());
                match reason {
                    StopReason::MaxTokens => assert_eq!(tokens, 8),
                    StopReason::EndOfTurn => {
                        assert!(shared.tokenizer().is_control(expected), "{arch}")
                    }
                    StopReason::Cancelled => panic!("{arch}: not cancelled"),
                }
                break;
            }
        }
    }
    // A second turn continues the same conversation.
    thinker.user_turn("And of Germany?").unwrap();
    assert_eq!(thinker.history().len(), 4);
    assert!(thinker.cached_tokens().len() > ids.len() + answer.len());
}

#[test]
fn qwen2_thinker_runs_a_turn() {
    thinker_runs_a_turn("qwen2");
}

#[test]
fn llama_thinker_runs_a_turn() {
    thinker_runs_a_turn("llama");
}
