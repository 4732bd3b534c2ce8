//! Retracting a turn (the engine answered speculatively and the user went on speaking) leaves
//! the conversation exactly as it was before it. Real SmolLM2-135M (`parley models fetch`).

use std::path::PathBuf;

use parley_thinker::llm::{GgufThinker, SessionConfig};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::Cancel;

fn model_path() -> PathBuf {
    let dir = parley_models::default_models_dir();
    parley_models::installed_model_dir(&dir, parley_models::catalog::SMOLLM2_135M)
        .unwrap_or_else(|e| panic!("{e}"))
        .join("model.gguf")
}

fn greedy() -> SessionConfig {
    SessionConfig {
        temperature: 0.0,
        max_tokens: 24,
        ..SessionConfig::default()
    }
}

/// Token ids of the answer, to its end (or `limit` tokens, then cancelled).
fn answer(thinker: &mut GgufThinker, limit: Option<usize>) -> Vec<u32> {
    let cancel = Cancel::new();
    let guard = cancel.guard();
    let mut ids = Vec::new();
    loop {
        if limit.is_some_and(|n| ids.len() >= n) {
            cancel.cancel_all();
        }
        match thinker.next_event(&guard).unwrap() {
            ThinkerEvent::Token(t) => ids.push(t.id),
            ThinkerEvent::Done { .. } => return ids,
        }
    }
}

#[test]
fn a_retracted_turn_leaves_no_trace() {
    let mut thinker = GgufThinker::load(model_path(), greedy()).unwrap();
    thinker.user_turn("What is the capital of France?").unwrap();
    let first = answer(&mut thinker, None);
    let cache_before = thinker.cached_tokens().to_vec();
    let history_before = thinker.history().to_vec();

    // Speculative turn, partly answered, then taken back.
    thinker.user_turn("Tell me a joke about").unwrap();
    let partial = answer(&mut thinker, Some(3));
    assert_eq!(partial.len(), 3);
    thinker.retract_turn().unwrap();
    assert_eq!(thinker.cached_tokens(), cache_before.as_slice());
    assert_eq!(thinker.history(), history_before.as_slice());

    // The conversation goes on as if the retracted turn never happened.
    thinker
        .user_turn("Tell me a joke about computers.")
        .unwrap();
    let second = answer(&mut thinker, None);

    let mut fresh = GgufThinker::load(model_path(), greedy()).unwrap();
    fresh.user_turn("What is the capital of France?").unwrap();
    assert_eq!(answer(&mut fresh, None), first);
    fresh.user_turn("Tell me a joke about computers.").unwrap();
    assert_eq!(answer(&mut fresh, None), second);
    assert_eq!(thinker.cached_tokens(), fresh.cached_tokens());

    // Nothing to retract twice.
    assert!(thinker.retract_turn().is_ok());
    assert!(thinker.retract_turn().is_err());
}
