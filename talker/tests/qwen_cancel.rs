//! A cancelled answer stops the Qwen Talker within one model step, wherever the cancel lands:
//! during the codec steps before the first chunk or inside Token2Wav's DiT evaluations.
//!
//! The first chunk of an answer costs 36 codec steps plus a whole Token2Wav window (9 RK4
//! intervals x 4 guided DiT evaluations). The test measures that chunk uncancelled, then cancels
//! the same answer at several points of it from another thread and checks that `next_chunk`
//! returns `Done` within an eighth of the chunk's time: a Talker that checked once per chunk
//! (or once per RK4 interval) would run on to the chunk's end, one that checks before every step
//! stops after at most one codec step or one DiT evaluation (~1/36 of the window).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::Device;
use parley_talker::Talker;
use parley_talker::qwen::speakers::Speakers;
use parley_talker::qwen::streaming_talker::{QwenTalker, QwenTalkerSettings, QwenVoiceModels};
use parley_talker::qwen::talker_model::TalkerModel;
use parley_talker::qwen::token2wav::Token2Wav;
use parley_thinker::qwen::{Checkpoint, QwenSession, QwenThinker, QwenTokenizer, SessionConfig};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::{Cancel, CancelGuard, Step};

fn checkpoint_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen_omni/tiny_full/checkpoint")
}

struct Fixture {
    models: QwenVoiceModels,
    session: QwenSession,
}

fn fixture() -> Fixture {
    let dir = checkpoint_dir();
    let checkpoint = Checkpoint::open(&dir).unwrap();
    let thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
    let tokenizer = QwenTokenizer::from_checkpoint_dir(&dir, &checkpoint.config).unwrap();
    let models = QwenVoiceModels {
        thinker: Arc::new(thinker.clone()),
        talker: TalkerModel::load(&dir, &Device::Cpu).unwrap(),
        token2wav: Arc::new(Token2Wav::load(&dir, &Device::Cpu).unwrap()),
        speakers: Arc::new(Speakers::from_torch(&dir.join("spk_dict.pt")).unwrap()),
    };
    let config = SessionConfig {
        max_tokens: 4,
        ..SessionConfig::default()
    };
    Fixture {
        models,
        session: QwenSession::new(thinker, tokenizer, config),
    }
}

/// A Talker holding a whole answer's text (4 greedy Thinker tokens), ready to speak it.
fn talker_with_an_answer(fixture: &mut Fixture) -> QwenTalker {
    let settings = QwenTalkerSettings {
        min_codes: 200,
        ..QwenTalkerSettings::default()
    };
    let mut talker = QwenTalker::new(fixture.models.clone(), "Chelsie", settings).unwrap();
    let session = &mut fixture.session;
    session.reset();
    session.user_turn("What is the capital of France?").unwrap();
    talker
        .start_answer(session.answer_context().unwrap())
        .unwrap();
    while let ThinkerEvent::Token(token) = session.next_event(&CancelGuard::never()).unwrap() {
        talker.push_token(&token).unwrap();
    }
    talker.finish();
    talker
}

#[test]
fn a_cancel_anywhere_in_a_chunk_stops_the_talker_within_one_step() {
    let mut fixture = fixture();
    // Warm up, then time the first chunk uncancelled.
    let mut chunk = Duration::ZERO;
    for _ in 0..2 {
        let mut talker = talker_with_an_answer(&mut fixture);
        let start = Instant::now();
        let first = talker.next_chunk(&CancelGuard::never()).unwrap();
        assert!(matches!(first, Step::Ready(_)));
        chunk = start.elapsed();
    }
    eprintln!("first chunk uncancelled: {chunk:?}");

    // 3%: among the 36 codec steps (~10% of the chunk); 30% and 60%: inside Token2Wav.
    for fraction in [0.03, 0.3, 0.6] {
        let mut talker = talker_with_an_answer(&mut fixture);
        let cancel = Cancel::new();
        let guard = cancel.guard();
        let cancelled_at = Arc::new(Mutex::new(None));
        let canceller = std::thread::spawn({
            let cancelled_at = Arc::clone(&cancelled_at);
            let delay = chunk.mul_f64(fraction);
            move || {
                std::thread::sleep(delay);
                cancel.cancel_all();
                *cancelled_at.lock().unwrap() = Some(Instant::now());
            }
        });
        let step = talker.next_chunk(&guard).unwrap();
        let returned = Instant::now();
        canceller.join().unwrap();
        let cancelled_at = cancelled_at.lock().unwrap().unwrap();
        assert!(
            matches!(step, Step::Done),
            "cancelled at {fraction} of the chunk, it still returned audio"
        );
        let stopped_after = returned.saturating_duration_since(cancelled_at);
        eprintln!("cancel at {fraction}: stopped {stopped_after:?} later (chunk {chunk:?})");
        assert!(
            stopped_after < chunk / 8,
            "cancelled at {fraction} of a {chunk:?} chunk, stopped only {stopped_after:?} later"
        );
        // And it stays stopped.
        assert!(matches!(talker.next_chunk(&guard).unwrap(), Step::Done));
    }
}
