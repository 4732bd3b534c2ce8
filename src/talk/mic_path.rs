//! The microphone path of `parley talk`: a processing thread (never a tokio worker, never the
//! device callback) that turns what the microphone hears into 20 ms wire frames.
//!
//! ```text
//! capture ring (device rate, channels) -> downmix -> 16 kHz -> EchoCanceller -> 24 kHz -> frames
//! far-end ring (24 kHz, from the speaker path) -> 16 kHz -> EchoCanceller::render
//! ```
//!
//! Each round takes the far end first, then the microphone: the far end was tapped as it left
//! for the speaker, so it is always handed in before the microphone audio its echo lands in (the
//! order AEC3 needs). Without echo cancellation the microphone goes straight to 24 kHz and the far
//! end is read and dropped.
//!
//! Frames go to the async sender through a bounded channel. If the sender falls behind (a stalled
//! connection) frames are dropped and counted rather than queued without limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use parley_audio_io::constants::{MODEL_INPUT_RATE, WIRE_PCM_RATE, frame_samples, ms_to_samples};
use parley_audio_io::echo::EchoEstimates;
use parley_audio_io::pcm::downmix_to_mono;
use parley_audio_io::{
    Capture, EchoCanceller, EchoConfig, EchoError, RingReader, StreamHandle, StreamResampler,
};
use tokio::sync::mpsc;

use super::error::TalkError;

/// How long the thread sleeps when neither ring has anything.
const IDLE_SLEEP: Duration = Duration::from_millis(2);
/// How often the echo canceller's own estimates are copied out for the report.
const ESTIMATES_EVERY: Duration = Duration::from_millis(500);

/// What the microphone path counted; shared with the session.
#[derive(Debug, Default)]
pub struct MicStats {
    pub frames: AtomicU64,
    /// Frames dropped because the sender was behind.
    pub frames_dropped: AtomicU64,
    /// Far-end samples (16 kHz) the echo canceller refused (its backlog was full).
    pub far_end_refused: AtomicU64,
    pub echo: Mutex<Option<EchoEstimates>>,
    /// Why the thread stopped early, if it did.
    pub failure: Mutex<Option<String>>,
}

