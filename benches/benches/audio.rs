//! Cost of the per-frame audio work, one 20 ms frame at a time:
//! - ring: push + pop of 960 samples (48 kHz) through the SPSC ring, what a device callback and
//!   its worker do every period;
//! - resample: 20 ms through the streaming resampler, 48k -> 16k (mic to models) and
//!   24k -> 48k (talker to speaker);
//! - opus: encode + decode of one 24 kHz frame.
//!
//! `cargo bench -p parley-benches --bench audio`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group};
use parley_audio_io::constants::frame_samples;
use parley_audio_io::{AudioCounters, OpusDecoder, OpusEncoder, StreamResampler, audio_ring};

/// A voiced-sounding test frame: a few harmonics of 180 Hz.
fn frame(rate: u32) -> Vec<f32> {
    (0..frame_samples(rate))
        .map(|i| {
            let t = i as f32 / rate as f32;
            (1..=5)
                .map(|k| (2.0 * std::f32::consts::PI * 180.0 * k as f32 * t).sin() / k as f32)
                .sum::<f32>()
                * 0.2
        })
        .collect()
}

fn ring_push_pop(c: &mut Criterion) {
    let input = frame(48_000);
    let mut output = vec![0.0f32; input.len()];
    let (mut writer, mut reader) = audio_ring(4 * input.len(), Arc::new(AudioCounters::new()));
    let mut group = c.benchmark_group("audio/ring_20ms_48k");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("push+pop", |b| {
        b.iter(|| {
            let pushed = writer.push(black_box(&input));
            let popped = reader.pop_into(black_box(&mut output));
            assert_eq!(pushed, popped);
        })
    });
    group.finish();
}

fn resample(c: &mut Criterion) {
    let mut group = c.benchmark_group("audio/resample_20ms");
    for (from, to) in [(48_000u32, 16_000u32), (24_000, 48_000)] {
        let input = frame(from);
        let mut resampler = StreamResampler::new(from, to).expect("valid rates");
        let mut out = Vec::with_capacity(frame_samples(to) * 2);
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function(format!("{}k_to_{}k", from / 1000, to / 1000), |b| {
            b.iter(|| {
                out.clear();
                resampler
                    .process(black_box(&input), &mut out)
                    .expect("resampling a valid frame");
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn opus(c: &mut Criterion) {
    let rate = 24_000;
    let input = frame(rate);
    let mut encoder = OpusEncoder::new(rate).expect("24 kHz is supported");
    let mut decoder = OpusDecoder::new(rate).expect("24 kHz is supported");
    let mut out = Vec::with_capacity(input.len());
    let mut seq = 0u32;
    let mut group = c.benchmark_group("audio/opus_20ms_24k");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            let packet = encoder
                .encode_frame(black_box(&input))
                .expect("20 ms frame");
            out.clear();
            decoder.decode(seq, &packet, &mut out).expect("own packet");
            seq = seq.wrapping_add(1);
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, ring_push_pop, resample, opus);

parley_benches::bench_main!(benches);
