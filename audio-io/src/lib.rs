//! Real-time audio plumbing for parley.
//!
//! Everything between a sound card (or a WebSocket) and the models: mono `f32` PCM and its
//! conversions, lock-free SPSC ring buffers, capture and playback through cpal (feature `device`)
//! or a virtual device with the same interface, streaming resampling, Opus, WAV files, and the
//! playout buffer whose clock says how much of a response was actually heard.
//!
//! Real-time rule: a device callback only copies samples into or out of a ring buffer and bumps
//! atomic counters. Resampling, encoding and everything else runs on ordinary threads.
//!
//! Map of the crate:
//! - [`constants`], [`pcm`]: rates, frame sizes and sample conversions shared by all of parley.
//! - [`ring`] + [`counters`]: the SPSC ring and the overrun/underrun/played/captured counters.
//! - [`stream`]: the shape every source/sink hands out ([`Capture`], [`Playback`],
//!   [`StreamHandle`]).
//! - `device` (feature `device`): cpal capture and playback; [`virtual_device`]: the same
//!   interface driven by a thread, for tests and simulations.
//! - [`resample`] ([`StreamResampler`]) and [`resample_worker`] ([`ResampleWorker`], the thread
//!   converting between device format and model format).
//! - [`opus_codec`], [`wav`]: codecs and files.
//! - [`playout`]: the response playout buffer with its played-samples clock.
//! - [`echo`] ([`EchoCanceller`]): acoustic echo cancellation of the microphone (WebRTC AEC3).

pub mod constants;
pub mod counters;
#[cfg(feature = "device")]
pub mod device;
pub mod echo;
pub mod error;
pub mod opus_codec;
pub mod pcm;
pub mod playout;
pub mod resample;
pub mod resample_worker;
pub mod ring;
pub mod stream;
pub mod virtual_device;
pub mod wav;

pub use counters::{AudioCounters, CountersSnapshot};
#[cfg(feature = "device")]
pub use device::{
    CaptureDevice, DeviceDirection, DeviceInfo, PlaybackDevice, SupportedRange, list_devices,
};
pub use echo::{EchoCanceller, EchoConfig, EchoError};
pub use error::{AudioError, Result};
pub use opus_codec::{DecodeOutcome, OpusDecoder, OpusEncoder};
pub use playout::{PlayoutBuffer, ResponseId, ResponsePlayed};
pub use resample::{StreamResampler, resample_buffer};
pub use resample_worker::ResampleWorker;
pub use ring::{RingReader, RingWriter, audio_ring, audio_ring_interleaved};
pub use stream::{Capture, Playback, StreamHandle};
pub use virtual_device::{
    AfterEnd, Pace, VirtualMic, VirtualMicConfig, VirtualSpeaker, VirtualSpeakerConfig,
};
pub use wav::{read_wav, read_wav_native, write_wav};
