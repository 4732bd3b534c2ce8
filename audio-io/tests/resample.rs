//! Streaming resampling: frequency kept, lengths exact after flush, latency as reported, chunking
//! irrelevant (bit-exact), no aliasing of out-of-band tones. Plus the resampling worker threads.

mod common;

use common::{fft_peak_hz, sine};
use parley_audio_io::{
    Capture, Pace, ResampleWorker, StreamResampler, VirtualMic, VirtualMicConfig, VirtualSpeaker,
    VirtualSpeakerConfig, resample_buffer,
};
use std::time::{Duration, Instant};

fn one_shot(input: &[f32], from: u32, to: u32) -> (Vec<f32>, Vec<f32>, usize) {
    let mut r = StreamResampler::new(from, to).unwrap();
    let mut before_flush = Vec::new();
    r.process(input, &mut before_flush).unwrap();
    let mut all = before_flush.clone();
    r.flush(&mut all).unwrap();
    (before_flush, all, r.latency_samples())
}

/// 1 s of a 1 kHz tone from `from` to `to`: peak within one bin of 1 kHz, exact length after
/// flush, and (with the reported latency trimmed) sample-aligned with the ideal tone at `to`.
fn check_tone(from: u32, to: u32) {
    let n = from as usize;
    let input = sine(1000.0, from, n, 0.5);
    let (before_flush, all, latency) = one_shot(&input, from, to);
    let expected = (n as u64 * to as u64 / from as u64) as usize;

    // Before the flush the output trails the input by at most one processing chunk.
    let chunk_out = StreamResampler::new(from, to).unwrap().output_chunk();
    assert!(before_flush.len() <= expected + latency, "{from}->{to}");
    assert!(before_flush.len() + chunk_out >= expected, "{from}->{to}");
    // After it, exactly `latency + input * ratio`.
    assert_eq!(all.len(), latency + expected, "{from}->{to}");
    let out = &all[latency..];

    let (peak, bin) = fft_peak_hz(out, to);
    assert!(
        (peak - 1000.0).abs() <= bin,
        "{from}->{to}: peak at {peak} Hz"
    );

    // The reported latency is the true delay: away from the edges the output is the ideal tone.
    let ideal = sine(1000.0, to, expected, 0.5);
    let edge = to as usize / 20;
    let max_err = out[edge..expected - edge]
        .iter()
        .zip(&ideal[edge..expected - edge])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_err < 0.01,
        "{from}->{to}: max error {max_err} vs ideal tone"
    );

    assert_eq!(resample_buffer(&input, from, to).unwrap(), out);
}

#[test]
fn tone_44100_to_16000() {
    check_tone(44_100, 16_000);
}

#[test]
fn tone_48000_to_16000() {
    check_tone(48_000, 16_000);
}

#[test]
fn tone_16000_to_24000() {
    check_tone(16_000, 24_000);
}

#[test]
fn tone_24000_to_48000() {
    check_tone(24_000, 48_000);
}

#[test]
fn uneven_chunks_give_the_same_samples_as_one_shot() {
    let sizes = [1usize, 7, 160, 441, 1000, 3, 4410, 2, 960];
    for (from, to) in [
        (44_100, 16_000),
        (48_000, 16_000),
        (16_000, 24_000),
        (24_000, 48_000),
    ] {
        let input = common::speech_like(from, 1.3);
        let (_, expected, _) = one_shot(&input, from, to);
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        let (mut pos, mut k) = (0, 0);
        while pos < input.len() {
            let n = sizes[k % sizes.len()].min(input.len() - pos);
            r.process(&input[pos..pos + n], &mut out).unwrap();
            pos += n;
            k += 1;
        }
        r.flush(&mut out).unwrap();
        assert_eq!(out.len(), expected.len(), "{from}->{to}");
        assert!(
            out.iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{from}->{to}: chunked output differs from one-shot"
        );
        // After a flush the resampler starts over: a second stream gives the same result again.
        let mut again = Vec::new();
        r.process(&input, &mut again).unwrap();
        r.flush(&mut again).unwrap();
        assert_eq!(again, expected, "{from}->{to}: state leaked across flush");
    }
}

#[test]
fn tones_above_the_new_nyquist_are_filtered_not_aliased() {
    // 10 kHz at 48 kHz would alias to 6 kHz at 16 kHz; the anti-aliasing filter must remove it.
    let input = sine(10_000.0, 48_000, 48_000, 0.5);
    let out = resample_buffer(&input, 48_000, 16_000).unwrap();
    let rms = parley_audio_io::pcm::rms(&out[800..15_200]);
    assert!(rms < 0.5 / 2f32.sqrt() * 0.01, "aliased energy, rms {rms}");
    // 7 kHz is inside the band and passes.
    let input = sine(7_000.0, 48_000, 48_000, 0.5);
    let out = resample_buffer(&input, 48_000, 16_000).unwrap();
    let rms = parley_audio_io::pcm::rms(&out[800..15_200]);
    assert!(
        (rms - 0.5 / 2f32.sqrt()).abs() < 0.02,
        "in-band tone rms {rms}"
    );
}

