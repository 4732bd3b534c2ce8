//! SentencePiece GGUFs (`tokenizer.ggml.model == "llama"`: Llama 2, TinyLlama, Mistral v0.1):
//! a tiny llama GGUF whose vocabulary is a SentencePiece BPE model trained by
//! `tools/make_tiny_spm_gguf.py`; our tokenizer must give exactly SentencePiece's ids
//! (`assets/goldens/llm/tiny_spm_tokens.json`), and a whole turn must run through the Llama 2
//! chat template.

use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use parley_thinker::llm::{GgufThinker, GgufTokenizer, SessionConfig, SharedGguf};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/llm")
}

fn model_path() -> PathBuf {
    golden_dir().join("tiny_spm_llama.gguf")
}

fn tokenizer() -> GgufTokenizer {
    let mut file = std::fs::File::open(model_path()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    GgufTokenizer::from_gguf(&content).unwrap()
}

#[test]
fn encoding_equals_sentencepiece_on_every_golden_string() {
    let tokenizer = tokenizer();
    assert!(tokenizer.is_sentence_piece());
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join("tiny_spm_tokens.json")).unwrap(),
    )
    .unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut byte_fallbacks = 0;
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids, expected, "{text:?}");
        assert_eq!(
            tokenizer.decode(&ids),
            case["decoded"].as_str().unwrap(),
            "{text:?}"
        );
        byte_fallbacks += ids
            .iter()
            .filter(|&&id| tokenizer.token(id).is_some_and(|t| t.starts_with("<0x")))
            .count();
    }
    // The emoji, accents and CJK went through byte fallback (so that path is exercised).
    assert!(byte_fallbacks > 10, "{byte_fallbacks}");
}

#[test]
fn special_tokens_in_text_are_matched_and_restart_the_dummy_prefix() {
    let tokenizer = tokenizer();
    let bos = tokenizer.bos_id.unwrap();
    let ids = tokenizer.encode("<s>hello").unwrap();
    assert_eq!(ids[0], bos);
    // After a control token the text gets SentencePiece's leading `▁` again, as at the start.
    assert_eq!(&ids[1..], tokenizer.encode("hello").unwrap().as_slice());
}

#[test]
fn a_turn_runs_through_the_llama2_template() {
    let shared = SharedGguf::load(model_path()).unwrap();
    let config = SessionConfig {
        system_prompt: Some("Be brief.".into()),
        temperature: 0.0,
        repeat_penalty: 1.0,
        max_tokens: 6,
        ..SessionConfig::default()
    };
    let mut thinker = GgufThinker::new(std::sync::Arc::clone(&shared), config).unwrap();
    thinker.user_turn("what is the capital of france?").unwrap();
    let prompt = thinker.cached_tokens().to_vec();
    assert_eq!(prompt[0], shared.tokenizer().bos_id.unwrap());
    let rendered = shared.tokenizer().decode(&prompt[1..]);
    assert!(
        rendered.contains("[INST]") && rendered.contains("capital of france"),
        "{rendered:?}"
    );

    // Greedy answer == candle-transformers' quantized llama's argmax chain on the same prompt.
    let mut file = std::fs::File::open(model_path()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let mut reference = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content,
        &mut file,
        &Device::Cpu,
    )
    .unwrap();
    let mut expected = Vec::new();
    let mut input = prompt.clone();
    let mut position = 0;
    let eos = shared.tokenizer().eos_id.unwrap();
    for _ in 0..6 {
        let x = Tensor::new(input.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits: Vec<f32> = reference
            .forward(&x, position)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        position += input.len();
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32;
        if next == eos {
            break;
        }
        expected.push(next);
        input = vec![next];
    }
    let mut got = Vec::new();
    while let ThinkerEvent::Token(t) = thinker.next_event(&CancelGuard::never()).unwrap() {
        got.push(t.id);
    }
    assert_eq!(got, expected);
    // A second turn goes on in the same KV cache.
    thinker.user_turn("and the moon?").unwrap();
    assert!(thinker.cached_tokens().starts_with(&prompt));
}
