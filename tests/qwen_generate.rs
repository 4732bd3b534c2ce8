//! `parley generate --qwen` as a user runs it, on the committed tiny checkpoint (random weights,
//! so the words are noise; the path is real): a text question and a spoken one (a WAV streamed
//! into the Thinker 100 ms at a time) both answer, with the load report and speeds.

use std::process::Command;

fn generate(extra: &[&str]) -> (String, String) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/goldens/qwen/tiny_a/checkpoint"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([
            "generate",
            "--qwen",
            dir,
            "--max-tokens",
            "8",
            "--temperature",
            "0",
        ])
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The prompt's token count from the speed line.
fn prompt_tokens(stderr: &str) -> usize {
    let line = stderr.lines().find(|l| l.starts_with("prompt: ")).unwrap();
    line["prompt: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_qwen_thinker_answers_text_and_speech_from_the_command_line() {
    let (answer, stderr) = generate(&["What is the capital of France?"]);
    assert!(!answer.trim().is_empty());
    assert!(stderr.contains("thinker tensors, stored"), "{stderr}");
    assert!(stderr.contains("decode: 8 tokens"), "{stderr}");
    let text_prompt = prompt_tokens(&stderr);

    let wav = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/audio/q_capital_france.wav"
    );
    let (_, stderr) = generate(&["--audio", wav, "ignored"]);
    // 25 audio positions per second of speech replace the words.
    let spoken_prompt = prompt_tokens(&stderr);
    assert!(
        spoken_prompt > text_prompt + 25,
        "{spoken_prompt} vs {text_prompt}"
    );
}
