//! The virtual mic and speaker: complete, ordered delivery at real-time pace, silence and
//! underrun counting on an empty ring.

mod common;

use parley_audio_io::{
    AfterEnd, Capture, Pace, VirtualMic, VirtualMicConfig, VirtualSpeaker, VirtualSpeakerConfig,
};
use std::time::{Duration, Instant};

/// A source whose every sample is distinct, so loss, duplication and reordering all show.
fn counting(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i + 1) as f32 / n as f32).collect()
}

/// Drains `capture` until `done()` and the ring is empty, or the timeout passes.
fn drain(capture: &mut Capture, mut done: impl FnMut() -> bool, timeout: Duration) -> Vec<f32> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = vec![0.0; 777];
    loop {
        let n = capture.reader.pop_into(&mut buf);
        got.extend_from_slice(&buf[..n]);
        if n == 0 {
            if done() && capture.reader.available() == 0 {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out with {} samples",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn real_time_mic_delivers_everything_in_order_at_real_time_pace() {
    let rate = 16_000;
    let source = counting(rate as usize + 123); // 1.0077 s, not a whole number of frames
    let started = Instant::now();
    let (mic, mut capture) =
        VirtualMic::start(source.clone(), VirtualMicConfig::new(rate)).unwrap();
    assert_eq!((capture.rate, capture.channels), (rate, 1));
    let got = drain(&mut capture, || mic.is_finished(), Duration::from_secs(30));
    let elapsed = started.elapsed();
    assert_eq!(got, source);
    // Only a lower bound: a loaded machine may be slower, never faster than real time.
    assert!(
        elapsed >= Duration::from_millis(800),
        "took {elapsed:?} for 1 s of audio"
    );
    let s = capture.counters.snapshot();
    assert_eq!(s.overrun_samples, 0);
    assert_eq!(s.samples_captured, source.len() as u64);
    assert_eq!(s.callbacks, 51, "50 full frames and a partial one");
}

#[test]
fn fast_mic_waits_for_room_instead_of_overrunning_a_small_ring() {
    let mut config = VirtualMicConfig::new(48_000);
    config.channels = 2;
    config.pace = Pace::AsFastAsPossible;
    config.ring_ms = 30; // smaller than the source by far
    let source = counting(48_000 * 2 * 2);
    let started = Instant::now();
    let (mic, mut capture) = VirtualMic::start(source.clone(), config).unwrap();
    let got = drain(&mut capture, || mic.is_finished(), Duration::from_secs(30));
    assert_eq!(got, source);
    assert_eq!(capture.counters.snapshot().overrun_samples, 0);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn mic_with_silence_forever_pads_and_keeps_going() {
    let mut config = VirtualMicConfig::new(16_000);
    config.pace = Pace::AsFastAsPossible;
    config.after_end = AfterEnd::SilenceForever;
    config.ring_ms = 100;
    let source = counting(500); // one and a half 320-sample frames
    let (mic, mut capture) = VirtualMic::start(source.clone(), config).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0.0; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 3000 {
        assert!(Instant::now() < deadline);
        let n = capture.reader.pop_into(&mut buf);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(mic.source_done() && !mic.is_finished());
    assert_eq!(&got[..500], &source[..]);
    assert!(got[500..].iter().all(|&s| s == 0.0));
    // Whole frames: the capture clock advances in 320-sample steps.
    mic.stop();
    let captured = capture.counters.samples_captured();
    assert_eq!(captured % 320, 0, "{captured}");
}

#[test]
fn mic_plays_a_wav_file() {
    let file = common::TempFile::new("mic.wav");
    let source: Vec<f32> = (0..3200)
        .map(|i| ((i % 100) as f32 - 50.0) / 100.0)
        .collect();
    parley_audio_io::write_wav(&file.0, &source, 16_000).unwrap();
    let mut config = VirtualMicConfig::new(16_000);
    config.pace = Pace::AsFastAsPossible;
    config.channels = 2;
    let (mic, mut capture) = VirtualMic::from_wav(&file.0, config).unwrap();
    let got = drain(&mut capture, || mic.is_finished(), Duration::from_secs(10));
    assert_eq!(got.len(), 6400);
    for (frame, &s) in got.chunks_exact(2).zip(&source) {
        assert!((frame[0] - s).abs() < 1e-4 && frame[0] == frame[1]);
    }
    assert!(VirtualMic::from_wav(common::temp_path("nope.wav"), config).is_err());
}

#[test]
fn speaker_on_an_empty_ring_records_silence_and_counts_underruns() {
    let (speaker, _playback) = VirtualSpeaker::start(VirtualSpeakerConfig::new(24_000)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = speaker.counters().snapshot();
    let rec = speaker.recording();
    let s = speaker.counters().snapshot();
    assert!(
        rec.len() >= 5 * 480,
        "only {} samples after 200 ms",
        rec.len()
    );
    assert_eq!(rec.len() % 480, 0, "whole 20 ms frames");
    assert!(rec.iter().all(|&x| x == 0.0));
    assert_eq!(s.samples_played, 0);
    // Every recorded sample was underrun silence: the counter is bumped just before a tick is
    // recorded, so it is at most one tick ahead of the recording.
    assert!(s.underrun_samples >= rec.len() as u64);
    assert!(before.underrun_samples <= rec.len() as u64 + 480);
    assert_eq!(s.callbacks * 480, s.underrun_samples);
}

#[test]
fn speaker_plays_what_is_written_in_order_then_underruns() {
    let (speaker, mut playback) = VirtualSpeaker::start(VirtualSpeakerConfig::new(16_000)).unwrap();
    let audio = counting(1600); // 100 ms, fits the 200 ms ring
    assert_eq!(playback.writer.push(&audio), 1600);
    let deadline = Instant::now() + Duration::from_secs(10);
    while speaker.samples_played() < 1600 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(60));
    let rec = speaker.recording();
    let start = rec.iter().position(|&x| x != 0.0).unwrap();
    assert_eq!(&rec[start..start + 1600], &audio[..]);
    assert!(rec[start + 1600..].iter().all(|&x| x == 0.0));
    assert_eq!(speaker.samples_played(), 1600);
    let s = speaker.counters().snapshot();
    assert!(s.underrun_samples >= (rec.len() - 1600) as u64);
}

#[test]
fn fast_speaker_drains_without_inventing_silence() {
    let mut config = VirtualSpeakerConfig::new(48_000);
    config.pace = Pace::AsFastAsPossible;
    let (speaker, mut playback) = VirtualSpeaker::start(config).unwrap();
    let audio = counting(100_000);
    let mut pos = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pos < audio.len() {
        assert!(Instant::now() < deadline);
        let n = playback.writer.free_slots().min(audio.len() - pos);
        pos += playback.writer.push(&audio[pos..pos + n]);
    }
    while speaker.samples_played() < audio.len() as u64 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(speaker.recording(), audio);
    assert_eq!(speaker.underrun_samples(), 0);
}