impl MicStats {
    pub fn echo_estimates(&self) -> Option<EchoEstimates> {
        *self.echo.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running microphone path; dropping it stops the thread.
pub struct MicPath {
    _handle: StreamHandle,
}

/// The converters between the microphone and the wire (boxed: resamplers and the canceller
/// are large, and live as long as the thread).
enum Conversion {
    /// Device rate -> 16 kHz -> AEC -> 24 kHz, with the far end 24 kHz -> 16 kHz.
    EchoCancelled(Box<EchoStage>),
    /// Device rate -> 24 kHz.
    Direct { to_wire: Box<StreamResampler> },
}

/// The echo-cancelling conversion's state.
struct EchoStage {
    to_aec: StreamResampler,
    far_to_aec: StreamResampler,
    aec: EchoCanceller,
    to_wire: StreamResampler,
    mic_16k: Vec<f32>,
    far_16k: Vec<f32>,
    clean: Vec<f32>,
}

impl MicPath {
    /// Starts the thread reading `capture` (and `far_end`, the speaker path's tap), sending 20 ms
    /// frames of 24 kHz mono into `frames`. `echo`: cancel the speaker's echo with these settings;
    /// `None`: send the microphone as it is.
    pub fn start(
        capture: Capture,
        mut far_end: RingReader,
        echo: Option<EchoConfig>,
        frames: mpsc::Sender<Vec<f32>>,
        stats: Arc<MicStats>,
    ) -> Result<Self, TalkError> {
        let mut conversion = match echo {
            Some(config) => Conversion::EchoCancelled(Box::new(EchoStage {
                to_aec: StreamResampler::new(capture.rate, MODEL_INPUT_RATE)?,
                far_to_aec: StreamResampler::new(WIRE_PCM_RATE, MODEL_INPUT_RATE)?,
                aec: EchoCanceller::with_config(config)?,
                to_wire: StreamResampler::new(MODEL_INPUT_RATE, WIRE_PCM_RATE)?,
                mic_16k: Vec::new(),
                far_16k: Vec::new(),
                clean: Vec::new(),
            })),
            None => Conversion::Direct {
                to_wire: Box::new(StreamResampler::new(capture.rate, WIRE_PCM_RATE)?),
            },
        };
        let channels = usize::from(capture.channels.max(1));
        let mut reader = capture.reader;
        // About 10 ms of each stream per read.
        let mut capture_buf =
            vec![0.0f32; ms_to_samples(10, capture.rate).max(1) as usize * channels];
        let mut far_buf = vec![0.0f32; ms_to_samples(10, WIRE_PCM_RATE) as usize];
        let mut mono = Vec::with_capacity(capture_buf.len());
        let mut wire: Vec<f32> = Vec::new();
        let frame = frame_samples(WIRE_PCM_RATE);
        let handle = StreamHandle::spawn("talk-mic-path", move |stop| {
            let mut last_estimates = Instant::now();
            let fail = |why: String| {
                tracing::error!("microphone path stopped: {why}");
                *stats.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
            };
            while !stop.load(Ordering::Acquire) {
                let far = far_end.pop_into(&mut far_buf);
                if far > 0
                    && let Err(e) = conversion.render(&far_buf[..far], &stats)
                {
                    return fail(e.to_string());
                }
                let n = reader.pop_into(&mut capture_buf);
                if n == 0 {
                    if far == 0 {
                        std::thread::park_timeout(IDLE_SLEEP);
                    }
                    continue;
                }
                mono.clear();
                downmix_to_mono(&capture_buf[..n], channels, &mut mono);
                if let Err(e) = conversion.capture(&mono, &mut wire) {
                    return fail(e);
                }
                let whole = wire.len() - wire.len() % frame;
                for chunk in wire[..whole].chunks_exact(frame) {
                    match frames.try_send(chunk.to_vec()) {
                        Ok(()) => stats.frames.fetch_add(1, Ordering::Relaxed),
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            stats.frames_dropped.fetch_add(1, Ordering::Relaxed)
                        }
                        // The session is over.
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    };
                }
                wire.drain(..whole);
                if last_estimates.elapsed() >= ESTIMATES_EVERY {
                    last_estimates = Instant::now();
                    if let Conversion::EchoCancelled(stage) = &conversion {
                        *stats.echo.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(stage.aec.estimates());
                    }
                }
            }
        })?;
        Ok(Self { _handle: handle })
    }
}

impl Conversion {
    /// Far-end audio (24 kHz) that just left for the speaker.
    fn render(&mut self, far: &[f32], stats: &MicStats) -> Result<(), TalkError> {
        let Conversion::EchoCancelled(stage) = self else {
            return Ok(());
        };
        let EchoStage {
            far_to_aec,
            aec,
            far_16k,
            ..
        } = &mut **stage;
        far_16k.clear();
        far_to_aec.process(far, far_16k)?;
        match aec.render(far_16k) {
            Ok(()) => Ok(()),
            // The microphone is not delivering (stalled or ended): nothing to cancel the echo
            // from, so this far end is dropped, counted.
            Err(EchoError::FarEndBacklogFull { .. }) => {
                stats
                    .far_end_refused
                    .fetch_add(far_16k.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Microphone audio (mono, device rate) to wire audio appended to `wire`.
    fn capture(&mut self, mono: &[f32], wire: &mut Vec<f32>) -> Result<(), String> {
        match self {
            Conversion::Direct { to_wire } => {
                to_wire.process(mono, wire).map_err(|e| e.to_string())
            }
            Conversion::EchoCancelled(stage) => {
                let EchoStage {
                    to_aec,
                    aec,
                    to_wire,
                    mic_16k,
                    clean,
                    ..
                } = &mut **stage;
                mic_16k.clear();
                to_aec.process(mono, mic_16k).map_err(|e| e.to_string())?;
                clean.clear();
                // A non-finite sample from the device is refused by the canceller (nothing
                // absorbed): the chunk is skipped rather than ending the conversation.
                match aec.process_capture(mic_16k, clean) {
                    Ok(()) | Err(EchoError::NonFiniteSample { .. }) => {}
                    Err(e) => return Err(e.to_string()),
                }
                to_wire.process(clean, wire).map_err(|e| e.to_string())
            }
        }
    }
}
