//! SentencePiece GGUFs (`tokenizer.ggml.model == "llama"`: Llama 2, TinyLlama, Mistral v0.1):
//! a tiny llama GGUF whose vocabulary is a SentencePiece BPE model trained by
//! `tools/make_tiny_spm_gguf.py`; our tokenizer must give exactly SentencePiece's ids
//! (`assets/goldens/llm/tiny_spm_tokens.json`), and a whole turn must run through the Llama 2
//! chat template.
//!
//! The dummy-prefix convention is llama.cpp's for a prompt: every stretch of plain text that
//! begins the input or follows a special token gets a leading `▁`, which is what
//! `SentencePieceProcessor.encode` does to a whole text. So `encode(text)` must equal
//! SentencePiece's ids, and the rendered prompt `<s>[INST] ...` must equal BOS followed by
//! SentencePiece's ids of the text after `<s>`.

use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use parley_thinker::llm::gguf_tokenizer::Utf8Stream;
use parley_thinker::llm::{GgufThinker, GgufTokenizer, SessionConfig, SharedGguf};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/llm")
}

fn model_path() -> PathBuf {
    golden_dir().join("tiny_spm_llama.gguf")
}

fn golden() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join("tiny_spm_tokens.json")).unwrap(),
    )
    .unwrap()
}

fn ids_of(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
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
    let golden = golden();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let bos = tokenizer.bos_id.unwrap();
    let mut byte_fallbacks = 0;
    let mut longest = 0;
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = ids_of(&case["ids"]);
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids, expected, "{text:?}");
        let decoded = case["decoded"].as_str().unwrap();
        assert_eq!(tokenizer.decode(&ids), decoded, "{text:?}");
        // After a leading BOS the dummy prefix's space goes as well (BOS itself prints `<s>`).
        let with_bos: Vec<u32> = std::iter::once(bos).chain(ids.iter().copied()).collect();
        assert_eq!(
            tokenizer.decode(&with_bos),
            format!("<s>{decoded}"),
            "{text:?}"
        );
        // Streaming: token by token through Utf8Stream gives the same text, with the dummy
        // prefix's space (characters split over byte tokens come out whole).
        let mut stream = Utf8Stream::default();
        let mut streamed = String::new();
        for &id in &ids {
            let mut bytes = Vec::new();
            tokenizer.token_bytes(id, &mut bytes);
            let piece = stream.push(&bytes);
            assert!(!piece.contains('\u{FFFD}'), "{text:?}: {piece:?}");
            streamed.push_str(&piece);
        }
        assert_eq!(streamed, format!(" {decoded}"), "{text:?}");
        longest = longest.max(ids.len());
        byte_fallbacks += ids
            .iter()
            .filter(|&&id| tokenizer.token(id).is_some_and(|t| t.starts_with("<0x")))
            .count();
    }
    // The emoji, accents and CJK went through byte fallback (so that path is exercised).
    assert!(byte_fallbacks > 10, "{byte_fallbacks}");
    assert!(longest > 300, "{longest}");
}

#[test]
fn a_prompt_is_bos_then_the_dummy_prefixed_text_as_in_llama_cpp() {
    let tokenizer = tokenizer();
    let prompt = &golden()["prompt"];
    let text = prompt["text"].as_str().unwrap();
    let expected = ids_of(&prompt["ids"]);
    assert_eq!(tokenizer.encode(text).unwrap(), expected);
    // The template printed BOS: `encode_prompt` does not add a second one ...
    assert!(tokenizer.add_bos);
    assert_eq!(tokenizer.encode_prompt(text).unwrap(), expected);
    // ... and adds it when the text lacks it (`tokenizer.ggml.add_bos_token`).
    let after_bos = text.strip_prefix("<s>").unwrap();
    assert_eq!(tokenizer.encode_prompt(after_bos).unwrap(), expected);
    assert_eq!(tokenizer.encode(after_bos).unwrap(), expected[1..]);
}

