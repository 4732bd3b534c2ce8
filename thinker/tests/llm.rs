//! The GGUF Thinker against the real SmolLM2-135M-Instruct model.
//!
//! Needs the model installed (`parley models fetch`); fails with that instruction otherwise.

use std::path::PathBuf;

use parley_thinker::llm::gguf_tokenizer::Utf8Stream;
use parley_thinker::llm::{ChatMessage, GgufThinker, LlmError, SessionConfig};
use parley_thinker::seam::{StopReason, Thinker, ThinkerEvent};
use parley_thinker::stream::{Cancel, CancelGuard};

fn model_path() -> PathBuf {
    let dir = parley_models::default_models_dir();
    parley_models::installed_model_dir(&dir, parley_models::catalog::SMOLLM2_135M)
        .unwrap_or_else(|e| panic!("{e}"))
        .join("model.gguf")
}

/// Largest logit difference allowed between a conversation built turn by turn (earlier answers
/// in the KV cache from one-token decode steps) and the same conversation prefilled at once.
/// The two compute attention with different matrix shapes, so float sums round differently;
/// the projections round activations to 8 bits per 256 values, and a rounding that flips there
/// moves logits by up to a few units on this model (measured up to ~3; logits span ~-10..25).
/// A wrong KV cache (missing, repeated or shifted positions) is far outside this bound.
const PREFILL_TOLERANCE: f32 = 4.0;

