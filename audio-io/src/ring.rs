//! The single-producer single-consumer audio ring between a real-time callback and an ordinary
//! thread, built on `rtrb`'s slice/chunk API: `push` and `pop` copy memory and update atomics,
//! nothing else (no allocation, no locks), so either side may live in a device callback.
//!
//! Nothing is lost silently: samples that do not fit are counted as overrun, silence played
//! because the ring ran dry is counted as underrun (both in the shared [`AudioCounters`]).
//!
//! The ring carries interleaved audio in whole frames: with `channels > 1` every push and pop
//! moves a multiple of `channels` samples, so an overrun can never shift the channels.
//!
//! Both ends also keep absolute stream positions (samples ever written / ever removed). The
//! playout buffer uses them as its clock, and the writer can ask the reader to *flush* (barge-in):
//! the reader drops everything written before the request the next time it runs, which is how a
//! non-real-time thread empties a ring whose reader lives in a device callback.

use crate::counters::AudioCounters;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Absolute positions shared by both ends. Each is written by one side only.
#[derive(Debug, Default)]
struct RingPositions {
    /// Samples ever committed by the writer.
    written: AtomicU64,
    /// Samples ever removed by the reader (played, popped or flushed).
    read: AtomicU64,
    /// Writer's request: discard everything before this position.
    flush_to: AtomicU64,
    /// Reader: the read position at which the latest flush started discarding.
    flushed_from: AtomicU64,
    /// Reader: the latest flush has discarded everything before this position.
    flushed_to: AtomicU64,
}

/// Creates a mono ring holding up to `capacity` samples (at least 1).
pub fn audio_ring(capacity: usize, counters: Arc<AudioCounters>) -> (RingWriter, RingReader) {
    audio_ring_interleaved(capacity, 1, counters)
}

/// Creates a ring for interleaved audio holding up to `capacity_frames` frames of `channels`
/// samples each (both at least 1).
pub fn audio_ring_interleaved(
    capacity_frames: usize,
    channels: u16,
    counters: Arc<AudioCounters>,
) -> (RingWriter, RingReader) {
    let channels = usize::from(channels.max(1));
    let capacity = capacity_frames.max(1) * channels;
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    let positions = Arc::new(RingPositions::default());
    (
        RingWriter {
            producer,
            positions: Arc::clone(&positions),
            counters: Arc::clone(&counters),
            channels,
        },
        RingReader {
            consumer,
            positions,
            counters,
            channels,
            read_pos: 0,
            flushes_applied: 0,
        },
    )
}

/// Rounds a sample count down to whole frames.
#[inline]
fn whole_frames(samples: usize, channels: usize) -> usize {
    samples - samples % channels
}

/// The producing end of an audio ring.
pub struct RingWriter {
    producer: rtrb::Producer<f32>,
    positions: Arc<RingPositions>,
    counters: Arc<AudioCounters>,
    channels: usize,
}

impl RingWriter {
    /// Writes as many whole frames of `samples` as fit and counts the rest as overrun.
    /// Returns the number of samples written.
    pub fn push(&mut self, samples: &[f32]) -> usize {
        let n = whole_frames(samples.len().min(self.producer.slots()), self.channels);
        // `n` never exceeds the free slots just queried, and only this writer fills them.
        if self.producer.push_entire_slice(&samples[..n]).is_err() {
            self.counters.add_overrun(samples.len() as u64);
            return 0;
        }
        self.commit_counts(n, samples.len());
        n
    }

    /// Like [`push`](Self::push) but converts each sample with `convert` on the way in (used by
    /// device callbacks whose native format is not `f32`).
    pub fn push_map<T: Copy>(&mut self, samples: &[T], mut convert: impl FnMut(T) -> f32) -> usize {
        let n = whole_frames(samples.len().min(self.producer.slots()), self.channels);
        let written = match self.producer.write_chunk_uninit(n) {
            Ok(chunk) => chunk.fill_from_iter(samples[..n].iter().map(|&s| convert(s))),
            Err(_) => 0,
        };
        self.commit_counts(written, samples.len());
        written
    }

    fn commit_counts(&mut self, written: usize, offered: usize) {
        self.positions
            .written
            .fetch_add(written as u64, Ordering::Release);
        if offered > written {
            self.counters.add_overrun((offered - written) as u64);
        }
    }

    /// Free room right now, in samples (whole frames).
    pub fn free_slots(&self) -> usize {
        whole_frames(self.producer.slots(), self.channels)
    }

    /// Total room of the ring in samples.
    pub fn capacity(&self) -> usize {
        self.producer.buffer().capacity()
    }

    /// Interleaved channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// Samples ever written into the ring (the write position).
    pub fn written(&self) -> u64 {
        self.positions.written.load(Ordering::Acquire)
    }

    /// Samples the reader has ever removed, played or flushed (the read position).
    pub fn read_position(&self) -> u64 {
        self.positions.read.load(Ordering::Acquire)
    }

