//! Acoustic echo cancellation (AEC) on the microphone path.
//!
//! Why: without headphones the microphone hears parley's own voice coming out of the speaker.
//! Left in, that echo reaches the VAD, which takes it for the user talking and interrupts the
//! response it is playing (self barge-in). [`EchoCanceller`] removes from the microphone signal
//! what the speaker played, while the user's own speech (also during playback: double talk) goes
//! through, so the real user can still barge in.
//!
//! The algorithm is WebRTC's AEC3 (adaptive linear filter with delay estimation, then a residual
//! echo suppressor), from the pure-Rust [`sonora`] port of WebRTC's audio processing module.
//! Only the echo canceller (and the high-pass filter AEC3 insists on, which takes the hum and rumble
//! below ~100 Hz) is switched on: no noise suppression or gain control, so the models hear the user as
//! the microphone did.
//!
//! Two streams go in, both mono `f32` at [`MODEL_INPUT_RATE`] (16 kHz: the rate the engine
//! resamples the microphone to for the VAD, and one of AEC3's native rates, where it runs in a
//! single band without band-splitting filters):
//! - the far end, [`render`](EchoCanceller::render): what is sent to the speaker, **at the pace it
//!   is played**, in chunks of any size;
//! - the microphone, [`process_capture`](EchoCanceller::process_capture): in chunks of any size,
//!   giving back the echo-cancelled samples.
//!
//! AEC3 works in 10 ms frames ([`AEC_FRAME_MS`], 160 samples at 16 kHz). Each complete
//! microphone frame is paired with the next 10 ms of far-end audio waiting here (silence if none
//! is waiting: nothing is being played), and the pair goes through AEC3 in WebRTC's order, render
//! then capture. Pairing frames here, rather than letting far-end audio pile up inside AEC3
//! (whose internal queue silently drops frames beyond one second), makes the output depend only
//! on the two sample streams, not on how they were chunked (the streaming tests check this bit
//! for bit), as long as far-end audio is handed in no later than the microphone audio it echoes
//! into. Far-end audio handed in long before it is played would be paired with the wrong
//! microphone frames, which is why the far end must be tapped where it is played, and why its
//! backlog is bounded ([`EchoError::FarEndBacklogFull`]).
//!
//! Latency: the output comes in whole 10 ms frames, so up to 10 ms minus one sample waits for its
//! frame to complete; AEC3 adds a fixed [`AEC_DELAY_SAMPLES`] (128 samples, 8 ms: two of its
//! 64-sample blocks) on top. AEC3's high-pass filter (6th order, corner ~100 Hz) also shifts the
//! phase of the lowest speech harmonics: the output is not the input sample for sample even
//! without echo, which the VAD and speech recognition do not mind.
//!
//! Convergence: AEC3 finds the echo delay itself (up to about half a second) and removes ~20 dB
//! of echo in the first two seconds of far-end speech, ~30 dB after that (measured in
//! `audio-io/tests/echo.rs`); until its filter has converged it leans on suppression. During
//! double talk its suppressor also dips the user's speech where parley's echo dominates (the
//! user's level stays within ~1.5 dB overall), a trade WebRTC makes in favour of no echo.
//!
//! Cost: about 0.2 ms of one core per 20 ms of audio (1 %), measured with
//! `benches/benches/echo.rs`. It runs on a processing thread, never in a device callback: it does
//! far too much arithmetic for a callback (and AEC3 may allocate while it re-adapts).

use std::collections::VecDeque;

use sonora::config::EchoCanceller as Aec3Settings;
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::constants::{MODEL_INPUT_RATE, ms_to_samples, samples_to_ms};

/// AEC3's frame length. Not [`FRAME_MS`](crate::constants::FRAME_MS): WebRTC's audio processing
/// only takes 10 ms frames.
pub const AEC_FRAME_MS: u32 = 10;

