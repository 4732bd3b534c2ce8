//! The qwen profile's models, loaded once per process and shared by every session: the
//! Qwen2.5-Omni checkpoint (Thinker, Talker, Token2Wav, voices) and the CPU profile's Silero VAD
//! for turn-taking.
//!
//! Weights are shared (candle tensors are reference-counted); each session gets a
//! [`QwenSession`] over its own clone of the Thinker (its KV cache) and a [`QwenTalker`] over its
//! own clone of the Talker (its KV cache).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use parley_models::catalog::SILERO_VAD;
use parley_models::memory::resident_bytes;
use parley_talker::qwen::speakers::Speakers;
use parley_talker::qwen::streaming_talker::{QwenTalker, QwenTalkerSettings, QwenVoiceModels};
use parley_talker::qwen::talker_model::TalkerModel;
use parley_talker::qwen::token2wav::Token2Wav;
use parley_thinker::qwen::checkpoint::LoadProgress;
use parley_thinker::qwen::{
    self, Checkpoint, QwenError, QwenSession, QwenThinker, QwenTokenizer, SessionConfig,
};
use parley_thinker::stream::StreamingModule;
use parley_thinker::vad::SileroVad;
use tracing::info;

use super::workers::{GenerationSettings, SessionThinker};

/// Loads the Thinker with a progress bar over its weights (on stderr, hidden when that is not a
/// terminal); the loader logs the weights' size and time, this adds the process's resident
/// memory (on a GPU the weights live in device memory instead).
pub fn load_thinker(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<QwenThinker> {
    let dtype = qwen::device::compute_dtype(device);
    let total = checkpoint.weight_report(dtype)?.loaded_bytes;
    let bar =
        indicatif::ProgressBar::new(total).with_style(indicatif::ProgressStyle::with_template(
            "loading the Thinker {bar:30} {bytes}/{total_bytes} {elapsed}",
        )?);
    let before = resident_bytes();
    let progress: LoadProgress = {
        let bar = bar.clone();
        Arc::new(move |bytes| bar.inc(bytes))
    };
    let thinker = QwenThinker::load_with_progress(checkpoint, device, dtype, Some(progress))?;
    bar.finish_and_clear();
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        info!(
            "resident memory {:.2} GB (+{:.2} GB for the Thinker)",
            after as f64 / 1e9,
            after.saturating_sub(before) as f64 / 1e9
        );
    }
    Ok(thinker)
}

/// Everything the qwen profile needs, loaded.
pub struct QwenModels {
    pub dir: PathBuf,
    vad: SileroVad,
    thinker: Arc<QwenThinker>,
    tokenizer: QwenTokenizer,
    talker: TalkerModel,
    token2wav: Arc<Token2Wav>,
    speakers: Arc<Speakers>,
    talker_settings: QwenTalkerSettings,
}

impl std::fmt::Debug for QwenModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenModels")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl QwenModels {
    /// Loads `model` (a hub id such as `Qwen/Qwen2.5-Omni-3B`, or a checkpoint directory) and
    /// the Silero VAD installed under `models_dir`.
    pub fn load(models_dir: &Path, model: &str) -> anyhow::Result<Self> {
        let start = Instant::now();
        let vad_dir = parley_models::installed_model_dir(models_dir, SILERO_VAD)
            .context("the qwen profile takes turns with the CPU profile's Silero VAD")?;
        let vad = SileroVad::load(&vad_dir)?;
        let dir = qwen::hub::resolve(model, true)?;
        let checkpoint = Checkpoint::open(&dir)?;
        let device = qwen::device::default_device()?;
        let thinker = load_thinker(&checkpoint, &device)?;
        let tokenizer = QwenTokenizer::from_checkpoint_dir(&dir, &checkpoint.config)?;
        let talker = TalkerModel::load(&dir, &device)?;
        let token2wav = Token2Wav::load(&dir, &device)?;
        let speakers = load_speakers(&dir)?;
        info!(
            "loaded the qwen profile from {} in {:.1} s (voices: {})",
            dir.display(),
            start.elapsed().as_secs_f64(),
            speakers.names().collect::<Vec<_>>().join(", ")
        );
        Ok(Self {
            dir,
            vad,
            thinker: Arc::new(thinker),
            tokenizer,
            talker,
            token2wav: Arc::new(token2wav),
            speakers: Arc::new(speakers),
            talker_settings: QwenTalkerSettings::default(),
        })
    }

    /// How sessions' Talkers speak from now on.
    pub fn set_talker_settings(&mut self, settings: QwenTalkerSettings) {
        self.talker_settings = settings;
    }

    /// A fresh VAD stream over the shared weights.
    pub fn vad(&self) -> SileroVad {
        let mut vad = self.vad.clone();
        vad.reset();
        vad
    }

    /// A new conversation over the shared Thinker weights.
    pub fn thinker(&self, settings: &GenerationSettings) -> QwenSession {
        let mut thinker = QwenThinker::clone(&self.thinker);
        thinker.text_model().clear_cache();
        QwenSession::new(thinker, self.tokenizer.clone(), session_config(settings))
    }

    /// A Talker speaking with `voice` (a name in the checkpoint's `spk_dict`, any case).
    pub fn talker(&self, voice: &str) -> anyhow::Result<QwenTalker> {
        let models = QwenVoiceModels {
            thinker: Arc::clone(&self.thinker),
            talker: self.talker.clone(),
            token2wav: Arc::clone(&self.token2wav),
            speakers: Arc::clone(&self.speakers),
        };
        Ok(QwenTalker::new(models, voice, self.talker_settings)?)
    }

    /// The checkpoint's voices, the published default (Chelsie) first when it has it.
    pub fn voices(&self) -> Vec<String> {
        self.speakers.names_default_first()
    }
}

/// The voices: `spk_dict.safetensors` (from `parley models speakers DIR`) when present, else the
/// checkpoint's own `spk_dict.pt`.
fn load_speakers(dir: &Path) -> anyhow::Result<Speakers> {
    let converted = dir.join("spk_dict.safetensors");
    let speakers = if converted.is_file() {
        Speakers::load(&converted)?
    } else {
        let pickle = dir.join("spk_dict.pt");
        Speakers::from_torch(&pickle).with_context(|| {
            format!(
                "the qwen profile speaks with the voices of {} (a Qwen2.5-Omni checkpoint has it)",
                pickle.display()
            )
        })?
    };
    if speakers.names().next().is_none() {
        anyhow::bail!("{}: the checkpoint has no voices", dir.display());
    }
    Ok(speakers)
}

fn session_config(settings: &GenerationSettings) -> SessionConfig {
    SessionConfig {
        system_prompt: settings.system_prompt.clone(),
        temperature: settings.temperature,
        top_p: settings.top_p,
        max_tokens: settings.max_tokens,
        ..SessionConfig::default()
    }
}

impl SessionThinker for QwenSession {
    fn configure(&mut self, settings: &GenerationSettings) -> Result<(), QwenError> {
        self.set_config(SessionConfig {
            seed: self.config().seed,
            ..session_config(settings)
        });
        Ok(())
    }

    fn hears_speech(&self) -> bool {
        true
    }

    fn begin_spoken_turn(&mut self) -> Result<(), QwenError> {
        self.begin_audio_turn()
    }

    fn push_speech(&mut self, samples: &[f32]) -> Result<(), QwenError> {
        self.push_audio(samples).map(|_| ())
    }

    fn end_spoken_turn(&mut self) -> Result<(), QwenError> {
        self.end_audio_turn()
    }
}
