//! `parley transcribe FILE.wav`: the ears alone (Whisper), for users and benchmarks.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use parley_audio_io::constants::MODEL_INPUT_RATE;
use parley_models::catalog::WHISPER_TINY_EN;
use parley_thinker::stream::CancelGuard;
use parley_thinker::whisper::Transcriber;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let samples = parley_audio_io::wav::read_wav(path, MODEL_INPUT_RATE)?;
    let mut transcriber = Transcriber::load(&super::model_dir::require(WHISPER_TINY_EN)?)?;
    let audio_s = samples.len() as f64 / MODEL_INPUT_RATE as f64;

    let start = Instant::now();
    let mut stdout = std::io::stdout();
    let (text, timings) = transcriber
        .transcribe_timed(&samples, &CancelGuard::never(), |piece| {
            // Streamed as decoded; a failed write to stdout is not worth stopping for.
            let _ = write!(stdout, "{piece}");
            let _ = stdout.flush();
        })
        .with_context(|| format!("transcribing {}", path.display()))?;
    let elapsed = start.elapsed();
    if text.is_empty() {
        println!("(no speech)");
    } else {
        println!();
    }
    eprintln!(
        "transcribed {audio_s:.2} s of audio in {:.0} ms (mel {:.0} ms, encoder {:.0} ms, \
         decoder {:.0} ms for {} steps); real-time factor {:.3}",
        elapsed.as_secs_f64() * 1e3,
        timings.mel.as_secs_f64() * 1e3,
        timings.encoder.as_secs_f64() * 1e3,
        timings.decoder.as_secs_f64() * 1e3,
        timings.decoder_steps,
        elapsed.as_secs_f64() / audio_s.max(1e-9),
    );
    Ok(())
}
