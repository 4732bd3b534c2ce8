//! The shape every audio source and sink hands out, real (cpal) or virtual: a [`Capture`] is the
//! reading end of the ring a microphone fills, a [`Playback`] the writing end of the ring a speaker
//! drains, and a [`StreamHandle`] keeps the thread (and device stream) behind them running until
//! it is dropped.

use crate::counters::AudioCounters;
use crate::ring::{RingReader, RingWriter};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Audio coming in: interleaved `f32` at `rate` with `channels` channels.
pub struct Capture {
    pub reader: RingReader,
    pub rate: u32,
    pub channels: u16,
    pub counters: Arc<AudioCounters>,
}

/// Audio going out: write interleaved `f32` at `rate` with `channels` channels.
pub struct Playback {
    pub writer: RingWriter,
    pub rate: u32,
    pub channels: u16,
    pub counters: Arc<AudioCounters>,
}

/// Owns a background thread that runs until told to stop; dropping the handle stops it and waits
/// for it to finish (so a device stream is closed when its handle goes).
#[derive(Debug)]
pub struct StreamHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StreamHandle {
    /// Starts `body` on a named thread. `body` gets the stop flag and must return soon after it
    /// becomes true (it is also unparked when stopping, so it may sleep with `park_timeout`).
    pub fn spawn(
        name: &'static str,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> crate::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(thread_stop))
            .map_err(|source| crate::AudioError::Thread { name, source })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// True once the thread has returned on its own (e.g. a virtual mic reached the end of its
    /// source) or after a stop.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A panic in the thread has already been reported by the panic hook; there is
            // nothing more to do with it while shutting down.
            let _ = thread.join();
        }
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
