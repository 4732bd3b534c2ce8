//! Silero VAD against the package's goldens, streaming behaviour, and VAD + endpointer end to end
//! on committed recordings. Needs the installed model (`parley models fetch`).

use std::path::PathBuf;

use parley_audio_io::wav::read_wav;
use parley_thinker::stream::{Step, StreamingModule};
use parley_thinker::vad::{
    EndpointConfig, EndpointEvent, Endpointer, SAMPLE_RATE, SileroVad, VadError, VadWindow,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_vad() -> SileroVad {
    let dir = parley_models::installed_model_dir(
        &parley_models::default_models_dir(),
        parley_models::catalog::SILERO_VAD,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    SileroVad::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

fn audio(name: &str) -> Vec<f32> {
    read_wav(repo().join("assets/audio").join(name), SAMPLE_RATE).unwrap()
}

/// The package's whole-file mode: everything at once, the last partial window zero-padded.
fn whole_file(vad: &mut SileroVad, samples: &[f32]) -> Vec<f32> {
    let mut probs = vad.step(samples).unwrap().ready().unwrap_or_default();
    probs.extend(vad.flush().unwrap());
    probs
}

fn chunked(vad: &mut SileroVad, samples: &[f32], sizes: &[usize]) -> Vec<f32> {
    let mut probs = Vec::new();
    let mut rest = samples;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = size.min(rest.len());
        let before = vad.windows_done();
        match vad.step(&rest[..n]).unwrap() {
            Step::Ready(p) => {
                assert_eq!(vad.windows_done(), before + p.len() as u64);
                probs.extend(p);
            }
            Step::Pending => assert_eq!(vad.windows_done(), before),
            Step::Done => panic!("the VAD never ends"),
        }
        rest = &rest[n..];
    }
    probs.extend(vad.flush().unwrap());
    probs
}

struct Golden {
    file: String,
    num_samples: usize,
    probs: Vec<f32>,
}

fn goldens() -> Vec<Golden> {
    let text = std::fs::read_to_string(repo().join("assets/goldens/silero_vad.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Golden {
            file: f["file"].as_str().unwrap().to_string(),
            num_samples: f["num_samples"].as_u64().unwrap() as usize,
            probs: f["probs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

#[test]
fn probabilities_match_the_package_goldens() {
    let goldens = goldens();
    assert_eq!(goldens.len(), 3);
    let mut vad = load_vad();
    for golden in goldens {
        let samples = read_wav(repo().join(&golden.file), SAMPLE_RATE).unwrap();
        assert_eq!(samples.len(), golden.num_samples, "{}", golden.file);
        vad.reset();
        let probs = whole_file(&mut vad, &samples);
        assert_eq!(probs.len(), golden.probs.len(), "{}", golden.file);
        let (worst, at) = probs
            .iter()
            .zip(&golden.probs)
            .enumerate()
            .map(|(i, (p, g))| ((p - g).abs(), i))
            .fold((0.0f32, 0), |a, b| if b.0 > a.0 { b } else { a });
        assert!(
            worst <= 1e-3,
            "{}: window {at} differs by {worst} ({} vs golden {})",
            golden.file,
            probs[at],
            golden.probs[at]
        );
        eprintln!("{}: max |p - golden| = {worst:.2e}", golden.file);
    }
}

#[test]
fn chunked_input_gives_identical_probabilities() {
    let mut vad = load_vad();
    for file in ["vad_two_phrases.wav", "q_capital_france.wav"] {
        let samples = audio(file);
        vad.reset();
        let at_once = whole_file(&mut vad, &samples);
        for sizes in [
            &[1usize, 37, 512, 1000, 160][..],
            &[511, 513, 0, 2, 1024, 333],
            &[320],
            &[1],
        ] {
            vad.reset();
            let pieces = chunked(&mut vad, &samples, sizes);
            assert_eq!(pieces, at_once, "{file} in chunks of {sizes:?}");
        }
    }
}

#[test]
fn reset_replays_identically() {
    let mut vad = load_vad();
    let speech = audio("q_capital_france.wav");
    let first = whole_file(&mut vad, &speech);
    // Leave state behind (a partial window, LSTM state), then reset.
    vad.step(&audio("noise_1s.wav")[..700]).unwrap();
    assert_eq!(vad.buffered(), 700 - 512);
    vad.reset();
    assert_eq!((vad.windows_done(), vad.buffered()), (0, 0));
    assert_eq!(whole_file(&mut vad, &speech), first);
}

#[test]
fn empty_input_and_bad_samples() {
    let mut vad = load_vad();
    assert_eq!(vad.step(&[]).unwrap(), Step::Pending);
    assert_eq!(vad.flush().unwrap(), None);
    let original = audio("vad_two_phrases.wav")[..1024].to_vec();
    let clean = whole_file(&mut vad, &original);
    let mut samples = original.clone();
    vad.reset();
    samples[700] = f32::NAN;
    match vad.step(&samples) {
        Err(VadError::NonFiniteSample { index: 700, .. }) => {}
        other => panic!("expected NonFiniteSample at 700, got {other:?}"),
    }
    // Nothing of the refused chunk was absorbed.
    assert_eq!((vad.windows_done(), vad.buffered()), (0, 0));
    assert_eq!(whole_file(&mut vad, &original), clean);
}

#[test]
fn missing_model_names_the_file_and_the_fix() {
    let dir = std::env::temp_dir().join("parley-vad-test-no-such-model-dir");
    let err = SileroVad::load(&dir).err().expect("no model there");
    let text = err.to_string();
    assert!(text.contains("silero_vad_16k.safetensors"), "{text}");
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains("parley models fetch"), "{text}");
}

/// VAD + endpointer over `samples` followed by `trailing_silence_ms` of zeros (a live mic keeps
/// sending), fed in 20 ms frames as the engine does.
fn endpoint(
    samples: &[f32],
    config: EndpointConfig,
    trailing_silence_ms: usize,
) -> Vec<EndpointEvent> {
    let mut vad = load_vad();
    let mut endpointer = Endpointer::new(config).unwrap();
    let mut stream = samples.to_vec();
    stream.resize(
        samples.len() + trailing_silence_ms * SAMPLE_RATE as usize / 1000,
        0.0,
    );
    let mut events = Vec::new();
    for frame in stream.chunks(320) {
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

/// (start, end) in ms of each complete turn.
fn turns(events: &[EndpointEvent]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = None;
    for event in events {
        match *event {
            EndpointEvent::SpeechStarted { audio_start_ms } => {
                assert!(start.is_none(), "two starts in a row: {events:?}");
                start = Some(audio_start_ms);
            }
            EndpointEvent::SpeechStopped { audio_end_ms } => {
                out.push((start.take().expect("stop without start"), audio_end_ms));
            }
            _ => {}
        }
    }
    assert!(start.is_none(), "unfinished turn: {events:?}");
    out
}

#[test]
fn two_phrases_are_two_turns_at_the_right_times() {
    let samples = audio("vad_two_phrases.wav");
    let no_padding = EndpointConfig {
        prefix_padding_ms: 0,
        ..EndpointConfig::default()
    };
    let events = endpoint(&samples, no_padding, 1000);
    let got = turns(&events);
    eprintln!("vad_two_phrases.wav turns (ms): {got:?}; events: {events:?}");
    let expected = [(250, 1505), (2305, 3585)];
    assert_eq!(got.len(), 2, "{events:?}");
    for ((start, end), (want_start, want_end)) in got.iter().zip(expected) {
        assert!(
            start.abs_diff(want_start) <= 100,
            "start {start} vs {want_start}: {events:?}"
        );
        assert!(
            end.abs_diff(want_end) <= 100,
            "end {end} vs {want_end}: {events:?}"
        );
    }
    // Each turn's end was announced by a SilenceStarted at the same position first.
    let silences: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::SilenceStarted { at_ms } => Some(*at_ms),
            _ => None,
        })
        .collect();
    assert_eq!(silences, vec![got[0].1, got[1].1]);

    // With the default 300 ms prefix padding the first start clamps to 0.
    let padded = turns(&endpoint(&samples, EndpointConfig::default(), 1000));
    assert_eq!(padded[0].0, 0);
    assert_eq!(padded[1].0, got[1].0 - 300);
    assert_eq!((padded[0].1, padded[1].1), (got[0].1, got[1].1));

    // A pause longer than silence_duration_ms (here ~0.8 s) no longer splits the turn.
    let patient = EndpointConfig {
        silence_duration_ms: 1200,
        ..EndpointConfig::default()
    };
    assert_eq!(turns(&endpoint(&samples, patient, 2000)).len(), 1);
}

#[test]
fn noise_silence_and_empty_audio_start_no_turn() {
    assert_eq!(
        endpoint(&audio("noise_1s.wav"), EndpointConfig::default(), 1000),
        vec![]
    );
    assert_eq!(endpoint(&[], EndpointConfig::default(), 3000), vec![]);
    assert_eq!(endpoint(&[], EndpointConfig::default(), 0), vec![]);
}
