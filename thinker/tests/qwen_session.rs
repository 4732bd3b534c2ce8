//! The Qwen Thinker as a conversation (`QwenSession` behind the `Thinker` seam) on the tiny
//! checkpoints: tiny_a with its small Qwen-style tokenizer (`tools/reference/qwen_tiny_tokenizer.py`)
//! and tiny_b (bf16 weights, other rope sections) with a word-level tokenizer written here. Greedy
//! answers equal the argmax chain of full re-prefills across turns (the KV cache is right), each
//! token carries its hidden state and embedding as the full pass computes them, the session's
//! prompts are the chat template's, a spoken turn streamed in blocks answers like the offline
//! prompt, and cancel / retract / truncate leave the cache exactly where they should.

#[path = "support/tensors.rs"]
mod tensors;

use tensors::max_abs_diff;

use std::path::{Path, PathBuf};

use candle_core::{D, Device, IndexOp, Tensor};
use parley_thinker::qwen::features;
use parley_thinker::qwen::{
    Checkpoint, Message, QwenSession, QwenThinker, QwenTokenizer, SessionConfig, ThinkerConfig,
};
use parley_thinker::seam::{StopReason, Thinker, ThinkerEvent, ThinkerToken};
use parley_thinker::stream::{Cancel, CancelGuard};
use parley_thinker::whisper::mel::LogMel;

const SYSTEM: &str = "You are a helpful assistant.";

/// A tiny checkpoint and the directory holding its `tokenizer.json`.
struct Model {
    checkpoint: PathBuf,
    tokenizer: PathBuf,
    _written: Option<tempfile::TempDir>,
}

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen")
}

fn tiny_a() -> Model {
    let dir = goldens().join("tiny_a/checkpoint");
    Model {
        checkpoint: dir.clone(),
        tokenizer: dir,
        _written: None,
    }
}

