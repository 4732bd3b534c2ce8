//! Sound-card capture and playback through cpal on the default host (feature `device`).
//!
//! Each open device gets its own thread that builds, starts and owns the cpal stream (cpal
//! streams cannot move between threads on every platform) and closes it when the returned
//! device value is dropped. The data callbacks only convert samples to/from `f32` and copy them
//! into/out of the ring, and bump atomic counters: no locks, allocation, logging or resampling.
//! Interleaved audio goes through the ring as-is at the device's default rate; a
//! [`ResampleWorker`](crate::ResampleWorker) converts it on an ordinary thread. Stream errors are
//! counted in the callback and logged by the device thread.

use crate::constants::ms_to_samples;
use crate::counters::AudioCounters;
use crate::error::{AudioError, Result};
use crate::ring::{RingReader, RingWriter, audio_ring_interleaved};
use crate::stream::{Capture, Playback, StreamHandle};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Room of a capture ring: the worker reading it may stall this long before samples overrun.
pub const CAPTURE_RING_MS: u64 = 500;
/// Room of a playback ring. Everything in it counts as played for the playout clock, so it is
/// kept short; the playback [`ResampleWorker`](crate::ResampleWorker) fills it to 60 ms.
pub const PLAYBACK_RING_MS: u64 = 100;
/// Stream errors waiting to be logged; more are still counted.
const ERROR_QUEUE: usize = 16;
/// How often the device thread checks for stop requests and errors to log.
const DEVICE_THREAD_POLL: Duration = Duration::from_millis(50);

/// Whether a device records or plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDirection {
    Input,
    Output,
}

impl DeviceDirection {
    fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

/// One configuration range a device supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedRange {
    pub channels: u16,
    pub min_rate: u32,
    pub max_rate: u32,
    pub sample_format: String,
}

/// An input or output device as the host reports it. A device that can do both appears twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub direction: DeviceDirection,
    /// The host's default device for this direction.
    pub is_default: bool,
    /// Default config (what `open` uses); `None` if the device would not say.
    pub default_rate: Option<u32>,
    pub default_channels: Option<u16>,
    pub supported: Vec<SupportedRange>,
}

fn device_err(context: &'static str, e: impl std::fmt::Display) -> AudioError {
    AudioError::Device {
        context,
        message: e.to_string(),
    }
}

