//! Turn endpointing over the VAD probability stream, with OpenAI Realtime `server_vad` semantics.
//!
//! States: idle → (speech long enough) speaking → (first silent window) trailing silence →
//! either speaking again (the user went on) or idle after `silence_duration_ms` (end of turn).
//!
//! Hysteresis, as in Silero's own `VADIterator`: a window is *speech* when `p ≥ threshold` and
//! *silence* when `p < threshold − 0.15` (at least 0.01, like Silero's `get_speech_timestamps`).
//! Windows in between keep whatever state we are in: they extend a speech onset or ongoing
//! speech, and they neither end nor interrupt a trailing silence. This keeps one turn from
//! flickering on the model's soft decay after a word (0.87 → 0.13 → 0.02 across 64 ms).
//!
//! Blips: speech must last `min_speech_ms` (from its first speech window to the end of the
//! current window, without a silent window in between) before `SpeechStarted` is emitted.
//! Resuming during trailing silence needs no minimum: one speech window cancels the silence,
//! like `VADIterator`.
//!
//! All positions are 16 kHz sample counts of the VAD's input stream; events report milliseconds
//! of that stream (OpenAI's `audio_start_ms` / `audio_end_ms`).

use serde::Deserialize;

use super::error::VadError;
use super::{VadWindow, ms_to_samples, samples_to_ms};
use crate::stream::{Step, StreamingModule};

/// How far below `threshold` the probability must fall for a window to count as silence.
pub const HYSTERESIS: f32 = 0.15;
/// Lowest silence threshold, for very low `threshold`s.
const MIN_SILENCE_THRESHOLD: f32 = 0.01;

/// `server_vad` settings. Deserializes from e.g. `{"threshold": 0.6}`, missing fields taking the
/// defaults below (OpenAI's for the first three).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Speech probability at which a window counts as speech. Default 0.5.
    pub threshold: f32,
    /// Audio kept before the detected start of speech, reported in `audio_start_ms`. Default 300.
    pub prefix_padding_ms: u32,
    /// Silence after speech that ends the turn. Default 500.
    pub silence_duration_ms: u32,
    /// Shortest speech that starts a turn; shorter blips (clicks, coughs, a door) are ignored.
    /// Default 200 ms (7 windows): above a ~100 ms blip, and it delays `SpeechStarted` (and so
    /// barge-in) by only 0.2 s. Silero's offline `min_speech_duration_ms` is 250.
    pub min_speech_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            min_speech_ms: 200,
        }
    }
}

impl EndpointConfig {
    /// Probability below which a window counts as silence.
    pub fn silence_threshold(&self) -> f32 {
        (self.threshold - HYSTERESIS).max(MIN_SILENCE_THRESHOLD)
    }

