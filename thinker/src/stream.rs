//! The streaming vocabulary every model stage speaks.
//!
//! A streaming module is fed input a piece at a time with `step` and answers with whatever output
//! that input completes. "Not enough data yet" is a normal answer (`Step::Pending`), not an error
//! and not an empty tensor to special-case. `reset` returns the module to its initial state so one
//! loaded model can serve a new stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a streaming step produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// The input was absorbed; no output is complete yet.
    Pending,
    /// Output completed by this step.
    Ready(T),
    /// The stream has ended; no more output will come until `reset`.
    Done,
}

impl<T> Step<T> {
    pub fn ready(self) -> Option<T> {
        match self {
            Step::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// A stage that consumes input incrementally. Implementations keep all stream state explicitly in
/// `self`, so chunked processing can be tested against one-shot processing.
pub trait StreamingModule {
    type Input: ?Sized;
    type Output;
    type Error;

    fn step(&mut self, input: &Self::Input) -> Result<Step<Self::Output>, Self::Error>;
    fn reset(&mut self);
}

/// Cooperative cancellation shared between the engine and model threads.
///
/// The engine bumps the epoch to cancel everything started before; a model loop remembers the
/// epoch it started in (`Cancel::guard`) and checks `is_cancelled` before every model step. An
/// atomic load per step costs nothing next to a model step.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    epoch: Arc<AtomicU64>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels all work guarded by an earlier epoch.
    pub fn cancel_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// A guard for work starting now.
    pub fn guard(&self) -> CancelGuard {
        CancelGuard {
            epoch: Arc::clone(&self.epoch),
            started: self.epoch.load(Ordering::Acquire),
        }
    }
}

/// Held by one unit of work (a response); cancelled once the epoch moves on.
#[derive(Debug, Clone)]
pub struct CancelGuard {
    epoch: Arc<AtomicU64>,
    started: u64,
}

impl CancelGuard {
    pub fn is_cancelled(&self) -> bool {
        self.epoch.load(Ordering::Acquire) != self.started
    }

    /// A guard that is never cancelled (command-line tools, tests).
    pub fn never() -> Self {
        Cancel::new().guard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_affects_only_earlier_guards() {
        let cancel = Cancel::new();
        let first = cancel.guard();
        assert!(!first.is_cancelled());
        cancel.cancel_all();
        assert!(first.is_cancelled());
        let second = cancel.guard();
        assert!(!second.is_cancelled());
        let from_thread = std::thread::spawn({
            let c = cancel.clone();
            move || c.cancel_all()
        });
        from_thread.join().unwrap();
        assert!(second.is_cancelled());
        assert!(!CancelGuard::never().is_cancelled());
    }
}
