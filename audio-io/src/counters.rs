//! Atomic counters shared (through an `Arc`) between a real-time callback and everyone who wants
//! to know how the audio path is doing. Updating one is a single relaxed `fetch_add`, so the
//! callback may do it; reading them all is [`AudioCounters::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one audio stream (a capture or a playback path). All counts are in samples
/// (interleaved: one stereo frame is two samples), except `callbacks` and `stream_errors`.
#[derive(Debug, Default)]
pub struct AudioCounters {
    overrun_samples: AtomicU64,
    underrun_samples: AtomicU64,
    samples_played: AtomicU64,
    samples_captured: AtomicU64,
    flushed_samples: AtomicU64,
    callbacks: AtomicU64,
    stream_errors: AtomicU64,
}

/// A copy of [`AudioCounters`] at one instant (each field read separately; they are not taken
/// atomically together, which is fine for monitoring).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Samples dropped because a ring was full when they arrived.
    pub overrun_samples: u64,
    /// Samples of silence played because a ring was empty when the device wanted audio.
    pub underrun_samples: u64,
    /// Samples taken from a ring and handed to the (real or virtual) speaker. Silence played on
    /// an underrun is not included.
    pub samples_played: u64,
    /// Samples delivered by the (real or virtual) microphone, including any that then overran.
    pub samples_captured: u64,
    /// Samples thrown away unplayed by a ring flush (barge-in).
    pub flushed_samples: u64,
    /// Device (or virtual device tick) callbacks run.
    pub callbacks: u64,
    /// Errors the device stream reported.
    pub stream_errors: u64,
}

impl AudioCounters {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_overrun(&self, samples: u64) {
        self.overrun_samples.fetch_add(samples, Ordering::Relaxed);
    }

    pub fn add_underrun(&self, samples: u64) {
        self.underrun_samples.fetch_add(samples, Ordering::Relaxed);
    }

    pub fn add_played(&self, samples: u64) {
        self.samples_played.fetch_add(samples, Ordering::Relaxed);
    }

    pub fn add_captured(&self, samples: u64) {
        self.samples_captured.fetch_add(samples, Ordering::Relaxed);
    }

    pub fn add_flushed(&self, samples: u64) {
        self.flushed_samples.fetch_add(samples, Ordering::Relaxed);
    }

    pub fn add_callback(&self) {
        self.callbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_stream_error(&self) {
        self.stream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn overrun_samples(&self) -> u64 {
        self.overrun_samples.load(Ordering::Relaxed)
    }

    pub fn underrun_samples(&self) -> u64 {
        self.underrun_samples.load(Ordering::Relaxed)
    }

    pub fn samples_played(&self) -> u64 {
        self.samples_played.load(Ordering::Relaxed)
    }

    pub fn samples_captured(&self) -> u64 {
        self.samples_captured.load(Ordering::Relaxed)
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            overrun_samples: self.overrun_samples.load(Ordering::Relaxed),
            underrun_samples: self.underrun_samples.load(Ordering::Relaxed),
            samples_played: self.samples_played.load(Ordering::Relaxed),
            samples_captured: self.samples_captured.load(Ordering::Relaxed),
            flushed_samples: self.flushed_samples.load(Ordering::Relaxed),
            callbacks: self.callbacks.load(Ordering::Relaxed),
            stream_errors: self.stream_errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_every_counter() {
        let c = AudioCounters::new();
        c.add_overrun(1);
        c.add_underrun(2);
        c.add_played(3);
        c.add_captured(4);
        c.add_flushed(5);
        c.add_callback();
        c.add_callback();
        c.add_stream_error();
        assert_eq!(
            c.snapshot(),
            CountersSnapshot {
                overrun_samples: 1,
                underrun_samples: 2,
                samples_played: 3,
                samples_captured: 4,
                flushed_samples: 5,
                callbacks: 2,
                stream_errors: 1,
            }
        );
    }
}
