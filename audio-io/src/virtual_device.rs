//! A virtual microphone and speaker with the same interface as the cpal devices (they hand out a
//! [`Capture`] / [`Playback`] and run until dropped), driven by a thread instead of a sound card.
//! Tests and simulations use them to run the whole pipeline without hardware.
//!
//! At [`Pace::RealTime`] the thread ticks once per 20 ms frame against absolute deadlines
//! (`start + k * 20 ms`), so it does not drift; if it wakes late it catches up with the frames it
//! owes. At [`Pace::AsFastAsPossible`] the mic waits for ring space instead of overrunning and the
//! speaker takes whatever is there without inventing silence (there is no clock to underrun).

use crate::constants::{FRAME_MS, frame_samples, ms_to_samples};
use crate::counters::AudioCounters;
use crate::error::Result;
use crate::pcm::upmix_from_mono;
use crate::ring::{RingReader, RingWriter, audio_ring_interleaved};
use crate::stream::{Capture, Playback, StreamHandle};
use crate::wav::read_wav;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const FRAME: Duration = Duration::from_millis(FRAME_MS as u64);
/// How long a fast-paced device sleeps when its ring is full (mic) or empty (speaker).
const FAST_WAIT: Duration = Duration::from_millis(1);

/// How fast a virtual device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One 20 ms frame per 20 ms of wall-clock time, like a sound card.
    RealTime,
    /// As fast as the other side of the ring keeps up.
    AsFastAsPossible,
}

/// What a virtual mic does when its source is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterEnd {
    /// Keep delivering silence (in whole frames) until stopped, like a mic in a quiet room.
    SilenceForever,
    /// Stop delivering; the thread ends.
    Stop,
}

/// Settings of a [`VirtualMic`].
#[derive(Debug, Clone, Copy)]
pub struct VirtualMicConfig {
    pub rate: u32,
    pub channels: u16,
    pub pace: Pace,
    pub after_end: AfterEnd,
    /// Room of the capture ring.
    pub ring_ms: u64,
}

impl VirtualMicConfig {
    /// Mono at `rate`, real-time, stopping at the end, 1 s ring.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            channels: 1,
            pace: Pace::RealTime,
            after_end: AfterEnd::Stop,
            ring_ms: 1000,
        }
    }
}

/// A microphone that "hears" a prepared signal.
pub struct VirtualMic {
    handle: StreamHandle,
    source_done: Arc<AtomicBool>,
}

impl VirtualMic {
    /// Plays `source` (interleaved with `config.channels` channels at `config.rate`) into a new
    /// capture ring.
    pub fn start(source: Vec<f32>, config: VirtualMicConfig) -> Result<(Self, Capture)> {
        let channels = config.channels.max(1);
        let counters = Arc::new(AudioCounters::new());
        let capacity_frames = ms_to_samples(config.ring_ms, config.rate) as usize;
        let (writer, reader) =
            audio_ring_interleaved(capacity_frames, channels, Arc::clone(&counters));
        let source_done = Arc::new(AtomicBool::new(false));
        let mut mic = MicLoop {
            source,
            pos: 0,
            frame_len: frame_samples(config.rate).max(1) * usize::from(channels),
            writer,
            counters: Arc::clone(&counters),
            after_end: config.after_end,
            source_done: Arc::clone(&source_done),
            silence: Vec::new(),
        };
        let handle = StreamHandle::spawn("virtual-mic", move |stop| match config.pace {
            Pace::RealTime => mic.run_real_time(&stop),
            Pace::AsFastAsPossible => mic.run_fast(&stop),
        })?;
        Ok((
            Self {
                handle,
                source_done,
            },
            Capture {
                reader,
                rate: config.rate,
                channels,
                counters,
            },
        ))
    }

    /// Plays a WAV file, converted to mono at `config.rate` and copied to every channel.
    pub fn from_wav(path: impl AsRef<Path>, config: VirtualMicConfig) -> Result<(Self, Capture)> {
        let mono = read_wav(path, config.rate)?;
        let mut source = Vec::with_capacity(mono.len() * usize::from(config.channels.max(1)));
        upmix_from_mono(&mono, usize::from(config.channels.max(1)), &mut source);
        Self::start(source, config)
    }