/// The fixed delay AEC3 adds to the capture stream at 16 kHz, in samples (8 ms: two 64-sample
/// blocks of its frame-to-block conversion). Output sample `i + AEC_DELAY_SAMPLES` is the cleaned
/// input sample `i` (measured by the tests).
pub const AEC_DELAY_SAMPLES: usize = 128;

/// Largest stream delay hint AEC3 accepts (WebRTC's limit).
pub const MAX_STREAM_DELAY_MS: u32 = 500;

/// Default bound on far-end audio waiting to be paired with microphone audio.
pub const DEFAULT_MAX_FAR_END_BACKLOG_MS: u64 = 1000;

/// What can go wrong when cancelling echo. The streams are unchanged after every error: the
/// refused chunk was not absorbed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EchoError {
    /// More far-end audio than allowed is waiting for microphone audio: it is being handed in
    /// ahead of playback (tap the far end where it is played) or the microphone stopped.
    #[error(
        "echo canceller: far-end backlog full: {backlog_ms} ms waiting, adding {adding_ms} ms \
         exceeds the {max_ms} ms limit (feed the far end as it is played)"
    )]
    FarEndBacklogFull {
        backlog_ms: u64,
        adding_ms: u64,
        max_ms: u64,
    },

    /// A NaN or infinite sample would poison the adaptive filter for good.
    #[error("echo canceller: non-finite {stream} sample at index {index} ({value})")]
    NonFiniteSample {
        stream: &'static str,
        index: usize,
        value: f32,
    },

    /// The stream delay hint is outside 0..=500 ms.
    #[error("echo canceller: stream delay {delay_ms} ms is outside 0..={MAX_STREAM_DELAY_MS} ms")]
    InvalidStreamDelay { delay_ms: u32 },

    /// sonora refused a frame (cannot happen with the formats checked in `new`; reported, not
    /// hidden, if it does).
    #[error("echo canceller: AEC3 refused a frame: {0}")]
    Aec(#[from] sonora::Error),
}

/// Settings of an [`EchoCanceller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoConfig {
    /// Most far-end audio that may wait for microphone audio before `render` refuses more.
    pub max_far_end_backlog_ms: u64,
    /// Known delay from handing far-end audio to [`EchoCanceller::render`] to its echo reaching
    /// [`EchoCanceller::process_capture`] (playback buffering + acoustic path + capture
    /// buffering), in ms, at most [`MAX_STREAM_DELAY_MS`]. Only a starting point: AEC3 finds the
    /// delay itself. `None` (default): no hint.
    pub stream_delay_ms: Option<u32>,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            max_far_end_backlog_ms: DEFAULT_MAX_FAR_END_BACKLOG_MS,
            stream_delay_ms: None,
        }
    }
}

/// Streaming acoustic echo canceller: far-end audio in through [`render`](Self::render),
/// microphone audio in and echo-cancelled audio out through
/// [`process_capture`](Self::process_capture). See the module documentation.
pub struct EchoCanceller {
    config: EchoConfig,
    apm: AudioProcessing,
    /// Samples per 10 ms frame.
    frame: usize,
    max_far_end: usize,
    /// Far-end samples waiting for their microphone frame.
    far_end: VecDeque<f32>,
    /// Microphone samples of the frame being completed (fewer than `frame`).
    mic_pending: Vec<f32>,
    /// One far-end frame, one rendered copy (AEC3 passes render audio through; unused), one
    /// processed microphone frame: reused so no frame allocates.
    far_frame: Vec<f32>,
    render_out: Vec<f32>,
    capture_out: Vec<f32>,
    frames_processed: u64,
    silent_far_end_frames: u64,
}

impl EchoCanceller {
    /// An echo canceller with default settings.
    pub fn new() -> Result<Self, EchoError> {
        Self::with_config(EchoConfig::default())
    }

