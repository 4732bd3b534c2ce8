//! The SPSC audio ring across two threads: nothing lost, duplicated or reordered while the reader
//! keeps up; overruns counted exactly when it does not.

use parley_audio_io::{AudioCounters, audio_ring};
use std::sync::Arc;
use std::thread;

/// Counting-sequence values stay exact in f32 up to 2^24.
const TOTAL: usize = 5_000_000;

#[test]
fn five_million_samples_cross_threads_intact_when_reader_keeps_up() {
    let counters = Arc::new(AudioCounters::new());
    let (mut writer, mut reader) = audio_ring(4096, Arc::clone(&counters));

    let producer = thread::spawn(move || {
        let sizes = [1usize, 7, 160, 441, 1000, 960, 3, 4096];
        let mut next = 0usize;
        let mut chunk = Vec::with_capacity(4096);
        let mut k = 0;
        while next < TOTAL {
            let want = sizes[k % sizes.len()].min(TOTAL - next);
            k += 1;
            // Offer only what fits, so the writer never overruns (the reader is "keeping up").
            let n = want.min(writer.free_slots());
            if n == 0 {
                thread::yield_now();
                continue;
            }
            chunk.clear();
            chunk.extend((next..next + n).map(|v| v as f32));
            assert_eq!(writer.push(&chunk), n);
            next += n;
        }
    });

    let sizes = [13usize, 1, 480, 999, 2048, 5];
    let mut buf = vec![0.0f32; 2048];
    let mut expected = 0usize;
    let mut k = 0;
    while expected < TOTAL {
        let n = reader.pop_into(&mut buf[..sizes[k % sizes.len()]]);
        k += 1;
        if n == 0 {
            thread::yield_now();
            continue;
        }
        for &v in &buf[..n] {
            assert_eq!(
                v, expected as f32,
                "sample {expected} lost, duplicated or reordered"
            );
            expected += 1;
        }
    }
    producer.join().unwrap();
    assert_eq!(reader.available(), 0);
    let s = counters.snapshot();
    assert_eq!(s.overrun_samples, 0);
    assert_eq!(reader.read_position(), TOTAL as u64);
}

#[test]
fn overruns_are_counted_exactly_when_the_writer_outruns_a_small_ring() {
    let counters = Arc::new(AudioCounters::new());
    let (mut writer, mut reader) = audio_ring(256, Arc::clone(&counters));
    const PUSHED: usize = 2_000_000;

    let producer = thread::spawn(move || {
        let mut accepted = 0u64;
        let mut chunk = Vec::with_capacity(100);
        for start in (0..PUSHED).step_by(100) {
            chunk.clear();
            chunk.extend((start..start + 100).map(|v| v as f32));
            // Blind pushes, like a capture callback: whatever does not fit is overrun.
            accepted += writer.push(&chunk) as u64;
            // Pace the writer a little so both sides really run concurrently, and every 10k
            // samples wait until the reader has taken something (even on a loaded machine).
            if start.is_multiple_of(1000) {
                thread::sleep(std::time::Duration::from_micros(20));
            }
            if start.is_multiple_of(10_000) {
                let seen = writer.read_position();
                while writer.read_position() == seen && writer.free_slots() == 0 {
                    thread::yield_now();
                }
            }
        }
        accepted
    });

    let mut received = 0u64;
    let mut last: Option<f32> = None;
    let mut buf = [0.0f32; 64];
    let mut rounds = 0u64;
    loop {
        let n = reader.pop_into(&mut buf);
        if n == 0 {
            if producer.is_finished() && reader.available() == 0 {
                break;
            }
            thread::yield_now();
            continue;
        }
        for &v in &buf[..n] {
            // Samples may be missing (dropped on overrun) but never repeated or out of order.
            if let Some(prev) = last {
                assert!(v > prev, "{v} after {prev}: duplicated or reordered");
            }
            last = Some(v);
        }
        received += n as u64;
        rounds += 1;
        // A slow reader: small reads with pauses, so the writer outruns it.
        if rounds.is_multiple_of(8) {
            thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    let accepted = producer.join().unwrap();
    let s = counters.snapshot();
    assert!(
        s.overrun_samples > 0,
        "the writer should have outrun a 256-sample ring"
    );
    assert!(
        received >= 20_000,
        "the reader should have received plenty ({received})"
    );
    assert_eq!(PUSHED as u64 - s.overrun_samples, received);
    assert_eq!(accepted, received);
}
