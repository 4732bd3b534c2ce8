//! The simulated loudspeaker: plays one response's audio at real time on the session clock, the
//! way a client's playout would, so the driver knows at every instant how much of the answer a
//! listener has heard.
//!
//! Pure bookkeeping on timestamps (no threads, no real clock): the driver feeds it the arrival
//! time of every audio chunk, and asks it what was played at a given time. That makes underruns
//! and barge-in truncation points testable with made-up timelines.
//!
//! Rules:
//! - Playback starts when the first sample arrives (no jitter buffer) and runs at the wire rate.
//! - An **underrun** is an audible gap: playback ran out of received audio, and more audio of the
//!   same response arrived later. Its length is the time from running dry to the next chunk's
//!   arrival; playback resumes with that chunk. Running dry at the end (no more audio comes) is
//!   not an underrun.
//! - [`stop`](PlayoutSim::stop) (barge-in) freezes the played count at the stop time; audio that
//!   arrives afterwards is dropped and counted.

use std::time::Duration;

/// Playout of one response's audio.
#[derive(Debug, Clone)]
pub struct PlayoutSim {
    rate: u32,
    /// Samples received (and kept: before any stop).
    received: u64,
    /// Session time the current stretch of uninterrupted playback started; `None` before the
    /// first sample.
    run_start: Option<Duration>,
    /// Samples already played when the current stretch started.
    played_at_run_start: u64,
    /// `response.output_audio.done` arrived: no more audio will come.
    finished: bool,
    /// Played samples at the barge-in stop.
    stopped_at: Option<u64>,
    underruns: u32,
    underrun_time: Duration,
    dropped_after_stop: u64,
}

impl PlayoutSim {
    /// An empty playout at `rate` samples per second.
    pub fn new(rate: u32) -> Self {
        PlayoutSim {
            rate,
            received: 0,
            run_start: None,
            played_at_run_start: 0,
            finished: false,
            stopped_at: None,
            underruns: 0,
            underrun_time: Duration::ZERO,
            dropped_after_stop: 0,
        }
    }

    /// `samples` more audio arrived at session time `at`. Returns false (and counts them as
    /// dropped) when playback was already stopped.
    pub fn push(&mut self, at: Duration, samples: u64) -> bool {
        if self.stopped_at.is_some() {
            self.dropped_after_stop += samples;
            return false;
        }
        match self.run_start {
            None => {
                self.run_start = Some(at);
                self.played_at_run_start = 0;
            }
            Some(_) => {
                if let Some(dry) = self.runs_dry_at()
                    && dry < at
                {
                    // Playback ran out before this chunk: a gap the listener hears.
                    self.underruns += 1;
                    self.underrun_time += at - dry;
                    self.run_start = Some(at);
                    self.played_at_run_start = self.received;
                }
            }
        }
        self.received += samples;
        true
    }

    /// `response.output_audio.done`: no more audio will come.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Barge-in at session time `at`: stop playing, drop what is queued. Returns the samples
    /// played. A second stop keeps the first stop's count.
    pub fn stop(&mut self, at: Duration) -> u64 {
        if let Some(played) = self.stopped_at {
            return played;
        }
        let played = self.played_samples(at);
        self.stopped_at = Some(played);
        played
    }

    /// Samples played by session time `at` (never more than received).
    pub fn played_samples(&self, at: Duration) -> u64 {
        if let Some(played) = self.stopped_at {
            return played;
        }
        let Some(start) = self.run_start else {
            return 0;
        };
        let elapsed = at.saturating_sub(start);
        let played = self
            .played_at_run_start
            .saturating_add(duration_to_samples(elapsed, self.rate));
        played.min(self.received)
    }

    /// When the audio received so far is used up, if playback has started and is not stopped.
    pub fn runs_dry_at(&self) -> Option<Duration> {
        if self.stopped_at.is_some() {
            return None;
        }
        let start = self.run_start?;
        Some(start + samples_to_duration(self.received - self.played_at_run_start, self.rate))
    }

    /// Whether something is (or is still about to be) playing at `at`: started, not stopped,
    /// and either more audio may come or received audio is left to play.
    pub fn is_active(&self, at: Duration) -> bool {
        self.run_start.is_some()
            && self.stopped_at.is_none()
            && (!self.finished || self.played_samples(at) < self.received)
    }

    /// Finished: all audio arrived and has been played by `at`, or playback was stopped.
    pub fn is_drained(&self, at: Duration) -> bool {
        self.stopped_at.is_some() || (self.finished && self.played_samples(at) >= self.received)
    }

    /// Session time playback began (first sample arrival).
    pub fn started_at(&self) -> Option<Duration> {
        self.run_start.map(|_| self.first_start())
    }

    fn first_start(&self) -> Duration {
        // run_start moves on each underrun; the first start is the current one minus the
        // playback and the gaps before it.
        let start = self.run_start.unwrap_or_default();
        start
            .saturating_sub(samples_to_duration(self.played_at_run_start, self.rate))
            .saturating_sub(self.underrun_time)
    }

