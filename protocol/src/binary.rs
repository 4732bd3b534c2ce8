//! parley's binary audio frames: one WebSocket binary message = a 20-byte header + payload.
//!
//! ```text
//! offset size  field      value
//!      0    1  magic      0x50 ('P')
//!      1    1  version    1
//!      2    1  kind       1 = PCM16, 2 = Opus, 3 = end of audio
//!      3    1  flags      bit 0 = discontinuity; other bits reserved (send 0, ignore)
//!      4    4  sequence   u32 LE, +1 per frame in each direction, wraps
//!      8    8  timestamp  u64 LE, index at 24 kHz of the frame's first sample in its stream
//!     16    4  stream_id  u32 LE, 0 for client input; server audio: response.parley.audio_stream_id
//!     20    n  payload    PCM16 LE mono 24 kHz (even, > 0 bytes) | one Opus packet (> 0 bytes)
//!                         | nothing (end of audio)
//! ```
//!
//! Binary frames are only valid once `session.updated` has confirmed
//! `parley.binary_audio.enabled` (see the README for the negotiation).

use parley_audio_io::pcm;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// First header byte: lets a receiver reject binary messages that are not parley frames.
pub const MAGIC: u8 = 0x50;
/// The header layout version this code reads and writes.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 20;
/// Flag: the sender skipped audio before this frame, so it does not continue the previous one.
pub const FLAG_DISCONTINUITY: u8 = 0x01;

/// What the payload of a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// PCM16 little-endian mono samples at 24 kHz.
    Pcm16 = 1,
    /// One Opus packet (24 kHz mono), no Ogg framing.
    Opus = 2,
    /// No payload: the stream ends here. `timestamp` is the stream's total length in samples.
    EndOfAudio = 3,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(FrameKind::Pcm16),
            2 => Some(FrameKind::Opus),
            3 => Some(FrameKind::EndOfAudio),
            _ => None,
        }
    }
}

/// The codec of binary audio, chosen in `session.parley.binary_audio.codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryCodec {
    #[default]
    Pcm16,
    Opus,
}

impl BinaryCodec {
    /// The frame kind that carries audio in this codec.
    pub const fn frame_kind(self) -> FrameKind {
        match self {
            BinaryCodec::Pcm16 => FrameKind::Pcm16,
            BinaryCodec::Opus => FrameKind::Opus,
        }
    }
}

/// A binary frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("binary frame of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    #[error("binary frame starts with 0x{0:02x}, not the parley magic 0x50")]
    BadMagic(u8),
    #[error("binary frame version {0} is not supported (this side speaks version {VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown binary frame kind {0}")]
    UnknownKind(u8),
    #[error("{0:?} frame has an empty payload")]
    EmptyPayload(FrameKind),
    #[error("PCM16 payload has an odd number of bytes ({0})")]
    OddPcmLength(usize),
    #[error("end-of-audio frame carries {0} payload bytes; it must carry none")]
    PayloadOnEndOfAudio(usize),
    #[error("{0:?} frame does not carry PCM16 samples")]
    NotPcm16(FrameKind),
}

/// One binary audio frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    pub kind: FrameKind,
    /// See [`FLAG_DISCONTINUITY`]. Unknown bits are kept, not interpreted.
    pub flags: u8,
    pub sequence: u32,
    /// Sample index at 24 kHz of the first sample, counted from the start of the stream.
    pub timestamp: u64,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

impl AudioFrame {
    /// A PCM16 frame holding `samples` (converted from `f32`).
    pub fn pcm16(sequence: u32, timestamp: u64, stream_id: u32, samples: &[f32]) -> Self {
        let mut payload = Vec::with_capacity(samples.len() * 2);
        pcm::f32_to_pcm16_le(samples, &mut payload);
        AudioFrame {
            kind: FrameKind::Pcm16,
            flags: 0,
            sequence,
            timestamp,
            stream_id,
            payload,
        }
    }

    /// An Opus frame holding one encoded packet.
    pub fn opus(sequence: u32, timestamp: u64, stream_id: u32, packet: Vec<u8>) -> Self {
        AudioFrame {
            kind: FrameKind::Opus,
            flags: 0,
            sequence,
            timestamp,
            stream_id,
            payload: packet,
        }
    }

    /// The end-of-audio marker; `total_samples` is the stream's length.
    pub fn end_of_audio(sequence: u32, total_samples: u64, stream_id: u32) -> Self {
        AudioFrame {
            kind: FrameKind::EndOfAudio,
            flags: 0,
            sequence,
            timestamp: total_samples,
            stream_id,
            payload: Vec::new(),
        }
    }

