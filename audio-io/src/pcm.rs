//! PCM conversions. Inside parley audio is mono `f32` in [-1, 1]; on the wire and in files it is
//! 16-bit little-endian. These are the only conversion helpers: the protocol, the devices and the
//! WAV code all call them.

/// Converts one `f32` sample to `i16`, clamping out-of-range values instead of wrapping.
#[inline]
pub fn f32_to_i16(sample: f32) -> i16 {
    // 32767 (not 32768) so +1.0 maps to i16::MAX and the mapping stays symmetric.
    (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Converts one `i16` sample to `f32` in [-1, 1].
#[inline]
pub fn i16_to_f32(sample: i16) -> f32 {
    (sample as f32 / 32767.0).max(-1.0)
}

/// Appends `samples` as PCM16 little-endian bytes to `out`.
pub fn f32_to_pcm16_le(samples: &[f32], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for &s in samples {
        out.extend_from_slice(&f32_to_i16(s).to_le_bytes());
    }
}

/// Appends the samples of PCM16 little-endian `bytes` to `out`. A trailing odd byte cannot be a
/// sample; it is reported as an error rather than silently dropped.
pub fn pcm16_le_to_f32(bytes: &[u8], out: &mut Vec<f32>) -> Result<(), OddByteCount> {
    if !bytes.len().is_multiple_of(2) {
        return Err(OddByteCount(bytes.len()));
    }
    out.reserve(bytes.len() / 2);
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|b| i16_to_f32(i16::from_le_bytes([b[0], b[1]]))),
    );
    Ok(())
}

/// PCM16 data must have an even number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("PCM16 data has an odd number of bytes ({0}); each sample is 2 bytes")]
pub struct OddByteCount(pub usize);

/// Mixes interleaved multi-channel audio down to mono by averaging the channels.
pub fn downmix_to_mono(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// Spreads mono audio over `channels` interleaved channels (each sample copied to every channel).
pub fn upmix_from_mono(mono: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(mono);
        return;
    }
    out.reserve(mono.len() * channels);
    for &s in mono {
        out.extend(std::iter::repeat_n(s, channels));
    }
}

/// Root-mean-square level of `samples` (0 for an empty slice).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_round_trip_is_exact_for_every_i16() {
        for v in i16::MIN + 1..=i16::MAX {
            assert_eq!(f32_to_i16(i16_to_f32(v)), v);
        }
        assert_eq!(f32_to_i16(i16_to_f32(i16::MIN)), -32767);
    }

    #[test]
    fn out_of_range_samples_clamp() {
        assert_eq!(f32_to_i16(3.0), i16::MAX);
        assert_eq!(f32_to_i16(-3.0), -i16::MAX);
        assert_eq!(f32_to_i16(0.0), 0);
    }

    #[test]
    fn bytes_round_trip_and_odd_lengths_fail() {
        let samples = [0.0, 0.5, -0.5, 1.0, -1.0];
        let mut bytes = Vec::new();
        f32_to_pcm16_le(&samples, &mut bytes);
        assert_eq!(bytes.len(), 10);
        let mut back = Vec::new();
        pcm16_le_to_f32(&bytes, &mut back).unwrap();
        for (a, b) in samples.iter().zip(&back) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert_eq!(
            pcm16_le_to_f32(&bytes[..3], &mut back),
            Err(OddByteCount(3))
        );
    }

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix_to_mono(&[1.0, 0.0, 0.5, 0.5], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5]);
    }

    #[test]
    fn upmix_copies_to_every_channel() {
        let mut out = Vec::new();
        upmix_from_mono(&[0.25, -1.0], 3, &mut out);
        assert_eq!(out, vec![0.25, 0.25, 0.25, -1.0, -1.0, -1.0]);
        let mut back = Vec::new();
        downmix_to_mono(&out, 3, &mut back);
        assert_eq!(back, vec![0.25, -1.0]);
    }
}
