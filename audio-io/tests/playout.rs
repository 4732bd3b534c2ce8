//! The playout buffer's clock: per-response played counts match what the virtual speaker really
//! played, barge-in stops playback and reports the exact cut, the queue is bounded.

use parley_audio_io::{
    AudioCounters, AudioError, Playback, PlayoutBuffer, ResponseId, VirtualSpeaker,
    VirtualSpeakerConfig, audio_ring,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: u32 = 16_000;

/// Non-zero, distinct samples so the speaker's recording can be matched exactly (the only zeros
/// in a recording are underrun silence).
fn response_audio(n: usize, sign: f32) -> Vec<f32> {
    (0..n)
        .map(|i| sign * (0.01 + i as f32 / (2 * n) as f32))
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn speaker(channels: u16) -> (VirtualSpeaker, PlayoutBuffer) {
    let mut config = VirtualSpeakerConfig::new(RATE);
    config.channels = channels;
    config.ring_ms = 100;
    let (speaker, playback) = VirtualSpeaker::start(config).unwrap();
    let playout = PlayoutBuffer::new(playback, 5_000).unwrap();
    (speaker, playout)
}

#[test]
fn played_counts_follow_the_speaker_and_clear_cuts_exactly() {
    let (speaker, playout) = speaker(1);
    let a = response_audio(4_800, 1.0); // 300 ms
    let b = response_audio(16_000, -1.0); // 1 s
    let (ra, rb) = (ResponseId(1), ResponseId(2));
    playout.enqueue(ra, &a).unwrap();
    playout.enqueue(rb, &b[..8_000]).unwrap();
    playout.enqueue(rb, &b[8_000..]).unwrap();
    // The speaker starts pulling at once: at most its ring (100 ms) has left the queue.
    let queued = playout.queued_samples();
    assert!(
        (20_800 - 1_600..=20_800).contains(&queued),
        "{queued} queued"
    );
    assert_eq!(playout.played_samples(rb), 0);

    // Let all of A and part of B play.
    wait_until("B to start", Duration::from_secs(10), || {
        playout.played_samples(rb) >= 3_200
    });
    assert_eq!(playout.played_samples(ra), 4_800);
    assert_eq!(playout.played_ms(ra), 300);
    let queued_before = playout.queued_samples();
    assert!(queued_before > 0 && queued_before < 16_000);

    let report = playout.clear();
    assert_eq!(report.len(), 2);
    assert_eq!(report[0].id, ra);
    assert_eq!(
        (report[0].played_samples, report[0].enqueued_samples),
        (4_800, 4_800)
    );
    assert_eq!(report[1].id, rb);
    let played_b = report[1].played_samples;
    assert!((3_200..16_000).contains(&played_b), "B played {played_b}");
    assert_eq!(report[1].enqueued_samples, 16_000);
    assert_eq!(playout.played_samples(rb), played_b);
    assert_eq!(playout.queued_samples(), 0);

    // Nothing more plays after the clear.
    std::thread::sleep(Duration::from_millis(150));
    let heard: Vec<f32> = speaker
        .recording()
        .into_iter()
        .filter(|&s| s != 0.0)
        .collect();
    let expected: Vec<f32> = a.iter().chain(&b[..played_b as usize]).copied().collect();
    assert_eq!(
        heard.len(),
        expected.len(),
        "the speaker heard more or less than reported"
    );
    assert_eq!(heard, expected);
    // The speaker's own clock agrees.
    assert_eq!(speaker.samples_played(), 4_800 + played_b);
    assert!(
        speaker.counters().snapshot().flushed_samples > 0,
        "the ring was flushed"
    );

    // Late audio for a cut response is refused; a new response plays normally.
    assert!(matches!(
        playout.enqueue(rb, &b[..100]),
        Err(AudioError::ResponseCleared(2))
    ));
    let c = response_audio(1_600, 1.0);
    playout.enqueue(ResponseId(3), &c).unwrap();
    wait_until("C to play", Duration::from_secs(10), || {
        playout.played_samples(ResponseId(3)) == 1_600
    });
    std::thread::sleep(Duration::from_millis(50));
    let heard: Vec<f32> = speaker
        .recording()
        .into_iter()
        .filter(|&s| s != 0.0)
        .collect();
    assert_eq!(&heard[expected.len()..], &c[..]);
    assert_eq!(speaker.samples_played(), 4_800 + played_b + 1_600);
    assert_eq!(playout.queued_samples(), 0);
}

#[test]
fn stereo_speaker_counts_frames_and_hears_both_channels() {
    let (speaker, playout) = speaker(2);
    let a = response_audio(3_200, 1.0);
    playout.enqueue(ResponseId(7), &a).unwrap();
    wait_until("A to play", Duration::from_secs(10), || {
        playout.played_samples(ResponseId(7)) == 3_200
    });
    assert_eq!(playout.played_ms(ResponseId(7)), 200);
    std::thread::sleep(Duration::from_millis(50));
    let rec = speaker.recording();
    let heard: Vec<&[f32]> = rec.chunks_exact(2).filter(|f| f[0] != 0.0).collect();
    assert_eq!(heard.len(), 3_200);
    for (frame, &s) in heard.iter().zip(&a) {
        assert_eq!(frame, &[s, s]);
    }
    assert_eq!(speaker.samples_played(), 6_400);
    // A clear after everything played reports the full response.
    let report = playout.clear();
    assert_eq!(report[0].played_samples, 3_200);
}

#[test]
fn the_queue_is_bounded_and_refusal_takes_nothing() {
    let (_speaker, playback) = VirtualSpeaker::start(VirtualSpeakerConfig::new(RATE)).unwrap();
    let playout = PlayoutBuffer::new(playback, 1_000).unwrap(); // 1 s
    playout.enqueue(ResponseId(1), &vec![0.5; 12_000]).unwrap();
    let queued = playout.queued_samples();
    match playout.enqueue(ResponseId(1), &vec![0.5; 8_000]) {
        Err(AudioError::PlayoutFull {
            max_ms: 1_000,
            adding_ms: 500,
            ..
        }) => {}
        other => panic!("expected PlayoutFull, got {other:?}"),
    }
    // Nothing was taken; the queue only shrinks as the speaker plays.
    assert!(playout.queued_samples() <= queued);
    assert!(
        PlayoutBuffer::new(
            VirtualSpeaker::start(VirtualSpeakerConfig::new(RATE))
                .unwrap()
                .1,
            0
        )
        .is_err()
    );
}

#[test]
fn clear_with_a_stalled_reader_waits_out_the_timeout_and_counts_what_was_read() {
    // A ring whose reader this test holds and does not run: a stalled device.
    let counters = Arc::new(AudioCounters::new());
    let (writer, mut reader) = audio_ring(3_200, Arc::clone(&counters));
    let playback = Playback {
        writer,
        rate: RATE,
        channels: 1,
        counters,
    };
    let playout = PlayoutBuffer::new(playback, 5_000).unwrap();
    let a = response_audio(8_000, 1.0);
    playout.enqueue(ResponseId(1), &a).unwrap();
    wait_until(
        "the feeder to fill the ring",
        Duration::from_secs(10),
        || reader.available() == 3_200,
    );
    // "Play" 1000 samples, then stall.
    let mut played = vec![0.0; 1_000];
    assert_eq!(reader.fill_or_silence(&mut played), 1_000);
    assert_eq!(playout.played_samples(ResponseId(1)), 1_000);

    let started = Instant::now();
    let report = playout.clear();
    assert!(started.elapsed() >= parley_audio_io::playout::CLEAR_ACK_TIMEOUT);
    assert_eq!(report[0].played_samples, 1_000);
    // When the reader wakes up, the flush drops the rest: only silence comes out.
    let mut after = vec![1.0; 500];
    assert_eq!(reader.fill_or_silence(&mut after), 0);
    assert!(after.iter().all(|&s| s == 0.0));
    assert_eq!(playout.played_samples(ResponseId(1)), 1_000);
}

#[test]
fn clear_with_a_stopped_speaker_returns_at_once() {
    let (speaker, playback) = VirtualSpeaker::start(VirtualSpeakerConfig::new(RATE)).unwrap();
    speaker.stop(); // drops the ring's reader
    let playout = PlayoutBuffer::new(playback, 5_000).unwrap();
    playout.enqueue(ResponseId(1), &vec![0.5; 8_000]).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let started = Instant::now();
    let report = playout.clear();
    assert!(started.elapsed() < parley_audio_io::playout::CLEAR_ACK_TIMEOUT);
    assert_eq!(report[0].played_samples, 0);
    assert_eq!(report[0].enqueued_samples, 8_000);
}
