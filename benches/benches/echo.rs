//! Cost of acoustic echo cancellation per 20 ms of microphone audio (320 samples at 16 kHz, the
//! engine's frame: two AEC3 frames), what every session pays continuously while parley talks
//! without headphones: 20 ms of far end handed in, then 20 ms of microphone audio cleaned.
//! The audio is real: parley's speech (cycling through `assets/audio/bench_3s.wav`) as the far end
//! and its echo through a simulated room plus the user talking ("Please turn on the kitchen
//! lights") as the microphone, so AEC3 runs its double-talk path with a converged filter.
//!
//! Measured on the 2-core dev machine (other builds running, so an upper bound): 210 µs per
//! 20 ms (≈1 % of a core).
//! `cargo bench -p parley-benches --bench echo`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group};
use parley_audio_io::constants::{MODEL_INPUT_RATE, frame_samples};
use parley_audio_io::echo::{EchoCanceller, RoomShape, SimulatedRoom};
use parley_audio_io::wav::read_wav;

fn audio(name: &str) -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/audio")
        .join(name);
    read_wav(&path, MODEL_INPUT_RATE).expect("committed test audio")
}

fn echo_canceller(c: &mut Criterion) {
    let frame = frame_samples(MODEL_INPUT_RATE);
    let mut far = audio("bench_3s.wav");
    far.truncate(far.len() / frame * frame);
    let mut room = SimulatedRoom::synthetic(
        MODEL_INPUT_RATE,
        RoomShape {
            direct_delay_ms: 70.0,
            direct_gain: 0.3,
            reverb_energy_ratio: 0.5,
            rt60_ms: 300.0,
        },
        7,
    );
    // Two passes of the far end so the echo's reverberation wraps around like the cycled input.
    let mut echo = Vec::new();
    room.echo(&far, &mut echo);
    echo.clear();
    room.echo(&far, &mut echo);
    let user = audio("s_kitchen_lights.wav");
    let mic: Vec<f32> = echo
        .iter()
        .zip(user.iter().chain(std::iter::repeat(&0.0)))
        .map(|(e, u)| e + u)
        .collect();

    let mut aec = EchoCanceller::new().expect("default settings are valid");
    let mut out = Vec::with_capacity(frame);
    // Converge first (three passes over the clip).
    for _ in 0..3 {
        for (f, m) in far.chunks_exact(frame).zip(mic.chunks_exact(frame)) {
            aec.render(f).expect("finite, paced far end");
            out.clear();
            aec.process_capture(m, &mut out)
                .expect("finite microphone audio");
        }
    }
    let mut frames = far.chunks_exact(frame).zip(mic.chunks_exact(frame)).cycle();
    let mut group = c.benchmark_group("echo/aec3_20ms");
    group.throughput(Throughput::Elements(frame as u64));
    group.bench_function("render_and_capture", |b| {
        b.iter(|| {
            let (f, m) = frames.next().expect("cycle never ends");
            aec.render(black_box(f)).expect("finite, paced far end");
            out.clear();
            aec.process_capture(black_box(m), &mut out)
                .expect("finite microphone audio");
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, echo_canceller);

parley_benches::bench_main!(benches);
