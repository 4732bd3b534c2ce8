//! The energy rule on parley's real test utterances: the last speech sample it finds must sit
//! at the end of the speech that `assets/audio/manifest.json` records for each file.

use std::path::PathBuf;

use parley_audio_io::constants::WIRE_PCM_RATE;
use parley_client::Utterance;

fn audio_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/audio")
}

#[test]
fn last_speech_sample_matches_the_manifest_speech_end() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(audio_dir().join("manifest.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for file in manifest["files"].as_array().unwrap() {
        let Some(segments) = file["speech_segments_s"].as_array() else {
            continue; // noise: no speech to end
        };
        let first_start = segments[0][0].as_f64().unwrap();
        let last_end = segments.last().unwrap()[1].as_f64().unwrap();
        let name = file["file"].as_str().unwrap();
        // Loaded exactly as the driver loads it: resampled 16 -> 24 kHz.
        let u = Utterance::load(&audio_dir().join(name)).unwrap();
        let rate = f64::from(WIRE_PCM_RATE);
        let end = (u.speech.last_sample + 1) as f64 / rate;
        let start = u.speech.first_sample as f64 / rate;
        // Within 60 ms before the recorded end (a final phoneme can fade out below -40 dB: 45 ms
        // in q_spider_legs) and never after it
        // by more than a window.
        assert!(
            end > last_end - 0.060 && end <= last_end + 0.010,
            "{name}: speech ends at {end:.3} s by the energy rule, manifest says {last_end:.3} s"
        );
        assert!(
            start >= first_start - 0.010 && start < first_start + 0.060,
            "{name}: speech starts at {start:.3} s by the energy rule, manifest says {first_start:.3} s"
        );
        // The trailing silence the VAD needs is not counted as speech.
        let total = u.samples.len() as f64 / rate;
        if total - last_end > 0.1 {
            assert!(total - end > 0.1, "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} files checked");
}
