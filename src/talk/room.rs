//! A simulated room for `parley talk` without headphones: a virtual speaker and a virtual
//! microphone in the same room. Whatever the speaker plays reaches the microphone through a
//! [`SimulatedRoom`] (direct sound plus reverberation), on top of low background noise and
//! whatever the simulated user says. Tests (and anyone checking echo cancellation without sound
//! hardware) run the real `talk` pipeline on it.
//!
//! It hands out the same [`Capture`] / [`Playback`] pair as the cpal devices. One thread plays
//! the part of both sound cards: every 20 ms (absolute deadlines, like the virtual devices) it
//! takes a frame from the playback ring exactly as a device callback would (silence when empty),
//! runs it through the room, adds the user's speech and the noise, and pushes the result into the
//! capture ring.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use parley_audio_io::constants::{FRAME_MS, frame_samples, ms_to_samples};
use parley_audio_io::echo::{RoomShape, SimulatedRoom};
use parley_audio_io::{AudioCounters, Capture, Playback, StreamHandle, audio_ring};

const FRAME: Duration = Duration::from_millis(FRAME_MS as u64);

/// Settings of an [`EchoRoom`].
#[derive(Debug, Clone, Copy)]
pub struct EchoRoomConfig {
    /// Rate of both simulated devices (mono).
    pub rate: u32,
    /// The echo path from speaker to microphone.
    pub shape: RoomShape,
    /// Picks the room's reflections (the same seed gives the same room).
    pub seed: u64,
    /// RMS of the microphone's background noise (white), full scale 1.0.
    pub noise_rms: f32,
}

impl EchoRoomConfig {
    /// A laptop on a desk at `rate`: the speaker 30 ms (device buffering included) and 10 dB
    /// below full level away from the microphone, a 150 ms reverberation tail, noise at -54 dBFS.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            shape: RoomShape {
                direct_delay_ms: 30.0,
                direct_gain: 0.3,
                reverb_energy_ratio: 0.5,
                rt60_ms: 150.0,
            },
            seed: 7,
            noise_rms: 0.002,
        }
    }
}

/// State shared between the room thread and its owner.
#[derive(Default)]
struct Shared {
    /// What the simulated user is about to say (samples at the room's rate).
    speech: Mutex<VecDeque<f32>>,
    speaking: AtomicBool,
    /// Sum of squares of the echo reaching the microphone in the frames where it is above
    /// -50 dBFS, in 1e-6 units (for a level report), and how many samples that covers.
    echo_energy_micro: AtomicU64,
    echo_samples: AtomicU64,
}

/// A running simulated room; dropping it stops the thread.
pub struct EchoRoom {
    shared: Arc<Shared>,
    speaker: Arc<AudioCounters>,
    rate: u32,
    _handle: StreamHandle,
}

