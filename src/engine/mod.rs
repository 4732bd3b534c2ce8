//! parley's engine: live spoken conversations on loaded models.
//!
//! - [`models`]: the CPU profile's models, loaded once and shared by all sessions.
//! - [`qwen_models`]: the qwen profile's models (Qwen2.5-Omni), likewise.
//! - [`session`]: one conversation's session thread (listening, turn decisions, pacing).
//! - [`turn`]: the turn-taking state machine (who has the floor, barge-in vs backchannel).
//! - [`workers`]: the Thinker and Talker threads of a session.
//! - [`settings`]: server defaults and what `session.update` may change.
//! - [`websocket`]: a session behind the Realtime WebSocket transport.
//! - [`metrics`]: what the engine reports, for the Prometheus endpoint.

pub mod metrics;
pub mod models;
pub mod qwen_models;
pub mod session;
pub mod settings;
pub mod turn;
pub mod websocket;
pub mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use parley_talker::hibari::talker::HibariConfig;
use parley_thinker::llm::{GgufThinker, SessionConfig as ThinkerConfig};
use parley_thinker::whisper::SpeculativeTranscriber;

use metrics::EngineMetrics;
use parley_models::Profile;

use crate::serve::config::ServeConfig;
use models::CpuModels;
use qwen_models::QwenModels;
use session::{Ears, Outbox, Session, SessionInput};
use settings::{EngineDefaults, Settings};
use workers::{GenerationSettings, SessionThinker, Workers};

/// Client items queued for a session thread (the transport waits when it is full, which slows
/// the client down through TCP).
pub const SESSION_INPUT_QUEUE: usize = 64;

/// The loaded models of one profile.
pub enum Models {
    Cpu(CpuModels),
    Qwen(QwenModels),
}

/// Loaded models plus the defaults every session starts from.
pub struct Engine {
    models: Models,
    defaults: EngineDefaults,
    sessions_started: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// A running session: feed it through `input`; dropping `input` ends it.
pub struct SessionHandle {
    pub input: Sender<SessionInput>,
    pub thread: JoinHandle<()>,
}

impl Engine {
    /// An engine on `models`. `defaults.voice` (empty: the Talker's default) must be one of the
    /// models' voices, which become the ones sessions may choose from.
    pub fn new(
        models: impl Into<Models>,
        mut defaults: EngineDefaults,
    ) -> anyhow::Result<Arc<Self>> {
        let models = models.into();
        defaults.voices = models.voices();
        defaults.voice = if defaults.voice.is_empty() {
            defaults.voices.first().cloned().unwrap_or_default()
        } else {
            defaults
                .find_voice(&defaults.voice)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no voice {:?}: the loaded Talker speaks with {}",
                        defaults.voice,
                        defaults.voices.join(", ")
                    )
                })?
                .to_string()
        };
        Ok(Arc::new(Self {
            models,
            defaults,
            sessions_started: AtomicU64::new(0),
        }))
    }

    /// Loads the models `config` asks for, with its session defaults.
    pub fn from_serve_config(config: &ServeConfig) -> anyhow::Result<Arc<Self>> {
        let mut defaults = EngineDefaults::from_session_defaults(&config.session);
        let models = match config.profile {
            Profile::Cpu => Models::Cpu(CpuModels::load(&config.models_dir)?),
            Profile::Qwen => {
                let model = config.model.as_deref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "the qwen profile needs a checkpoint: --model Qwen/Qwen2.5-Omni-3B (or -7B, \
                         or a local directory)"
                    )
                })?;
                // Qwen2.5-Omni speaks only with its own system prompt (the model card); a
                // server that sets none gets it.
                if config.session.instructions
                    == crate::serve::config::SessionDefaults::default().instructions
                {
                    defaults.instructions = parley_thinker::qwen::SPEECH_SYSTEM_PROMPT.to_string();
                }
                Models::Qwen(QwenModels::load(&config.models_dir, model)?)
            }
        };
        Self::new(models, defaults)
    }

    pub fn defaults(&self) -> &EngineDefaults {
        &self.defaults
    }

    /// Starts a session (its session thread and model threads) sending to `out`.
    pub fn start_session<O: Outbox>(
        &self,
        out: O,
        model: Option<String>,
        metrics: EngineMetrics,
    ) -> anyhow::Result<SessionHandle> {
        let number = self.sessions_started.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("session-{number}");
        let settings = Settings::from_config(
            &settings::initial_session(String::new(), None, &self.defaults),
            &self.defaults,
        )
        .map_err(|e| anyhow::anyhow!("the server's session defaults are invalid: {e}"))?;
        let (vad, ears, workers) = match &self.models {
            Models::Cpu(models) => {
                let thinker = models.thinker(&thinker_config(&settings))?;
                let talker = models.talker(HibariConfig {
                    speed: settings.speed,
                    ..HibariConfig::default()
                });
                (
                    models.vad(),
                    Ears::Transcriber(Box::new(SpeculativeTranscriber::new(models.transcriber()))),
                    Workers::spawn(&name, thinker, talker)?,
                )
            }
            Models::Qwen(models) => {
                let thinker = models.thinker(&thinker_config(&settings));
                let talker = models.talker(&settings.voice)?;
                (
                    models.vad(),
                    Ears::Thinker,
                    Workers::spawn(&name, thinker, talker)?,
                )
            }
        };
        let session = Session::new(
            name.clone(),
            out,
            model,
            self.defaults.clone(),
            metrics,
            vad,
            ears,
            workers,
        )?;
        let (input, input_rx) = crossbeam_channel::bounded(SESSION_INPUT_QUEUE);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || session.run(input_rx))?;
        Ok(SessionHandle { input, thread })
    }
}

/// The Thinker settings a session's settings ask for.
pub fn thinker_config(settings: &Settings) -> GenerationSettings {
    GenerationSettings {
        system_prompt: settings.instructions.clone(),
        temperature: settings.temperature,
        top_p: settings.top_p,
        max_tokens: settings.max_output_tokens,
    }
}

impl Models {
    /// The voices the profile's Talker speaks with, its default first.
    pub fn voices(&self) -> Vec<String> {
        match self {
            Models::Cpu(_) => vec![parley_talker::hibari::talker::HIBARI_VOICE.to_string()],
            Models::Qwen(models) => models.voices(),
        }
    }
}

impl From<CpuModels> for Models {
    fn from(models: CpuModels) -> Self {
        Self::Cpu(models)
    }
}

impl From<QwenModels> for Models {
    fn from(models: QwenModels) -> Self {
        Self::Qwen(models)
    }
}

impl SessionThinker for GgufThinker {
    fn configure(&mut self, settings: &GenerationSettings) -> Result<(), Self::Error> {
        let config = ThinkerConfig {
            system_prompt: Some(settings.system_prompt.clone()),
            temperature: settings.temperature,
            top_p: settings.top_p,
            max_tokens: settings.max_tokens,
            ..self.config().clone()
        };
        self.set_config(config)
    }
}
