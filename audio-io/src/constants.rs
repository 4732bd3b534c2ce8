//! The sample rates and frame sizes every part of parley agrees on. Change them here only.

/// Models hear 16 kHz mono (Silero VAD, Whisper, the Qwen2.5-Omni audio encoder).
pub const MODEL_INPUT_RATE: u32 = 16_000;
/// Talkers speak 24 kHz mono (hibari, Token2Wav), which is also the Realtime API's PCM rate.
pub const MODEL_OUTPUT_RATE: u32 = 24_000;
/// The Realtime API's `audio/pcm` rate on the wire.
pub const WIRE_PCM_RATE: u32 = 24_000;
/// Transport frame length: one Opus packet, one audio delta, one virtual-device tick.
pub const FRAME_MS: u32 = 20;

/// Samples in one transport frame at `rate`.
pub const fn frame_samples(rate: u32) -> usize {
    (rate as usize * FRAME_MS as usize) / 1000
}

/// Whole milliseconds covered by `samples` at `rate`, rounded down (what `audio_end_ms` wants).
pub const fn samples_to_ms(samples: u64, rate: u32) -> u64 {
    samples * 1000 / rate as u64
}

/// Samples covered by `ms` milliseconds at `rate`, rounded down.
pub const fn ms_to_samples(ms: u64, rate: u32) -> u64 {
    ms * rate as u64 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_match_the_rates() {
        assert_eq!(frame_samples(MODEL_INPUT_RATE), 320);
        assert_eq!(frame_samples(MODEL_OUTPUT_RATE), 480);
        assert_eq!(frame_samples(48_000), 960);
        assert_eq!(samples_to_ms(36_000, 24_000), 1500);
        assert_eq!(samples_to_ms(23, 24_000), 0);
        assert_eq!(ms_to_samples(300, 16_000), 4800);
    }
}