    /// True once every source sample has been offered to the ring.
    pub fn source_done(&self) -> bool {
        self.source_done.load(Ordering::Acquire)
    }

    /// True once the thread has ended (after the source with [`AfterEnd::Stop`], or a stop).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the mic and waits for its thread.
    pub fn stop(self) {
        self.handle.stop();
    }
}

/// One frame a mic tick delivers.
#[derive(Debug, Clone, Copy)]
enum MicFrame {
    /// `source[start..start + len]`.
    Source { start: usize, len: usize },
    /// A frame of silence after the source.
    Silence,
}

/// State of the mic thread.
struct MicLoop {
    source: Vec<f32>,
    pos: usize,
    frame_len: usize,
    writer: RingWriter,
    counters: Arc<AudioCounters>,
    after_end: AfterEnd,
    source_done: Arc<AtomicBool>,
    silence: Vec<f32>,
}

impl MicLoop {
    /// The next frame to deliver: source audio, then (if configured) silence; `None` when done.
    /// The last source frame is short when the source is not a whole number of frames.
    fn next_frame(&mut self) -> Option<MicFrame> {
        let left = self.source.len() - self.pos;
        if left > 0 {
            let len = left.min(self.frame_len);
            let frame = MicFrame::Source {
                start: self.pos,
                len,
            };
            self.pos += len;
            if self.pos == self.source.len() {
                self.source_done.store(true, Ordering::Release);
            }
            return Some(frame);
        }
        self.source_done.store(true, Ordering::Release);
        match self.after_end {
            AfterEnd::Stop => None,
            AfterEnd::SilenceForever => Some(MicFrame::Silence),
        }
    }

    /// Samples `frame` puts into the ring: a short last source frame is padded to a whole frame
    /// when silence follows, so the stream stays frame-aligned in time.
    fn frame_total(&self, frame: MicFrame) -> usize {
        match frame {
            MicFrame::Source { len, .. } if self.after_end == AfterEnd::Stop => len,
            _ => self.frame_len,
        }
    }

    /// Delivers one frame the way a device callback would: count, then push (overrun counted).
    fn deliver(&mut self, frame: MicFrame) {
        self.counters.add_callback();
        let total = self.frame_total(frame);
        self.counters.add_captured(total as u64);
        let audio_len = match frame {
            MicFrame::Source { start, len } => {
                self.writer.push(&self.source[start..start + len]);
                len
            }
            MicFrame::Silence => 0,
        };
        if total > audio_len {
            self.silence.resize(total - audio_len, 0.0);
            self.writer.push(&self.silence[..total - audio_len]);
        }
    }

    fn run_real_time(&mut self, stop: &AtomicBool) {
        let start = Instant::now();
        let mut delivered: u32 = 0;
        loop {
            // Frame k is complete (and delivered) at start + (k + 1) * 20 ms.
            if !wait_until(start + FRAME * (delivered + 1), stop) {
                return;
            }
            // Catch up with every frame that is due (normally exactly one).
            let due = (start.elapsed().as_nanos() / FRAME.as_nanos()) as u32;
            while delivered < due {
                let Some(frame) = self.next_frame() else {
                    return;
                };
                self.deliver(frame);
                delivered += 1;
            }
        }
    }

    fn run_fast(&mut self, stop: &AtomicBool) {
        while let Some(frame) = self.next_frame() {
            // Wait for room instead of overrunning: nothing is lost at this pace.
            let needed = self.frame_total(frame);
            while self.writer.free_slots() < needed {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::park_timeout(FAST_WAIT);
            }
            if stop.load(Ordering::Acquire) {
                return;
            }
            self.deliver(frame);
        }
    }
}

/// Settings of a [`VirtualSpeaker`].
#[derive(Debug, Clone, Copy)]
pub struct VirtualSpeakerConfig {
    pub rate: u32,
    pub channels: u16,
    pub pace: Pace,
    /// Room of the playback ring.
    pub ring_ms: u64,
    /// The recording stops growing after this much audio (a long simulation must not grow
    /// memory without limit); playback itself goes on.
    pub max_recording_ms: u64,
}

impl VirtualSpeakerConfig {
    /// Mono at `rate`, real-time, 200 ms ring, recording up to 10 minutes.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            channels: 1,
            pace: Pace::RealTime,
            ring_ms: 200,
            max_recording_ms: 10 * 60 * 1000,
        }
    }
}

