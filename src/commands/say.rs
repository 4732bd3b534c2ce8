//! `parley say "text" -o out.wav`: the Talker alone (hibari TTS), streamed as in a conversation.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parley_audio_io::constants::MODEL_OUTPUT_RATE;
use parley_models::catalog::HIBARI;
use parley_talker::Talker;
use parley_talker::hibari::talker::{HibariConfig, HibariTalker, HibariTts};
use parley_thinker::seam::ThinkerToken;
use parley_thinker::stream::{CancelGuard, Step};

pub fn run(text: &str, output: &Path, speed: f32) -> anyhow::Result<()> {
    let tts = Arc::new(HibariTts::load(&super::model_dir::require(HIBARI)?)?);
    let config = HibariConfig {
        speed,
        ..HibariConfig::default()
    };
    let mut talker = HibariTalker::new(tts, config);
    let cancel = CancelGuard::never();

    // The whole text arrives as one Thinker token, then the answer is finished: the time to
    // first audio is measured from the moment the first phrase is available.
    let start = Instant::now();
    talker.push_token(&ThinkerToken {
        id: 0,
        text: text.to_string(),
        hidden: None,
        embedding: None,
    })?;
    talker.finish();
    let mut audio = Vec::new();
    let mut first_audio = None;
    loop {
        match talker.next_chunk(&cancel)? {
            Step::Ready(chunk) => {
                first_audio.get_or_insert_with(|| start.elapsed());
                audio.extend_from_slice(&chunk);
            }
            Step::Pending => continue,
            Step::Done => break,
        }
    }
    let elapsed = start.elapsed();
    parley_audio_io::wav::write_wav(output, &audio, MODEL_OUTPUT_RATE)?;
    let audio_s = audio.len() as f64 / MODEL_OUTPUT_RATE as f64;
    eprintln!(
        "wrote {audio_s:.2} s of speech to {}; first audio after {:.0} ms; real-time factor {:.3}",
        output.display(),
        first_audio.unwrap_or(elapsed).as_secs_f64() * 1e3,
        elapsed.as_secs_f64() / audio_s.max(1e-9),
    );
    Ok(())
}