    /// An echo canceller with explicit settings.
    pub fn with_config(config: EchoConfig) -> Result<Self, EchoError> {
        if let Some(delay_ms) = config.stream_delay_ms {
            check_delay(delay_ms)?;
        }
        let frame = (MODEL_INPUT_RATE * AEC_FRAME_MS / 1000) as usize;
        let max_far_end = ms_to_samples(config.max_far_end_backlog_ms, MODEL_INPUT_RATE) as usize;
        let apm = build_aec3(&config)?;
        Ok(Self {
            frame,
            max_far_end,
            far_end: VecDeque::with_capacity(max_far_end.min(MODEL_INPUT_RATE as usize)),
            mic_pending: Vec::with_capacity(frame),
            far_frame: vec![0.0; frame],
            render_out: vec![0.0; frame],
            capture_out: vec![0.0; frame],
            frames_processed: 0,
            silent_far_end_frames: 0,
            apm,
            config,
        })
    }

    /// Samples per AEC3 frame (10 ms): `process_capture` emits output in multiples of this.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Fixed delay of the output behind the input, in samples, not counting the wait for a frame
    /// to fill: output sample `i + latency_samples()` is the cleaned microphone sample `i`.
    pub fn latency_samples(&self) -> usize {
        AEC_DELAY_SAMPLES
    }

    /// Hands in audio sent to the speaker, in chunks of any size, as it is played. Refuses the
    /// whole chunk (nothing taken) if it holds a NaN/infinity or would exceed the backlog limit.
    pub fn render(&mut self, far_end: &[f32]) -> Result<(), EchoError> {
        check_finite("far-end", far_end)?;
        if self.far_end.len() + far_end.len() > self.max_far_end {
            let rate = MODEL_INPUT_RATE;
            return Err(EchoError::FarEndBacklogFull {
                backlog_ms: samples_to_ms(self.far_end.len() as u64, rate),
                adding_ms: samples_to_ms(far_end.len() as u64, rate),
                max_ms: self.config.max_far_end_backlog_ms,
            });
        }
        self.far_end.extend(far_end);
        Ok(())
    }

    /// Takes microphone audio in chunks of any size and appends the echo-cancelled audio of every
    /// completed 10 ms frame to `out` (nothing if no frame completed: that is normal). Refuses the
    /// whole chunk (nothing taken) if it holds a NaN/infinity.
    pub fn process_capture(&mut self, mic: &[f32], out: &mut Vec<f32>) -> Result<(), EchoError> {
        check_finite("microphone", mic)?;
        let frame = self.frame;
        let mut rest = mic;
        if !self.mic_pending.is_empty() {
            let take = (frame - self.mic_pending.len()).min(rest.len());
            self.mic_pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.mic_pending.len() < frame {
                return Ok(());
            }
            let pending = std::mem::take(&mut self.mic_pending);
            let result = self.process_frame(&pending, out);
            self.mic_pending = pending;
            self.mic_pending.clear();
            result?;
        }
        let mut frames = rest.chunks_exact(frame);
        for mic_frame in &mut frames {
            self.process_frame(mic_frame, out)?;
        }
        self.mic_pending.extend_from_slice(frames.remainder());
        Ok(())
    }

    /// Sets (or replaces) the stream delay hint; see [`EchoConfig::stream_delay_ms`].
    pub fn set_stream_delay_ms(&mut self, delay_ms: u32) -> Result<(), EchoError> {
        check_delay(delay_ms)?;
        self.config.stream_delay_ms = Some(delay_ms);
        // Checked above to be within 0..=500, so sonora does not clamp (its only error).
        self.apm.set_stream_delay_ms(delay_ms as i32)?;
        Ok(())
    }

    /// Forgets everything: the adapted filters, the delay estimate and all buffered samples of
    /// both streams. For a new session (or a different room), not for a barge-in.
    pub fn reset(&mut self) -> Result<(), EchoError> {
        self.apm = build_aec3(&self.config)?;
        self.far_end.clear();
        self.mic_pending.clear();
        self.frames_processed = 0;
        self.silent_far_end_frames = 0;
        Ok(())
    }

