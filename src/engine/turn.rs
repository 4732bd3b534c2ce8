//! Who has the floor: the turn-taking state machine of one session.
//!
//! Pure logic, fed by the endpointer's events and the response's progress, answering with what
//! the session must do. Four states:
//!
//! ```text
//!   Listening --speech started--> UserSpeaking --speech stopped (endpoint)--> Thinking
//!       ^                             ^                                          |
//!       |                             +--------- barge-in (long enough) ---------+ first audio
//!       |                             |                                          v
//!       +------ response over (audio played out) ---------------------------- Speaking
//! ```
//!
//! While a response is active (Thinking or Speaking), user speech is *overlap*: it becomes a
//! barge-in only once it has lasted `min_interrupt_ms` from its onset without a silent window;
//! shorter speech ("mm-hmm", a cough) is a backchannel and changes nothing. The endpointer
//! already requires `min_speech_ms` before it reports speech at all, so the interrupt rule only
//! adds the difference.

use parley_thinker::vad::EndpointEvent;

/// The session's conversational state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Nobody speaks; waiting for the user.
    Listening,
    /// The user is speaking (a turn is open).
    UserSpeaking,
    /// The user's turn ended; the answer is being prepared, no audio out yet.
    Thinking,
    /// The answer's audio is going out (or still playing at the listener).
    Speaking,
}

/// What the session must do after an input to the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnAction {
    /// Announce `input_audio_buffer.speech_started`; the user turn's audio begins here.
    SpeechStarted { audio_start_ms: u64 },
    /// Silence began inside the user's turn: transcribe what we have, speculatively.
    Speculate,
    /// The user went on speaking: the speculative transcript no longer covers the turn.
    DropSpeculation,
    /// The user's turn ended with speech ending at `audio_end_ms`: commit it and answer.
    CommitTurn { audio_end_ms: u64 },
    /// Barge-in: stop the active response now (right after announcing `SpeechStarted`).
    Interrupt,
    /// Speech during a response ended before it became a barge-in; nothing changes.
    Backchannel,
}

/// User speech heard while a response is active, not (yet) long enough to interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Overlap {
    /// Where the current stretch of speech began (ms of the input stream).
    onset_ms: u64,
    /// What `speech_started` would report (onset minus prefix padding).
    audio_start_ms: u64,
    /// In a silence after the speech (the endpointer's trailing silence).
    silent: bool,
}

/// The turn-taking state machine.
#[derive(Debug, Clone)]
pub struct TurnTaking {
    floor: Floor,
    overlap: Option<Overlap>,
    min_interrupt_ms: u64,
    /// The endpointer's `prefix_padding_ms`, to recover the speech onset from `audio_start_ms`.
    prefix_padding_ms: u64,
    /// The endpointer's `min_speech_ms`: speech is that old when it is reported.
    min_speech_ms: u64,
}

impl TurnTaking {
    pub fn new(min_interrupt_ms: u32, prefix_padding_ms: u32, min_speech_ms: u32) -> Self {
        Self {
            floor: Floor::Listening,
            overlap: None,
            min_interrupt_ms: u64::from(min_interrupt_ms),
            prefix_padding_ms: u64::from(prefix_padding_ms),
            min_speech_ms: u64::from(min_speech_ms),
        }
    }

    pub fn floor(&self) -> Floor {
        self.floor
    }

    /// Changes the thresholds (session.update); the state is kept.
    pub fn configure(&mut self, min_interrupt_ms: u32, prefix_padding_ms: u32, min_speech_ms: u32) {
        self.min_interrupt_ms = u64::from(min_interrupt_ms);
        self.prefix_padding_ms = u64::from(prefix_padding_ms);
        self.min_speech_ms = u64::from(min_speech_ms);
    }

    fn response_active(&self) -> bool {
        matches!(self.floor, Floor::Thinking | Floor::Speaking)
    }