    /// Asks the reader to drop everything written so far, unplayed. The reader does it on its
    /// next call (a real-time reader never waits for this side). Returns the write position the
    /// flush reaches; pass it to [`flush_completed`](Self::flush_completed).
    pub fn request_flush(&mut self) -> u64 {
        let target = self.written();
        self.positions.flush_to.store(target, Ordering::Release);
        target
    }

    /// Whether the flush up to `target` is done, and where it started: `Some(start)` means the
    /// samples in `[start, target)` were dropped unplayed and everything before `start` was
    /// removed normally. If the reader played all the way to `target` before it noticed the
    /// request, nothing was dropped and the answer is `Some(target)`. `None`: not yet.
    pub fn flush_completed(&self, target: u64) -> Option<u64> {
        // Read position first: the reader publishes a flush before moving the read position, so
        // if the position we load has reached `target` through that flush, the flush is visible.
        let read = self.positions.read.load(Ordering::Acquire);
        if self.positions.flushed_to.load(Ordering::Acquire) >= target {
            Some(self.positions.flushed_from.load(Ordering::Relaxed))
        } else if read >= target {
            Some(target)
        } else {
            None
        }
    }

    /// True once the reader has been dropped (e.g. its device stopped): nothing will be read.
    pub fn reader_gone(&self) -> bool {
        self.producer.is_abandoned()
    }

    pub fn counters(&self) -> &Arc<AudioCounters> {
        &self.counters
    }
}

/// The consuming end of an audio ring.
pub struct RingReader {
    consumer: rtrb::Consumer<f32>,
    positions: Arc<RingPositions>,
    counters: Arc<AudioCounters>,
    channels: usize,
    /// Mirror of `positions.read`; only this side writes it.
    read_pos: u64,
    flushes_applied: u64,
}

impl RingReader {
    /// Copies up to `out.len()` samples (whole frames) out of the ring; returns how many.
    /// Does not touch the played/underrun counters: use this on a worker thread.
    pub fn pop_into(&mut self, out: &mut [f32]) -> usize {
        self.apply_pending_flush();
        let n = self.take(out, |s| s);
        self.advance(n);
        n
    }

    /// Fills `out` for a speaker: ring samples first, silence for whatever is missing.
    /// Counts played samples and underrun (the silence). Returns the ring samples used.
    pub fn fill_or_silence(&mut self, out: &mut [f32]) -> usize {
        self.fill_or_silence_map(out, |s| s)
    }

    /// Like [`fill_or_silence`](Self::fill_or_silence) for any sample type: `convert` maps each
    /// `f32` (and `0.0` for silence) to the device format.
    pub fn fill_or_silence_map<T: Copy>(
        &mut self,
        out: &mut [T],
        mut convert: impl FnMut(f32) -> T,
    ) -> usize {
        self.apply_pending_flush();
        let n = self.take(out, &mut convert);
        let silence = convert(0.0);
        out[n..].fill(silence);
        self.advance(n);
        self.counters.add_played(n as u64);
        if out.len() > n {
            self.counters.add_underrun((out.len() - n) as u64);
        }
        n
    }

    /// Copies min(available, out.len()) whole frames, converted, and releases them.
    fn take<T>(&mut self, out: &mut [T], mut convert: impl FnMut(f32) -> T) -> usize {
        let n = whole_frames(out.len().min(self.consumer.slots()), self.channels);
        let Ok(chunk) = self.consumer.read_chunk(n) else {
            // Cannot happen: `n` is at most the slots just queried and only this side frees them.
            return 0;
        };
        let (first, second) = chunk.as_slices();
        for (dst, &src) in out.iter_mut().zip(first.iter().chain(second)) {
            *dst = convert(src);
        }
        chunk.commit_all();
        n
    }

    fn advance(&mut self, removed: usize) {
        if removed > 0 {
            self.read_pos += removed as u64;
            self.positions.read.store(self.read_pos, Ordering::Release);
        }
    }