    pub fn received_samples(&self) -> u64 {
        self.received
    }

    pub fn underruns(&self) -> u32 {
        self.underruns
    }

    pub fn underrun_time(&self) -> Duration {
        self.underrun_time
    }

    /// Samples that arrived after a stop and were thrown away.
    pub fn dropped_after_stop(&self) -> u64 {
        self.dropped_after_stop
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped_at.is_some()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Whole samples covered by `d` at `rate`, rounded down (saturating at `u64::MAX`).
pub fn duration_to_samples(d: Duration, rate: u32) -> u64 {
    let samples = d.as_nanos() * u128::from(rate) / 1_000_000_000;
    u64::try_from(samples).unwrap_or(u64::MAX)
}

/// The duration of `samples` at `rate`.
pub fn samples_to_duration(samples: u64, rate: u32) -> Duration {
    Duration::from_nanos((u128::from(samples) * 1_000_000_000 / u128::from(rate)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_audio_io::constants::{WIRE_PCM_RATE, samples_to_ms};

    const RATE: u32 = WIRE_PCM_RATE;
    const FRAME: u64 = 480; // 20 ms

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn audio_sent_ahead_of_real_time_plays_without_underrun() {
        let mut p = PlayoutSim::new(RATE);
        // 50 frames (1 s), each arriving 10 ms before it is needed after the first.
        for k in 0..50u64 {
            assert!(p.push(ms(100 + k * 10), FRAME));
        }
        p.finish();
        assert_eq!(p.underruns(), 0);
        assert_eq!(p.started_at(), Some(ms(100)));
        assert_eq!(p.played_samples(ms(600)), 12_000);
        assert!(p.is_active(ms(1099)));
        assert_eq!(p.runs_dry_at(), Some(ms(1100)));
        assert!(p.is_drained(ms(1100)));
        assert!(!p.is_active(ms(1100)));
    }

    #[test]
    fn late_chunks_count_as_underruns_with_their_gap() {
        let mut p = PlayoutSim::new(RATE);
        p.push(ms(0), FRAME); // plays 0..20
        p.push(ms(20), FRAME); // exactly on time: no gap, plays 20..40
        p.push(ms(70), FRAME); // ran dry at 40: a 30 ms gap, plays 70..90
        p.push(ms(85), FRAME); // in time, plays 90..110
        assert_eq!(p.played_samples(ms(80)), 2 * FRAME + FRAME / 2); // 40 ms + 10 ms
        p.push(ms(150), FRAME); // dry at 110: 40 ms gap
        p.finish();
        assert_eq!(p.underruns(), 2);
        assert_eq!(p.underrun_time(), ms(70));
        assert_eq!(p.runs_dry_at(), Some(ms(170)));
        assert_eq!(p.started_at(), Some(ms(0)));
        // Running dry at the very end is not an underrun.
        assert_eq!(p.underruns(), 2);
    }

    #[test]
    fn barge_in_truncates_at_what_was_played_and_drops_the_rest() {
        let mut p = PlayoutSim::new(RATE);
        // 3 s of audio arrives in the first 300 ms (server far ahead of real time).
        for k in 0..150u64 {
            p.push(ms(200 + k * 2), FRAME);
        }
        // The user starts talking at 1.4537 s: 1253.7 ms were played.
        let stop_at = Duration::from_micros(1_453_700);
        let played = p.stop(stop_at);
        assert_eq!(played, 30_088); // floor(1.2537 * 24000)
        assert_eq!(samples_to_ms(played, RATE), 1253); // audio_end_ms is whole ms, rounded down
        assert!(!p.is_active(ms(1500)));
        assert!(p.is_drained(ms(1500)));
        assert_eq!(p.played_samples(ms(5000)), played, "frozen after the stop");
        assert!(!p.push(ms(1500), FRAME));
        assert_eq!(p.dropped_after_stop(), FRAME);
        assert_eq!(p.stop(ms(2000)), played, "a second stop changes nothing");
    }

    #[test]
    fn stop_during_an_underrun_plays_only_what_was_received() {
        let mut p = PlayoutSim::new(RATE);
        p.push(ms(0), FRAME * 5); // 100 ms
        // Dry at 100 ms; the user talks at 300 ms before more audio came.
        assert!(p.is_active(ms(300)), "more audio may still come");
        assert_eq!(p.stop(ms(300)), FRAME * 5);
        assert_eq!(p.underruns(), 0, "no audio came after the gap");
    }

    #[test]
    fn nothing_played_before_the_first_sample() {
        let p = PlayoutSim::new(RATE);
        assert_eq!(p.played_samples(ms(1000)), 0);
        assert!(!p.is_active(ms(1000)));
        assert!(!p.is_drained(ms(1000)));
        assert_eq!(p.started_at(), None);
    }
}