    /// An endpointer event; `now_ms` is the end of the window that produced it.
    pub fn on_endpoint(&mut self, event: EndpointEvent, now_ms: u64) -> Vec<TurnAction> {
        let mut actions = Vec::new();
        match event {
            EndpointEvent::SpeechStarted { audio_start_ms } => {
                if self.response_active() {
                    // The speech began `min_speech_ms` before this window ended (the endpointer
                    // waited that long); prefix padding may have been clamped at 0.
                    let onset_ms = if audio_start_ms > 0 {
                        audio_start_ms + self.prefix_padding_ms
                    } else {
                        now_ms.saturating_sub(self.min_speech_ms)
                    };
                    self.overlap = Some(Overlap {
                        onset_ms,
                        audio_start_ms,
                        silent: false,
                    });
                    self.check_interrupt(now_ms, &mut actions);
                } else if self.floor == Floor::Listening {
                    self.floor = Floor::UserSpeaking;
                    actions.push(TurnAction::SpeechStarted { audio_start_ms });
                }
            }
            EndpointEvent::SilenceStarted { .. } => match self.floor {
                Floor::UserSpeaking => actions.push(TurnAction::Speculate),
                _ => {
                    if let Some(overlap) = &mut self.overlap {
                        overlap.silent = true;
                    }
                }
            },
            EndpointEvent::SpeechResumed { at_ms } => match self.floor {
                Floor::UserSpeaking => actions.push(TurnAction::DropSpeculation),
                _ => {
                    if let Some(overlap) = &mut self.overlap {
                        // A new stretch of speech: it must last on its own to interrupt.
                        overlap.onset_ms = at_ms;
                        overlap.silent = false;
                        self.check_interrupt(now_ms, &mut actions);
                    }
                }
            },
            EndpointEvent::SpeechStopped { audio_end_ms } => match self.floor {
                Floor::UserSpeaking => {
                    self.floor = Floor::Thinking;
                    actions.push(TurnAction::CommitTurn { audio_end_ms });
                }
                _ => {
                    if self.overlap.take().is_some() {
                        actions.push(TurnAction::Backchannel);
                    }
                }
            },
        }
        actions
    }

    /// A VAD window ended at `now_ms` (call after its endpointer events): overlapping speech
    /// may have become long enough to interrupt.
    pub fn on_window(&mut self, now_ms: u64) -> Vec<TurnAction> {
        let mut actions = Vec::new();
        self.check_interrupt(now_ms, &mut actions);
        actions
    }

    fn check_interrupt(&mut self, now_ms: u64, actions: &mut Vec<TurnAction>) {
        let Some(overlap) = self.overlap else {
            return;
        };
        if !overlap.silent
            && self.response_active()
            && now_ms.saturating_sub(overlap.onset_ms) >= self.min_interrupt_ms
        {
            self.overlap = None;
            self.floor = Floor::UserSpeaking;
            // Announce the speech first (what clients flush their playback on), then stop the
            // response: the two go out back to back.
            actions.push(TurnAction::SpeechStarted {
                audio_start_ms: overlap.audio_start_ms,
            });
            actions.push(TurnAction::Interrupt);
        }
    }

    /// The session decided not to answer the committed turn (empty transcript, no auto-response).
    pub fn no_response(&mut self) {
        if self.floor == Floor::Thinking {
            self.floor = Floor::Listening;
        }
    }

    /// A response was started without a user turn (`response.create`).
    pub fn response_started(&mut self) {
        if matches!(self.floor, Floor::Listening | Floor::Thinking) {
            self.floor = Floor::Thinking;
        }
    }

    /// The response's first audio went out.
    pub fn audio_started(&mut self) {
        if self.floor == Floor::Thinking {
            self.floor = Floor::Speaking;
        }
    }

