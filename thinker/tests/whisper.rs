//! Whisper tiny.en on the committed utterances, against the ctranslate2 reference transcripts
//! (assets/goldens/whisper_transcripts.json, tools/reference/whisper_transcripts.py).
//!
//! Needs the installed model (`parley models fetch`); fails with that instruction otherwise.

use std::path::{Path, PathBuf};

use parley_audio_io::constants::MODEL_INPUT_RATE;
use parley_audio_io::wav::read_wav;
use parley_models::catalog::WHISPER_TINY_EN;
use parley_thinker::stream::{Cancel, CancelGuard};
use parley_thinker::whisper::{SpeculativeTranscriber, Transcriber, WhisperError};
use serde::Deserialize;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn transcriber() -> Transcriber {
    let dir =
        parley_models::installed_model_dir(&parley_models::default_models_dir(), WHISPER_TINY_EN)
            .unwrap_or_else(|e| panic!("{e}"));
    Transcriber::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

fn audio(file: &str) -> Vec<f32> {
    read_wav(
        repo_root().join("assets/audio").join(file),
        MODEL_INPUT_RATE,
    )
    .unwrap()
}

#[derive(Deserialize)]
struct Goldens {
    files: Vec<Golden>,
}

#[derive(Deserialize)]
struct Golden {
    file: String,
    reference_text: String,
    exact: bool,
}

fn goldens() -> Vec<Golden> {
    let path = repo_root().join("assets/goldens/whisper_transcripts.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Goldens>(&text).unwrap().files
}

/// Lowercase, punctuation removed, whitespace collapsed.
fn normalize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Transcribes and checks that the streamed pieces add up to the returned text.
fn transcribe_streamed(t: &mut Transcriber, samples: &[f32]) -> (String, Vec<String>) {
    let mut pieces = Vec::new();
    let text = t
        .transcribe(samples, &CancelGuard::never(), |p| {
            pieces.push(p.to_string())
        })
        .unwrap();
    assert_eq!(pieces.concat(), text, "streamed pieces {pieces:?}");
    (text, pieces)
}

#[test]
fn exact_reference_utterances_are_transcribed_exactly() {
    let mut t = transcriber();
    let exact: Vec<Golden> = goldens().into_iter().filter(|g| g.exact).collect();
    assert!(exact.len() >= 7, "goldens lost their exact utterances");
    let mut failures = Vec::new();
    for golden in &exact {
        let (text, pieces) = transcribe_streamed(&mut t, &audio(&golden.file));
        if normalize(&text) != normalize(&golden.reference_text) {
            failures.push(format!(
                "{}: {text:?} != {:?}",
                golden.file, golden.reference_text
            ));
        }
        // Streaming: a multi-word transcript arrives in several pieces, not one at the end.
        assert!(pieces.len() >= 3, "{}: pieces {pieces:?}", golden.file);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn silence_noise_and_empty_input_give_no_transcript() {
    let mut t = transcriber();
    let one_second = MODEL_INPUT_RATE as usize;
    for (name, samples) in [
        ("empty", Vec::new()),
        ("zeros", vec![0.0f32; one_second]),
        ("noise_1s.wav", audio("noise_1s.wav")),
    ] {
        let (text, pieces) = transcribe_streamed(&mut t, &samples);
        assert_eq!(text, "", "{name}");
        assert!(pieces.is_empty(), "{name}: {pieces:?}");
    }
}

#[test]
fn trailing_silence_does_not_change_the_transcript() {
    // The engine commits the utterance with the endpointer's trailing silence attached.
    let mut t = transcriber();
    let mut samples = audio("q_capital_france.wav");
    let (plain, _) = transcribe_streamed(&mut t, &samples);
    samples.extend(std::iter::repeat_n(0.0, MODEL_INPUT_RATE as usize / 2));
    let (padded, _) = transcribe_streamed(&mut t, &samples);
    assert_eq!(plain, "What is the capital of France?");
    assert_eq!(padded, plain);
}

#[test]
fn audio_longer_than_the_window_is_transcribed_window_by_window() {
    let mut t = transcriber();
    let window = 30 * MODEL_INPUT_RATE as usize;
    let mut samples = audio("q_ocean_salty.wav");
    samples.resize(window, 0.0);
    samples.extend(audio("s_kitchen_lights.wav"));
    let (text, _) = transcribe_streamed(&mut t, &samples);
    assert_eq!(
        normalize(&text),
        "why is the ocean salty please turn on the kitchen lights"
    );
}

#[test]
fn cancellation_stops_decoding() {
    let mut t = transcriber();
    let samples = audio("bench_3s.wav");
    let cancel = Cancel::new();
    let guard = cancel.guard();
    cancel.cancel_all();
    assert!(matches!(
        t.transcribe(&samples, &guard, |_| {}),
        Err(WhisperError::Cancelled)
    ));

    // Cancelled mid-transcript (barge-in while decoding): stops at the next decoder step.
    let cancel = Cancel::new();
    let guard = cancel.guard();
    let mut pieces = 0;
    let result = t.transcribe(&samples, &guard, |_| {
        pieces += 1;
        cancel.cancel_all();
    });
    assert!(matches!(result, Err(WhisperError::Cancelled)), "{result:?}");
    assert_eq!(pieces, 1);

    // The transcriber is usable afterwards.
    let (text, _) = transcribe_streamed(&mut t, &samples);
    assert_eq!(text, "It is a lovely day for a long walk in the park.");
}

#[test]
fn speculation_is_used_at_the_endpoint_and_discarded_when_speech_resumes() {
    let mut s = SpeculativeTranscriber::new(transcriber());
    let never = CancelGuard::never();
    let speech = audio("q_spider_legs.wav");
    let mut committed = speech.clone();
    committed.extend(std::iter::repeat_n(0.0, MODEL_INPUT_RATE as usize / 2));

    // Silence starts -> transcribe; endpoint -> the finished text, streamed again.
    s.begin(&speech, &never).unwrap();
    assert!(s.has_speculation());
    let mut pieces = Vec::new();
    let finished = s
        .finish(&committed, &never, |p| pieces.push(p.to_string()))
        .unwrap();
    assert!(finished.from_speculation);
    assert_eq!(finished.text, "How many legs does a spider have?");
    assert_eq!(pieces.concat(), finished.text);
    assert!(!s.has_speculation());

    // The user goes on: the speculation is dropped and the whole utterance transcribed.
    s.begin(&speech[..speech.len() / 2], &never).unwrap();
    s.speech_resumed();
    let finished = s.finish(&committed, &never, |_| {}).unwrap();
    assert!(!finished.from_speculation);
    assert_eq!(finished.text, "How many legs does a spider have?");

    // A speculation over other audio is never reused.
    s.begin(&audio("q_ocean_salty.wav"), &never).unwrap();
    let finished = s.finish(&committed, &never, |_| {}).unwrap();
    assert!(!finished.from_speculation);
    assert_eq!(finished.text, "How many legs does a spider have?");

    // Cancelled while speculating: nothing is kept.
    let cancel = Cancel::new();
    let guard = cancel.guard();
    cancel.cancel_all();
    assert!(matches!(
        s.begin(&speech, &guard),
        Err(WhisperError::Cancelled)
    ));
    assert!(!s.has_speculation());
}

#[test]
fn a_missing_model_names_the_file_and_the_fix() {
    let dir = std::env::temp_dir().join("parley-no-such-whisper-model");
    let err = Transcriber::load(&dir).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("config.json"), "{message}");
    assert!(message.contains("parley models fetch"), "{message}");
}