/// tiny_b (vocabulary 256) with a word-level tokenizer: the special tokens at the ids its
/// config.json names (the rest after them), words of the test prompts, and filler tokens so
/// every id the random model may produce decodes to something.
fn tiny_b() -> Model {
    let checkpoint = goldens().join("tiny_b/checkpoint");
    let config = ThinkerConfig::from_checkpoint_dir(&checkpoint).unwrap();
    let mut special: Vec<(String, u32)> = [
        ("<|AUDIO|>", config.audio_token_index),
        ("<|audio_bos|>", config.audio_start_token_id),
        ("<|audio_eos|>", config.audio_end_token_id),
        ("<|IMAGE|>", config.image_token_index),
        ("<|VIDEO|>", config.video_token_index),
        ("<|vision_bos|>", config.vision_start_token_id),
        ("<|vision_eos|>", config.vision_end_token_id),
    ]
    .into_iter()
    .map(|(name, id)| (name.to_string(), id))
    .collect();
    let next = special.iter().map(|(_, id)| id + 1).max().unwrap();
    for (k, name) in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .into_iter()
        .enumerate()
    {
        special.push((name.to_string(), next + k as u32));
    }
    let words = "[UNK] system user assistant You are a helpful What is the capital of France \
                 Why ocean salty Tell me joke Thanks . ? , Paris sea";
    let mut words = words.split_whitespace().map(str::to_string);
    let mut vocab = serde_json::Map::new();
    for id in 0..config.text_config.vocab_size as u32 {
        if special.iter().any(|(_, s)| *s == id) {
            continue;
        }
        let word = words.next().unwrap_or_else(|| format!("w{id}"));
        vocab.insert(word, id.into());
    }
    let added: Vec<serde_json::Value> = special
        .iter()
        .map(|(name, id)| {
            vocab.insert(name.clone(), (*id).into());
            serde_json::json!({"id": id, "content": name, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    let written = tempfile::tempdir().unwrap();
    std::fs::write(written.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    Model {
        checkpoint,
        tokenizer: written.path().to_path_buf(),
        _written: Some(written),
    }
}

impl Model {
    fn parts(&self) -> (QwenThinker, QwenTokenizer) {
        let checkpoint = Checkpoint::open(&self.checkpoint).unwrap();
        let thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
        let tokenizer =
            QwenTokenizer::from_checkpoint_dir(&self.tokenizer, &checkpoint.config).unwrap();
        (thinker, tokenizer)
    }

    fn session(&self, max_tokens: usize) -> QwenSession {
        self.session_in(candle_core::DType::F32, max_tokens)
    }

    /// A session computing in `dtype` (bf16 is what the `cuda` build runs).
    fn session_in(&self, dtype: candle_core::DType, max_tokens: usize) -> QwenSession {
        let checkpoint = Checkpoint::open(&self.checkpoint).unwrap();
        let thinker = QwenThinker::load_with_dtype(&checkpoint, &Device::Cpu, dtype).unwrap();
        let tokenizer =
            QwenTokenizer::from_checkpoint_dir(&self.tokenizer, &checkpoint.config).unwrap();
        let config = SessionConfig {
            system_prompt: SYSTEM.into(),
            max_tokens,
            ..SessionConfig::default()
        };
        QwenSession::new(thinker, tokenizer, config)
    }
}

fn dir() -> PathBuf {
    tiny_a().checkpoint
}

fn parts() -> (QwenThinker, QwenTokenizer) {
    tiny_a().parts()
}

fn session(max_tokens: usize) -> QwenSession {
    tiny_a().session(max_tokens)
}

fn answer(session: &mut QwenSession) -> (Vec<ThinkerToken>, StopReason) {
    let mut tokens = Vec::new();
    loop {
        match session.next_event(&CancelGuard::never()).unwrap() {
            ThinkerEvent::Token(t) => tokens.push(t),
            ThinkerEvent::Done { reason, tokens: n } => {
                assert_eq!(n, tokens.len());
                return (tokens, reason);
            }
        }
    }
}

/// The greedy continuation of `ids` by full re-prefills (no cache reuse), with the final
/// hidden states of the whole sequence.
fn reference_answer(
    model: &Model,
    ids: &[u32],
    features: Option<&Tensor>,
    max_tokens: usize,
    tokenizer: &QwenTokenizer,
) -> (Vec<u32>, Tensor) {
    let (mut thinker, _) = model.parts();
    let mut ids = ids.to_vec();
    let mut answer = Vec::new();
    loop {
        thinker.text_model().clear_cache();
        let out = thinker.prefill(&ids, features).unwrap();
        if answer.len() == max_tokens {
            return (answer, out.hidden_states);
        }
        let next = out
            .logits
            .i((0, ids.len() - 1))
            .unwrap()
            .argmax(D::Minus1)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        if tokenizer.is_end_of_answer(next) {
            return (answer, out.hidden_states);
        }
        answer.push(next);
        ids.push(next);
    }
}

fn chat(system: &str, user: &str) -> String {
    format!(
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

#[test]
fn answers_across_turns_equal_full_reprefills_and_carry_hidden_states() {
    answers_across_turns_equal_full_reprefills(&tiny_a());
}

#[test]
fn tiny_b_answers_across_turns_equal_full_reprefills_and_carry_hidden_states() {
    answers_across_turns_equal_full_reprefills(&tiny_b());
}

fn answers_across_turns_equal_full_reprefills(model: &Model) {
    let mut session = model.session(6);
    let tokenizer = session.tokenizer().clone();
    session.user_turn("What is the capital of France?").unwrap();
    let prompt = tokenizer
        .encode(&chat(SYSTEM, "What is the capital of France?"))
        .unwrap();
    // The chat template writes the same ChatML.
    let rendered = tokenizer.chat_template().render_ids(
        &tokenizer,
        &[
            Message::system(SYSTEM),
            Message::user("What is the capital of France?"),
        ],
        true,
    );
    assert_eq!(rendered.unwrap(), prompt);
    assert_eq!(session.cache_len(), prompt.len());
    let (tokens, _) = answer(&mut session);
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let (expected, hidden) = reference_answer(model, &prompt, None, 6, &tokenizer);
    assert_eq!(ids, expected);
    assert!(!ids.is_empty());

    // Token k carries the hidden state of the position where it is the input, and its
    // embedding.
    let (mut embedder, _) = model.parts();
    for (k, token) in tokens.iter().enumerate() {
        let position = prompt.len() + k;
        let want = hidden.i((0, position)).unwrap();
        let got = token.hidden.as_ref().unwrap();
        assert!(max_abs_diff(got, &want) < 1e-4, "hidden of token {k}");
        let embedding = embedder.prompt_embeddings(&[token.id], None).unwrap();
        let diff = max_abs_diff(
            token.embedding.as_ref().unwrap(),
            &embedding.i((0, 0)).unwrap(),
        );
        assert_eq!(diff, 0.0);
    }
    let _ = embedder.text_model();
    // The streamed text pieces are the answer's text.
    let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(text, tokenizer.decode(&ids).unwrap());

    // A second turn continues the cache: the whole conversation, re-prefilled, answers the same.
    session.user_turn("Why is the ocean salty?").unwrap();
    let mut conversation = prompt.clone();
    conversation.extend(&ids);
    conversation.extend(
        tokenizer
            .encode("<|im_end|>\n<|im_start|>user\nWhy is the ocean salty?<|im_end|>\n<|im_start|>assistant\n")
            .unwrap(),
    );
    assert_eq!(session.cache_len(), conversation.len());
    let (second, _) = answer(&mut session);
    let second: Vec<u32> = second.iter().map(|t| t.id).collect();
    let (expected, _) = reference_answer(model, &conversation, None, 6, &tokenizer);
    assert_eq!(second, expected);

    // The Talker's context covers every cached position.
    let (context_hidden, context_embeds) = session.talker_context().unwrap();
    assert_eq!(context_hidden.dim(0).unwrap(), session.cache_len());
    assert_eq!(context_embeds.dims(), context_hidden.dims());
}

#[test]
fn a_spoken_turn_streamed_in_blocks_answers_like_the_offline_prompt() {
    let golden =
        candle_core::safetensors::load(dir().join("../../log_mel.safetensors"), &Device::Cpu)
            .unwrap();
    let samples = golden["samples"].to_vec1::<f32>().unwrap();
    let mut session = session(5);
    let tokenizer = session.tokenizer().clone();
    session.begin_audio_turn().unwrap();
    let mut prefilled = 0;
    for piece in samples.chunks(4000) {
        prefilled += session.push_audio(piece).unwrap();
    }
    session.end_audio_turn().unwrap();
    let (tokens, _) = answer(&mut session);
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();

    // Offline: the whole clip's features (1.6 s is less than one 2 s block, so the streaming
    // normalization uses the whole clip too) in the ChatML prompt.
    let (thinker, _) = parts();
    let features = features::features(
        &LogMel::new(128, features::SAMPLE_RATE),
        &samples,
        &Device::Cpu,
    )
    .unwrap();
    let n_audio = thinker
        .audio_encoder()
        .forward(&features)
        .unwrap()
        .dim(0)
        .unwrap();
    assert_eq!(prefilled, 0, "no whole 2 s block in 1.6 s");
    let special = tokenizer.special();
    let mut prompt = tokenizer
        .encode(&format!(
            "<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n<|audio_bos|>"
        ))
        .unwrap();
    prompt.extend(std::iter::repeat_n(special.audio, n_audio));
    prompt.extend(
        tokenizer
            .encode("<|audio_eos|><|im_end|>\n<|im_start|>assistant\n")
            .unwrap(),
    );
    // The chat template's rendering of a spoken turn, the clip's <|AUDIO|> expanded.
    let rendered = tokenizer.chat_template().render_ids(
        &tokenizer,
        &[Message::system(SYSTEM), Message::user_audio(n_audio)],
        true,
    );
    assert_eq!(rendered.unwrap(), prompt);
    let (expected, _) = reference_answer(&tiny_a(), &prompt, Some(&features), 5, &tokenizer);
    assert_eq!(ids, expected);
    // Audio positions give the Talker no input embedding (zeroed, like the reference).
    let (_, embeds) = session.talker_context().unwrap();
    let audio_start = prompt.iter().position(|&id| id == special.audio).unwrap();
    let audio_rows = embeds.narrow(0, audio_start, n_audio).unwrap();
    assert_eq!(
        max_abs_diff(&audio_rows, &audio_rows.zeros_like().unwrap()),
        0.0
    );
}

/// 5.3 s of speech: the golden clip (1.6 s) repeated.
fn long_speech() -> Vec<f32> {
    let golden =
        candle_core::safetensors::load(dir().join("../../log_mel.safetensors"), &Device::Cpu)
            .unwrap();
    let clip = golden["samples"].to_vec1::<f32>().unwrap();
    let len = (5.3 * features::SAMPLE_RATE as f64) as usize;
    clip.iter().copied().cycle().take(len).collect()
}

/// Streams `samples` into a spoken turn 100 ms at a time, as a live turn arrives; returns when
/// (seconds of audio pushed) each block was prefilled and how many positions it added.
fn push_live(session: &mut QwenSession, samples: &[f32]) -> Vec<(f64, usize)> {
    let piece = features::SAMPLE_RATE as usize / 10;
    let mut pushed = 0;
    let mut prefills = Vec::new();
    for chunk in samples.chunks(piece) {
        let before = session.cache_len();
        let n = session.push_audio(chunk).unwrap();
        pushed += chunk.len();
        assert_eq!(
            session.cache_len() - before,
            n,
            "the cache grows by what was prefilled"
        );
        if n > 0 {
            prefills.push((pushed as f64 / features::SAMPLE_RATE as f64, n));
        }
    }
    prefills
}

#[test]
fn a_long_spoken_turn_is_prefilled_block_by_block_while_the_user_talks() {
    let samples = long_speech();
    let mut session = session(4);
    session.begin_audio_turn().unwrap();
    let prefills = push_live(&mut session, &samples);
    // Each whole 2 s block (50 positions at 25 per second) went into the cache as soon as its
    // audio had arrived, before the turn ended.
    assert_eq!(prefills.len(), 2, "{prefills:?}");
    for ((at, n), block_end) in prefills.iter().zip([2.0, 4.0]) {
        assert_eq!(*n, 50, "{prefills:?}");
        assert!(
            (block_end..=block_end + 0.1 + 1e-9).contains(at),
            "{prefills:?}"
        );
    }
    let before_end = session.cache_len();
    session.end_audio_turn().unwrap();
    // At the end only the last partial block (1.3 s: what the offline encoder gives 5.3 s
    // beyond the two whole blocks) and the turn's closing text remained.
    let last_block = parley_thinker::qwen::AudioEncoderConfig::output_len(530) - 100;
    let closing = session
        .tokenizer()
        .encode("<|audio_eos|><|im_end|>\n<|im_start|>assistant\n")
        .unwrap()
        .len();
    assert_eq!(session.cache_len() - before_end, last_block + closing);
    let (tokens, _) = answer(&mut session);
    assert!(!tokens.is_empty());
}

#[test]
fn a_spoken_turn_in_bf16_answers_and_gives_the_talker_its_context() {
    // The `cuda` build computes in bf16; the audio positions' zeroed embeddings must match the
    // other positions' dtype, or the Talker's context cannot be assembled.
    let mut session = tiny_a().session_in(candle_core::DType::BF16, 3);
    session.begin_audio_turn().unwrap();
    push_live(&mut session, &long_speech());
    session.end_audio_turn().unwrap();
    let (tokens, _) = answer(&mut session);
    assert!(!tokens.is_empty());
    assert!(
        tokens
            .iter()
            .all(|t| t.hidden.is_some() && t.embedding.is_some())
    );
    let (hidden, embeds) = session.talker_context().unwrap();
    assert_eq!(embeds.dims(), hidden.dims());
    assert_eq!(embeds.dtype(), candle_core::DType::BF16);
    assert!(hidden.dim(0).unwrap() > 50 + 50 + 33);
    // A second turn (text) goes on in the same cache.
    session.user_turn("Thanks").unwrap();
    let (more, _) = answer(&mut session);
    assert!(!more.is_empty());
    session.talker_context().unwrap();
}

#[test]
fn cancel_retract_and_truncate_leave_the_cache_where_they_should() {
    let mut session = session(6);
    let tokenizer = session.tokenizer().clone();

    // Cancelled before the first token: nothing generated.
    session.user_turn("Tell me a joke.").unwrap();
    let cancel = Cancel::new();
    let guard = cancel.guard();
    cancel.cancel_all();
    match session.next_event(&guard).unwrap() {
        ThinkerEvent::Done { reason, tokens } => {
            assert_eq!((reason, tokens), (StopReason::Cancelled, 0))
        }
        other => panic!("{other:?}"),
    }

    // Retract: the turn and its answer vanish, the cache is back to before the turn.
    let mut session = session_with_one_answer();
    let before = session.cache_len();
    let (context_before, _) = session.talker_context().unwrap();
    session.user_turn("Why is the ocean salty?").unwrap();
    let _ = answer(&mut session);
    session.retract_turn().unwrap();
    assert_eq!(session.cache_len(), before);
    assert_eq!(
        session.talker_context().unwrap().0.dim(0).unwrap(),
        context_before.dim(0).unwrap()
    );

    // Truncate: only the heard words of the answer stay: the generated tokens they share with
    // the heard text's tokens stay cached, the rest of the heard text is prefilled with the
    // next turn (a random tiny model's tokens need not re-tokenize the same).
    let (session, (ids, start)) = session_with_one_answer_kept();
    let mut session = session;
    let heard = tokenizer.decode(&ids[..2]).unwrap();
    let heard_ids = tokenizer.encode(&heard).unwrap();
    let shared = heard_ids
        .iter()
        .zip(&ids)
        .take_while(|(a, b)| a == b)
        .count();
    session.truncate_answer(&heard).unwrap();
    assert_eq!(session.cache_len(), start + shared);
    session.user_turn("Thanks").unwrap();
    let rest = tokenizer
        .encode("<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n")
        .unwrap();
    assert_eq!(session.cache_len(), start + heard_ids.len() + rest.len());
}

#[test]
fn a_text_turn_during_a_spoken_turn_is_refused_and_the_spoken_turn_can_be_retracted() {
    let mut session = session_with_one_answer();
    let before = session.cache_len();
    session.begin_audio_turn().unwrap();
    let opened = session.cache_len();
    assert!(opened > before);
    let err = session.user_turn("Thanks").unwrap_err();
    assert!(err.to_string().contains("end_audio_turn"), "{err}");
    assert_eq!(
        session.cache_len(),
        opened,
        "the refused turn prefilled nothing"
    );
    session.retract_turn().unwrap();
    assert_eq!(session.cache_len(), before);
    // The conversation goes on from the first answer.
    session.user_turn("Thanks").unwrap();
    assert!(session.cache_len() > before);
}

fn session_with_one_answer() -> QwenSession {
    session_with_one_answer_kept().0
}

/// A session after one answer, the answer's ids and its start in the cache.
fn session_with_one_answer_kept() -> (QwenSession, (Vec<u32>, usize)) {
    let mut session = session(6);
    session.user_turn("What is the capital of France?").unwrap();
    let start = session.cache_len();
    let (tokens, _) = answer(&mut session);
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    assert!(ids.len() >= 2, "{ids:?}");
    (session, (ids, start))
}

#[test]
fn sampled_answers_are_reproducible_per_seed_and_stay_in_the_nucleus() {
    let run = |seed: u64| {
        let (thinker, tokenizer) = parts();
        let config = SessionConfig {
            system_prompt: SYSTEM.into(),
            temperature: 1.0,
            top_p: 0.5,
            max_tokens: 6,
            seed,
        };
        let mut session = QwenSession::new(thinker, tokenizer, config);
        session.user_turn("Tell me a joke.").unwrap();
        let (tokens, _) = answer(&mut session);
        tokens.iter().map(|t| t.id).collect::<Vec<u32>>()
    };
    let first = run(7);
    assert_eq!(first, run(7), "same seed, same answer");
    assert!(!first.is_empty());

    // Every sampled token is inside its step's top-p nucleus (full re-prefill distributions).
    let (mut reference, tokenizer) = parts();
    let mut ids = tokenizer.encode(&chat(SYSTEM, "Tell me a joke.")).unwrap();
    for &token in &first {
        reference.text_model().clear_cache();
        let logits = reference.prefill(&ids, None).unwrap().logits;
        let probs: Vec<f32> =
            candle_nn::ops::softmax_last_dim(&logits.i((0, ids.len() - 1)).unwrap())
                .unwrap()
                .to_vec1()
                .unwrap();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let mut mass = 0.0;
        let mut nucleus = Vec::new();
        for i in order {
            if mass >= 0.5 {
                break;
            }
            mass += probs[i];
            nucleus.push(i as u32);
        }
        assert!(
            nucleus.contains(&token),
            "{token} outside the nucleus {nucleus:?}"
        );
        ids.push(token);
    }
}