    /// Far-end samples waiting for microphone audio.
    pub fn far_end_backlog(&self) -> usize {
        self.far_end.len()
    }

    /// Microphone samples waiting for their frame to complete (less than one frame).
    pub fn capture_pending(&self) -> usize {
        self.mic_pending.len()
    }

    /// Microphone frames processed since creation or the last reset.
    pub fn frames_processed(&self) -> u64 {
        self.frames_processed
    }

    /// Of those, frames for which no far-end audio was waiting (paired with silence).
    pub fn silent_far_end_frames(&self) -> u64 {
        self.silent_far_end_frames
    }

    /// AEC3's own estimates: echo return loss enhancement in dB and the echo delay in ms, when
    /// it has them. For logs and diagnostics.
    pub fn estimates(&self) -> EchoEstimates {
        let stats = self.apm.statistics();
        EchoEstimates {
            erle_db: stats.echo_return_loss_enhancement,
            delay_ms: stats.delay_ms,
        }
    }

    /// One 10 ms microphone frame with the next 10 ms of far end (or silence) through AEC3.
    fn process_frame(&mut self, mic_frame: &[f32], out: &mut Vec<f32>) -> Result<(), EchoError> {
        let frame = self.frame;
        if self.far_end.len() >= frame {
            for (dst, src) in self.far_frame.iter_mut().zip(self.far_end.drain(..frame)) {
                *dst = src;
            }
        } else {
            // Nothing (or less than a frame) waiting: the speaker is silent (or running dry); a
            // partial frame stays queued for the next one rather than being split.
            self.far_frame.fill(0.0);
            self.silent_far_end_frames += 1;
        }
        self.apm
            .process_render_f32(&[&self.far_frame], &mut [&mut self.render_out])?;
        self.apm
            .process_capture_f32(&[mic_frame], &mut [&mut self.capture_out])?;
        out.extend_from_slice(&self.capture_out);
        self.frames_processed += 1;
        Ok(())
    }
}

/// AEC3's view of how it is doing (from its statistics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoEstimates {
    /// Echo return loss enhancement (echo removed) in dB.
    pub erle_db: Option<f64>,
    /// Current echo delay estimate in ms.
    pub delay_ms: Option<i32>,
}

/// A fresh AEC3 with only echo cancellation (and its high-pass filter) on.
fn build_aec3(config: &EchoConfig) -> Result<AudioProcessing, EchoError> {
    let stream = StreamConfig::new(MODEL_INPUT_RATE, 1);
    let mut apm = AudioProcessing::builder()
        .config(Config {
            echo_canceller: Some(Aec3Settings::default()),
            ..Config::default()
        })
        .capture_config(stream)
        .render_config(stream)
        .build();
    if let Some(delay_ms) = config.stream_delay_ms {
        // Checked by the callers to be within 0..=500, so sonora does not clamp (its only error).
        apm.set_stream_delay_ms(delay_ms as i32)?;
    }
    Ok(apm)
}

fn check_delay(delay_ms: u32) -> Result<(), EchoError> {
    if delay_ms > MAX_STREAM_DELAY_MS {
        return Err(EchoError::InvalidStreamDelay { delay_ms });
    }
    Ok(())
}

fn check_finite(stream: &'static str, samples: &[f32]) -> Result<(), EchoError> {
    match samples.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(EchoError::NonFiniteSample {
            stream,
            index,
            value: samples[index],
        }),
        None => Ok(()),
    }
}

/// A simulated echo path from speaker to microphone: the far end convolved with a room impulse
/// response. For tests, benches and virtual-device simulations of `parley talk` without
/// headphones; it is what [`EchoCanceller`] has to undo.
#[derive(Debug, Clone)]
pub struct SimulatedRoom {
    impulse_response: Vec<f32>,
    /// The taps last to first, so each output is a plain dot product with the input window.
    reversed: Vec<f32>,
    /// The last `impulse_response.len() - 1` far-end samples, oldest first (the convolution's
    /// memory between calls).
    history: Vec<f32>,
    /// `history` followed by the current chunk, reused between calls.
    window: Vec<f32>,
}