    /// The response is over: all its audio has played (or it was cancelled by the client).
    /// Overlapping speech still going on becomes the user's turn.
    pub fn response_finished(&mut self) -> Vec<TurnAction> {
        let mut actions = Vec::new();
        if !self.response_active() {
            return actions;
        }
        self.floor = Floor::Listening;
        match self.overlap.take() {
            Some(overlap) if !overlap.silent => {
                self.floor = Floor::UserSpeaking;
                actions.push(TurnAction::SpeechStarted {
                    audio_start_ms: overlap.audio_start_ms,
                });
            }
            Some(_) => actions.push(TurnAction::Backchannel),
            None => {}
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_thinker::stream::StreamingModule;
    use parley_thinker::vad::{EndpointConfig, Endpointer, VadWindow};

    const WINDOW_MS: f64 = 32.0;

    /// A synthetic session: VAD probabilities per 32 ms window, run through the real endpointer
    /// and the state machine. Returns the actions with the window index they happened at.
    struct Timeline {
        endpointer: Endpointer,
        turns: TurnTaking,
        window: u64,
        log: Vec<(u64, TurnAction)>,
    }

    impl Timeline {
        fn new() -> Self {
            let config = EndpointConfig::default();
            let turns = TurnTaking::new(300, config.prefix_padding_ms, config.min_speech_ms);
            Self {
                endpointer: Endpointer::new(config).unwrap(),
                turns,
                window: 0,
                log: Vec::new(),
            }
        }

        fn now_ms(&self) -> u64 {
            (self.window as f64 * WINDOW_MS) as u64
        }

        /// `ms` of audio with speech probability `p`.
        fn feed(&mut self, p: f32, ms: u64) {
            let windows = (ms as f64 / WINDOW_MS).round() as u64;
            for _ in 0..windows {
                let w = VadWindow::sequence(self.window, &[p]);
                self.window += 1;
                let now = self.now_ms();
                let events = self
                    .endpointer
                    .step(&w)
                    .unwrap()
                    .ready()
                    .unwrap_or_default();
                for e in events {
                    for a in self.turns.on_endpoint(e, now) {
                        self.act(a);
                    }
                }
                for a in self.turns.on_window(now) {
                    self.act(a);
                }
            }
        }

        fn act(&mut self, action: TurnAction) {
            self.log.push((self.now_ms(), action));
            // The session starts the answer right after the commit.
            if let TurnAction::CommitTurn { .. } = action {
                self.turns.response_started();
            }
        }

        fn actions(&self) -> Vec<TurnAction> {
            self.log.iter().map(|&(_, a)| a).collect()
        }
    }

    #[test]
    fn a_question_then_silence_commits_one_turn() {
        let mut t = Timeline::new();
        t.feed(0.0, 500);
        t.feed(0.95, 1500);
        assert_eq!(t.turns.floor(), Floor::UserSpeaking);
        t.feed(0.0, 700);
        let actions = t.actions();
        assert!(
            matches!(actions[0], TurnAction::SpeechStarted { audio_start_ms } if (180..=220).contains(&audio_start_ms))
        );
        assert_eq!(actions[1], TurnAction::Speculate);
        let TurnAction::CommitTurn { audio_end_ms } = actions[2] else {
            panic!("expected a commit, got {actions:?}");
        };
        // Speech ended at 2000 ms; the commit names that, not the decision time.
        assert!((1990..=2030).contains(&audio_end_ms), "{audio_end_ms}");
        assert_eq!(actions.len(), 3);
        assert_eq!(t.turns.floor(), Floor::Thinking);
        // The decision came silence_duration_ms after the speech ended.
        let decided_at = t.log[2].0;
        assert!((2480..=2560).contains(&decided_at), "{decided_at}");
    }

    #[test]
    fn a_pause_inside_the_turn_drops_the_speculation() {
        let mut t = Timeline::new();
        t.feed(0.9, 800);
        t.feed(0.0, 300);
        t.feed(0.9, 600);
        t.feed(0.0, 600);
        let actions = t.actions();
        assert!(matches!(actions[0], TurnAction::SpeechStarted { .. }));
        assert_eq!(
            &actions[1..4],
            &[
                TurnAction::Speculate,
                TurnAction::DropSpeculation,
                TurnAction::Speculate,
            ]
        );
        // One turn, ending after the second stretch of speech (at 1700 ms).
        let TurnAction::CommitTurn { audio_end_ms } = actions[4] else {
            panic!("expected a commit, got {actions:?}");
        };
        assert!((1690..=1730).contains(&audio_end_ms), "{audio_end_ms}");
        assert_eq!(actions.len(), 5);
    }

    /// Question, answer starts playing, then `speech_ms` of user speech at 2 s into the answer.
    fn speech_during_answer(speech_ms: u64) -> Timeline {
        let mut t = Timeline::new();
        t.feed(0.9, 1000);
        t.feed(0.0, 600);
        assert_eq!(t.turns.floor(), Floor::Thinking);
        t.turns.audio_started();
        t.feed(0.0, 2000);
        t.log.clear();
        t.feed(0.9, speech_ms);
        t.feed(0.0, 700);
        t
    }

    #[test]
    fn long_speech_during_the_answer_interrupts_at_the_minimum() {
        let t = speech_during_answer(1000);
        assert!(matches!(t.log[0].1, TurnAction::SpeechStarted { .. }));
        let (at, second) = t.log[1];
        assert_eq!(second, TurnAction::Interrupt);
        // Speech began at ~3600 ms (windows of 32 ms); the interrupt fires once 300 ms of it
        // were heard, at the end of that window.
        let onset = 3600;
        assert!(
            (onset + 300..=onset + 300 + 64).contains(&at),
            "interrupt at {at} ms for speech from {onset} ms"
        );
        // The interrupting speech is then an ordinary user turn.
        assert!(t.actions().contains(&TurnAction::Speculate));
        assert!(matches!(
            t.actions().last(),
            Some(TurnAction::CommitTurn { .. })
        ));
    }

    #[test]
    fn a_short_backchannel_does_not_interrupt() {
        for speech_ms in [200, 250] {
            let t = speech_during_answer(speech_ms);
            let actions = t.actions();
            assert!(
                !actions.contains(&TurnAction::Interrupt),
                "{speech_ms} ms interrupted: {actions:?}"
            );
            assert!(!actions.iter().any(|a| matches!(
                a,
                TurnAction::SpeechStarted { .. } | TurnAction::CommitTurn { .. }
            )));
            assert_eq!(t.turns.floor(), Floor::Speaking);
        }
    }

    #[test]
    fn two_backchannels_with_a_gap_do_not_add_up() {
        let mut t = speech_during_answer(200);
        t.log.clear();
        t.feed(0.9, 200);
        t.feed(0.0, 150);
        t.feed(0.9, 200);
        t.feed(0.0, 700);
        assert!(
            !t.actions().contains(&TurnAction::Interrupt),
            "{:?}",
            t.actions()
        );
    }

    #[test]
    fn speech_still_going_when_the_answer_ends_becomes_the_users_turn() {
        let mut t = Timeline::new();
        t.feed(0.9, 1000);
        t.feed(0.0, 600);
        t.turns.audio_started();
        t.log.clear();
        // 250 ms: not yet an interrupt (300), but still speaking when the audio ends.
        t.feed(0.9, 250);
        for a in t.turns.response_finished() {
            t.act(a);
        }
        assert!(matches!(t.log[0].1, TurnAction::SpeechStarted { .. }));
        assert_eq!(t.turns.floor(), Floor::UserSpeaking);
        t.feed(0.9, 500);
        t.feed(0.0, 600);
        assert!(matches!(
            t.actions().last(),
            Some(TurnAction::CommitTurn { .. })
        ));
    }

    #[test]
    fn without_a_response_the_answer_events_change_nothing() {
        let mut turns = TurnTaking::new(300, 300, 200);
        turns.audio_started();
        assert_eq!(turns.floor(), Floor::Listening);
        assert!(turns.response_finished().is_empty());
        assert!(
            turns
                .on_endpoint(EndpointEvent::SpeechStopped { audio_end_ms: 10 }, 20)
                .is_empty()
        );
        assert_eq!(turns.floor(), Floor::Listening);
    }

    #[test]
    fn an_empty_turn_returns_to_listening() {
        let mut t = Timeline::new();
        t.feed(0.9, 600);
        t.feed(0.0, 600);
        assert_eq!(t.turns.floor(), Floor::Thinking);
        t.turns.no_response();
        assert_eq!(t.turns.floor(), Floor::Listening);
    }
}
