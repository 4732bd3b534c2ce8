//! WAV files: read any PCM integer (8/16/24/32-bit) or 32-bit float file as mono `f32`, optionally
//! resampled; write 16-bit mono. Every error names the file.

use crate::error::{AudioError, Result};
use crate::pcm::{downmix_to_mono, f32_to_i16, i16_to_f32};
use crate::resample::resample_buffer;
use std::path::Path;

/// Reads a WAV file as mono (channels averaged) at its own sample rate; returns the samples and
/// the rate.
pub fn read_wav_native(path: impl AsRef<Path>) -> Result<(Vec<f32>, u32)> {
    let path = path.as_ref();
    let wav_err = |source| AudioError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(AudioError::InvalidWav {
            path: path.to_path_buf(),
            problem: format!(
                "header says {} Hz, {} channels",
                spec.sample_rate, spec.channels
            ),
        });
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(wav_err)?,
        // The same i16 -> f32 mapping as the rest of parley, so 16-bit files round-trip exactly.
        (hound::SampleFormat::Int, 16) => reader
            .samples::<i16>()
            .map(|s| s.map(i16_to_f32))
            .collect::<Result<_, _>>()
            .map_err(wav_err)?,
        (hound::SampleFormat::Int, bits @ (8 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(wav_err)?
        }
        (format, bits) => {
            return Err(AudioError::UnsupportedWavFormat {
                path: path.to_path_buf(),
                bits,
                format: match format {
                    hound::SampleFormat::Float => "float",
                    hound::SampleFormat::Int => "integer",
                },
            });
        }
    };
    let mut mono = Vec::with_capacity(interleaved.len() / usize::from(spec.channels.max(1)));
    downmix_to_mono(&interleaved, usize::from(spec.channels), &mut mono);
    Ok((mono, spec.sample_rate))
}

/// Reads a WAV file as mono at `target_rate`. The resampled length is exactly
/// `round(len * target_rate / file_rate)` and aligned with the original (resampler delay trimmed).
pub fn read_wav(path: impl AsRef<Path>, target_rate: u32) -> Result<Vec<f32>> {
    let (mono, rate) = read_wav_native(path)?;
    resample_buffer(&mono, rate, target_rate)
}

/// Writes `samples` as a 16-bit mono WAV file at `rate` (values outside [-1, 1] are clamped).
pub fn write_wav(path: impl AsRef<Path>, samples: &[f32], rate: u32) -> Result<()> {
    let path = path.as_ref();
    let wav_err = |source| AudioError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    for &s in samples {
        writer.write_sample(f32_to_i16(s)).map_err(wav_err)?;
    }
    writer.finalize().map_err(wav_err)
}