/// A speaker that records what it plays.
pub struct VirtualSpeaker {
    handle: StreamHandle,
    recording: Arc<Mutex<Vec<f32>>>,
    counters: Arc<AudioCounters>,
    rate: u32,
    channels: u16,
}

impl VirtualSpeaker {
    /// Starts a speaker draining a new playback ring.
    pub fn start(config: VirtualSpeakerConfig) -> Result<(Self, Playback)> {
        let channels = config.channels.max(1);
        let counters = Arc::new(AudioCounters::new());
        let capacity_frames = ms_to_samples(config.ring_ms, config.rate) as usize;
        let (writer, reader) =
            audio_ring_interleaved(capacity_frames, channels, Arc::clone(&counters));
        let recording = Arc::new(Mutex::new(Vec::new()));
        let frame_len = frame_samples(config.rate).max(1) * usize::from(channels);
        let mut speaker = SpeakerLoop {
            reader,
            counters: Arc::clone(&counters),
            buf: vec![0.0; frame_len],
            recording: Arc::clone(&recording),
            max_recording: ms_to_samples(config.max_recording_ms, config.rate) as usize
                * usize::from(channels),
        };
        let handle = StreamHandle::spawn("virtual-speaker", move |stop| match config.pace {
            Pace::RealTime => speaker.run_real_time(&stop),
            Pace::AsFastAsPossible => speaker.run_fast(&stop),
        })?;
        Ok((
            Self {
                handle,
                recording,
                counters: Arc::clone(&counters),
                rate: config.rate,
                channels,
            },
            Playback {
                writer,
                rate: config.rate,
                channels,
                counters,
            },
        ))
    }

    /// Everything played so far (interleaved), including the silence of underruns.
    pub fn recording(&self) -> Vec<f32> {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The playback clock: ring samples played so far (silence not included).
    pub fn samples_played(&self) -> u64 {
        self.counters.samples_played()
    }

    /// Samples of silence played because the ring was empty.
    pub fn underrun_samples(&self) -> u64 {
        self.counters.underrun_samples()
    }

    pub fn counters(&self) -> &Arc<AudioCounters> {
        &self.counters
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Stops the speaker and waits for its thread.
    pub fn stop(self) {
        self.handle.stop();
    }
}

/// State of the speaker thread.
struct SpeakerLoop {
    reader: RingReader,
    counters: Arc<AudioCounters>,
    buf: Vec<f32>,
    recording: Arc<Mutex<Vec<f32>>>,
    max_recording: usize,
}

impl SpeakerLoop {
    fn record(&self, samples: &[f32]) {
        let mut rec = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let room = self.max_recording.saturating_sub(rec.len());
        rec.extend_from_slice(&samples[..samples.len().min(room)]);
    }

    /// One tick, exactly what the cpal playback callback does, then record it.
    fn tick(&mut self) {
        self.counters.add_callback();
        self.reader.fill_or_silence(&mut self.buf);
        self.record(&self.buf);
    }

    fn run_real_time(&mut self, stop: &AtomicBool) {
        let start = Instant::now();
        let mut played: u32 = 0;
        loop {
            // Frame k is requested at start + k * 20 ms, like a device asking for its next period.
            if !wait_until(start + FRAME * played, stop) {
                return;
            }
            let due = (start.elapsed().as_nanos() / FRAME.as_nanos()) as u32 + 1;
            while played < due {
                self.tick();
                played += 1;
            }
        }
    }

    fn run_fast(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            // Carry out a flush first (also while idle, so the request is acknowledged), then
            // take only what is there: at this pace there is no clock to underrun.
            self.reader.apply_pending_flush();
            let n = self.reader.available().min(self.buf.len());
            let n = n - n % usize::from(self.reader.channels());
            if n == 0 {
                std::thread::park_timeout(FAST_WAIT);
                continue;
            }
            self.counters.add_callback();
            let played = self.reader.fill_or_silence(&mut self.buf[..n]);
            self.record(&self.buf[..played]);
        }
    }
}

/// Sleeps until `deadline` (absolute, so ticks don't drift). Returns false as soon as `stop` is
/// set; stopping unparks the thread, so it is seen without waiting out the frame.
fn wait_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::park_timeout(deadline - now);
    }
}