#[test]
fn a_continuation_has_no_dummy_prefix_unless_it_starts_with_a_special_token() {
    let tokenizer = tokenizer();
    let whole = "the moon is far away. the earth is not.";
    let (first, second) = whole.split_at(whole.find(" the earth").unwrap());
    // No merge crosses the cut (it is before a `▁`), so the pieces add up to the whole.
    let mut ids = tokenizer.encode(first).unwrap();
    ids.extend(tokenizer.encode_continuation(second).unwrap());
    assert_eq!(ids, tokenizer.encode(whole).unwrap());
    // `encode` would give the second part its own dummy prefix: an extra `▁`.
    assert_ne!(
        tokenizer.encode(second).unwrap(),
        tokenizer.encode_continuation(second).unwrap()
    );
    // After a special token the text starts afresh either way.
    assert_eq!(
        tokenizer.encode_continuation("</s>hello").unwrap(),
        tokenizer.encode("</s>hello").unwrap()
    );
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
    let golden = golden();
    assert_eq!(golden["prompt"]["system"], "Be brief.");
    thinker
        .user_turn(golden["prompt"]["user"].as_str().unwrap())
        .unwrap();
    // The prompt in the cache is exactly SentencePiece's tokens of the rendered template.
    let prompt = thinker.cached_tokens().to_vec();
    assert_eq!(prompt, ids_of(&golden["prompt"]["ids"]));
    assert_eq!(
        format!("<s>{}", shared.tokenizer().decode(&prompt[1..])),
        golden["prompt"]["text"].as_str().unwrap()
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
    let mut streamed = String::new();
    while let ThinkerEvent::Token(t) = thinker.next_event(&CancelGuard::never()).unwrap() {
        got.push(t.id);
        streamed.push_str(&t.text);
    }
    assert_eq!(got, expected);
    // The streamed pieces are the answer's text; `decode` is the same without the leading
    // space SentencePiece puts on a text's first word.
    let decoded = shared.tokenizer().decode(&got);
    assert!(
        streamed == decoded || streamed == format!(" {decoded}"),
        "{streamed:?} vs {decoded:?}"
    );
    // A second turn goes on in the same KV cache.
    thinker.user_turn("and the moon?").unwrap();
    let cached = thinker.cached_tokens();
    assert!(cached.starts_with(&prompt));
    let next_turn = shared
        .tokenizer()
        .encode("</s><s>[INST] and the moon? [/INST]")
        .unwrap();
    assert!(cached.ends_with(&next_turn), "{cached:?}");
}

/// Runs the greedy answer to its end and returns its ids.
fn answer_ids(thinker: &mut GgufThinker) -> Vec<u32> {
    let mut ids = Vec::new();
    while let ThinkerEvent::Token(t) = thinker.next_event(&CancelGuard::never()).unwrap() {
        ids.push(t.id);
    }
    ids
}

fn greedy(max_tokens: usize) -> SessionConfig {
    SessionConfig {
        system_prompt: None,
        temperature: 0.0,
        repeat_penalty: 1.0,
        max_tokens,
        ..SessionConfig::default()
    }
}

#[test]
fn later_turns_prefill_only_the_new_text_after_the_cached_answer() {
    let shared = SharedGguf::load(model_path()).unwrap();
    let tokenizer = shared.tokenizer();
    let mut thinker = GgufThinker::new(std::sync::Arc::clone(&shared), greedy(5)).unwrap();
    thinker.user_turn("the sun").unwrap();
    let first_prompt = thinker.cached_tokens().to_vec();
    assert_eq!(thinker.last_prefill_tokens(), first_prompt.len());
    let answer = answer_ids(&mut thinker);
    assert!(!answer.is_empty());
    // The Llama 2 template prints the answer as `' ' + content + ' ' + eos`; the cache holds
    // the answer's tokens, whose first `▁` is that space.
    assert!(tokenizer.continuation_text(&answer).starts_with(' '));

    thinker.user_turn("and the moon?").unwrap();
    let suffix = tokenizer
        .encode_continuation(" </s><s>[INST] and the moon? [/INST]")
        .unwrap();
    let mut expected = first_prompt.clone();
    expected.extend(&answer);
    expected.extend(&suffix);
    assert_eq!(thinker.cached_tokens(), expected.as_slice());
    // Only the new text went through prefill (the last answer token is fed with it).
    assert_eq!(thinker.last_prefill_tokens(), 1 + suffix.len());
}

#[test]
fn after_a_barge_in_the_heard_words_stay_cached_and_the_next_turn_continues() {
    let shared = SharedGguf::load(model_path()).unwrap();
    let tokenizer = shared.tokenizer();
    let mut thinker = GgufThinker::new(std::sync::Arc::clone(&shared), greedy(5)).unwrap();
    thinker.user_turn("the sun").unwrap();
    let prompt = thinker.cached_tokens().to_vec();
    let answer = answer_ids(&mut thinker);
    // The user heard the first word (a whole token of text: the tiny model also emits byte
    // pieces, whose lossy text would not tokenize back).
    let heard = tokenizer.decode(&answer[..1]);
    assert!(
        !heard.is_empty() && !heard.contains('\u{fffd}'),
        "{heard:?}"
    );
    thinker.truncate_answer(&heard).unwrap();
    thinker.user_turn("why").unwrap();
    let suffix = tokenizer
        .encode_continuation(" </s><s>[INST] why [/INST]")
        .unwrap();
    let mut expected = prompt;
    expected.push(answer[0]);
    expected.extend(&suffix);
    assert_eq!(thinker.cached_tokens(), expected.as_slice());
    assert_eq!(thinker.last_prefill_tokens(), suffix.len());
    let history = thinker.history();
    assert_eq!(history[history.len() - 2].content, heard);
}

/// TinyLlama's (Zephyr) chat template, verbatim: it never prints `bos_token`.
const ZEPHYR_TEMPLATE: &str = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/// The tiny SentencePiece GGUF with another chat template, written to a temporary file.
fn with_template(template: &str) -> tempfile::TempPath {
    let mut file = std::fs::File::open(model_path()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let tensors: Vec<(String, candle_core::quantized::QTensor)> = content
        .tensor_infos
        .keys()
        .map(|name| {
            let t = content.tensor(&mut file, name, &Device::Cpu).unwrap();
            (name.clone(), t)
        })
        .collect();
    let template = gguf_file::Value::String(template.to_string());
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| {
            let v = if k == "tokenizer.chat_template" {
                &template
            } else {
                v
            };
            (k.as_str(), v)
        })
        .collect();
    let tensor_refs: Vec<(&str, &candle_core::quantized::QTensor)> =
        tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut writer = std::io::BufWriter::new(out.reopen().unwrap());
    gguf_file::write(&mut writer, &metadata, &tensor_refs).unwrap();
    drop(writer);
    out.into_temp_path()
}

#[test]
fn a_template_without_bos_gets_the_bos_the_model_asks_for_once() {
    let path = with_template(ZEPHYR_TEMPLATE);
    let shared = SharedGguf::load(&path).unwrap();
    let tokenizer = shared.tokenizer();
    let bos = tokenizer.bos_id.unwrap();
    let mut thinker = GgufThinker::new(std::sync::Arc::clone(&shared), greedy(4)).unwrap();
    thinker.user_turn("hello").unwrap();
    let prompt = thinker.cached_tokens().to_vec();
    assert_eq!(
        prompt,
        tokenizer
            .encode_prompt("<|user|>\nhello</s>\n<|assistant|>\n")
            .unwrap()
    );
    assert_eq!(prompt[0], bos);
    let answer = answer_ids(&mut thinker);
    thinker.user_turn("more").unwrap();
    let cached = thinker.cached_tokens();
    // One BOS at the very start, none before the later turn.
    assert_eq!(cached.iter().filter(|&&id| id == bos).count(), 1);
    assert!(cached.starts_with(&prompt));
    // The Zephyr template prints the answer right after a newline, and this answer's first
    // piece has no `▁`: the cached answer fits the rendering, so the turn continues the cache.
    assert!(!tokenizer.continuation_text(&answer).starts_with(' '));
    let continued = tokenizer
        .encode_continuation("</s>\n<|user|>\nmore</s>\n<|assistant|>\n")
        .unwrap();
    assert!(cached.ends_with(&continued), "{cached:?}");
    assert_eq!(thinker.last_prefill_tokens(), 1 + continued.len());
}

/// `meta-llama/Llama-2-7b-chat-hf`'s `chat_template`, verbatim (the tiny GGUF carries it without
/// the `.strip()` calls): answers are printed stripped, which the cache must live with.
const LLAMA2_TEMPLATE: &str = r#"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"#;

/// In the style of Mistral-7B-Instruct-v0.1's and Gemma's: any role but user and assistant
/// raises.
const NO_SYSTEM_TEMPLATE: &str = r#"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"#;

/// Three turns with a system prompt: each prompt holds the system prompt once and ends with the
/// latest user text, and the next turn's cache keeps the earlier prompt when the rendering allows.
fn three_turns(template: &str, system: &str) -> Vec<Vec<u32>> {
    let path = with_template(template);
    let shared = SharedGguf::load(&path).unwrap();
    let tokenizer = shared.tokenizer();
    let config = SessionConfig {
        system_prompt: Some(system.to_string()),
        ..greedy(4)
    };
    let mut thinker = GgufThinker::new(std::sync::Arc::clone(&shared), config).unwrap();
    let mut prompts = Vec::new();
    for user in ["the sun", "and the moon?", "why"] {
        thinker.user_turn(user).unwrap();
        let cached = thinker.cached_tokens().to_vec();
        let text = tokenizer.decode(&cached);
        assert_eq!(text.matches(system).count(), 1, "{text:?}");
        assert!(
            text.trim_end().ends_with(&format!("{user} [/INST]")),
            "{text:?}"
        );
        answer_ids(&mut thinker);
        prompts.push(cached);
    }
    assert_eq!(thinker.history().len(), 6, "{:?}", thinker.history());
    prompts
}

#[test]
fn the_verbatim_llama2_template_holds_a_conversation_with_a_system_prompt() {
    let prompts = three_turns(LLAMA2_TEMPLATE, "Be brief.");
    let tokenizer = tokenizer();
    // The first prompt is SentencePiece's tokens of the rendering, `<<SYS>>` block inside the
    // first `[INST]`.
    assert_eq!(
        prompts[0],
        tokenizer
            .encode_prompt("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nthe sun [/INST]")
            .unwrap()
    );
    // Later turns continue the cache: old turns are not prefilled again.
    assert!(prompts[1].starts_with(&prompts[0]));
    assert!(prompts[2].starts_with(&prompts[1]));
}

#[test]
fn a_template_without_a_system_role_gets_the_system_prompt_in_the_first_turn() {
    let system = SessionConfig::default().system_prompt.unwrap();
    let prompts = three_turns(NO_SYSTEM_TEMPLATE, &system);
    assert_eq!(
        prompts[0],
        tokenizer()
            .encode_prompt(&format!("<s>[INST] {system}\n\nthe sun [/INST]"))
            .unwrap()
    );
}
