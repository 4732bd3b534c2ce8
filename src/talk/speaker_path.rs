//! The speaker path of `parley talk`: answer audio from the playout buffer to the speaker, and a
//! copy of exactly what left for the speaker to the echo canceller (the far end).
//!
//! ```text
//! PlayoutBuffer --(tap ring, 24 kHz mono)--> tap thread --> ResampleWorker --> device ring
//!                                               \--(far-end ring, 24 kHz mono)--> mic path (AEC)
//! ```
//!
//! The tap thread moves audio only as fast as the playback side takes it (it waits for room in
//! the resample worker's small input ring, which the worker drains as the device plays), so the
//! far end reaches the echo canceller at playback pace, a little ahead of its echo, as AEC3 needs
//! (see `parley_audio_io::echo`). Tapping in the playout buffer instead would hand the canceller
//! audio queued seconds before it is played.
//!
//! The playout clock counts what the tap took, so it runs ahead of the speaker by what sits
//! downstream: at most the worker's input ring, its device fill and the resampler delay (about
//! 100 ms plus the device's own buffer). Barge-in flushes are forwarded downstream like the
//! resample worker forwards them to the device.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parley_audio_io::constants::{WIRE_PCM_RATE, ms_to_samples};
use parley_audio_io::resample_worker::PLAYBACK_INPUT_RING_MS;
use parley_audio_io::{
    AudioCounters, Playback, ResampleWorker, RingWriter, StreamHandle, audio_ring,
};

use super::error::TalkError;

/// Room of the ring between the playout buffer and the tap: everything in it counts as played,
/// so it is small.
const TAP_RING_MS: u64 = 20;
/// How long the tap sleeps when there is nothing to move.
const IDLE_SLEEP: Duration = Duration::from_millis(2);

/// A running speaker path; dropping it stops the tap thread and the resample worker.
pub struct SpeakerPath {
    // The tap first: it writes into the worker's ring.
    _tap: StreamHandle,
    _worker: ResampleWorker,
}

impl SpeakerPath {
    /// Starts playing into `device` (any rate and channel count). Returns the path and the mono
    /// 24 kHz [`Playback`] to hand to a `PlayoutBuffer`. Every sample that leaves for the device is
    /// also pushed to `far_end` (a full far-end ring counts an overrun; playback goes on).
    pub fn start(device: Playback, mut far_end: RingWriter) -> Result<(Self, Playback), TalkError> {
        let (worker, mut worker_in) = ResampleWorker::playback(device, WIRE_PCM_RATE)?;
        let counters = Arc::new(AudioCounters::new());
        let (tap_writer, mut tap_reader) = audio_ring(
            ms_to_samples(TAP_RING_MS, WIRE_PCM_RATE) as usize,
            Arc::clone(&counters),
        );
        let mut buf = vec![0.0f32; ms_to_samples(PLAYBACK_INPUT_RING_MS, WIRE_PCM_RATE) as usize];
        let tap = StreamHandle::spawn("talk-speaker-tap", move |stop| {
            let mut flushes_seen = 0;
            while !stop.load(Ordering::Acquire) {
                // Carry out a barge-in flush even while the worker has no room (the playout
                // buffer waits for it).
                tap_reader.apply_pending_flush();
                let room = worker_in.writer.free_slots().min(buf.len());
                let n = if room > 0 {
                    tap_reader.pop_into(&mut buf[..room])
                } else {
                    0
                };
                if tap_reader.flushes_applied() != flushes_seen {
                    // Barge-in: what the worker has not played yet must not play either (the
                    // samples just popped were written after the flush: they may).
                    flushes_seen = tap_reader.flushes_applied();
                    worker_in.writer.request_flush();
                }
                if n == 0 {
                    std::thread::park_timeout(IDLE_SLEEP);
                    continue;
                }
                // `room` was measured just now and only this thread writes: all of it fits.
                worker_in.writer.push(&buf[..n]);
                far_end.push(&buf[..n]);
            }
        })?;
        Ok((
            Self {
                _tap: tap,
                _worker: worker,
            },
            Playback {
                writer: tap_writer,
                rate: WIRE_PCM_RATE,
                channels: 1,
                counters,
            },
        ))
    }
}