/// Lists the default host's input and output devices. A machine without sound hardware gives an
/// empty list (or an error if the host itself fails), never a panic.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    let mut out = Vec::new();
    for direction in [DeviceDirection::Input, DeviceDirection::Output] {
        let default_name = default_device(&host, direction).and_then(|d| d.name().ok());
        for device in devices(&host, direction)? {
            // A device whose name cannot be read cannot be opened by name either; skip it.
            let Ok(name) = device.name() else { continue };
            let (default, ranges) = match direction {
                DeviceDirection::Input => (
                    device.default_input_config().ok(),
                    device
                        .supported_input_configs()
                        .map(|r| r.collect::<Vec<_>>())
                        .unwrap_or_default(),
                ),
                DeviceDirection::Output => (
                    device.default_output_config().ok(),
                    device
                        .supported_output_configs()
                        .map(|r| r.collect::<Vec<_>>())
                        .unwrap_or_default(),
                ),
            };
            out.push(DeviceInfo {
                is_default: default_name.as_deref() == Some(name.as_str()),
                name,
                direction,
                default_rate: default.as_ref().map(|c| c.sample_rate().0),
                default_channels: default.as_ref().map(|c| c.channels()),
                supported: ranges
                    .iter()
                    .map(|r| SupportedRange {
                        channels: r.channels(),
                        min_rate: r.min_sample_rate().0,
                        max_rate: r.max_sample_rate().0,
                        sample_format: r.sample_format().to_string(),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

fn devices(host: &cpal::Host, direction: DeviceDirection) -> Result<Vec<cpal::Device>> {
    match direction {
        DeviceDirection::Input => host.input_devices().map(|d| d.collect()),
        DeviceDirection::Output => host.output_devices().map(|d| d.collect()),
    }
    .map_err(|e| device_err("listing devices", e))
}

fn default_device(host: &cpal::Host, direction: DeviceDirection) -> Option<cpal::Device> {
    match direction {
        DeviceDirection::Input => host.default_input_device(),
        DeviceDirection::Output => host.default_output_device(),
    }
}

/// The device called `name`, or the default one.
fn find_device(direction: DeviceDirection, name: Option<&str>) -> Result<cpal::Device> {
    let host = cpal::default_host();
    let Some(name) = name else {
        return default_device(&host, direction).ok_or(AudioError::NoDefaultDevice {
            direction: direction.as_str(),
        });
    };
    let all = devices(&host, direction)?;
    let mut available = Vec::with_capacity(all.len());
    for device in all {
        match device.name() {
            Ok(n) if n == name => return Ok(device),
            Ok(n) => available.push(n),
            Err(_) => {}
        }
    }
    Err(AudioError::DeviceNotFound {
        direction: direction.as_str(),
        name: name.to_string(),
        available,
    })
}

/// A running sound-card capture; dropping it closes the stream.
pub struct CaptureDevice {
    name: String,
    _handle: StreamHandle,
}

impl CaptureDevice {
    /// Opens the input device called `name` (or the default one) at its default config and
    /// starts capturing into a [`CAPTURE_RING_MS`] ring.
    pub fn open(name: Option<&str>) -> Result<(Self, Capture)> {
        let name = name.map(str::to_string);
        let (handle, (capture, name)) = run_device_thread("capture-device", move |errors| {
            let device = find_device(DeviceDirection::Input, name.as_deref())?;
            let device_name = device.name().unwrap_or_default();
            let supported = device
                .default_input_config()
                .map_err(|e| device_err("reading default input config", e))?;
            let config = supported.config();
            let rate = config.sample_rate.0;
            let channels = config.channels;
            let counters = Arc::new(AudioCounters::new());
            let (writer, reader) = audio_ring_interleaved(
                ms_to_samples(CAPTURE_RING_MS, rate) as usize,
                channels,
                Arc::clone(&counters),
            );
            let stream = build_input(
                &device,
                &config,
                supported.sample_format(),
                writer,
                Arc::clone(&counters),
                errors,
            )?;
            let capture = Capture {
                reader,
                rate,
                channels,
                counters,
            };
            Ok((stream, (capture, device_name)))
        })?;
        Ok((
            Self {
                name,
                _handle: handle,
            },
            capture,
        ))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A running sound-card playback; dropping it closes the stream.
pub struct PlaybackDevice {
    name: String,
    _handle: StreamHandle,
}

impl PlaybackDevice {
    /// Opens the output device called `name` (or the default one) at its default config and
    /// starts playing from a [`PLAYBACK_RING_MS`] ring (silence, counted as underrun, while it
    /// is empty).
    pub fn open(name: Option<&str>) -> Result<(Self, Playback)> {
        let name = name.map(str::to_string);
        let (handle, (playback, name)) = run_device_thread("playback-device", move |errors| {
            let device = find_device(DeviceDirection::Output, name.as_deref())?;
            let device_name = device.name().unwrap_or_default();
            let supported = device
                .default_output_config()
                .map_err(|e| device_err("reading default output config", e))?;
            let config = supported.config();
            let rate = config.sample_rate.0;
            let channels = config.channels;
            let counters = Arc::new(AudioCounters::new());
            let (writer, reader) = audio_ring_interleaved(
                ms_to_samples(PLAYBACK_RING_MS, rate) as usize,
                channels,
                Arc::clone(&counters),
            );
            let stream = build_output(
                &device,
                &config,
                supported.sample_format(),
                reader,
                Arc::clone(&counters),
                errors,
            )?;
            let playback = Playback {
                writer,
                rate,
                channels,
                counters,
            };
            Ok((stream, (playback, device_name)))
        })?;
        Ok((
            Self {
                name,
                _handle: handle,
            },
            playback,
        ))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Runs `open` on a new thread that then keeps the stream alive until stopped, logging stream
/// errors as they come. Returns once the stream is playing (or failed to start).
fn run_device_thread<T: Send + 'static>(
    thread_name: &'static str,
    open: impl FnOnce(SyncSender<String>) -> Result<(cpal::Stream, T)> + Send + 'static,
) -> Result<(StreamHandle, T)> {
    let (ready_tx, ready_rx) = sync_channel::<Result<T>>(1);
    let handle = StreamHandle::spawn(thread_name, move |stop| {
        let (error_tx, error_rx) = sync_channel::<String>(ERROR_QUEUE);
        let stream = match open(error_tx).and_then(|(stream, value)| {
            stream
                .play()
                .map_err(|e| device_err("starting stream", e))?;
            Ok((stream, value))
        }) {
            Ok((stream, value)) => {
                // The opener waits on this channel; if it is gone there is no one to serve.
                if ready_tx.send(Ok(value)).is_err() {
                    return;
                }
                stream
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        while !stop.load(Ordering::Acquire) {
            log_stream_errors(thread_name, &error_rx);
            std::thread::park_timeout(DEVICE_THREAD_POLL);
        }
        log_stream_errors(thread_name, &error_rx);
        drop(stream);
    })?;
    match ready_rx.recv() {
        Ok(Ok(value)) => Ok((handle, value)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(device_err(
            "starting stream",
            "device thread ended before the stream started",
        )),
    }
}

fn log_stream_errors(thread_name: &str, errors: &Receiver<String>) {
    while let Ok(message) = errors.try_recv() {
        tracing::warn!("{thread_name}: stream error: {message}");
    }
}

/// The error callback: count, and hand the message to the device thread (dropped if its queue is
/// full; the counter still has it).
fn error_callback(
    counters: Arc<AudioCounters>,
    errors: SyncSender<String>,
) -> impl FnMut(cpal::StreamError) + Send + 'static {
    move |e| {
        counters.add_stream_error();
        match errors.try_send(e.to_string()) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn build_input(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    format: SampleFormat,
    writer: RingWriter,
    counters: Arc<AudioCounters>,
    errors: SyncSender<String>,
) -> Result<cpal::Stream> {
    match format {
        SampleFormat::I8 => input_stream::<i8>(device, config, writer, counters, errors),
        SampleFormat::I16 => input_stream::<i16>(device, config, writer, counters, errors),
        SampleFormat::I24 => input_stream::<cpal::I24>(device, config, writer, counters, errors),
        SampleFormat::I32 => input_stream::<i32>(device, config, writer, counters, errors),
        SampleFormat::I64 => input_stream::<i64>(device, config, writer, counters, errors),
        SampleFormat::U8 => input_stream::<u8>(device, config, writer, counters, errors),
        SampleFormat::U16 => input_stream::<u16>(device, config, writer, counters, errors),
        SampleFormat::U32 => input_stream::<u32>(device, config, writer, counters, errors),
        SampleFormat::U64 => input_stream::<u64>(device, config, writer, counters, errors),
        SampleFormat::F32 => input_stream::<f32>(device, config, writer, counters, errors),
        SampleFormat::F64 => input_stream::<f64>(device, config, writer, counters, errors),
        other => Err(device_err(
            "building input stream",
            format!("unsupported sample format {other}"),
        )),
    }
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut writer: RingWriter,
    counters: Arc<AudioCounters>,
    errors: SyncSender<String>,
) -> Result<cpal::Stream>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let callback_counters = Arc::clone(&counters);
    device
        .build_input_stream(
            config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                // Real-time: count, convert and copy; overrun is counted by the ring.
                callback_counters.add_callback();
                callback_counters.add_captured(data.len() as u64);
                writer.push_map(data, |s| s.to_sample::<f32>());
            },
            error_callback(counters, errors),
            None,
        )
        .map_err(|e| device_err("building input stream", e))
}

fn build_output(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    format: SampleFormat,
    reader: RingReader,
    counters: Arc<AudioCounters>,
    errors: SyncSender<String>,
) -> Result<cpal::Stream> {
    match format {
        SampleFormat::I8 => output_stream::<i8>(device, config, reader, counters, errors),
        SampleFormat::I16 => output_stream::<i16>(device, config, reader, counters, errors),
        SampleFormat::I24 => output_stream::<cpal::I24>(device, config, reader, counters, errors),
        SampleFormat::I32 => output_stream::<i32>(device, config, reader, counters, errors),
        SampleFormat::I64 => output_stream::<i64>(device, config, reader, counters, errors),
        SampleFormat::U8 => output_stream::<u8>(device, config, reader, counters, errors),
        SampleFormat::U16 => output_stream::<u16>(device, config, reader, counters, errors),
        SampleFormat::U32 => output_stream::<u32>(device, config, reader, counters, errors),
        SampleFormat::U64 => output_stream::<u64>(device, config, reader, counters, errors),
        SampleFormat::F32 => output_stream::<f32>(device, config, reader, counters, errors),
        SampleFormat::F64 => output_stream::<f64>(device, config, reader, counters, errors),
        other => Err(device_err(
            "building output stream",
            format!("unsupported sample format {other}"),
        )),
    }
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut reader: RingReader,
    counters: Arc<AudioCounters>,
    errors: SyncSender<String>,
) -> Result<cpal::Stream>
where
    T: SizedSample + FromSample<f32>,
{
    let callback_counters = Arc::clone(&counters);
    device
        .build_output_stream(
            config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                // Real-time: copy out and convert; silence for what is missing. The ring counts
                // played and underrun samples.
                callback_counters.add_callback();
                reader.fill_or_silence_map(data, T::from_sample);
            },
            error_callback(counters, errors),
            None,
        )
        .map_err(|e| device_err("building output stream", e))
}
