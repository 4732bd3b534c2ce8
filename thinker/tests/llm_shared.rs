//! Many sessions over one loaded model (`SharedGguf`): each keeps its own conversation.
//!
//! Needs SmolLM2-135M-Instruct installed (`parley models fetch`); fails with that instruction
//! otherwise.

use std::sync::Arc;

use parley_thinker::llm::{GgufThinker, SessionConfig, SharedGguf};
use parley_thinker::seam::{Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

fn shared() -> Arc<SharedGguf> {
    let dir = parley_models::default_models_dir();
    let path = parley_models::installed_model_dir(&dir, parley_models::catalog::SMOLLM2_135M)
        .unwrap_or_else(|e| panic!("{e}"))
        .join("model.gguf");
    SharedGguf::load(path).expect("load SmolLM2")
}

/// Token ids of one whole answer.
fn whole_answer(thinker: &mut GgufThinker) -> Vec<u32> {
    let never = CancelGuard::never();
    let mut ids = Vec::new();
    while let ThinkerEvent::Token(t) = thinker.next_event(&never).unwrap() {
        ids.push(t.id);
    }
    ids
}

/// Both sessions' answers, generated alternately token by token until both are done.
fn interleaved(a: &mut GgufThinker, b: &mut GgufThinker) -> (Vec<u32>, Vec<u32>) {
    let never = CancelGuard::never();
    let (mut ids_a, mut ids_b) = (Vec::new(), Vec::new());
    let (mut done_a, mut done_b) = (false, false);
    while !(done_a && done_b) {
        for (thinker, ids, done) in [
            (&mut *a, &mut ids_a, &mut done_a),
            (&mut *b, &mut ids_b, &mut done_b),
        ] {
            if *done {
                continue;
            }
            match thinker.next_event(&never).unwrap() {
                ThinkerEvent::Token(t) => ids.push(t.id),
                ThinkerEvent::Done { .. } => *done = true,
            }
        }
    }
    (ids_a, ids_b)
}

const FRANCE: &str = "What is the capital of France?";
const MOON: &str = "Tell me about the moon.";

fn greedy(max_tokens: usize) -> SessionConfig {
    SessionConfig {
        temperature: 0.0,
        max_tokens,
        ..SessionConfig::default()
    }
}

#[test]
fn thinker_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<GgufThinker>();
    assert_send_sync::<SharedGguf>();
}

#[test]
fn sessions_sharing_weights_keep_separate_conversations() {
    let model = shared();
    // Each conversation alone, one after the other, on fresh sessions.
    let alone = |config: SessionConfig, turns: &[&str]| -> Vec<Vec<u32>> {
        let mut thinker = GgufThinker::new(Arc::clone(&model), config).unwrap();
        turns
            .iter()
            .map(|turn| {
                thinker.user_turn(turn).unwrap();
                whole_answer(&mut thinker)
            })
            .collect()
    };
    let sampled = SessionConfig {
        temperature: 0.8,
        max_tokens: 24,
        seed: 7,
        ..SessionConfig::default()
    };
    let alone_a = alone(greedy(32), &[FRANCE, "And of Germany?"]);
    let alone_b = alone(sampled.clone(), &[MOON, "How far away is it?"]);
    assert_ne!(alone_a[0], alone_b[0]);

    // The same two conversations at once, token by token in turn, on one copy of the weights.
    let mut a = GgufThinker::new(Arc::clone(&model), greedy(32)).unwrap();
    let mut b = GgufThinker::new(Arc::clone(&model), sampled).unwrap();
    assert!(Arc::ptr_eq(a.shared(), b.shared()));
    assert!(Arc::ptr_eq(a.shared().weights(), model.weights()));
    a.user_turn(FRANCE).unwrap();
    b.user_turn(MOON).unwrap();
    let first = interleaved(&mut a, &mut b);
    // Different history lengths: b's cache is not a's.
    assert_ne!(a.cached_tokens(), b.cached_tokens());
    a.user_turn("And of Germany?").unwrap();
    b.user_turn("How far away is it?").unwrap();
    let second = interleaved(&mut a, &mut b);
    assert_eq!(vec![first.0, second.0], alone_a);
    assert_eq!(vec![first.1, second.1], alone_b);

    // Resetting one session leaves the other's conversation intact.
    let history_b = b.history().to_vec();
    a.reset();
    assert_eq!(b.history(), &history_b[..]);
    assert_eq!(a.history().len(), 1);
}

#[test]
fn sessions_on_separate_threads_answer_as_they_would_alone() {
    let model = shared();
    let run = |model: Arc<SharedGguf>, turn: &'static str| {
        let mut thinker = GgufThinker::new(model, greedy(24)).unwrap();
        thinker.user_turn(turn).unwrap();
        whole_answer(&mut thinker)
    };
    let alone_a = run(Arc::clone(&model), FRANCE);
    let alone_b = run(Arc::clone(&model), MOON);
    let (ma, mb) = (Arc::clone(&model), Arc::clone(&model));
    let ta = std::thread::spawn(move || run(ma, FRANCE));
    let tb = std::thread::spawn(move || run(mb, MOON));
    assert_eq!(ta.join().unwrap(), alone_a);
    assert_eq!(tb.join().unwrap(), alone_b);
}
