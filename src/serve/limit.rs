//! `--max-sessions`: a fixed number of session slots, and the clear refusal the next
//! connection gets.
//!
//! A refused connection is upgraded, gets one `error` event (code `session_limit_reached`, the
//! message names the limit) and is closed with 1013 (try again later). An HTTP 503 at the
//! upgrade would be cheaper, but OpenAI-style clients do not show its body: the Python SDK
//! (`websockets`) raises "server rejected WebSocket connection: HTTP 503", browsers report
//! only a 1006 close. An `error` event reaches the application through the same path as every
//! other API error (`event.type == "error"`, `event.error.code/.message`), and 1013 tells a
//! retrying client that waiting helps. Running sessions are not touched either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parley_protocol::close;
use parley_protocol::error::SERVER_ERROR;
use parley_protocol::events::{ErrorDetails, ErrorEvent};
use parley_protocol::{IdGenerator, ServerEvent, ServerSession};

/// `error.code` of the refusal.
pub const SESSION_LIMIT_REACHED: &str = "session_limit_reached";

/// Counts running sessions against the limit. Taking a slot is one atomic step, so two
/// connections arriving together cannot both get the last one.
#[derive(Debug)]
pub struct SessionSlots {
    active: AtomicUsize,
    max: usize,
}

impl SessionSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(SessionSlots {
            active: AtomicUsize::new(0),
            max,
        })
    }

    /// A slot, held until the guard is dropped; `None` when all are taken.
    pub fn try_acquire(self: &Arc<Self>) -> Option<SessionSlot> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot {
                slots: self.clone(),
            })
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// One taken slot; freed on drop, however the session ends.
#[derive(Debug)]
pub struct SessionSlot {
    slots: Arc<SessionSlots>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.slots.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The refusal's message.
pub fn limit_message(max: usize) -> String {
    format!(
        "parley is already serving its maximum of {max} concurrent session{} (--max-sessions \
         {max}); try again when one ends",
        if max == 1 { "" } else { "s" }
    )
}

/// Sends the `error` event and closes with 1013. The client may already be gone; then there is
/// nobody to tell.
pub async fn refuse(session: ServerSession, max: usize) {
    let ids = IdGenerator::new();
    let event = ServerEvent::Error(ErrorEvent {
        event_id: ids.next("evt"),
        error: ErrorDetails {
            error_type: SERVER_ERROR.to_owned(),
            code: Some(SESSION_LIMIT_REACHED.to_owned()),
            message: limit_message(max),
            param: None,
            event_id: None,
        },
    });
    if session.send(event).await.is_ok() {
        let _ = session
            .close(
                close::TRY_AGAIN_LATER,
                format!("session limit ({max}) reached"),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_freed_on_drop() {
        let slots = SessionSlots::new(2);
        let a = slots.try_acquire().unwrap();
        let b = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.active(), 2);
        drop(a);
        assert_eq!(slots.active(), 1);
        let c = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        drop((b, c));
        assert_eq!(slots.active(), 0);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let slots = SessionSlots::new(3);
        let taken = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        if let Some(slot) = slots.try_acquire() {
                            assert!(slots.active() <= 3);
                            drop(slot);
                        }
                    }
                    if let Some(slot) = slots.try_acquire() {
                        taken.lock().unwrap().push(slot);
                    }
                });
            }
        });
        // Final takers could lose to another thread's passing slot, so fewer than 3 may hold
        // one; never more, and the count matches what is held.
        let held = taken.lock().unwrap().len();
        assert!((1..=3).contains(&held), "{held} slots held");
        assert_eq!(slots.active(), held);
    }

    #[test]
    fn the_message_names_the_limit() {
        assert!(limit_message(4).contains("maximum of 4 concurrent sessions"));
        assert!(limit_message(1).contains("1 concurrent session ("));
    }
}