impl EchoRoom {
    /// Starts the room; returns it with the microphone's [`Capture`] and the speaker's
    /// [`Playback`] (both mono at `config.rate`).
    pub fn start(config: EchoRoomConfig) -> parley_audio_io::Result<(Self, Capture, Playback)> {
        let rate = config.rate;
        let mic_counters = Arc::new(AudioCounters::new());
        let speaker_counters = Arc::new(AudioCounters::new());
        let (mut mic_writer, mic_reader) = audio_ring(
            ms_to_samples(1000, rate) as usize,
            Arc::clone(&mic_counters),
        );
        let (speaker_writer, mut speaker_reader) = audio_ring(
            ms_to_samples(100, rate) as usize,
            Arc::clone(&speaker_counters),
        );
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread_mic_counters = Arc::clone(&mic_counters);
        let mut room = SimulatedRoom::synthetic(rate, config.shape, config.seed);
        let frame = frame_samples(rate);
        let mut noise = Noise::new(config.seed, config.noise_rms);
        let handle = StreamHandle::spawn("echo-room", move |stop| {
            let mut played = vec![0.0f32; frame];
            let mut mic = Vec::with_capacity(frame);
            let start = Instant::now();
            let mut ticks: u32 = 0;
            loop {
                // Frame k is played and captured at start + (k + 1) * 20 ms.
                let deadline = start + FRAME * (ticks + 1);
                while Instant::now() < deadline {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::park_timeout(deadline - Instant::now());
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let due = (start.elapsed().as_nanos() / FRAME.as_nanos()) as u32;
                while ticks < due {
                    ticks += 1;
                    // The speaker, exactly as a device callback.
                    let from_ring = speaker_reader.fill_or_silence(&mut played);
                    mic.clear();
                    room.echo(&played, &mut mic);
                    let energy: f32 = mic.iter().map(|x| x * x).sum();
                    // Frames the echo is audible in (above -50 dBFS), like a speech level.
                    if from_ring > 0 && energy > 1e-5 * frame as f32 {
                        thread_shared
                            .echo_energy_micro
                            .fetch_add((f64::from(energy) * 1e6) as u64, Ordering::Relaxed);
                        thread_shared
                            .echo_samples
                            .fetch_add(frame as u64, Ordering::Relaxed);
                    }
                    {
                        let mut speech = thread_shared
                            .speech
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        let n = speech.len().min(frame);
                        for (x, s) in mic.iter_mut().zip(speech.drain(..n)) {
                            *x += s;
                        }
                        thread_shared
                            .speaking
                            .store(!speech.is_empty(), Ordering::Release);
                    }
                    for x in &mut mic {
                        *x = (*x + noise.next()).clamp(-1.0, 1.0);
                    }
                    // The microphone, exactly as a device callback.
                    thread_mic_counters.add_callback();
                    thread_mic_counters.add_captured(frame as u64);
                    mic_writer.push(&mic);
                }
            }
        })?;
        Ok((
            Self {
                shared,
                speaker: Arc::clone(&speaker_counters),
                rate,
                _handle: handle,
            },
            Capture {
                reader: mic_reader,
                rate,
                channels: 1,
                counters: mic_counters,
            },
            Playback {
                writer: speaker_writer,
                rate,
                channels: 1,
                counters: speaker_counters,
            },
        ))
    }

    /// The user says `samples` (mono, at the room's rate) into the microphone, after whatever
    /// they are still saying.
    pub fn say(&self, samples: &[f32]) {
        let mut speech = self
            .shared
            .speech
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        speech.extend(samples);
        self.shared.speaking.store(true, Ordering::Release);
    }

    /// True while the user still has speech to say.
    pub fn user_speaking(&self) -> bool {
        self.shared.speaking.load(Ordering::Acquire)
    }

    /// Samples the speaker has played from its ring (silence not counted).
    pub fn speaker_samples_played(&self) -> u64 {
        self.speaker.samples_played()
    }

    /// Level of the echo at the microphone while the speaker plays: RMS over its 20 ms frames
    /// above -50 dBFS (pauses left out, like a speech level), in dBFS; `None` before any.
    pub fn echo_rms_dbfs(&self) -> Option<f64> {
        let n = self.shared.echo_samples.load(Ordering::Relaxed);
        (n > 0).then(|| {
            let energy = self.shared.echo_energy_micro.load(Ordering::Relaxed) as f64 * 1e-6;
            10.0 * (energy / n as f64).max(1e-12).log10()
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }
}

/// White noise of a given RMS (uniform, from a xorshift generator: any fixed sequence will do).
struct Noise {
    state: u64,
    /// Uniform in [-a, a] has RMS a / sqrt(3).
    amplitude: f32,
}

impl Noise {
    fn new(seed: u64, rms: f32) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            amplitude: rms.max(0.0) * 3f32.sqrt(),
        }
    }

    fn next(&mut self) -> f32 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let uniform = (self.state >> 40) as f32 / (1u64 << 24) as f32;
        self.amplitude * (2.0 * uniform - 1.0)
    }
}
