//! The playout buffer: response audio waiting to be played, and the clock that says how much of
//! each response was actually heard.
//!
//! The engine [`enqueue`](PlayoutBuffer::enqueue)s mono audio per response on an ordinary thread.
//! A feeder thread moves it into the playback ring as space frees up, noting the ring position at
//! which each response's samples went in. The ring's read position (advanced by the device
//! callback or virtual speaker as it consumes samples) then tells exactly how many samples of each
//! response were played: not how many were enqueued or written, but how many the speaker took.
//! Only the ring and its atomics cross into the real-time callback; the queue and the bookkeeping
//! live behind a mutex that the callback never touches.
//!
//! Barge-in is [`clear`](PlayoutBuffer::clear): the queue is dropped, the ring is flushed (the
//! reader drops the unplayed rest on its next call), and the played count of every response is
//! frozen at the point where playback actually stopped.
//!
//! Bounded: [`enqueue`](PlayoutBuffer::enqueue) refuses (with [`AudioError::PlayoutFull`], the
//! audio not taken) when more than `max_queued_ms` would be waiting; it never blocks.
//!
//! If the ring feeds a [`ResampleWorker`](crate::ResampleWorker) rather than the device directly,
//! "played" means "taken by the worker", which runs ahead of the speaker by at most the worker's
//! device-ring fill plus the resampler delay (about 70 ms).

use crate::constants::samples_to_ms;
use crate::error::{AudioError, Result};
use crate::pcm::upmix_from_mono;
use crate::ring::RingWriter;
use crate::stream::{Playback, StreamHandle};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long [`PlayoutBuffer::clear`] waits for the playback side to carry out the flush. A device
/// callback or virtual-speaker tick runs every few to 20 ms; if none runs within this time the
/// device is stalled, nothing is playing, and the current read position is the answer.
pub const CLEAR_ACK_TIMEOUT: Duration = Duration::from_millis(250);
/// Finished responses whose played counts are remembered (older ones are forgotten).
pub const KEPT_FINISHED_RESPONSES: usize = 64;
/// How often the feeder tops up the ring when nobody wakes it.
const FEED_INTERVAL: Duration = Duration::from_millis(5);

/// Identifies one response's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseId(pub u64);

/// How much of a response was played when the buffer was cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePlayed {
    pub id: ResponseId,
    /// Samples (per channel) the speaker played.
    pub played_samples: u64,
    /// Samples (per channel) enqueued in total.
    pub enqueued_samples: u64,
}

/// Response audio on its way to the speaker, with per-response played counts.
pub struct PlayoutBuffer {
    shared: Arc<Shared>,
    rate: u32,
    max_queued: u64,
    // Last field: dropped after everything else is no longer used, stopping the feeder.
    _feeder: StreamHandle,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// Everything behind the mutex. Positions are in frames (samples per channel) of the ring.
struct State {
    writer: RingWriter,
    channels: usize,
    queue: VecDeque<QueuedChunk>,
    /// Frames in `queue` not yet written to the ring.
    queued: u64,
    accounts: HashMap<ResponseId, Account>,
    /// Responses in the order they first appeared, to forget the oldest finished ones.
    order: VecDeque<ResponseId>,
    interleaved: Vec<f32>,
}

struct QueuedChunk {
    id: ResponseId,
    samples: Vec<f32>,
    pos: usize,
}

#[derive(Default)]
struct Account {
    /// Ring frame ranges `[start, end)` holding this response's audio, in order.
    segments: Vec<(u64, u64)>,
    enqueued: u64,
    /// Frames still in the queue.
    in_queue: u64,
    /// Set by `clear`: the final played count; the response takes no more audio.
    cut_at: Option<u64>,
}

impl Account {
    fn played(&self, read_frame: u64) -> u64 {
        if let Some(played) = self.cut_at {
            return played;
        }
        self.segments
            .iter()
            .map(|&(start, end)| read_frame.clamp(start, end) - start)
            .sum()
    }