/// Max |a - b| of two logit vectors.
fn logit_diff(a: &GgufThinker, b: &GgufThinker) -> f32 {
    let a = a.pending_logits().unwrap().to_vec1::<f32>().unwrap();
    let b = b.pending_logits().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn greedy(max_tokens: usize) -> SessionConfig {
    SessionConfig {
        temperature: 0.0,
        max_tokens,
        ..SessionConfig::default()
    }
}

fn load(config: SessionConfig) -> GgufThinker {
    GgufThinker::load(model_path(), config).expect("load SmolLM2")
}

/// Runs one answer to the end; returns its token ids, text and stop reason.
fn answer(thinker: &mut GgufThinker, cancel: &CancelGuard) -> (Vec<u32>, String, StopReason) {
    let mut ids = Vec::new();
    let mut text = String::new();
    loop {
        match thinker.next_event(cancel).expect("next_event") {
            ThinkerEvent::Token(t) => {
                assert!(t.hidden.is_none() && t.embedding.is_none());
                ids.push(t.id);
                text.push_str(&t.text);
            }
            ThinkerEvent::Done { reason, tokens } => {
                assert_eq!(tokens, ids.len());
                return (ids, text, reason);
            }
        }
    }
}

/// Ids from HF `tokenizers` (BPE built from this GGUF's vocab and merges with SmolLM2's
/// pre-tokenizer: individual digits, then byte-level; special tokens added).
#[test]
fn tokenizer_matches_reference_ids_and_round_trips() {
    let thinker = load(greedy(8));
    let tok = thinker.tokenizer();
    let cases: &[(&str, &[u32])] = &[
        ("Hello world", &[19556, 905]),
        (
            "What is the capital of France?",
            &[1780, 314, 260, 3575, 282, 4649, 47],
        ),
        (
            "In 2024, 3.14159 people  said:\n\n  'hello'!!",
            &[
                788, 216, 34, 32, 34, 36, 28, 216, 35, 30, 33, 36, 33, 37, 41, 701, 216, 1137, 42,
                8866, 637, 28120, 23, 10095,
            ],
        ),
        (
            "café naïve — 東京 🙂",
            &[
                83, 1939, 2756, 15486, 46494, 1841, 17097, 247, 126, 16736, 122, 47526,
            ],
        ),
        (
            "<|im_start|>user\nHi there<|im_end|>\n",
            &[1, 4093, 198, 26843, 665, 2, 198],
        ),
        (
            "   leading spaces and trailing   ",
            &[256, 2899, 5600, 284, 35079, 333],
        ),
        (
            "don't you'll I'm we've they're",
            &[12420, 982, 346, 3060, 339, 5248, 392, 3543, 502, 2316],
        ),
        (
            "tabs\tand\r\nnewlines\n\n\n",
            &[100, 7366, 197, 397, 201, 198, 2241, 5110, 16506],
        ),
        ("", &[]),
    ];
    for (text, expected) in cases {
        let ids = tok.encode(text).unwrap();
        assert_eq!(&ids, expected, "encoding {text:?}");
        assert_eq!(&tok.decode(&ids), text, "round trip of {text:?}");
    }
    // By hand against the vocabulary: GPT-2 byte alphabet writes a leading space as `Ġ`.
    let space = tok.byte_char(b' ');
    assert_eq!(space, 'Ġ');
    assert_eq!(tok.token_id("Hello"), Some(19556));
    assert_eq!(tok.token_id(&format!("{space}world")), Some(905));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert!(tok.is_control(2) && !tok.is_control(905));
}

#[test]
fn utf8_stream_emits_whole_characters_only() {
    let text = "é🙂x";
    let mut stream = Utf8Stream::default();
    let pieces: Vec<String> = text.bytes().map(|b| stream.push(&[b])).collect();
    assert_eq!(pieces, ["", "é", "", "", "", "🙂", "x"]);
    let mut stream = Utf8Stream::default();
    assert_eq!(stream.push(&[0xff, b'a']), "\u{FFFD}a");
}

#[test]
fn chat_template_renders_chatml_and_finds_end_of_turn() {
    let thinker = load(greedy(8));
    let template = thinker.template();
    let messages = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello!"),
        ChatMessage::user("Bye"),
    ];
    assert_eq!(
        template.render(&messages, true).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // Without a system message the template supplies SmolLM's own.
    assert_eq!(
        template.render(&messages[1..2], false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
    let im_end = thinker.tokenizer().token_id("<|im_end|>").unwrap();
    assert!(thinker.end_of_turn_ids().contains(&im_end));
}

#[test]
fn greedy_answer_is_deterministic_and_sensible() {
    let mut thinker = load(greedy(64));
    let never = CancelGuard::never();
    thinker.user_turn("What is the capital of France?").unwrap();
    let expected_prompt = "<|im_start|>system\nYou are a helpful voice assistant. Answer briefly, \
        in plain spoken sentences.<|im_end|>\n<|im_start|>user\nWhat is the capital of \
        France?<|im_end|>\n<|im_start|>assistant\n";
    let prompt_ids = thinker.tokenizer().encode(expected_prompt).unwrap();
    assert_eq!(thinker.cached_tokens(), &prompt_ids[..]);
    assert_eq!(thinker.last_prefill_tokens(), prompt_ids.len());
    let (ids, text, reason) = answer(&mut thinker, &never);
    assert!(text.contains("Paris"), "answer: {text:?}");
    assert_eq!(reason, StopReason::EndOfTurn, "answer: {text:?}");
    // Streamed pieces add up to the decoded answer.
    assert_eq!(text, thinker.tokenizer().decode(&ids));

    thinker.reset();
    thinker.user_turn("What is the capital of France?").unwrap();
    let (again, _, _) = answer(&mut thinker, &never);
    assert_eq!(ids, again);
}

#[test]
fn second_turn_prefills_only_new_tokens_and_matches_a_fresh_prefill() {
    let never = CancelGuard::never();
    let mut thinker = load(greedy(48));
    thinker.user_turn("What is the capital of France?").unwrap();
    let (_, first, reason) = answer(&mut thinker, &never);
    assert_eq!(reason, StopReason::EndOfTurn);
    let before = thinker.cached_tokens().len();

    thinker
        .user_turn("And what is the capital of Germany?")
        .unwrap();
    let turn_logits = thinker.pending_logits().unwrap().clone();
    let new_part = thinker
        .tokenizer()
        .encode(
            "<|im_end|>\n<|im_start|>user\nAnd what is the capital of Germany?<|im_end|>\n\
             <|im_start|>assistant\n",
        )
        .unwrap();
    assert_eq!(thinker.last_prefill_tokens(), new_part.len());
    assert_eq!(&thinker.cached_tokens()[before..], &new_part[..]);
    let (second_ids, second, _) = answer(&mut thinker, &never);
    assert!(second.contains("Berlin"), "answer: {second:?}");

    // A fresh model given the whole conversation at once holds the same tokens and predicts the
    // answer's first token alike (greedy answers may part at a near tie, so logits are compared).
    let mut fresh = load(greedy(48));
    let system = SessionConfig::default().system_prompt.unwrap();
    fresh
        .load_history(&[
            ChatMessage::system(system),
            ChatMessage::user("What is the capital of France?"),
            ChatMessage::assistant(first),
            ChatMessage::user("And what is the capital of Germany?"),
        ])
        .unwrap();
    let incremental_prompt = &thinker.cached_tokens()[..fresh.cached_tokens().len()];
    assert_eq!(fresh.cached_tokens(), incremental_prompt);
    let fresh_logits = fresh.pending_logits().unwrap().to_vec1::<f32>().unwrap();
    let turn_logits = turn_logits.to_vec1::<f32>().unwrap();
    let diff = turn_logits
        .iter()
        .zip(&fresh_logits)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= PREFILL_TOLERANCE, "max |diff| {diff}");
    let (fresh_ids, fresh_text, _) = answer(&mut fresh, &never);
    assert!(fresh_text.contains("Berlin"), "answer: {fresh_text:?}");
    assert_eq!(fresh_ids[0], second_ids[0]);
}

#[test]
fn long_answer_stops_at_max_tokens_and_the_conversation_goes_on() {
    let never = CancelGuard::never();
    let mut thinker = load(greedy(5));
    thinker
        .user_turn("Write a long story about a dragon who learns to bake bread.")
        .unwrap();
    let (ids, _, reason) = answer(&mut thinker, &never);
    assert_eq!(reason, StopReason::MaxTokens);
    assert_eq!(ids.len(), 5);
    // Asking again keeps reporting the end, with no more tokens.
    assert!(matches!(
        thinker.next_event(&never).unwrap(),
        ThinkerEvent::Done {
            reason: StopReason::MaxTokens,
            tokens: 5
        }
    ));
    let before = thinker.cached_tokens().len();
    thinker.user_turn("Thanks!").unwrap();
    // The last sampled token was never fed: it goes in with the new turn.
    let new_part = thinker
        .tokenizer()
        .encode("<|im_end|>\n<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n")
        .unwrap();
    assert_eq!(thinker.last_prefill_tokens(), 1 + new_part.len());
    assert_eq!(thinker.cached_tokens()[before], ids[4]);
    assert_eq!(
        thinker.history()[2],
        ChatMessage::assistant(thinker.tokenizer().decode(&ids))
    );
    let (_, _, reason) = answer(&mut thinker, &never);
    assert!(matches!(
        reason,
        StopReason::MaxTokens | StopReason::EndOfTurn
    ));
}

#[test]
fn cancel_stops_before_the_next_token() {
    let cancel = Cancel::new();
    let guard = cancel.guard();
    let mut thinker = load(greedy(64));
    thinker.user_turn("Tell me about the moon.").unwrap();
    for _ in 0..3 {
        assert!(matches!(
            thinker.next_event(&guard).unwrap(),
            ThinkerEvent::Token(_)
        ));
    }
    cancel.cancel_all();
    for _ in 0..2 {
        assert!(matches!(
            thinker.next_event(&guard).unwrap(),
            ThinkerEvent::Done {
                reason: StopReason::Cancelled,
                tokens: 3
            }
        ));
    }
}

#[test]
fn truncated_answer_then_new_turn_matches_a_fresh_prefill_of_the_heard_history() {
    let cancel = Cancel::new();
    let guard = cancel.guard();
    let never = CancelGuard::never();
    let mut thinker = load(greedy(40));
    thinker.user_turn("Tell me about the moon.").unwrap();
    let mut spoken = String::new();
    for _ in 0..12 {
        match thinker.next_event(&guard).unwrap() {
            ThinkerEvent::Token(t) => spoken.push_str(&t.text),
            other => panic!("answer ended early: {other:?}"),
        }
    }
    cancel.cancel_all();
    assert!(matches!(
        thinker.next_event(&guard).unwrap(),
        ThinkerEvent::Done {
            reason: StopReason::Cancelled,
            ..
        }
    ));
    // The user heard about half of it, cut mid-word.
    let mut cut = spoken.len() / 2;
    while !spoken.is_char_boundary(cut) {
        cut -= 1;
    }
    let heard = &spoken[..cut];
    let answer_start = thinker.cached_tokens().len() - 11;
    thinker.truncate_answer(heard).unwrap();
    let heard_ids = thinker.tokenizer().encode(heard).unwrap();
    // The cache keeps the answer tokens the heard text shares and nothing after them.
    assert!(thinker.cached_tokens().len() <= answer_start + heard_ids.len());

    thinker.user_turn("How far away is it?").unwrap();

    let mut fresh = load(greedy(40));
    let system = SessionConfig::default().system_prompt.unwrap();
    let history = [
        ChatMessage::system(system),
        ChatMessage::user("Tell me about the moon."),
        ChatMessage::assistant(heard),
        ChatMessage::user("How far away is it?"),
    ];
    assert_eq!(thinker.history(), &history[..]);
    fresh.load_history(&history).unwrap();
    // Same tokens in the cache (the heard text's tail is prefilled with the new turn) and the
    // same prediction within the prefill / decode tolerance.
    assert_eq!(fresh.cached_tokens(), thinker.cached_tokens());
    let diff = logit_diff(&thinker, &fresh);
    assert!(diff <= PREFILL_TOLERANCE, "max |diff| {diff}");
    let (ids, _, _) = answer(&mut thinker, &never);
    assert!(!ids.is_empty());
}

#[test]
fn conversation_longer_than_the_context_keeps_the_system_prompt_and_last_turn() {
    let never = CancelGuard::never();
    let limit = 100;
    let mut thinker = load(SessionConfig {
        context_tokens: Some(limit),
        ..greedy(24)
    });
    let mut restarts = 0;
    for (turn, question) in [
        "What is the capital of France?",
        "What is the capital of Germany?",
        "What is the capital of Italy?",
        "What is the capital of Spain?",
    ]
    .into_iter()
    .enumerate()
    {
        thinker.user_turn(question).unwrap();
        answer(&mut thinker, &never);
        assert!(thinker.cached_tokens().len() <= limit);
        if turn > 0 && thinker.history().len() == 2 {
            restarts += 1;
            // Only the system prompt and this turn are left.
            assert_eq!(thinker.history()[0].role, "system");
            assert_eq!(thinker.history()[1], ChatMessage::user(question));
        }
    }
    assert!(
        restarts >= 1,
        "the conversation never outgrew {limit} tokens"
    );
    // A turn that cannot fit even alone is refused with a clear error, and nothing is lost.
    let history_before = thinker.history().to_vec();
    let err = thinker.user_turn(&"word ".repeat(400)).unwrap_err();
    assert!(matches!(err, LlmError::ContextFull { .. }), "{err}");
    assert_eq!(thinker.history(), &history_before[..]);
}

#[test]
fn sampling_is_reproducible_per_seed_and_config_is_validated() {
    let config: SessionConfig =
        serde_json::from_str(r#"{"temperature": 0.8, "top_p": 0.95, "max_tokens": 12}"#).unwrap();
    assert_eq!(config.seed, SessionConfig::default().seed);
    let never = CancelGuard::never();
    let run = || {
        let mut thinker = load(config.clone());
        thinker.user_turn("Say something about cats.").unwrap();
        answer(&mut thinker, &never).0
    };
    assert_eq!(run(), run());

    let bad = SessionConfig {
        top_p: 0.0,
        ..SessionConfig::default()
    };
    assert!(matches!(
        GgufThinker::load(model_path(), bad),
        Err(LlmError::Config(_))
    ));
    assert!(serde_json::from_str::<SessionConfig>(r#"{"temprature": 1}"#).is_err());
}

#[test]
fn bad_files_give_clear_errors() {
    let path = std::env::temp_dir().join(format!("parley-not-a-gguf-{}.gguf", std::process::id()));
    std::fs::write(&path, b"this is not a gguf file").unwrap();
    let err = GgufThinker::load(&path, SessionConfig::default()).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(matches!(err, LlmError::Gguf { .. }), "{err}");
    let err = GgufThinker::load("/nonexistent/model.gguf", SessionConfig::default()).unwrap_err();
    assert!(matches!(err, LlmError::Io { .. }), "{err}");

    let mut thinker = load(greedy(4));
    assert!(matches!(
        thinker.next_event(&CancelGuard::never()),
        Err(LlmError::NoAnswer)
    ));
    assert!(matches!(
        thinker.truncate_answer("x"),
        Err(LlmError::NoAnswer)
    ));
}
