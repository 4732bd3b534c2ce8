//! Wire-format cost of one 20 ms frame of 24 kHz audio (480 samples), both ways:
//! - JSON: f32 -> `response.output_audio.delta` (base64 PCM16) -> text -> parse -> f32.
//! - binary: f32 -> PCM16 `AudioFrame` -> bytes -> decode -> f32.
//!
//! `cargo bench -p parley-benches --bench protocol`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use parley_audio_io::constants::{WIRE_PCM_RATE, frame_samples};
use parley_protocol::events::ResponseOutputAudioDelta;
use parley_protocol::{AudioFrame, Pcm16Audio, ServerEvent, parse_server_event};

fn frame() -> Vec<f32> {
    (0..frame_samples(WIRE_PCM_RATE))
        .map(|i| (i as f32 * 0.05).sin() * 0.5)
        .collect()
}

fn json_delta_round_trip(c: &mut Criterion) {
    let samples = frame();
    let mut group = c.benchmark_group("protocol/json_audio_delta_20ms");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            let event = ServerEvent::ResponseOutputAudioDelta(ResponseOutputAudioDelta {
                event_id: "evt_0000000100000001".to_owned(),
                response_id: "resp_0000000100000001".to_owned(),
                item_id: "item_0000000100000001".to_owned(),
                output_index: 0,
                content_index: 0,
                delta: Pcm16Audio::from_samples(black_box(&samples)),
            });
            let text = event.to_json().expect("serializes");
            let ServerEvent::ResponseOutputAudioDelta(parsed) =
                parse_server_event(black_box(&text)).expect("parses")
            else {
                unreachable!("the same event type comes back")
            };
            black_box(parsed.delta.to_samples())
        })
    });
    group.finish();
}

fn binary_frame_round_trip(c: &mut Criterion) {
    let samples = frame();
    let mut group = c.benchmark_group("protocol/binary_pcm16_frame_20ms");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            let bytes = AudioFrame::pcm16(7, 3360, 1, black_box(&samples)).encode();
            let frame = AudioFrame::decode(black_box(&bytes)).expect("decodes");
            black_box(frame.pcm16_samples().expect("PCM16"))
        })
    });
    group.finish();
}

criterion_group!(benches, json_delta_round_trip, binary_frame_round_trip);

parley_benches::bench_main!(benches);