/// Reads `want` samples from a capture, waiting up to `timeout`.
fn read_exactly(capture: &mut Capture, want: usize, timeout: Duration) -> Vec<f32> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(want);
    let mut buf = vec![0.0; 1024];
    while out.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} samples arrived",
            out.len()
        );
        let n = capture
            .reader
            .pop_into(&mut buf[..(want - out.len()).min(1024)]);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn capture_worker_downmixes_and_resamples_exactly_like_the_stream_resampler() {
    // Stereo 48 kHz mic: left = speech, right = a tone; the worker must average then resample.
    let left = common::speech_like(48_000, 1.0);
    let right = sine(440.0, 48_000, left.len(), 0.3);
    let stereo: Vec<f32> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let mono: Vec<f32> = left
        .iter()
        .zip(&right)
        .map(|(l, r)| (l + r) * 0.5)
        .collect();
    let mut expected = Vec::new();
    StreamResampler::new(48_000, 16_000)
        .unwrap()
        .process(&mono, &mut expected)
        .unwrap();

    let mut config = VirtualMicConfig::new(48_000);
    config.channels = 2;
    config.pace = Pace::AsFastAsPossible;
    let (_mic, device_capture) = VirtualMic::start(stereo, config).unwrap();
    let (_worker, mut capture) = ResampleWorker::capture(device_capture, 16_000).unwrap();
    assert_eq!((capture.rate, capture.channels), (16_000, 1));
    let got = read_exactly(&mut capture, expected.len(), Duration::from_secs(20));
    assert_eq!(got, expected);
    assert_eq!(capture.counters.snapshot().overrun_samples, 0);
}

#[test]
fn playback_worker_upmixes_resamples_and_forwards_flushes() {
    let mut config = VirtualSpeakerConfig::new(48_000);
    config.channels = 2;
    config.ring_ms = 100;
    let (speaker, device_playback) = VirtualSpeaker::start(config).unwrap();
    let (_worker, mut playback) = ResampleWorker::playback(device_playback, 24_000).unwrap();
    assert_eq!((playback.rate, playback.channels), (24_000, 1));

    // Half a second of a 1 kHz tone, fed as the ring has room.
    let tone = sine(1000.0, 24_000, 12_000, 0.5);
    let mut pos = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pos < tone.len() {
        assert!(Instant::now() < deadline);
        let n = playback.writer.free_slots().min(tone.len() - pos);
        pos += playback.writer.push(&tone[pos..pos + n]);
        std::thread::sleep(Duration::from_millis(1));
    }
    // Wait until the speaker has played all of it: 0.5 s at 48 kHz after the resampler delay.
    let delay = StreamResampler::new(24_000, 48_000)
        .unwrap()
        .latency_samples() as u64;
    while speaker.samples_played() < 2 * (24_000 + delay) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let rec = speaker.recording();
    let (l, r): (Vec<f32>, Vec<f32>) = rec.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
    assert_eq!(l, r, "mono must be copied to both channels");
    let first = l
        .iter()
        .position(|s| s.abs() > 1e-3)
        .expect("tone was played");
    let last = l.iter().rposition(|s| s.abs() > 1e-3).unwrap();
    let heard = last - first + 1;
    assert!(
        (23_900..=24_100).contains(&heard),
        "heard {heard} samples of a 24000-sample tone"
    );
    let (peak, bin) = fft_peak_hz(&l[first..first + 23_000], 48_000);
    assert!((peak - 1000.0).abs() <= bin, "peak {peak}");

    // Flush forwarding: start a long tone, flush the input ring, and the speaker must fall silent
    // (everything queued downstream of the worker is dropped too).
    let long = sine(500.0, 24_000, 24_000 * 3, 0.5);
    let mut pos = 0;
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        let n = playback.writer.free_slots().min(long.len() - pos);
        pos += playback.writer.push(&long[pos..pos + n]);
        std::thread::sleep(Duration::from_millis(1));
    }
    playback.writer.request_flush();
    std::thread::sleep(Duration::from_millis(300));
    let rec = speaker.recording();
    let tail = &rec[rec.len() - 2 * 9_600..]; // the last 100 ms
    assert!(
        tail.iter().all(|&s| s == 0.0),
        "audio kept playing after the flush"
    );
    let heard_long = rec[2 * (last + 1)..]
        .iter()
        .filter(|s| s.abs() > 1e-3)
        .count()
        / 2;
    assert!(
        heard_long < 48_000,
        "flush did not stop the tone ({heard_long} samples heard)"
    );
}
