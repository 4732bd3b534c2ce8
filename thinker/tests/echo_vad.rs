//! Echo cancellation in front of the real Silero VAD + endpointer (default `server_vad`
//! settings): parley's own voice leaking from the speaker into the microphone must not start a
//! turn once the echo canceller is in the path, while the user talking over it still must.
//! Needs the installed Silero model (`parley models fetch`).

use std::path::PathBuf;

use parley_audio_io::echo::{EchoCanceller, RoomShape, SimulatedRoom};
use parley_audio_io::wav::read_wav;
use parley_thinker::stream::{Step, StreamingModule};
use parley_thinker::vad::{
    EndpointConfig, EndpointEvent, Endpointer, SAMPLE_RATE, SileroVad, VadWindow,
};

/// 20 ms: the engine's frame.
const FRAME: usize = 320;

fn audio(name: &str) -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/audio")
        .join(name);
    read_wav(path, SAMPLE_RATE).unwrap()
}

fn load_vad() -> SileroVad {
    let dir = parley_models::installed_model_dir(
        &parley_models::default_models_dir(),
        parley_models::catalog::SILERO_VAD,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    SileroVad::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

fn ms(ms: usize) -> usize {
    ms * SAMPLE_RATE as usize / 1000
}

/// parley speaking: five utterances, four voices, back to back (~12.6 s).
fn parley_speech() -> Vec<f32> {
    [
        "q_capital_france.wav",
        "q_spider_legs.wav",
        "q_tell_joke.wav",
        "q_ocean_salty.wav",
        "bench_3s.wav",
    ]
    .iter()
    .flat_map(|f| audio(f))
    .collect()
}

/// The microphone without headphones: parley's voice through a laptop-like room (70 ms to the
/// microphone, half as loud, 300 ms of reverberation) plus the recorded -50 dBFS noise floor.
fn echo_at_mic(far: &[f32]) -> Vec<f32> {
    let mut room = SimulatedRoom::synthetic(
        SAMPLE_RATE,
        RoomShape {
            direct_delay_ms: 70.0,
            direct_gain: 0.3,
            reverb_energy_ratio: 0.5,
            rt60_ms: 300.0,
        },
        7,
    );
    let mut echo = Vec::new();
    room.echo(far, &mut echo);
    let noise = audio("noise_1s.wav");
    echo.iter()
        .zip(noise.iter().cycle())
        .map(|(e, n)| e + n)
        .collect()
}

/// Runs the microphone through the echo canceller in 20 ms frames, the far end of each frame
/// handed in first (as it is played).
fn cancel(far: &[f32], mic: &[f32]) -> Vec<f32> {
    let mut aec = EchoCanceller::new().unwrap();
    let mut out = Vec::with_capacity(mic.len());
    for (f, m) in far.chunks(FRAME).zip(mic.chunks(FRAME)) {
        aec.render(f).unwrap();
        aec.process_capture(m, &mut out).unwrap();
    }
    out
}

/// The VAD + endpointer over `samples` in 20 ms frames, as the engine runs them.
fn endpoint(samples: &[f32]) -> Vec<EndpointEvent> {
    let mut vad = load_vad();
    let mut endpointer = Endpointer::new(EndpointConfig::default()).unwrap();
    let mut events = Vec::new();
    for frame in samples.chunks(FRAME) {
        let first = vad.windows_done();
        if let Step::Ready(probs) = vad.step(frame).unwrap()
            && let Step::Ready(e) = endpointer
                .step(&VadWindow::sequence(first, &probs))
                .unwrap()
        {
            events.extend(e);
        }
    }
    events
}

/// Stream times (ms) at which the endpointer announced speech. `audio_start_ms` includes the
/// prefix padding, so the moment of detection is reported through the window that triggered it:
/// the event is emitted while processing that window, whose end we record.
fn speech_starts(samples: &[f32]) -> Vec<(u64, u64)> {
    let mut vad = load_vad();
    let mut endpointer = Endpointer::new(EndpointConfig::default()).unwrap();
    let mut starts = Vec::new();
    for frame in samples.chunks(FRAME) {
        let first = vad.windows_done();
        if let Step::Ready(probs) = vad.step(frame).unwrap() {
            let windows = VadWindow::sequence(first, &probs);
            if let Step::Ready(events) = endpointer.step(&windows).unwrap() {
                let detected_ms = windows
                    .last()
                    .map_or(0, |w| w.end_sample * 1000 / u64::from(SAMPLE_RATE));
                for event in events {
                    if let EndpointEvent::SpeechStarted { audio_start_ms } = event {
                        starts.push((audio_start_ms, detected_ms));
                    }
                }
            }
        }
    }
    starts
}

#[test]
fn raw_echo_would_start_a_turn() {
    let far = parley_speech();
    let mic = echo_at_mic(&far);
    let events = endpoint(&mic);
    eprintln!("raw echo: {events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EndpointEvent::SpeechStarted { .. })),
        "the raw echo should look like speech to the VAD (else this test proves nothing): {events:?}"
    );
}

#[test]
fn cancelled_echo_starts_no_turn() {
    let far = parley_speech();
    let mic = echo_at_mic(&far);
    let out = cancel(&far, &mic);
    let events = endpoint(&out);
    eprintln!("cancelled echo: {events:?}");
    assert_eq!(events, vec![], "parley interrupted itself");
}

#[test]
fn user_talking_over_parley_starts_a_turn_promptly() {
    let far = parley_speech();
    let mut mic = echo_at_mic(&far);
    // The user starts talking 5.5 s into parley's answer (their speech begins 0.25 s into the
    // file).
    let user = audio("s_kitchen_lights.wav");
    let at = ms(5500);
    for (m, u) in mic[at..].iter_mut().zip(&user) {
        *m += u;
    }
    let onset_ms = 5500 + 250;
    let out = cancel(&far, &mic);
    let starts = speech_starts(&out);
    eprintln!(
        "double talk: speech starts (audio_start_ms, detected_at_ms) {starts:?}, user onset {onset_ms} ms"
    );
    assert_eq!(starts.len(), 1, "{starts:?}");
    let (_, detected) = starts[0];
    assert!(
        detected >= onset_ms && detected <= onset_ms + 600,
        "SpeechStarted at {detected} ms, user began at {onset_ms} ms"
    );
}
