//! Each stage on its own from the CLI, as a user runs it: the real binary with the installed CPU
//! models (`parley models fetch`). `models list` shows what is installed, where and how big, and
//! names what is broken; `transcribe`, `say` and `generate` do their one job and print their
//! timing line; a missing model is refused with the fix.

mod common;

use std::process::{Command, Output};

use common::{asset, words};

use parley_audio_io::constants::MODEL_INPUT_RATE;
use parley_models::catalog::{self, WHISPER_TINY_EN};
use parley_thinker::stream::CancelGuard;
use parley_thinker::whisper::Transcriber;

fn parley(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command.args(args).env("PARLEY_LOG", "warn");
    command
}

fn run(command: &mut Command) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("parley runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(
        status.success(),
        "{status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// The number after `label` in `line` ("first audio after 41 ms" -> 41).
fn number_after(line: &str, label: &str) -> f64 {
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {line:?}"))
        + label.len()..];
    let number: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("a number after {label:?} in {line:?}"))
}

#[test]
fn models_list_shows_each_installed_model_with_its_size_and_source() {
    let (stdout, _) = run(&mut parley(&["models", "list"]));
    let dir = parley_models::default_models_dir();
    assert!(
        stdout.contains(&format!("models directory: {}", dir.display())),
        "{stdout}"
    );
    for spec in catalog::models_for(parley_models::Profile::Cpu) {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(spec.name))
            .unwrap_or_else(|| panic!("{} not listed:\n{stdout}", spec.name));
        assert!(line.contains("installed"), "{line}");
        let manifest = match parley_models::check_install(&dir, spec.name, false) {
            parley_models::InstallState::Ok(m) => m,
            other => panic!("{}: {other:?}", spec.name),
        };
        let listed_mb = number_after(line, "cpu");
        let mb = manifest.total_bytes() as f64 / 1e6;
        assert!(
            (listed_mb - mb).abs() <= 0.05,
            "{line}: {mb:.2} MB installed"
        );
        assert!(line.contains(&manifest.source), "{line}");
    }
}

#[test]
fn models_list_names_the_broken_file_and_loading_it_says_how_to_fix_it() {
    // A copy of the installed VAD (small) with its weights cut short.
    let installed = parley_models::installed_model_dir(
        &parley_models::default_models_dir(),
        catalog::SILERO_VAD,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let models = tempfile::tempdir().unwrap();
    let copy = models.path().join(catalog::SILERO_VAD);
    std::fs::create_dir_all(&copy).unwrap();
    let mut truncated = None;
    for entry in std::fs::read_dir(&installed).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        std::fs::copy(&path, copy.join(&name)).unwrap();
        if path.extension().is_some_and(|e| e == "safetensors") {
            truncated = Some(name);
        }
    }
    let truncated = truncated.expect("the VAD has a safetensors file");
    let weights = copy.join(&truncated);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();

    let (stdout, _) = run(parley(&["models", "list", "--dir"]).arg(models.path()));
    let line = stdout
        .lines()
        .find(|l| l.starts_with(catalog::SILERO_VAD))
        .unwrap();
    assert!(line.contains("BROKEN"), "{line}");
    assert!(
        line.contains(&format!(
            "has {} bytes, expected {}",
            bytes.len() / 2,
            bytes.len()
        )),
        "{line}"
    );
    assert!(
        line.contains(&truncated.to_string_lossy().into_owned()),
        "{line}"
    );
    // The others are not there at all.
    let whisper = stdout
        .lines()
        .find(|l| l.starts_with(WHISPER_TINY_EN))
        .unwrap();
    assert!(whisper.contains("missing"), "{whisper}");

    // A stage that needs a missing model refuses with the model's name and the fix.
    let out = parley(&["transcribe"])
        .arg(asset("q_weather_today.wav"))
        .env(parley_models::MODELS_DIR_ENV, models.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(WHISPER_TINY_EN), "{stderr}");
    assert!(stderr.contains("parley models fetch"), "{stderr}");
}

#[test]
fn transcribe_prints_the_transcript_then_one_timing_line() {
    let (stdout, stderr) = run(parley(&["transcribe"]).arg(asset("q_spider_legs.wav")));
    assert_eq!(
        words(&stdout),
        words("How many legs does a spider have?"),
        "{stdout}"
    );
    let timing: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("transcribed"))
        .collect();
    assert_eq!(timing.len(), 1, "{stderr}");
    let audio_s = number_after(timing[0], "transcribed");
    assert!((audio_s - 2.0).abs() < 1.5, "{}", timing[0]);
    assert!(
        number_after(timing[0], "real-time factor") > 0.0,
        "{}",
        timing[0]
    );
}

#[test]
fn transcribe_says_so_when_there_is_no_speech() {
    let (stdout, _) = run(parley(&["transcribe"]).arg(asset("noise_1s.wav")));
    assert_eq!(stdout.trim(), "(no speech)");
}

#[test]
fn say_writes_speech_that_whisper_hears_and_reports_first_audio_and_rtf() {
    let out = tempfile::tempdir().unwrap();
    let wav = out.path().join("say.wav");
    let text = "Why is the sky blue?";
    let (_, stderr) = run(parley(&["say", text, "-o"]).arg(&wav));
    let line = stderr
        .lines()
        .find(|l| l.contains("first audio after"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let seconds = number_after(line, "wrote");
    assert!((0.8..4.0).contains(&seconds), "{line}");
    assert!(number_after(line, "real-time factor") > 0.0, "{line}");

    let (native, rate) = parley_audio_io::wav::read_wav_native(&wav).unwrap();
    assert_eq!(rate, 24_000);
    assert!((native.len() as f64 / 24_000.0 - seconds).abs() < 0.01);

    let audio = parley_audio_io::wav::read_wav(&wav, MODEL_INPUT_RATE).unwrap();
    let whisper_dir =
        parley_models::installed_model_dir(&parley_models::default_models_dir(), WHISPER_TINY_EN)
            .unwrap();
    let heard = Transcriber::load(&whisper_dir)
        .unwrap()
        .transcribe(&audio, &CancelGuard::never(), |_| {})
        .unwrap();
    assert_eq!(words(&heard), words(text), "heard {heard:?}");
}

#[test]
fn generate_streams_an_answer_and_stops_at_max_tokens_saying_so() {
    let (stdout, stderr) = run(&mut parley(&[
        "generate",
        "Tell me a long story about a dragon.",
        "--max-tokens",
        "12",
    ]));
    assert!(!stdout.trim().is_empty(), "no answer");
    assert!(stderr.contains("(stopped at max tokens: 12)"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("prompt:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("decode: 12 tokens"), "{line}");
    assert!(number_after(line, "prompt:") > 10.0, "{line}");
}

#[test]
fn generate_is_repeatable_with_a_seed() {
    let args = [
        "generate",
        "Name a colour.",
        "--max-tokens",
        "8",
        "--temperature",
        "0.8",
        "--seed",
        "7",
    ];
    let (first, _) = run(&mut parley(&args));
    let (second, _) = run(&mut parley(&args));
    assert_eq!(first, second);
}