/// Shape of a [`SimulatedRoom::synthetic`] impulse response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomShape {
    /// Delay of the direct sound (speaker to microphone plus device buffering), ms.
    pub direct_delay_ms: f32,
    /// Gain of the direct sound (1 = as loud at the microphone as in the signal).
    pub direct_gain: f32,
    /// Energy of the reverberation tail relative to the direct sound's (0.5: the direct sound is
    /// 3 dB louder than all reflections together).
    pub reverb_energy_ratio: f32,
    /// Time for the tail to decay by 60 dB, ms (its length).
    pub rt60_ms: f32,
}

impl SimulatedRoom {
    /// A room with the given impulse response (tap `k` = gain of the far end delayed by `k`
    /// samples).
    pub fn new(impulse_response: Vec<f32>) -> Self {
        let memory = impulse_response.len().saturating_sub(1);
        let reversed = impulse_response.iter().rev().copied().collect();
        Self {
            impulse_response,
            reversed,
            history: vec![0.0; memory],
            window: Vec::new(),
        }
    }

    /// A synthetic room at `rate`: a direct path (a single tap) followed by an exponentially
    /// decaying tail of pseudo-random reflections starting 5 ms after it. `seed` picks the
    /// reflections, so the same arguments always give the same room.
    pub fn synthetic(rate: u32, shape: RoomShape, seed: u64) -> Self {
        let per_ms = rate as f32 / 1000.0;
        let direct = (shape.direct_delay_ms.max(0.0) * per_ms).round() as usize;
        let tail_start = direct + (5.0 * per_ms).round() as usize;
        let tail_len = (shape.rt60_ms.max(0.0) * per_ms).round() as usize;
        let mut ir = vec![0.0; tail_start + tail_len];
        ir[direct] = shape.direct_gain;
        // -60 dB (a factor 1000 in amplitude) over the tail's length.
        let decay_per_sample = (1e-3f32).powf(1.0 / tail_len.max(1) as f32);
        let mut envelope = 1.0;
        // xorshift64*: any fixed sequence of roughly uniform reflections will do.
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for tap in &mut ir[tail_start..] {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let uniform =
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            *tap = envelope * (2.0 * uniform - 1.0);
            envelope *= decay_per_sample;
        }
        let tail_energy: f32 = ir[tail_start..].iter().map(|t| t * t).sum();
        if tail_energy > 0.0 {
            let scale =
                (shape.reverb_energy_ratio.max(0.0) * shape.direct_gain * shape.direct_gain
                    / tail_energy)
                    .sqrt();
            ir[tail_start..].iter_mut().for_each(|t| *t *= scale);
        }
        Self::new(ir)
    }

    pub fn impulse_response(&self) -> &[f32] {
        &self.impulse_response
    }

    /// Appends the echo of `far_end` (continuing the previous calls) to `out`: one output sample
    /// per input sample.
    pub fn echo(&mut self, far_end: &[f32], out: &mut Vec<f32>) {
        let memory = self.history.len();
        self.window.clear();
        self.window.extend_from_slice(&self.history);
        self.window.extend_from_slice(far_end);
        out.reserve(far_end.len());
        // window[memory + n] is far_end[n]; tap k multiplies far_end[n - k], which is
        // window[n..=n + memory] against the taps in reverse order.
        out.extend(self.window.windows(memory + 1).map(|w| {
            w.iter()
                .zip(&self.reversed)
                .map(|(x, h)| x * h)
                .sum::<f32>()
        }));
        let keep_from = self.window.len() - memory;
        self.history.copy_from_slice(&self.window[keep_from..]);
    }
}