    /// Carries out a flush the writer requested, if any (one atomic load when there is none);
    /// returns whether it did. `pop_into`, `fill_or_silence` and `clear` call it themselves; a
    /// worker forwarding audio calls it to notice a flush without reading.
    pub fn apply_pending_flush(&mut self) -> bool {
        let target = self.positions.flush_to.load(Ordering::Acquire);
        if target <= self.read_pos {
            return false;
        }
        let from = self.read_pos;
        // Everything before `target` was committed before the request, so it is all readable.
        let wanted = (target - from) as usize;
        let n = wanted.min(self.consumer.slots());
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            chunk.commit_all();
        }
        self.counters.add_flushed(n as u64);
        self.flushes_applied += 1;
        // Publish the flush before the new read position: a writer that sees the read position
        // pass its target then also sees this flush (see `flush_completed`).
        self.positions.flushed_from.store(from, Ordering::Relaxed);
        self.positions
            .flushed_to
            .store(from + n as u64, Ordering::Release);
        self.advance(n);
        true
    }

    /// Samples waiting in the ring (not counting any the writer has asked to flush).
    pub fn available(&self) -> usize {
        let pending_flush = self
            .positions
            .flush_to
            .load(Ordering::Acquire)
            .saturating_sub(self.read_pos) as usize;
        self.consumer.slots().saturating_sub(pending_flush)
    }

    /// Drops everything waiting in the ring, unplayed (counted as flushed). Returns how many
    /// samples were dropped.
    pub fn clear(&mut self) -> usize {
        self.apply_pending_flush();
        let n = whole_frames(self.consumer.slots(), self.channels);
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            chunk.commit_all();
        }
        self.advance(n);
        self.counters.add_flushed(n as u64);
        n
    }

    /// How many writer-requested flushes this reader has carried out. A worker that forwards
    /// audio watches it to forward the flush too.
    pub fn flushes_applied(&self) -> u64 {
        self.flushes_applied
    }

    /// Samples ever removed from the ring (played, popped or flushed).
    pub fn read_position(&self) -> u64 {
        self.read_pos
    }

    /// Interleaved channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// Total room of the ring in samples.
    pub fn capacity(&self) -> usize {
        self.consumer.buffer().capacity()
    }

    pub fn counters(&self) -> &Arc<AudioCounters> {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(capacity: usize) -> (RingWriter, RingReader, Arc<AudioCounters>) {
        let counters = Arc::new(AudioCounters::new());
        let (w, r) = audio_ring(capacity, Arc::clone(&counters));
        (w, r, counters)
    }

    #[test]
    fn push_counts_what_does_not_fit() {
        let (mut w, mut r, c) = ring(4);
        assert_eq!(w.push(&[1.0, 2.0, 3.0]), 3);
        assert_eq!(w.push(&[4.0, 5.0, 6.0]), 1);
        assert_eq!(c.overrun_samples(), 2);
        let mut out = [0.0; 8];
        assert_eq!(r.pop_into(&mut out), 4);
        assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(w.written(), 4);
        assert_eq!(w.read_position(), 4);
    }

    #[test]
    fn fill_or_silence_pads_and_counts_underrun() {
        let (mut w, mut r, c) = ring(8);
        w.push(&[0.5, 0.25]);
        let mut out = [9.0; 5];
        assert_eq!(r.fill_or_silence(&mut out), 2);
        assert_eq!(out, [0.5, 0.25, 0.0, 0.0, 0.0]);
        let s = c.snapshot();
        assert_eq!((s.samples_played, s.underrun_samples), (2, 3));
    }

    #[test]
    fn interleaved_ring_moves_whole_frames_only() {
        let counters = Arc::new(AudioCounters::new());
        let (mut w, mut r) = audio_ring_interleaved(2, 2, Arc::clone(&counters));
        assert_eq!(w.capacity(), 4);
        // 3 frames offered, 2 fit; the half of nothing is ever written.
        assert_eq!(w.push(&[1.0, -1.0, 2.0, -2.0, 3.0, -3.0]), 4);
        assert_eq!(counters.overrun_samples(), 2);
        let mut out = [0.0; 3];
        assert_eq!(
            r.pop_into(&mut out),
            2,
            "an odd buffer takes whole frames only"
        );
        assert_eq!(&out[..2], &[1.0, -1.0]);
        assert_eq!(w.push_map(&[7_i16, 8, 9], f32::from), 2);
        let mut out = [0.0; 4];
        assert_eq!(r.pop_into(&mut out), 4);
        assert_eq!(out, [2.0, -2.0, 7.0, 8.0]);
    }

    #[test]
    fn flush_request_drops_only_what_was_written_before_it() {
        let (mut w, mut r, c) = ring(16);
        w.push(&[1.0, 2.0, 3.0, 4.0]);
        let mut one = [0.0; 1];
        r.pop_into(&mut one);
        let target = w.request_flush();
        assert_eq!(target, 4);
        assert_eq!(w.flush_completed(target), None, "reader has not run yet");
        w.push(&[5.0, 6.0]);
        assert_eq!(r.available(), 2);
        let mut out = [0.0; 8];
        assert_eq!(r.fill_or_silence(&mut out), 2);
        assert_eq!(&out[..2], &[5.0, 6.0]);
        assert_eq!(w.flush_completed(target), Some(1));
        assert_eq!(r.flushes_applied(), 1);
        assert_eq!(c.snapshot().flushed_samples, 3);
        assert_eq!(r.read_position(), 6);
    }

    #[test]
    fn clear_empties_the_ring() {
        let (mut w, mut r, c) = ring(8);
        w.push(&[1.0; 5]);
        assert_eq!(r.clear(), 5);
        assert_eq!(r.available(), 0);
        assert_eq!(c.snapshot().flushed_samples, 5);
        assert_eq!(w.free_slots(), 8);
    }
}