    /// Header + payload, ready to send as one binary WebSocket message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends header + payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN + self.payload.len());
        out.push(MAGIC);
        out.push(VERSION);
        out.push(self.kind as u8);
        out.push(self.flags);
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.stream_id.to_le_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Parses a binary WebSocket message, checking the header and the payload's shape.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::TooShort(bytes.len()));
        }
        let (header, payload) = bytes.split_at(HEADER_LEN);
        if header[0] != MAGIC {
            return Err(FrameError::BadMagic(header[0]));
        }
        if header[1] != VERSION {
            return Err(FrameError::UnsupportedVersion(header[1]));
        }
        let kind = FrameKind::from_byte(header[2]).ok_or(FrameError::UnknownKind(header[2]))?;
        match kind {
            FrameKind::Pcm16 | FrameKind::Opus if payload.is_empty() => {
                return Err(FrameError::EmptyPayload(kind));
            }
            FrameKind::Pcm16 if !payload.len().is_multiple_of(2) => {
                return Err(FrameError::OddPcmLength(payload.len()));
            }
            FrameKind::EndOfAudio if !payload.is_empty() => {
                return Err(FrameError::PayloadOnEndOfAudio(payload.len()));
            }
            _ => {}
        }
        Ok(AudioFrame {
            kind,
            flags: header[3],
            sequence: u32::from_le_bytes([header[4], header[5], header[6], header[7]]),
            timestamp: u64::from_le_bytes([
                header[8], header[9], header[10], header[11], header[12], header[13], header[14],
                header[15],
            ]),
            stream_id: u32::from_le_bytes([header[16], header[17], header[18], header[19]]),
            payload: payload.to_vec(),
        })
    }

    /// Appends the samples of a PCM16 frame to `out`.
    pub fn append_pcm16_samples(&self, out: &mut Vec<f32>) -> Result<(), FrameError> {
        if self.kind != FrameKind::Pcm16 {
            return Err(FrameError::NotPcm16(self.kind));
        }
        pcm::pcm16_le_to_f32(&self.payload, out).map_err(|odd| FrameError::OddPcmLength(odd.0))
    }

    /// The samples of a PCM16 frame.
    pub fn pcm16_samples(&self) -> Result<Vec<f32>, FrameError> {
        let mut out = Vec::with_capacity(self.payload.len() / 2);
        self.append_pcm16_samples(&mut out)?;
        Ok(out)
    }

    pub fn is_discontinuity(&self) -> bool {
        self.flags & FLAG_DISCONTINUITY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_are_exactly_as_documented() {
        let frame = AudioFrame {
            kind: FrameKind::Pcm16,
            flags: FLAG_DISCONTINUITY,
            sequence: 0x0403_0201,
            timestamp: 0x0c0b_0a09_0807_0605,
            stream_id: 0x100f_0e0d,
            payload: vec![0xAA, 0xBB],
        };
        let bytes = frame.encode();
        assert_eq!(
            bytes,
            [
                0x50, 1, 1, 1, // magic, version, kind, flags
                0x01, 0x02, 0x03, 0x04, // sequence LE
                0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, // timestamp LE
                0x0d, 0x0e, 0x0f, 0x10, // stream_id LE
                0xAA, 0xBB, // payload
            ]
        );
        assert_eq!(AudioFrame::decode(&bytes).unwrap(), frame);
        assert!(frame.is_discontinuity());
    }

    #[test]
    fn the_readme_example_decodes() {
        let bytes = [
            0x50, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x3f, 0x00, 0xc0,
        ];
        let frame = AudioFrame::decode(&bytes).unwrap();
        assert_eq!(frame.kind, FrameKind::Pcm16);
        assert_eq!(
            (frame.sequence, frame.timestamp, frame.stream_id),
            (1, 480, 0)
        );
        let samples = frame.pcm16_samples().unwrap();
        assert_eq!(
            samples,
            vec![pcm::i16_to_f32(0x3fff), pcm::i16_to_f32(-0x4000)]
        );
    }

    #[test]
    fn every_kind_round_trips() {
        let samples: Vec<f32> = (0..480).map(|i| pcm::i16_to_f32(i * 60 - 14_000)).collect();
        let frames = [
            AudioFrame::pcm16(7, 480 * 7, 0, &samples),
            AudioFrame::opus(u32::MAX, u64::MAX, 3, vec![0xFC, 0xFF, 0xFE]),
            AudioFrame::end_of_audio(9, 123_456, 3),
        ];
        for frame in frames {
            let decoded = AudioFrame::decode(&frame.encode()).unwrap();
            assert_eq!(decoded, frame);
        }
        let decoded = AudioFrame::decode(&AudioFrame::pcm16(0, 0, 0, &samples).encode()).unwrap();
        assert_eq!(
            decoded.pcm16_samples().unwrap(),
            samples,
            "PCM16 values are exact"
        );
    }

    #[test]
    fn short_and_garbage_frames_are_rejected() {
        let good = AudioFrame::pcm16(1, 0, 0, &[0.5, -0.5]).encode();
        for len in 0..HEADER_LEN {
            assert_eq!(
                AudioFrame::decode(&good[..len]),
                Err(FrameError::TooShort(len))
            );
        }
        let mut bad = good.clone();
        bad[0] = b'{';
        assert_eq!(AudioFrame::decode(&bad), Err(FrameError::BadMagic(b'{')));
        let mut bad = good.clone();
        bad[1] = 2;
        assert_eq!(
            AudioFrame::decode(&bad),
            Err(FrameError::UnsupportedVersion(2))
        );
        let mut bad = good.clone();
        bad[2] = 0;
        assert_eq!(AudioFrame::decode(&bad), Err(FrameError::UnknownKind(0)));
        assert_eq!(
            AudioFrame::decode(&good[..HEADER_LEN + 3]),
            Err(FrameError::OddPcmLength(3))
        );
        assert_eq!(
            AudioFrame::decode(&good[..HEADER_LEN]),
            Err(FrameError::EmptyPayload(FrameKind::Pcm16))
        );
        let mut end = AudioFrame::end_of_audio(0, 0, 0).encode();
        end.push(1);
        assert_eq!(
            AudioFrame::decode(&end),
            Err(FrameError::PayloadOnEndOfAudio(1))
        );
        let opus = AudioFrame::opus(0, 0, 0, vec![1]);
        assert_eq!(
            opus.pcm16_samples(),
            Err(FrameError::NotPcm16(FrameKind::Opus))
        );
    }

    #[test]
    fn unknown_flag_bits_are_kept() {
        let mut bytes = AudioFrame::end_of_audio(0, 0, 0).encode();
        bytes[3] = 0b1000_0010;
        let frame = AudioFrame::decode(&bytes).unwrap();
        assert_eq!(frame.flags, 0b1000_0010);
        assert!(!frame.is_discontinuity());
    }
}
