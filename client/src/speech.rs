//! Where the speech is in a user WAV: the energy rule that finds its first and last speech
//! sample, so voice-to-voice latency is measured from the end of the words and not from the end
//! of the file's trailing silence.
//!
//! The rule: cut the audio into 10 ms windows and take each window's RMS. A window is speech
//! when its RMS is at least [`SPEECH_REL_DB`] (−40 dB) below the loudest window's RMS or louder,
//! and above the absolute floor [`SPEECH_FLOOR_RMS`] (−80 dBFS, so digital silence never
//! counts). The first speech sample is the first sample of the first speech window; the last
//! speech sample is the last sample of the last speech window. The rule assumes the file holds
//! speech: in a file of pure noise the noise is "speech".
//!
//! On parley's test utterances (`assets/audio`) this lands at most 45 ms before the speech ends in
//! `manifest.json`.

use parley_audio_io::pcm::rms;

/// Window length of the rule.
pub const SPEECH_WINDOW_MS: u32 = 10;
/// A window is speech when its RMS is within this many dB of the loudest window.
pub const SPEECH_REL_DB: f32 = -40.0;
/// Windows below this RMS are never speech (−80 dBFS).
pub const SPEECH_FLOOR_RMS: f32 = 1e-4;

/// The span of speech in a clip, in samples of the clip's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechBounds {
    /// Index of the first speech sample.
    pub first_sample: usize,
    /// Index of the last speech sample (inclusive).
    pub last_sample: usize,
}

/// Finds the speech in `samples` at `rate` with the energy rule above; `None` when no window
/// passes (silence, or an empty clip).
pub fn speech_bounds(samples: &[f32], rate: u32) -> Option<SpeechBounds> {
    let window = (rate as usize * SPEECH_WINDOW_MS as usize / 1000).max(1);
    let levels: Vec<f32> = samples.chunks(window).map(rms).collect();
    let peak = levels.iter().copied().fold(0.0f32, f32::max);
    let threshold = (peak * 10f32.powf(SPEECH_REL_DB / 20.0)).max(SPEECH_FLOOR_RMS);
    let is_speech = |level: &f32| *level >= threshold;
    let first = levels.iter().position(is_speech)?;
    let last = levels.iter().rposition(is_speech)?;
    Some(SpeechBounds {
        first_sample: first * window,
        last_sample: ((last + 1) * window).min(samples.len()) - 1,
    })
}

/// First 10 ms window of a chunk of answer audio that is audible (RMS at or above
/// [`AUDIBLE_RMS`]), as a sample offset into `samples`. Used for time to first *audible* answer
/// audio: a talker may start with silence.
pub fn first_audible_sample(samples: &[f32], rate: u32) -> Option<usize> {
    let window = (rate as usize * SPEECH_WINDOW_MS as usize / 1000).max(1);
    samples
        .chunks(window)
        .position(|w| rms(w) >= AUDIBLE_RMS)
        .map(|i| i * window)
}

/// Answer audio at or above this RMS (−50 dBFS) counts as audible.
pub const AUDIBLE_RMS: f32 = 0.003_162;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_a_tone_between_silences() {
        let rate = 24_000;
        let mut clip = vec![0.0f32; 2400]; // 100 ms silence
        clip.extend((0..4800).map(|i| 0.5 * (i as f32 * 0.1).sin())); // 200 ms tone
        clip.extend(vec![0.0f32; 7200]); // 300 ms silence
        let b = speech_bounds(&clip, rate).unwrap();
        assert_eq!(b.first_sample, 2400);
        assert_eq!(b.last_sample, 2400 + 4800 - 1);
    }

    #[test]
    fn quiet_tail_below_minus_40_db_is_not_speech_but_above_is() {
        let rate = 24_000;
        let mut clip: Vec<f32> = (0..2400).map(|i| 0.5 * (i as f32 * 0.3).sin()).collect();
        // -46 dB relative: not speech.
        clip.extend((0..2400).map(|i| 0.0025 * (i as f32 * 0.3).sin()));
        assert_eq!(speech_bounds(&clip, rate).unwrap().last_sample, 2399);
        // -34 dB relative: speech.
        clip.extend((0..2400).map(|i| 0.01 * (i as f32 * 0.3).sin()));
        assert_eq!(speech_bounds(&clip, rate).unwrap().last_sample, 7199);
    }

    #[test]
    fn silence_and_empty_have_no_speech() {
        assert_eq!(speech_bounds(&[], 24_000), None);
        assert_eq!(speech_bounds(&[0.0; 4800], 24_000), None);
        assert_eq!(speech_bounds(&[1e-6; 4800], 24_000), None);
    }

    #[test]
    fn first_audible_skips_leading_silence() {
        let mut a = vec![0.0f32; 960];
        a.extend(vec![0.1f32; 480]);
        assert_eq!(first_audible_sample(&a, 24_000), Some(960));
        assert_eq!(first_audible_sample(&[0.001; 480], 24_000), None);
    }
}
