//! Opus for mono 20 ms frames at 24 or 48 kHz, on libopus through the `opus` crate.
//!
//! The decoder takes each packet with its sequence number. Missing numbers since the previous
//! packet are concealed with libopus packet-loss concealment, one 20 ms frame per missing packet,
//! so the decoded audio keeps its length and timing. Concealment is bounded
//! ([`MAX_CONCEALED_FRAMES`]): a larger jump is treated as a new stream (the decoder is reset and
//! nothing is invented), so a bogus sequence number cannot make it allocate without limit. Late
//! or duplicate packets (sequence numbers at or before the last one, with wrap-around) are
//! dropped.

use crate::constants::frame_samples;
use crate::error::{AudioError, Result};

/// Most frames concealed for one gap (1 s).
pub const MAX_CONCEALED_FRAMES: u32 = 50;
/// Default encoder bitrate: comfortable for wideband/fullband speech.
pub const DEFAULT_BITRATE: i32 = 48_000;
// The encoder uses libopus' "audio" application (CELT at these bitrates): it keeps the waveform
// (about 25 dB SNR on speech at 48 kb/s, 20 ms, 10 ms less delay than SILK's), while the "voip"
// application's SILK coder sounds fine but does not follow the waveform (about 7 dB SNR).
/// Largest Opus packet (120 ms) at 48 kHz, in samples: the decoder's scratch size, so a packet
/// from another encoder with longer frames still decodes.
const MAX_PACKET_SAMPLES: usize = 5760;
/// Recommended upper bound for one encoded packet.
const MAX_PACKET_BYTES: usize = 4000;

fn check_rate(rate: u32, what: &'static str) -> Result<()> {
    match rate {
        24_000 | 48_000 => Ok(()),
        _ => Err(AudioError::UnsupportedRate { what, rate }),
    }
}

/// Encodes mono 20 ms frames.
pub struct OpusEncoder {
    encoder: opus::Encoder,
    rate: u32,
    frame: usize,
    packet: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder at `rate` (24000 or 48000) and [`DEFAULT_BITRATE`].
    pub fn new(rate: u32) -> Result<Self> {
        Self::with_bitrate(rate, DEFAULT_BITRATE)
    }

    /// Like [`new`](Self::new) with an explicit bitrate in bits per second.
    pub fn with_bitrate(rate: u32, bitrate: i32) -> Result<Self> {
        check_rate(rate, "Opus encoder")?;
        let mut encoder = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        Ok(Self {
            encoder,
            rate,
            frame: frame_samples(rate),
            packet: vec![0; MAX_PACKET_BYTES],
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples per frame (20 ms).
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// The encoder's look-ahead in samples: decoded audio lags the input by this much.
    pub fn lookahead(&mut self) -> Result<usize> {
        Ok(self.encoder.get_lookahead()?.max(0) as usize)
    }

    /// Encodes exactly one 20 ms frame into one packet.
    pub fn encode_frame(&mut self, frame: &[f32]) -> Result<Vec<u8>> {
        if frame.len() != self.frame {
            return Err(AudioError::OpusFrameLength {
                expected: self.frame,
                got: frame.len(),
            });
        }
        let len = self.encoder.encode_float(frame, &mut self.packet)?;
        Ok(self.packet[..len].to_vec())
    }
}

/// What [`OpusDecoder::decode`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOutcome {
    /// Frames synthesised by packet-loss concealment before this packet.
    pub concealed_frames: u32,
    /// The packet was late or a duplicate and was ignored.
    pub dropped: bool,
    /// The gap was too large to conceal; the decoder was reset instead.
    pub reset: bool,
    /// Samples the packet itself decoded to.
    pub decoded_samples: usize,
}

/// Decodes mono packets, concealing lost ones.
pub struct OpusDecoder {
    decoder: opus::Decoder,
    rate: u32,
    frame: usize,
    last_seq: Option<u32>,
    scratch: Vec<f32>,
}

impl OpusDecoder {
    /// A decoder at `rate` (24000 or 48000).
    pub fn new(rate: u32) -> Result<Self> {
        check_rate(rate, "Opus decoder")?;
        Ok(Self {
            decoder: opus::Decoder::new(rate, opus::Channels::Mono)?,
            rate,
            frame: frame_samples(rate),
            last_seq: None,
            scratch: vec![0.0; MAX_PACKET_SAMPLES * rate as usize / 48_000],
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decodes packet number `seq` and appends its samples to `out`, first concealing any packets
    /// missing since the previous one. An empty `packet` counts as lost and is concealed. A
    /// corrupt packet returns an error after the concealment of the gap before it; the packet
    /// itself is then concealed like a lost one when the next good packet arrives.
    pub fn decode(&mut self, seq: u32, packet: &[u8], out: &mut Vec<f32>) -> Result<DecodeOutcome> {
        let mut outcome = DecodeOutcome {
            concealed_frames: 0,
            dropped: false,
            reset: false,
            decoded_samples: 0,
        };
        let mut missing = 0;
        if let Some(last) = self.last_seq {
            // Wrapping difference read as signed: 0 or negative means late or duplicate.
            let ahead = seq.wrapping_sub(last) as i32;
            if ahead <= 0 {
                outcome.dropped = true;
                return Ok(outcome);
            }
            missing = ahead as u32 - 1;
        }
        if missing > MAX_CONCEALED_FRAMES {
            // Too far ahead to be a few lost packets: start over rather than invent a long gap.
            self.decoder.reset_state()?;
            outcome.reset = true;
            missing = 0;
        }
        for _ in 0..missing {
            self.conceal_into(out)?;
        }
        outcome.concealed_frames = missing;
        if packet.is_empty() {
            self.conceal_into(out)?;
            outcome.concealed_frames += 1;
            self.last_seq = Some(seq);
            return Ok(outcome);
        }
        // The gap is filled: if the packet turns out corrupt, the next one sees only it missing.
        self.last_seq = Some(seq.wrapping_sub(1));
        let n = self
            .decoder
            .decode_float(packet, &mut self.scratch, false)?;
        out.extend_from_slice(&self.scratch[..n]);
        outcome.decoded_samples = n;
        self.last_seq = Some(seq);
        Ok(outcome)
    }

    /// Conceals one explicitly lost packet (20 ms of PLC) and counts it in the sequence, so the
    /// next [`decode`](Self::decode) of `lost_seq + 1` sees no gap.
    pub fn decode_lost(&mut self, out: &mut Vec<f32>) -> Result<()> {
        self.conceal_into(out)?;
        if let Some(last) = self.last_seq.as_mut() {
            *last = last.wrapping_add(1);
        }
        Ok(())
    }

    fn conceal_into(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let n = self
            .decoder
            .decode_float(&[], &mut self.scratch[..self.frame], false)?;
        out.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }
}
