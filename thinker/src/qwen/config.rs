//! The Thinker's part of a Qwen2.5-Omni `config.json`: `thinker_config.{audio_config, text_config}`
//! and the multimodal token ids.
//!
//! Field names mirror the JSON. Where the published checkpoints' config.json omits a field, the
//! serde default is the published checkpoint's value (Qwen2.5-Omni-7B; the 3B config.json spells out
//! every size that differs). Both rope layouts are read: the published one (`rope_theta` +
//! `rope_scaling.mrope_section`) and the one newer transformers write (`rope_parameters`).

use serde::Deserialize;
use std::path::Path;

use super::QwenError;

/// The top level of a published checkpoint's config.json; only the Thinker is read here.
#[derive(Debug, Clone, Deserialize)]
struct OmniConfig {
    thinker_config: ThinkerConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ThinkerConfig {
    pub audio_config: AudioEncoderConfig,
    pub text_config: TextConfig,
    /// `<|AUDIO|>`: one placeholder per audio-encoder output token.
    #[serde(default = "defaults::audio_token", alias = "audio_token_id")]
    pub audio_token_index: u32,
    #[serde(default = "defaults::image_token", alias = "image_token_id")]
    pub image_token_index: u32,
    #[serde(default = "defaults::video_token", alias = "video_token_id")]
    pub video_token_index: u32,
    /// `<|audio_bos|>`
    #[serde(default = "defaults::audio_start_token")]
    pub audio_start_token_id: u32,
    /// `<|audio_eos|>`
    #[serde(default = "defaults::audio_end_token")]
    pub audio_end_token_id: u32,
    /// `<|vision_bos|>`
    #[serde(default = "defaults::vision_start_token")]
    pub vision_start_token_id: u32,
    /// `<|vision_eos|>`
    #[serde(default = "defaults::vision_end_token")]
    pub vision_end_token_id: u32,
    #[serde(default = "defaults::user_token")]
    pub user_token_id: u32,
    /// Temporal rope ids per second of media (25: one id per 40 ms).
    #[serde(default = "defaults::position_id_per_seconds")]
    pub position_id_per_seconds: usize,
    /// Length of the audio/video interleaving chunk, in seconds.
    #[serde(default = "defaults::seconds_per_chunk")]
    pub seconds_per_chunk: usize,
}

/// The Whisper-style audio encoder (`thinker.audio_tower`).
#[derive(Debug, Clone, Deserialize)]
pub struct AudioEncoderConfig {
    #[serde(default = "defaults::num_mel_bins")]
    pub num_mel_bins: usize,
    #[serde(default = "defaults::encoder_layers")]
    pub encoder_layers: usize,
    #[serde(default = "defaults::encoder_attention_heads")]
    pub encoder_attention_heads: usize,
    #[serde(default = "defaults::encoder_ffn_dim")]
    pub encoder_ffn_dim: usize,
    #[serde(default = "defaults::d_model")]
    pub d_model: usize,
    #[serde(default = "defaults::gelu")]
    pub activation_function: String,
    /// Rows of the sinusoidal position table (post-conv frames of one block must fit).
    #[serde(default = "defaults::max_source_positions")]
    pub max_source_positions: usize,
    /// Half a block, in mel frames: attention and positions restart every `2 * n_window` frames.
    #[serde(default = "defaults::n_window")]
    pub n_window: usize,
    /// Width of the encoder output = the Thinker's hidden size.
    #[serde(default = "defaults::output_dim")]
    pub output_dim: usize,
}

/// The Qwen2.5 decoder (`thinker.model`, `thinker.lm_head`).
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::num_key_value_heads")]
    pub num_key_value_heads: usize,
    /// Absent in the published configs: `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "defaults::silu")]
    pub hidden_act: String,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "defaults::rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Published layout: the base here, the M-RoPE sections in `rope_scaling`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeSettings>,
    /// Newer layout: everything in one object.
    #[serde(default)]
    pub rope_parameters: Option<RopeSettings>,
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Without a `thinker.lm_head.weight` tensor the output projection is the embedding table,
    /// but only when this says so.
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

/// `rope_scaling` (published) or `rope_parameters` (newer). Published files carry both `type`
/// and `rope_type`.
#[derive(Debug, Clone, Deserialize)]
pub struct RopeSettings {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
}

/// The resolved rotary settings of the decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct MropeConfig {
    pub theta: f64,
    /// Rotary frequency pairs given to the temporal, height and width streams; sums to head_dim / 2.
    pub sections: Vec<usize>,
}

