//! The CPU profile's mouth and ears agree: the Talker (hibari) speaks each committed question,
//! the audio goes 24 kHz -> 16 kHz, and Whisper must transcribe it exactly. Needs the installed
//! models (`parley models fetch`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parley_audio_io::constants::{MODEL_INPUT_RATE, MODEL_OUTPUT_RATE};
use parley_audio_io::resample::resample_buffer;
use parley_models::catalog::{HIBARI, WHISPER_TINY_EN};
use parley_talker::Talker;
use parley_talker::hibari::talker::{HibariConfig, HibariTalker, HibariTts};
use parley_thinker::seam::ThinkerToken;
use parley_thinker::stream::{CancelGuard, Step};
use parley_thinker::whisper::Transcriber;

fn model(name: &str) -> PathBuf {
    parley_models::installed_model_dir(&parley_models::default_models_dir(), name)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn questions() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/text/talker_questions.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap().to_string())
        .collect()
}

/// Speaks `text` through the streaming Talker, fed word by word as a Thinker would.
fn speak(tts: &Arc<HibariTts>, text: &str) -> Vec<f32> {
    let mut talker = HibariTalker::new(Arc::clone(tts), HibariConfig::default());
    let cancel = CancelGuard::never();
    let mut audio = Vec::new();
    for (i, word) in text.split_inclusive(' ').enumerate() {
        talker
            .push_token(&ThinkerToken {
                id: i as u32,
                text: word.to_string(),
                hidden: None,
                embedding: None,
            })
            .unwrap();
        while let Step::Ready(chunk) = talker.next_chunk(&cancel).unwrap() {
            audio.extend_from_slice(&chunk);
        }
    }
    talker.finish();
    loop {
        match talker.next_chunk(&cancel).unwrap() {
            Step::Ready(chunk) => audio.extend_from_slice(&chunk),
            Step::Pending => continue,
            Step::Done => break,
        }
    }
    audio
}

#[test]
fn whisper_hears_exactly_what_the_talker_says() {
    let tts = Arc::new(HibariTts::load(&model(HIBARI)).unwrap());
    let mut ears = Transcriber::load(&model(WHISPER_TINY_EN)).unwrap();
    let questions = questions();
    assert_eq!(questions.len(), 5);
    for question in questions {
        let speech = speak(&tts, &question);
        assert!(
            speech.len() > MODEL_OUTPUT_RATE as usize / 2,
            "{question:?}: only {} samples of speech",
            speech.len()
        );
        let heard = resample_buffer(&speech, MODEL_OUTPUT_RATE, MODEL_INPUT_RATE).unwrap();
        let transcript = ears
            .transcribe(&heard, &CancelGuard::never(), |_| {})
            .unwrap();
        assert_eq!(transcript.trim(), question, "Whisper heard something else");
    }
}