    fn validate(&self) -> Result<(), VadError> {
        // Written so that NaN fails too.
        if !(self.threshold > MIN_SILENCE_THRESHOLD && self.threshold <= 1.0) {
            return Err(VadError::InvalidConfig(format!(
                "threshold must be in ({MIN_SILENCE_THRESHOLD}, 1], got {}",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// What the endpointer noticed. Times are milliseconds of the audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A turn began. `audio_start_ms` = first speech window − `prefix_padding_ms`, clamped to 0.
    SpeechStarted { audio_start_ms: u64 },
    /// The first silent window after speech: the turn may be ending (start speculative work).
    SilenceStarted { at_ms: u64 },
    /// Speech came back before `silence_duration_ms` passed: the turn goes on (discard
    /// speculative work).
    SpeechResumed { at_ms: u64 },
    /// The turn ended: `silence_duration_ms` of silence were seen. `audio_end_ms` is where speech
    /// ended (the start of that silence), not when the decision was made.
    SpeechStopped { audio_end_ms: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No turn. `onset`: first sample of speech that is not yet `min_speech_ms` long.
    Idle {
        onset: Option<u64>,
    },
    Speaking,
    /// Speaking, but silent since sample `since`.
    TrailingSilence {
        since: u64,
    },
}

/// Streaming `server_vad` endpointer: feed it labelled VAD windows, get turn events.
#[derive(Debug, Clone)]
pub struct Endpointer {
    config: EndpointConfig,
    silence_threshold: f32,
    prefix_padding: u64,
    silence_duration: u64,
    min_speech: u64,
    state: State,
    /// End of the last window seen; windows must not go back before it.
    position: u64,
}

impl Endpointer {
    pub fn new(config: EndpointConfig) -> Result<Self, VadError> {
        config.validate()?;
        Ok(Self {
            silence_threshold: config.silence_threshold(),
            prefix_padding: ms_to_samples(config.prefix_padding_ms),
            silence_duration: ms_to_samples(config.silence_duration_ms),
            min_speech: ms_to_samples(config.min_speech_ms),
            config,
            state: State::Idle { onset: None },
            position: 0,
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Whether a turn is open (speech started and not yet stopped).
    pub fn in_turn(&self) -> bool {
        !matches!(self.state, State::Idle { .. })
    }

    /// The audio stream ended: closes an open turn (`SpeechStopped` at the start of a trailing
    /// silence, else at the end of the last window) and returns to idle.
    pub fn finish(&mut self) -> Option<EndpointEvent> {
        let event = match self.state {
            State::Idle { .. } => None,
            State::Speaking => Some(EndpointEvent::SpeechStopped {
                audio_end_ms: samples_to_ms(self.position),
            }),
            State::TrailingSilence { since } => Some(EndpointEvent::SpeechStopped {
                audio_end_ms: samples_to_ms(since),
            }),
        };
        self.state = State::Idle { onset: None };
        event
    }

    /// Refuses a window that is empty, starts before `position` or has no valid probability.
    fn check(w: &VadWindow, position: u64) -> Result<(), VadError> {
        if w.end_sample <= w.start_sample {
            return Err(VadError::EmptyWindow {
                start: w.start_sample,
                end: w.end_sample,
            });
        }
        if w.start_sample < position {
            return Err(VadError::WindowOutOfOrder {
                start: w.start_sample,
                previous_end: position,
            });
        }
        if !(0.0..=1.0).contains(&w.prob) {
            return Err(VadError::InvalidProbability(w.prob));
        }
        Ok(())
    }

    fn window(&mut self, w: &VadWindow, events: &mut Vec<EndpointEvent>) {
        let speech = w.prob >= self.config.threshold;
        let silence = w.prob < self.silence_threshold;
        self.position = w.end_sample;
        match self.state {
            State::Idle { onset } => {
                let onset = if speech {
                    Some(onset.unwrap_or(w.start_sample))
                } else if silence {
                    None
                } else {
                    onset
                };
                self.state = match onset {
                    Some(start) if w.end_sample - start >= self.min_speech => {
                        events.push(EndpointEvent::SpeechStarted {
                            audio_start_ms: samples_to_ms(
                                start.saturating_sub(self.prefix_padding),
                            ),
                        });
                        State::Speaking
                    }
                    _ => State::Idle { onset },
                };
            }
            State::Speaking => {
                if silence {
                    events.push(EndpointEvent::SilenceStarted {
                        at_ms: samples_to_ms(w.start_sample),
                    });
                    self.state = State::TrailingSilence {
                        since: w.start_sample,
                    };
                    self.end_turn_if_silent_enough(w, events);
                }
            }
            State::TrailingSilence { .. } => {
                if speech {
                    events.push(EndpointEvent::SpeechResumed {
                        at_ms: samples_to_ms(w.start_sample),
                    });
                    self.state = State::Speaking;
                } else {
                    self.end_turn_if_silent_enough(w, events);
                }
            }
        }
    }

    fn end_turn_if_silent_enough(&mut self, w: &VadWindow, events: &mut Vec<EndpointEvent>) {
        if let State::TrailingSilence { since } = self.state
            && w.end_sample - since >= self.silence_duration
        {
            events.push(EndpointEvent::SpeechStopped {
                audio_end_ms: samples_to_ms(since),
            });
            self.state = State::Idle { onset: None };
        }
    }
}

impl StreamingModule for Endpointer {
    type Input = [VadWindow];
    type Output = Vec<EndpointEvent>;
    type Error = VadError;

    /// Consumes windows in stream order (gaps allowed, overlaps not). A bad window is refused
    /// with nothing of this call applied.
    fn step(&mut self, windows: &[VadWindow]) -> Result<Step<Vec<EndpointEvent>>, VadError> {
        let mut position = self.position;
        for w in windows {
            Self::check(w, position)?;
            position = w.end_sample;
        }
        let mut events = Vec::new();
        for w in windows {
            self.window(w, &mut events);
        }
        Ok(if events.is_empty() {
            Step::Pending
        } else {
            Step::Ready(events)
        })
    }

    fn reset(&mut self) {
        self.state = State::Idle { onset: None };
        self.position = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows of 512 samples from a probability timeline.
    fn timeline(probs: &[f32]) -> Vec<VadWindow> {
        VadWindow::sequence(0, probs)
    }

    /// `n` windows of probability `p`.
    fn run(p: f32, n: usize) -> Vec<f32> {
        vec![p; n]
    }

    fn events(config: EndpointConfig, probs: &[f32]) -> Vec<EndpointEvent> {
        let mut ep = Endpointer::new(config).unwrap();
        let mut out = ep
            .step(&timeline(probs))
            .unwrap()
            .ready()
            .unwrap_or_default();
        out.extend(ep.finish());
        out
    }

    fn turns(events: &[EndpointEvent]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut start = None;
        for e in events {
            match *e {
                EndpointEvent::SpeechStarted { audio_start_ms } => start = Some(audio_start_ms),
                EndpointEvent::SpeechStopped { audio_end_ms } => {
                    out.push((start.take().unwrap(), audio_end_ms))
                }
                _ => {}
            }
        }
        out
    }

    fn ms(window: u64) -> u64 {
        window * 32
    }

    #[test]
    fn short_pause_is_one_turn_with_silence_and_resume_events() {
        // 20 silent, 30 speech, 10 silent (320 ms < 500), 30 speech, 40 silent.
        let probs = [
            run(0.01, 20),
            run(0.95, 30),
            run(0.02, 10),
            run(0.95, 30),
            run(0.01, 40),
        ]
        .concat();
        let ev = events(EndpointConfig::default(), &probs);
        assert_eq!(
            ev,
            vec![
                EndpointEvent::SpeechStarted {
                    audio_start_ms: ms(20) - 300
                },
                EndpointEvent::SilenceStarted { at_ms: ms(50) },
                EndpointEvent::SpeechResumed { at_ms: ms(60) },
                EndpointEvent::SilenceStarted { at_ms: ms(90) },
                EndpointEvent::SpeechStopped {
                    audio_end_ms: ms(90)
                },
            ]
        );
    }

    #[test]
    fn long_pause_is_two_turns() {
        // 20 silent windows = 640 ms > 500 ms.
        let probs = [
            run(0.01, 20),
            run(0.95, 30),
            run(0.02, 20),
            run(0.95, 30),
            run(0.01, 40),
        ]
        .concat();
        let ev = events(EndpointConfig::default(), &probs);
        assert_eq!(
            turns(&ev),
            vec![(ms(20) - 300, ms(50)), (ms(70) - 300, ms(100))]
        );
        assert!(
            !ev.iter()
                .any(|e| matches!(e, EndpointEvent::SpeechResumed { .. }))
        );
    }

    #[test]
    fn turn_ends_exactly_after_silence_duration() {
        let probs = [run(0.9, 10), run(0.0, 30)].concat();
        let mut ep = Endpointer::new(EndpointConfig::default()).unwrap();
        let w = timeline(&probs);
        // 500 ms = 8000 samples = 15.6 windows: the 16th silent window (index 25) ends the turn.
        let before: Vec<_> = ep.step(&w[..25]).unwrap().ready().unwrap();
        assert!(
            !before
                .iter()
                .any(|e| matches!(e, EndpointEvent::SpeechStopped { .. }))
        );
        assert_eq!(
            ep.step(&w[25..26]).unwrap(),
            Step::Ready(vec![EndpointEvent::SpeechStopped {
                audio_end_ms: ms(10)
            }])
        );
    }

    #[test]
    fn blip_shorter_than_min_speech_starts_no_turn() {
        // 3 windows = 96 ms and 4 windows = 128 ms, both below the 200 ms default.
        for blip in [3, 4] {
            let probs = [run(0.0, 10), run(0.99, blip), run(0.0, 40)].concat();
            assert_eq!(events(EndpointConfig::default(), &probs), vec![], "{blip}");
        }
        // 7 windows = 224 ms is a turn.
        let probs = [run(0.0, 10), run(0.99, 7), run(0.0, 40)].concat();
        assert_eq!(turns(&events(EndpointConfig::default(), &probs)).len(), 1);
    }

    #[test]
    fn speech_start_is_reported_when_min_speech_is_reached_but_dated_at_onset() {
        let config = EndpointConfig {
            prefix_padding_ms: 0,
            ..EndpointConfig::default()
        };
        let mut ep = Endpointer::new(config).unwrap();
        let w = timeline(&[run(0.0, 10), run(0.99, 10)].concat());
        // Windows 10..=15 are 192 ms of speech: not yet.
        assert_eq!(ep.step(&w[..16]).unwrap(), Step::Pending);
        assert_eq!(
            ep.step(&w[16..17]).unwrap(),
            Step::Ready(vec![EndpointEvent::SpeechStarted {
                audio_start_ms: ms(10)
            }])
        );
    }

    #[test]
    fn prefix_padding_is_clamped_at_zero() {
        let probs = [run(0.0, 3), run(0.99, 20), run(0.0, 20)].concat();
        // Onset at 96 ms, padding 300 ms.
        let ev = events(EndpointConfig::default(), &probs);
        assert_eq!(ev[0], EndpointEvent::SpeechStarted { audio_start_ms: 0 });
        let probs = [run(0.99, 20), run(0.0, 20)].concat();
        assert_eq!(
            events(EndpointConfig::default(), &probs)[0],
            EndpointEvent::SpeechStarted { audio_start_ms: 0 }
        );
    }

    #[test]
    fn hysteresis_band_neither_starts_nor_ends_speech() {
        // 0.4 is between 0.35 and 0.5: it never starts a turn...
        assert_eq!(events(EndpointConfig::default(), &run(0.4, 100)), vec![]);
        // ...it extends an onset towards min_speech (3 speech + 4 in-band = 224 ms)...
        let probs = [run(0.0, 5), run(0.9, 3), run(0.4, 4), run(0.0, 30)].concat();
        assert_eq!(turns(&events(EndpointConfig::default(), &probs)).len(), 1);
        // ...it does not end ongoing speech (the turn ends at the 0.3 window)...
        let probs = [run(0.9, 10), run(0.4, 30), run(0.3, 20)].concat();
        assert_eq!(
            turns(&events(EndpointConfig::default(), &probs)),
            vec![(0, ms(40))]
        );
        // ...and it does not interrupt a trailing silence.
        let probs = [run(0.9, 10), run(0.1, 5), run(0.4, 15), run(0.0, 5)].concat();
        let ev = events(EndpointConfig::default(), &probs);
        assert_eq!(turns(&ev), vec![(0, ms(10))]);
        assert!(
            !ev.iter()
                .any(|e| matches!(e, EndpointEvent::SpeechResumed { .. }))
        );
    }

    #[test]
    fn silence_noise_and_nothing_yield_no_turn() {
        assert_eq!(events(EndpointConfig::default(), &[]), vec![]);
        assert_eq!(events(EndpointConfig::default(), &run(0.0, 200)), vec![]);
        let noise: Vec<f32> = (0..200).map(|i| ((i * 37) % 30) as f32 / 100.0).collect();
        assert_eq!(events(EndpointConfig::default(), &noise), vec![]);
    }

    #[test]
    fn finish_closes_an_open_turn() {
        let mut ep = Endpointer::new(EndpointConfig::default()).unwrap();
        ep.step(&timeline(&run(0.9, 20))).unwrap();
        assert!(ep.in_turn());
        assert_eq!(
            ep.finish(),
            Some(EndpointEvent::SpeechStopped {
                audio_end_ms: ms(20)
            })
        );
        assert_eq!(ep.finish(), None);
        assert!(!ep.in_turn());
    }

    #[test]
    fn chunking_does_not_change_events() {
        let probs: Vec<f32> = (0..400)
            .map(|i| if (i / 23) % 3 == 0 { 0.02 } else { 0.97 })
            .collect();
        let w = timeline(&probs);
        let mut one = Endpointer::new(EndpointConfig::default()).unwrap();
        let whole = one.step(&w).unwrap().ready().unwrap();
        let mut chunked = Endpointer::new(EndpointConfig::default()).unwrap();
        let mut pieces = Vec::new();
        let mut rest = &w[..];
        for size in [1usize, 5, 0, 17, 2].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*size).min(rest.len());
            pieces.extend(
                chunked
                    .step(&rest[..n])
                    .unwrap()
                    .ready()
                    .unwrap_or_default(),
            );
            rest = &rest[n..];
        }
        assert_eq!(whole, pieces);
        assert!(whole.len() > 10);
        // And reset replays identically.
        one.reset();
        assert_eq!(one.step(&w).unwrap().ready().unwrap(), whole);
    }

    #[test]
    fn bad_windows_are_refused_without_effect() {
        let mut ep = Endpointer::new(EndpointConfig::default()).unwrap();
        let w = timeline(&run(0.9, 20));
        ep.step(&w[..10]).unwrap();
        let err = ep.step(&w[5..6]).unwrap_err();
        assert!(matches!(
            err,
            VadError::WindowOutOfOrder {
                start: 2560,
                previous_end: 5120
            }
        ));
        let mut bad = w[10..12].to_vec();
        bad[1].prob = f32::NAN;
        assert!(matches!(
            ep.step(&bad),
            Err(VadError::InvalidProbability(_))
        ));
        // Nothing of the refused call was applied: window 10 is still accepted.
        assert!(ep.step(&w[10..]).is_ok());
        let config: Result<Endpointer, _> = Endpointer::new(EndpointConfig {
            threshold: f32::NAN,
            ..EndpointConfig::default()
        });
        assert!(matches!(config, Err(VadError::InvalidConfig(_))));
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let c: EndpointConfig =
            serde_json::from_str(r#"{"threshold": 0.6, "silence_duration_ms": 800}"#).unwrap();
        assert_eq!(
            c,
            EndpointConfig {
                threshold: 0.6,
                silence_duration_ms: 800,
                ..EndpointConfig::default()
            }
        );
        assert!((c.silence_threshold() - 0.45).abs() < 1e-6);
        assert!(serde_json::from_str::<EndpointConfig>(r#"{"treshold": 0.6}"#).is_err());
    }
}