impl ThinkerConfig {
    /// Reads `config.json` of a checkpoint directory: a full Qwen2.5-Omni config (the Thinker under
    /// `thinker_config`) or a bare Thinker config.
    pub fn from_checkpoint_dir(dir: &Path) -> Result<Self, QwenError> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(QwenError::MissingFile { path });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| QwenError::Io {
            path: path.clone(),
            source,
        })?;
        Self::from_json(&text).map_err(|message| QwenError::BadConfig { path, message })
    }

    /// Parses config.json text; the error is a human-readable message.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let config: Self = if value.get("thinker_config").is_some() {
            serde_json::from_value::<OmniConfig>(value)
                .map_err(|e| format!("thinker_config: {e}"))?
                .thinker_config
        } else if value.get("audio_config").is_some() && value.get("text_config").is_some() {
            serde_json::from_value(value).map_err(|e| e.to_string())?
        } else {
            return Err(
                "neither `thinker_config` nor `audio_config` + `text_config`: \
                        not a Qwen2.5-Omni config"
                    .into(),
            );
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let a = &self.audio_config;
        let t = &self.text_config;
        if a.activation_function != "gelu" {
            return Err(format!(
                "audio_config.activation_function `{}` (only gelu)",
                a.activation_function
            ));
        }
        if a.encoder_attention_heads == 0 || !a.d_model.is_multiple_of(a.encoder_attention_heads) {
            return Err(format!(
                "audio_config: d_model {} is not a multiple of {} heads",
                a.d_model, a.encoder_attention_heads
            ));
        }
        if a.n_window == 0 || a.n_window > a.max_source_positions {
            return Err(format!(
                "audio_config: a block's {} post-conv frames exceed max_source_positions {}",
                a.n_window, a.max_source_positions
            ));
        }
        if a.output_dim != t.hidden_size {
            return Err(format!(
                "audio_config.output_dim {} differs from text_config.hidden_size {}",
                a.output_dim, t.hidden_size
            ));
        }
        if t.hidden_act != "silu" {
            return Err(format!(
                "text_config.hidden_act `{}` (only silu)",
                t.hidden_act
            ));
        }
        if t.num_attention_heads == 0
            || t.num_key_value_heads == 0
            || !t.num_attention_heads.is_multiple_of(t.num_key_value_heads)
        {
            return Err(format!(
                "text_config: {} heads cannot share {} kv heads",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if t.use_sliding_window {
            return Err("text_config.use_sliding_window is not supported".into());
        }
        let mrope = t.mrope()?;
        if mrope.sections.iter().sum::<usize>() * 2 != t.head_dim() {
            return Err(format!(
                "mrope_section {:?} must cover head_dim / 2 = {} frequency pairs",
                mrope.sections,
                t.head_dim() / 2
            ));
        }
        let ids = [
            ("audio_token_index", self.audio_token_index),
            ("audio_start_token_id", self.audio_start_token_id),
            ("audio_end_token_id", self.audio_end_token_id),
        ];
        for (name, id) in ids {
            if id as usize >= t.vocab_size {
                return Err(format!(
                    "{name} {id} is outside the vocabulary ({})",
                    t.vocab_size
                ));
            }
        }
        Ok(())
    }
}

impl AudioEncoderConfig {
    /// Mel frames per block: attention, the conv stem's padding and the positions restart here.
    pub fn block_frames(&self) -> usize {
        2 * self.n_window
    }

    /// Encoder output tokens for `frames` mel frames: the stride-2 conv, then the pairwise
    /// average pool (25 tokens per second at 100 frames per second).
    pub fn output_len(frames: usize) -> usize {
        let after_conv = frames.div_ceil(2);
        after_conv / 2
    }
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary base and M-RoPE sections from whichever layout the file uses; the newer
    /// `rope_parameters` wins when both are present (that is what transformers reads).
    pub fn mrope(&self) -> Result<MropeConfig, String> {
        let settings = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let unsupported = settings
            .into_iter()
            .flat_map(|s| [s.rope_type.as_deref(), s.legacy_type.as_deref()])
            .flatten()
            .find(|k| *k != "default" && *k != "mrope");
        if let Some(kind) = unsupported {
            return Err(format!(
                "rope type `{kind}` (only default M-RoPE is supported)"
            ));
        }
        let theta = settings
            .and_then(|s| s.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(defaults::ROPE_THETA);
        let sections = settings
            .and_then(|s| s.mrope_section.clone())
            .unwrap_or_else(|| defaults::MROPE_SECTION.to_vec());
        if sections.len() != 3 {
            return Err(format!(
                "mrope_section {sections:?} needs 3 entries (temporal, height, width)"
            ));
        }
        Ok(MropeConfig { theta, sections })
    }
}

/// Values of the published Qwen2.5-Omni-7B config.json (thinker).
mod defaults {
    pub const ROPE_THETA: f64 = 1_000_000.0;
    pub const MROPE_SECTION: [usize; 3] = [16, 24, 24];
    pub fn audio_token() -> u32 {
        151_646
    }
    pub fn audio_start_token() -> u32 {
        151_647
    }
    pub fn audio_end_token() -> u32 {
        151_648
    }
    pub fn vision_start_token() -> u32 {
        151_652
    }
    pub fn vision_end_token() -> u32 {
        151_653
    }
    pub fn image_token() -> u32 {
        151_655
    }
    pub fn video_token() -> u32 {
        151_656
    }
    pub fn user_token() -> u32 {
        872
    }
    pub fn position_id_per_seconds() -> usize {
        25
    }
    pub fn seconds_per_chunk() -> usize {
        2
    }
    pub fn num_mel_bins() -> usize {
        128
    }
    pub fn encoder_layers() -> usize {
        32
    }
    pub fn encoder_attention_heads() -> usize {
        20
    }
    pub fn encoder_ffn_dim() -> usize {
        5120
    }
    pub fn d_model() -> usize {
        1280
    }
    pub fn gelu() -> String {
        "gelu".into()
    }
    pub fn max_source_positions() -> usize {
        1500
    }
    pub fn n_window() -> usize {
        100
    }
    pub fn output_dim() -> usize {
        3584
    }
    pub fn vocab_size() -> usize {
        152_064
    }
    pub fn hidden_size() -> usize {
        3584
    }
    pub fn intermediate_size() -> usize {
        18_944
    }
    pub fn num_hidden_layers() -> usize {
        28
    }
    pub fn num_attention_heads() -> usize {
        28
    }
    pub fn num_key_value_heads() -> usize {
        4
    }
    pub fn silu() -> String {
        "silu".into()
    }
    pub fn max_position_embeddings() -> usize {
        32_768
    }
    pub fn rms_norm_eps() -> f64 {
        1e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_layout_with_omitted_fields_takes_checkpoint_defaults() {
        let json = r#"{"thinker_config": {
            "audio_config": {"output_dim": 2048},
            "text_config": {"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2,
                "rope_theta": 1000000.0,
                "rope_scaling": {"mrope_section": [16, 24, 24], "type": "default"}}}}"#;
        let c = ThinkerConfig::from_json(json).unwrap();
        assert_eq!(c.audio_config.n_window, 100);
        assert_eq!(c.audio_config.block_frames(), 200);
        assert_eq!(c.audio_token_index, 151_646);
        assert_eq!(c.text_config.head_dim(), 128);
        let m = c.text_config.mrope().unwrap();
        assert_eq!((m.theta, m.sections), (1e6, vec![16, 24, 24]));
    }

    #[test]
    fn rope_parameters_layout_is_read() {
        let json = r#"{"audio_config": {"output_dim": 64}, "text_config": {"hidden_size": 64,
            "num_attention_heads": 4, "num_key_value_heads": 2,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0,
                                "mrope_section": [2, 3, 3]}}}"#;
        let m = ThinkerConfig::from_json(json)
            .unwrap()
            .text_config
            .mrope()
            .unwrap();
        assert_eq!((m.theta, m.sections), (5000.0, vec![2, 3, 3]));
    }

    #[test]
    fn inconsistent_configs_are_rejected_with_a_reason() {
        let bad_sections = r#"{"audio_config": {"output_dim": 64}, "text_config": {"hidden_size": 64,
            "num_attention_heads": 4, "num_key_value_heads": 2,
            "rope_parameters": {"rope_theta": 5000.0, "mrope_section": [2, 3, 4]}}}"#;
        assert!(
            ThinkerConfig::from_json(bad_sections)
                .unwrap_err()
                .contains("mrope_section")
        );
        let bad_width = r#"{"audio_config": {"output_dim": 32}, "text_config": {"hidden_size": 64,
            "num_attention_heads": 4, "num_key_value_heads": 2}}"#;
        assert!(
            ThinkerConfig::from_json(bad_width)
                .unwrap_err()
                .contains("output_dim")
        );
        assert!(ThinkerConfig::from_json(r#"{"model_type": "llama"}"#).is_err());
    }

    #[test]
    fn encoder_output_length_is_25_per_second() {
        assert_eq!(AudioEncoderConfig::output_len(200), 50);
        assert_eq!(AudioEncoderConfig::output_len(70), 17);
        assert_eq!(AudioEncoderConfig::output_len(530), 132);
        assert_eq!(AudioEncoderConfig::output_len(1), 0);
        assert_eq!(AudioEncoderConfig::output_len(3), 1);
    }
}
