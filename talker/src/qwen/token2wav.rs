//! Token2Wav assembled: codec codes -> mel (the DiT integrated from noise by the flow sampler) ->
//! 24 kHz audio (BigVGAN), loaded from a checkpoint directory (`token2wav_config` in config.json,
//! `token2wav.*` weights). Runs in f32 like the reference (`token2wav.float()`).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use parley_thinker::qwen::QwenError;
use parley_thinker::qwen::checkpoint::weight_files;
use parley_thinker::stream::CancelGuard;
use serde::Deserialize;

use super::bigvgan::{BigVgan, BigVganConfig};
use super::dit::{Dit, SpeakerConditioning};
use super::dit_config::DitConfig;
use super::sampler::{SampleError, SamplerSettings, sample};

pub const DIT_PREFIX: &str = "token2wav.code2wav_dit_model";
pub const BIGVGAN_PREFIX: &str = "token2wav.code2wav_bigvgan_model";

/// `token2wav_config` of config.json.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Token2WavConfig {
    #[serde(default)]
    pub dit_config: DitConfig,
    #[serde(default)]
    pub bigvgan_config: BigVganConfig,
}

#[derive(Deserialize)]
struct TopLevel {
    token2wav_config: Option<Token2WavConfig>,
}

impl Token2WavConfig {
    /// Reads `token2wav_config` from a checkpoint directory's config.json.
    pub fn from_checkpoint_dir(dir: &Path) -> Result<Self, QwenError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                QwenError::MissingFile { path: path.clone() }
            } else {
                QwenError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let top: TopLevel = serde_json::from_str(&text).map_err(|e| QwenError::BadConfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
        top.token2wav_config.ok_or_else(|| QwenError::BadConfig {
            path,
            message: "no `token2wav_config`: not a Qwen2.5-Omni checkpoint with speech output"
                .into(),
        })
    }
}

/// The DiT and the vocoder.
#[derive(Debug, Clone)]
pub struct Token2Wav {
    pub dit: Dit,
    pub bigvgan: BigVgan,
}

impl Token2Wav {
    pub fn load(dir: &Path, device: &Device) -> Result<Self, QwenError> {
        let config = Token2WavConfig::from_checkpoint_dir(dir)?;
        let vb = weights(dir, device)?;
        let weights_error = |e: candle_core::Error| QwenError::Weights(format!("token2wav: {e}"));
        Ok(Self {
            dit: Dit::load(&config.dit_config, vb.pp(DIT_PREFIX)).map_err(weights_error)?,
            bigvgan: BigVgan::load(&config.bigvgan_config, vb.pp(BIGVGAN_PREFIX))
                .map_err(weights_error)?,
        })
    }

    /// Codes `[1, n]` (u32, below the codec table size) to mel `[1, mel_dim, 2n]` and audio
    /// `[1, 2n * hop]`, starting the flow from `noise` `[1, 2n, mel_dim]`.
    pub fn synthesize(
        &self,
        codes: &Tensor,
        speaker: &SpeakerConditioning,
        noise: &Tensor,
        settings: &SamplerSettings,
        cancel: &CancelGuard,
    ) -> Result<(Tensor, Tensor), SampleError> {
        let mel = sample(&self.dit, codes, speaker, noise, settings, cancel)?;
        let mel = mel.transpose(1, 2)?.contiguous()?;
        if cancel.is_cancelled() {
            return Err(SampleError::Cancelled);
        }
        let wav = self.bigvgan.forward(&mel)?;
        Ok((mel, wav))
    }
}

/// All weights of a checkpoint directory, f32, memory-mapped.
pub fn weights(dir: &Path, device: &Device) -> Result<VarBuilder<'static>, QwenError> {
    let files = weight_files(dir)?;
    // SAFETY: read-only mapping of the checkpoint files; nobody truncates them while loaded.
    unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, device) }
        .map_err(|e| QwenError::Weights(format!("{}: {e}", dir.display())))
}
