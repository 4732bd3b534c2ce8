//! The thread between a device's format and the models' format, so the device callback never
//! resamples:
//!
//! - capture direction: device ring (interleaved, device rate) -> downmix -> resample -> mono ring
//!   at the model rate;
//! - playback direction: mono ring at the model rate -> resample -> upmix -> device ring.
//!
//! In the playback direction the worker only pulls input when the device ring is below
//! [`PLAYBACK_DEVICE_FILL_MS`], so audio does not pile up downstream of the playout clock, and it
//! forwards flushes (barge-in): when its input ring is flushed it drops its resampler state and
//! flushes the device ring too.

use crate::constants::ms_to_samples;
use crate::counters::AudioCounters;
use crate::error::Result;
use crate::pcm::{downmix_to_mono, upmix_from_mono};
use crate::resample::StreamResampler;
use crate::ring::{RingReader, RingWriter, audio_ring};
use crate::stream::{Capture, Playback, StreamHandle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Room of the mono output ring in the capture direction. Generous: the consumer (VAD, ASR) may
/// be busy for a moment; if it falls further behind, the excess is counted as overrun.
pub const CAPTURE_OUTPUT_RING_MS: u64 = 2000;
/// Room of the mono input ring in the playback direction (what a playout buffer writes into).
/// Small, because everything in it counts as played for the playout clock.
pub const PLAYBACK_INPUT_RING_MS: u64 = 40;
/// The playback worker keeps at most this much audio in the device ring.
pub const PLAYBACK_DEVICE_FILL_MS: u64 = 60;
/// When no input has arrived for this long, the playback worker flushes the resampler's tail so
/// the end of an utterance is heard instead of waiting inside the filter.
pub const PLAYBACK_IDLE_FLUSH_MS: u64 = 40;
/// How long the worker sleeps when there is nothing to do.
const IDLE_SLEEP: Duration = Duration::from_millis(2);

/// A running resampling thread; dropping it (or [`stop`](Self::stop)) stops the thread.
pub struct ResampleWorker {
    handle: StreamHandle,
}

impl ResampleWorker {
    /// Converts a device capture (any rate, any channels) into mono audio at `target_rate`.
    /// Returns the worker and the converted [`Capture`] (with its own counters).
    pub fn capture(input: Capture, target_rate: u32) -> Result<(Self, Capture)> {
        let mut resampler = StreamResampler::new(input.rate, target_rate)?;
        let counters = Arc::new(AudioCounters::new());
        let capacity = ms_to_samples(CAPTURE_OUTPUT_RING_MS, target_rate) as usize;
        let (mut writer, reader) = audio_ring(capacity, Arc::clone(&counters));
        let channels = usize::from(input.channels.max(1));
        let mut device_reader = input.reader;
        // About 10 ms of device audio per read.
        let mut buf = vec![0.0; ms_to_samples(10, input.rate).max(1) as usize * channels];
        let mut mono = Vec::with_capacity(buf.len());
        let mut out = Vec::with_capacity(buf.len());
        let out_counters = Arc::clone(&counters);
        let handle = StreamHandle::spawn("capture-resample", move |stop| {
            while !stop.load(Ordering::Acquire) {
                let n = device_reader.pop_into(&mut buf);
                if n == 0 {
                    std::thread::park_timeout(IDLE_SLEEP);
                    continue;
                }
                mono.clear();
                downmix_to_mono(&buf[..n], channels, &mut mono);
                out.clear();
                if let Err(e) = resampler.process(&mono, &mut out) {
                    tracing::error!("capture resampler stopped: {e}");
                    return;
                }
                out_counters.add_captured(out.len() as u64);
                writer.push(&out);
            }
        })?;
        Ok((
            Self { handle },
            Capture {
                reader,
                rate: target_rate,
                channels: 1,
                counters,
            },
        ))
    }

    /// Feeds a device playback (any rate, any channels) from mono audio at `source_rate`.
    /// Returns the worker and the mono [`Playback`] to write into (with its own counters, whose
    /// `samples_played` counts what the worker took).
    pub fn playback(output: Playback, source_rate: u32) -> Result<(Self, Playback)> {
        let resampler = StreamResampler::new(source_rate, output.rate)?;
        let counters = Arc::new(AudioCounters::new());
        let capacity = ms_to_samples(PLAYBACK_INPUT_RING_MS, source_rate) as usize;
        let (writer, reader) = audio_ring(capacity, Arc::clone(&counters));
        let mut state = PlaybackLoop {
            channels: usize::from(output.channels.max(1)),
            max_fill: ms_to_samples(PLAYBACK_DEVICE_FILL_MS, output.rate) as usize
                * usize::from(output.channels.max(1)),
            input: reader,
            output: output.writer,
            input_buf: vec![0.0; resampler.input_chunk()],
            resampler,
            pending: Vec::new(),
            pending_pos: 0,
            interleaved: Vec::new(),
            flushes_seen: 0,
            last_input: Instant::now(),
        };
        let handle = StreamHandle::spawn("playback-resample", move |stop| state.run(&stop))?;
        Ok((
            Self { handle },
            Playback {
                writer,
                rate: source_rate,
                channels: 1,
                counters,
            },
        ))
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.handle.stop();
    }

    /// True if the thread has ended (only after a stop or an internal error, which is logged).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// State of the playback-direction thread.
struct PlaybackLoop {
    channels: usize,
    /// Most samples the worker lets sit in the device ring.
    max_fill: usize,
    input: RingReader,
    output: RingWriter,
    input_buf: Vec<f32>,
    resampler: StreamResampler,
    /// Resampled mono audio not yet in the device ring, from `pending_pos` on.
    pending: Vec<f32>,
    pending_pos: usize,
    interleaved: Vec<f32>,
    flushes_seen: u64,
    last_input: Instant,
}

impl PlaybackLoop {
    fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            self.input.apply_pending_flush();
            self.forward_flush();
            let moved = self.push_pending();
            let pulled = if self.pending_pos >= self.pending.len() {
                match self.pull_input() {
                    Ok(pulled) => pulled,
                    Err(e) => {
                        tracing::error!("playback resampler stopped: {e}");
                        return;
                    }
                }
            } else {
                false
            };
            if !moved && !pulled {
                std::thread::park_timeout(IDLE_SLEEP);
            }
        }
    }

    /// After the input ring was flushed, nothing converted from before the flush may play.
    fn forward_flush(&mut self) {
        let flushes = self.input.flushes_applied();
        if flushes != self.flushes_seen {
            self.flushes_seen = flushes;
            self.resampler.reset();
            self.pending.clear();
            self.pending_pos = 0;
            self.output.request_flush();
        }
    }

    /// Moves converted audio into the device ring while it is below `max_fill`.
    fn push_pending(&mut self) -> bool {
        let left = self.pending.len() - self.pending_pos;
        if left == 0 {
            return false;
        }
        let fill = (self.output.written() - self.output.read_position()) as usize;
        let room = self
            .max_fill
            .saturating_sub(fill)
            .min(self.output.free_slots());
        let frames = (room / self.channels).min(left);
        if frames == 0 {
            return false;
        }
        let mono = &self.pending[self.pending_pos..self.pending_pos + frames];
        let pushed = if self.channels == 1 {
            self.output.push(mono)
        } else {
            self.interleaved.clear();
            upmix_from_mono(mono, self.channels, &mut self.interleaved);
            self.output.push(&self.interleaved)
        };
        // `room` was measured just now and only this thread writes, so everything fits.
        self.pending_pos += pushed / self.channels;
        if self.pending_pos >= self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        true
    }

    /// Takes one chunk of input and converts it; at the end of a stretch of input, flushes the
    /// resampler's tail. Returns whether anything happened.
    fn pull_input(&mut self) -> Result<bool> {
        let n = self.input.pop_into(&mut self.input_buf);
        self.forward_flush();
        if n > 0 {
            self.last_input = Instant::now();
            self.resampler
                .process(&self.input_buf[..n], &mut self.pending)?;
            return Ok(true);
        }
        if self.resampler.has_unflushed_input()
            && self.last_input.elapsed() >= Duration::from_millis(PLAYBACK_IDLE_FLUSH_MS)
        {
            self.resampler.flush(&mut self.pending)?;
            return Ok(true);
        }
        Ok(false)
    }
}
