//! Audio carried inside JSON events: `audio/pcm` (16-bit little-endian mono, 24 kHz) encoded as
//! base64, as in `input_audio_buffer.append.audio` and `response.output_audio.delta.delta`.
//!
//! [`Pcm16Audio`] holds the decoded bytes, so an event is base64-decoded once, while it is
//! parsed, and a bad audio field is rejected at the door. Sample conversions are the ones in
//! `parley_audio_io::pcm`.

use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use parley_audio_io::constants::{WIRE_PCM_RATE, samples_to_ms};
use parley_audio_io::pcm::{self, OddByteCount};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Standard base64 alphabet. We write padding but accept input with or without it: some clients
/// strip it, and the bytes are unambiguous either way.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Every serde error raised by a bad audio field starts with this, so the parser can tell an
/// `invalid_audio` error from other field errors (see `parse.rs`).
pub(crate) const AUDIO_ERROR_PREFIX: &str = "invalid audio: ";

/// A base64 PCM16 field could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AudioError {
    #[error("audio is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error(transparent)]
    OddByteCount(#[from] OddByteCount),
}

/// PCM16 little-endian mono audio at [`WIRE_PCM_RATE`]. Invariant: an even number of bytes.
/// On the wire (serde) it is a base64 string.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Pcm16Audio {
    bytes: Vec<u8>,
}

impl Pcm16Audio {
    /// Converts `f32` samples in [-1, 1] (clamped) to PCM16.
    pub fn from_samples(samples: &[f32]) -> Self {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        pcm::f32_to_pcm16_le(samples, &mut bytes);
        Pcm16Audio { bytes }
    }

    /// Wraps PCM16 little-endian bytes.
    pub fn from_le_bytes(bytes: Vec<u8>) -> Result<Self, AudioError> {
        if !bytes.len().is_multiple_of(2) {
            return Err(OddByteCount(bytes.len()).into());
        }
        Ok(Pcm16Audio { bytes })
    }

    /// Decodes a base64 field.
    pub fn from_base64(text: &str) -> Result<Self, AudioError> {
        Self::from_le_bytes(BASE64.decode(text)?)
    }

    /// The base64 text for the wire.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    pub fn as_le_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_le_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn sample_count(&self) -> usize {
        self.bytes.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whole milliseconds of audio at the wire rate, rounded down.
    pub fn duration_ms(&self) -> u64 {
        samples_to_ms(self.sample_count() as u64, WIRE_PCM_RATE)
    }

    /// Appends the samples as `f32` to `out`.
    pub fn append_samples(&self, out: &mut Vec<f32>) {
        // Cannot fail: every constructor checks that the byte count is even.
        pcm::pcm16_le_to_f32(&self.bytes, out).expect("Pcm16Audio holds whole samples");
    }

    /// The samples as `f32`.
    pub fn to_samples(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.sample_count());
        self.append_samples(&mut out);
        out
    }
}

impl fmt::Debug for Pcm16Audio {
    // Audio can be megabytes; a length is what a log reader wants.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pcm16Audio({} samples)", self.sample_count())
    }
}

impl Serialize for Pcm16Audio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Pcm16Audio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Base64Visitor;

        impl serde::de::Visitor<'_> for Base64Visitor {
            type Value = Pcm16Audio;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string of PCM16 little-endian audio")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Pcm16Audio, E> {
                Pcm16Audio::from_base64(text)
                    .map_err(|e| E::custom(format_args!("{AUDIO_ERROR_PREFIX}{e}")))
            }
        }

        deserializer.deserialize_str(Base64Visitor)
    }
}

/// Encodes `f32` samples as the base64 PCM16 text of an audio field.
pub fn encode_audio_base64(samples: &[f32]) -> String {
    Pcm16Audio::from_samples(samples).to_base64()
}

/// Decodes the base64 PCM16 text of an audio field and appends the samples to `out`.
/// On error `out` is left as it was.
pub fn decode_audio_base64(text: &str, out: &mut Vec<f32>) -> Result<(), AudioError> {
    Pcm16Audio::from_base64(text)?.append_samples(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples that survive f32 -> i16 -> f32 exactly, so comparisons can be `==`.
    fn exact_samples(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| pcm::i16_to_f32(((i as i32 * 7919) % 65535 - 32767) as i16))
            .collect()
    }

    #[test]
    fn base64_round_trip_is_exact_for_pcm16_values() {
        let samples = exact_samples(480);
        let text = encode_audio_base64(&samples);
        // 480 samples = 960 bytes = 1280 base64 characters (the 20 ms figure in the docs).
        assert_eq!(text.len(), 1280);
        let mut back = vec![0.25]; // existing content must be kept
        decode_audio_base64(&text, &mut back).unwrap();
        assert_eq!(back[0], 0.25);
        assert_eq!(&back[1..], &samples[..]);
    }

    #[test]
    fn known_bytes_encode_to_known_text() {
        // 0x0001 and 0xFFFF little-endian: 1 and -1.
        let audio = Pcm16Audio::from_le_bytes(vec![0x01, 0x00, 0xFF, 0xFF]).unwrap();
        assert_eq!(audio.to_base64(), "AQD//w==");
        assert_eq!(Pcm16Audio::from_base64("AQD//w").unwrap(), audio); // unpadded is accepted
        assert_eq!(audio.sample_count(), 2);
    }

    #[test]
    fn bad_base64_and_odd_byte_counts_are_errors() {
        let mut out = vec![1.0];
        assert!(matches!(
            decode_audio_base64("not base64!", &mut out),
            Err(AudioError::Base64(_))
        ));
        // "AQID" is 3 bytes: one and a half samples.
        assert_eq!(
            decode_audio_base64("AQID", &mut out),
            Err(AudioError::OddByteCount(OddByteCount(3)))
        );
        assert_eq!(out, vec![1.0], "a failed decode must not touch the output");
    }

    #[test]
    fn serde_uses_base64_strings_and_reports_bad_audio_with_the_prefix() {
        let audio = Pcm16Audio::from_samples(&exact_samples(10));
        let json = serde_json::to_string(&audio).unwrap();
        assert_eq!(json, format!("\"{}\"", audio.to_base64()));
        assert_eq!(serde_json::from_str::<Pcm16Audio>(&json).unwrap(), audio);
        let err = serde_json::from_str::<Pcm16Audio>("\"AQID\"").unwrap_err();
        assert!(err.to_string().starts_with(AUDIO_ERROR_PREFIX), "{err}");
    }

    #[test]
    fn duration_is_measured_at_the_wire_rate() {
        let audio = Pcm16Audio::from_samples(&vec![0.0; 36_000]);
        assert_eq!(audio.duration_ms(), 1500);
    }
}