    fn finished(&self, read_frame: u64) -> bool {
        self.cut_at.is_some() || (self.in_queue == 0 && self.played(read_frame) == self.enqueued)
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // Poisoning only means another thread panicked mid-update; the counts are still usable.
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PlayoutBuffer {
    /// A playout buffer feeding `playback` (mono audio is copied to every channel), refusing to
    /// hold more than `max_queued_ms` of audio (queued plus in the ring).
    pub fn new(playback: Playback, max_queued_ms: u64) -> Result<Self> {
        if max_queued_ms == 0 {
            return Err(AudioError::ZeroCapacity {
                what: "playout buffer",
            });
        }
        let channels = usize::from(playback.channels.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                writer: playback.writer,
                channels,
                queue: VecDeque::new(),
                queued: 0,
                accounts: HashMap::new(),
                order: VecDeque::new(),
                interleaved: Vec::new(),
            }),
            wake: Condvar::new(),
        });
        let feeder_shared = Arc::clone(&shared);
        let feeder = StreamHandle::spawn("playout-feeder", move |stop| {
            let mut state = lock(&feeder_shared);
            while !stop.load(Ordering::Acquire) {
                state.feed();
                state = feeder_shared
                    .wake
                    .wait_timeout(state, FEED_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        })?;
        Ok(Self {
            shared,
            rate: playback.rate,
            max_queued: max_queued_ms * u64::from(playback.rate) / 1000,
            _feeder: feeder,
        })
    }

    /// Sample rate of the audio this buffer takes.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Queues mono `samples` of response `id` behind everything already queued. Fails without
    /// taking anything if that would exceed the size limit ([`AudioError::PlayoutFull`]; retry
    /// once some has played) or if `id` was cut off by [`clear`](Self::clear)
    /// ([`AudioError::ResponseCleared`]).
    pub fn enqueue(&self, id: ResponseId, samples: &[f32]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut state = lock(&self.shared);
        if state.accounts.get(&id).is_some_and(|a| a.cut_at.is_some()) {
            return Err(AudioError::ResponseCleared(id.0));
        }
        let queued = state.queued_frames();
        let adding = samples.len() as u64;
        if queued + adding > self.max_queued {
            return Err(AudioError::PlayoutFull {
                queued_ms: samples_to_ms(queued, self.rate),
                adding_ms: samples_to_ms(adding, self.rate),
                max_ms: samples_to_ms(self.max_queued, self.rate),
            });
        }
        if !state.accounts.contains_key(&id) {
            state.order.push_back(id);
        }
        let account = state.accounts.entry(id).or_default();
        account.enqueued += adding;
        account.in_queue += adding;
        state.queued += adding;
        state.queue.push_back(QueuedChunk {
            id,
            samples: samples.to_vec(),
            pos: 0,
        });
        state.forget_old_responses();
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Samples (per channel) of response `id` the speaker has played so far; 0 for an unknown
    /// (or long forgotten) response.
    pub fn played_samples(&self, id: ResponseId) -> u64 {
        let state = lock(&self.shared);
        let read = state.read_frame();
        state.accounts.get(&id).map_or(0, |a| a.played(read))
    }

    /// [`played_samples`](Self::played_samples) in whole milliseconds.
    pub fn played_ms(&self, id: ResponseId) -> u64 {
        samples_to_ms(self.played_samples(id), self.rate)
    }

    /// Samples (per channel) waiting to be played: queued plus in the ring.
    pub fn queued_samples(&self) -> u64 {
        lock(&self.shared).queued_frames()
    }

    /// Barge-in: drops everything not yet played and returns, for every response not already
    /// cut, how much of it was played. Waits (at most [`CLEAR_ACK_TIMEOUT`], normally one device
    /// period) for the playback side to carry out the flush, so the counts are exact. The
    /// responses are cut: later audio for them is refused.
    pub fn clear(&self) -> Vec<ResponsePlayed> {
        let mut state = lock(&self.shared);
        state.queue.clear();
        state.queued = 0;
        let target = state.writer.request_flush();
        let deadline = Instant::now() + CLEAR_ACK_TIMEOUT;
        let stopped_at = loop {
            if let Some(start) = state.writer.flush_completed(target) {
                break start;
            }
            if state.writer.reader_gone() || Instant::now() >= deadline {
                // Nobody is reading: nothing more will play before the flush.
                break state.writer.read_position();
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let stopped_frame = stopped_at / state.channels as u64;
        let mut report = Vec::new();
        let State {
            accounts, order, ..
        } = &mut *state;
        for id in order.iter() {
            let Some(account) = accounts.get_mut(id) else {
                continue;
            };
            if account.cut_at.is_some() {
                continue;
            }
            let played = account.played(stopped_frame);
            account.cut_at = Some(played);
            account.in_queue = 0;
            report.push(ResponsePlayed {
                id: *id,
                played_samples: played,
                enqueued_samples: account.enqueued,
            });
        }
        report
    }
}

impl State {
    fn read_frame(&self) -> u64 {
        self.writer.read_position() / self.channels as u64
    }

    fn queued_frames(&self) -> u64 {
        let in_ring = self.writer.written() - self.writer.read_position();
        self.queued + in_ring / self.channels as u64
    }

    /// Moves queued audio into the ring, as much as fits, recording where each response went.
    fn feed(&mut self) {
        let mut free = (self.writer.free_slots() / self.channels) as u64;
        while free > 0 {
            let Some(chunk) = self.queue.front_mut() else {
                break;
            };
            let n = ((chunk.samples.len() - chunk.pos) as u64).min(free) as usize;
            let mono = &chunk.samples[chunk.pos..chunk.pos + n];
            let start = self.writer.written() / self.channels as u64;
            // `free` was measured just now and only this buffer writes the ring: all of it fits.
            if self.channels == 1 {
                self.writer.push(mono);
            } else {
                self.interleaved.clear();
                upmix_from_mono(mono, self.channels, &mut self.interleaved);
                self.writer.push(&self.interleaved);
            }
            let end = start + n as u64;
            let id = chunk.id;
            chunk.pos += n;
            if chunk.pos == chunk.samples.len() {
                self.queue.pop_front();
            }
            free -= n as u64;
            self.queued -= n as u64;
            if let Some(account) = self.accounts.get_mut(&id) {
                account.in_queue -= n as u64;
                match account.segments.last_mut() {
                    Some(last) if last.1 == start => last.1 = end,
                    _ => account.segments.push((start, end)),
                }
            }
        }
    }

    /// Keeps the bookkeeping bounded: forgets the oldest finished responses beyond
    /// [`KEPT_FINISHED_RESPONSES`]. Unfinished ones are never forgotten.
    fn forget_old_responses(&mut self) {
        let read = self.read_frame();
        while self.order.len() > KEPT_FINISHED_RESPONSES {
            let Some(&oldest) = self.order.front() else {
                break;
            };
            let finished = self.accounts.get(&oldest).is_none_or(|a| a.finished(read));
            if !finished {
                break;
            }
            self.order.pop_front();
            self.accounts.remove(&oldest);
        }
    }
}
