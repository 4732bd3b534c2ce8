//! The CPU profile's models, loaded once per process and shared by every session.
//!
//! Weights are shared; each session gets its own stream state from them: a clone of the VAD
//! (its LSTM state), of the transcriber (its decoder caches), a `GgufThinker` over the shared
//! GGUF weights (its KV cache and history) and a `HibariTalker` over the shared TTS.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use parley_audio_io::constants::MODEL_INPUT_RATE;
use parley_models::catalog::{HIBARI, SILERO_VAD, SMOLLM2_135M, WHISPER_TINY_EN};
use parley_talker::Talker;
use parley_talker::hibari::talker::{HibariConfig, HibariTalker, HibariTts};
use parley_thinker::llm::{GgufThinker, SessionConfig as ThinkerConfig, SharedGguf};
use parley_thinker::seam::{Thinker, ThinkerToken};
use parley_thinker::stream::{CancelGuard, Step, StreamingModule};
use parley_thinker::vad::SileroVad;
use parley_thinker::whisper::Transcriber;
use tracing::info;

use super::workers::GenerationSettings;

/// File name of the GGUF inside the installed SmolLM2 directory.
const GGUF_FILE: &str = "model.gguf";

/// Everything the CPU profile needs, loaded.
pub struct CpuModels {
    vad: SileroVad,
    transcriber: Transcriber,
    llm: Arc<SharedGguf>,
    tts: Arc<HibariTts>,
}

impl std::fmt::Debug for CpuModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuModels").finish_non_exhaustive()
    }
}

impl CpuModels {
    /// Loads the four models from `models_dir` (see `parley models fetch`); a missing model
    /// names its directory and the command that installs it.
    pub fn load(models_dir: &Path) -> anyhow::Result<Self> {
        let start = Instant::now();
        let dir = |name| {
            parley_models::installed_model_dir(models_dir, name)
                .with_context(|| format!("cannot load {name}"))
        };
        let vad = SileroVad::load(&dir(SILERO_VAD)?)?;
        let transcriber = Transcriber::load(&dir(WHISPER_TINY_EN)?)?;
        let llm = SharedGguf::load(dir(SMOLLM2_135M)?.join(GGUF_FILE))?;
        let tts = Arc::new(HibariTts::load(&dir(HIBARI)?)?);
        let models = Self {
            vad,
            transcriber,
            llm,
            tts,
        };
        models.warm_up()?;
        info!(
            "loaded and warmed up the CPU profile (Silero VAD, Whisper tiny.en, SmolLM2-135M, \
             hibari) in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        Ok(models)
    }

    /// Runs every model once: the first call of each pays for allocations, page faults of the
    /// mapped weights and lazy kernel setup (measured: the first answer of a fresh process had
    /// its first audio ~2.3 s later than the second). Better at startup than in a user's turn.
    fn warm_up(&self) -> anyhow::Result<()> {
        let never = CancelGuard::never();
        let second = vec![0.0f32; MODEL_INPUT_RATE as usize];
        let mut vad = self.vad();
        vad.step(&second)?;
        self.transcriber().transcribe(&second, &never, |_| {})?;
        let mut thinker = GgufThinker::new(Arc::clone(&self.llm), ThinkerConfig::default())?;
        thinker.user_turn("Hello!")?;
        for _ in 0..2 {
            thinker.next_event(&never)?;
        }
        let mut talker = self.talker(HibariConfig::default());
        talker.push_token(&ThinkerToken {
            id: 0,
            text: "Hello there.".to_string(),
            hidden: None,
            embedding: None,
        })?;
        talker.finish();
        // The text is finished, so the Talker never waits for more: Ready until Done.
        while let Step::Ready(_) = talker.next_chunk(&never)? {}
        Ok(())
    }

    /// A fresh VAD stream over the shared weights.
    pub fn vad(&self) -> SileroVad {
        let mut vad = self.vad.clone();
        vad.reset();
        vad
    }

    /// A transcriber with its own decoding state over the shared weights.
    pub fn transcriber(&self) -> Transcriber {
        self.transcriber.clone()
    }

    /// A new conversation over the shared GGUF weights, with a session's generation settings.
    pub fn thinker(&self, settings: &GenerationSettings) -> anyhow::Result<GgufThinker> {
        let config = ThinkerConfig {
            system_prompt: Some(settings.system_prompt.clone()),
            temperature: settings.temperature,
            top_p: settings.top_p,
            max_tokens: settings.max_tokens,
            ..ThinkerConfig::default()
        };
        Ok(GgufThinker::new(Arc::clone(&self.llm), config)?)
    }

    /// A Talker over the shared TTS.
    pub fn talker(&self, config: HibariConfig) -> HibariTalker {
        HibariTalker::new(Arc::clone(&self.tts), config)
    }
}
