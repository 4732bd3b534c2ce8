//! `token2wav_config.dit_config` of a Qwen2.5-Omni `config.json`.
//!
//! The published config.json writes the DiT sizes under alias keys (`dim`, `depth`, `heads`) and
//! leaves out `block_size`, `look_ahead_layers`, `look_backward_layers` and the rope theta; the
//! model then runs with the transformers class defaults, which are the values below
//! (../shared/docs/qwen2_5_omni.md §5.1 and pitfall 9). A config written by newer transformers
//! spells every field out under its own name; both are read.

use serde::Deserialize;

/// The DiT (code -> mel) and its ECAPA-TDNN speaker encoder, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DitConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub head_dim: usize,
    pub ff_mult: usize,
    /// Width of the codec embedding.
    pub emb_dim: usize,
    /// Acoustic codes are `0..num_embeds`; the table has one more row.
    pub num_embeds: usize,
    /// Mel frames per code (2: codes at 50 Hz, mel at 100 fps).
    pub repeats: usize,
    pub mel_dim: usize,
    /// Attention blocks, in mel frames.
    pub block_size: usize,
    /// Layers whose attention also sees the next block.
    pub look_ahead_layers: Vec<usize>,
    /// Layers whose attention also sees the previous block.
    pub look_backward_layers: Vec<usize>,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    /// Width of the speaker vector (`cond` in `spk_dict.pt`).
    pub enc_emb_dim: usize,
    /// Output width of the ECAPA-TDNN on the reference mel.
    pub enc_dim: usize,
    pub enc_channels: Vec<usize>,
    pub enc_kernel_sizes: Vec<usize>,
    pub enc_dilations: Vec<usize>,
    pub enc_attention_channels: usize,
    pub enc_res2net_scale: usize,
    pub enc_se_channels: usize,
}

impl Default for DitConfig {
    /// The published checkpoints' values (3B and 7B share them).
    fn default() -> Self {
        Self {
            hidden_size: 1024,
            num_hidden_layers: 22,
            num_attention_heads: 16,
            head_dim: 64,
            ff_mult: 2,
            emb_dim: 512,
            num_embeds: 8193,
            repeats: 2,
            mel_dim: 80,
            block_size: 24,
            look_ahead_layers: vec![10],
            look_backward_layers: vec![0, 20],
            rope_theta: 10000.0,
            max_position_embeddings: 32768,
            enc_emb_dim: 192,
            enc_dim: 128,
            enc_channels: vec![256, 256, 256, 256, 768],
            enc_kernel_sizes: vec![5, 3, 3, 3, 1],
            enc_dilations: vec![1, 2, 3, 4, 1],
            enc_attention_channels: 64,
            enc_res2net_scale: 2,
            enc_se_channels: 64,
        }
    }
}

/// config.json as written: every field optional, sizes under either name.
#[derive(Debug, Default, Deserialize)]
struct RawDitConfig {
    hidden_size: Option<usize>,
    dim: Option<usize>,
    num_hidden_layers: Option<usize>,
    depth: Option<usize>,
    num_attention_heads: Option<usize>,
    heads: Option<usize>,
    head_dim: Option<usize>,
    ff_mult: Option<usize>,
    emb_dim: Option<usize>,
    num_embeds: Option<usize>,
    repeats: Option<usize>,
    mel_dim: Option<usize>,
    block_size: Option<usize>,
    look_ahead_layers: Option<Vec<usize>>,
    look_backward_layers: Option<Vec<usize>>,
    rope_theta: Option<f64>,
    rope_parameters: Option<RopeParameters>,
    max_position_embeddings: Option<usize>,
    enc_emb_dim: Option<usize>,
    enc_dim: Option<usize>,
    enc_channels: Option<Vec<usize>>,
    enc_kernel_sizes: Option<Vec<usize>>,
    enc_dilations: Option<Vec<usize>>,
    enc_attention_channels: Option<usize>,
    enc_res2net_scale: Option<usize>,
    enc_se_channels: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct RopeParameters {
    rope_theta: Option<f64>,
}

impl<'de> Deserialize<'de> for DitConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawDitConfig::deserialize(d)?;
        let default = DitConfig::default();
        let hidden_size = raw.hidden_size.or(raw.dim).unwrap_or(default.hidden_size);
        let num_attention_heads = raw
            .num_attention_heads
            .or(raw.heads)
            .unwrap_or(default.num_attention_heads);
        let config = DitConfig {
            hidden_size,
            num_hidden_layers: raw
                .num_hidden_layers
                .or(raw.depth)
                .unwrap_or(default.num_hidden_layers),
            num_attention_heads,
            head_dim: raw.head_dim.unwrap_or(default.head_dim),
            ff_mult: raw.ff_mult.unwrap_or(default.ff_mult),
            emb_dim: raw.emb_dim.unwrap_or(default.emb_dim),
            num_embeds: raw.num_embeds.unwrap_or(default.num_embeds),
            repeats: raw.repeats.unwrap_or(default.repeats),
            mel_dim: raw.mel_dim.unwrap_or(default.mel_dim),
            block_size: raw.block_size.unwrap_or(default.block_size),
            look_ahead_layers: raw.look_ahead_layers.unwrap_or(default.look_ahead_layers),
            look_backward_layers: raw
                .look_backward_layers
                .unwrap_or(default.look_backward_layers),
            rope_theta: raw
                .rope_parameters
                .and_then(|r| r.rope_theta)
                .or(raw.rope_theta)
                .unwrap_or(default.rope_theta),
            max_position_embeddings: raw
                .max_position_embeddings
                .unwrap_or(default.max_position_embeddings),
            enc_emb_dim: raw.enc_emb_dim.unwrap_or(default.enc_emb_dim),
            enc_dim: raw.enc_dim.unwrap_or(default.enc_dim),
            enc_channels: raw.enc_channels.unwrap_or(default.enc_channels),
            enc_kernel_sizes: raw.enc_kernel_sizes.unwrap_or(default.enc_kernel_sizes),
            enc_dilations: raw.enc_dilations.unwrap_or(default.enc_dilations),
            enc_attention_channels: raw
                .enc_attention_channels
                .unwrap_or(default.enc_attention_channels),
            enc_res2net_scale: raw.enc_res2net_scale.unwrap_or(default.enc_res2net_scale),
            enc_se_channels: raw.enc_se_channels.unwrap_or(default.enc_se_channels),
        };
        config.validate().map_err(serde::de::Error::custom)?;
        Ok(config)
    }
}

impl DitConfig {
    /// Sizes the model code relies on; a config that breaks them is refused when read.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.enc_channels.len();
        if n < 3 || self.enc_kernel_sizes.len() != n || self.enc_dilations.len() != n {
            return Err(format!(
                "dit_config: enc_channels, enc_kernel_sizes and enc_dilations need the same \
                 length >= 3 (got {n}, {}, {})",
                self.enc_kernel_sizes.len(),
                self.enc_dilations.len()
            ));
        }
        let aggregated: usize = self.enc_channels[1..n - 1].iter().sum();
        if aggregated != self.enc_channels[n - 1] {
            return Err(format!(
                "dit_config: the last enc_channels ({}) must be the sum of the middle ones \
                 ({aggregated})",
                self.enc_channels[n - 1]
            ));
        }
        if self.enc_res2net_scale == 0
            || self.enc_channels[1..n - 1]
                .iter()
                .any(|c| !c.is_multiple_of(self.enc_res2net_scale))
        {
            return Err("dit_config: enc_channels must divide by enc_res2net_scale".into());
        }
        if !self.head_dim.is_multiple_of(2) || self.block_size == 0 || self.repeats == 0 {
            return Err("dit_config: head_dim must be even, block_size and repeats > 0".into());
        }
        Ok(())
    }

    /// Input width of `input_embed.proj`: noisy mel | ECAPA(ref mel) | codes | speaker vector.
    pub fn input_width(&self) -> usize {
        self.mel_dim + self.enc_dim + self.emb_dim + self.enc_emb_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_alias_keys_and_missing_fields_give_the_checkpoint_values() {
        // The shape of the published token2wav_config.dit_config.
        let json = r#"{"dim": 1024, "depth": 22, "heads": 16, "ff_mult": 2, "emb_dim": 512,
            "head_dim": 64, "repeats": 2, "num_embeds": 8193, "mel_dim": 80, "dropout": 0.1,
            "enc_emb_dim": 192, "enc_dim": 128, "enc_channels": [256, 256, 256, 256, 768],
            "enc_kernel_sizes": [5, 3, 3, 3, 1], "enc_dilations": [1, 2, 3, 4, 1],
            "enc_attention_channels": 64, "enc_res2net_scale": 2, "enc_se_channels": 64}"#;
        let config: DitConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config, DitConfig::default());
        assert_eq!(config.input_width(), 912);
    }

    #[test]
    fn explicit_fields_and_rope_parameters_win() {
        let json = r#"{"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
            "head_dim": 16, "block_size": 24, "look_ahead_layers": [1],
            "look_backward_layers": [0, 2], "rope_parameters": {"rope_theta": 500.0,
            "rope_type": "default"}, "enc_channels": [8, 8, 8, 16],
            "enc_kernel_sizes": [3, 3, 3, 1], "enc_dilations": [1, 2, 3, 1]}"#;
        let config: DitConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.hidden_size, 32);
        assert_eq!(config.num_hidden_layers, 3);
        assert_eq!(config.look_backward_layers, [0, 2]);
        assert_eq!(config.rope_theta, 500.0);
    }

    #[test]
    fn inconsistent_encoder_sizes_are_refused() {
        let json = r#"{"enc_channels": [8, 8, 8, 20], "enc_kernel_sizes": [3, 3, 3, 1],
            "enc_dilations": [1, 2, 3, 1]}"#;
        let err = serde_json::from_str::<DitConfig>(json).unwrap_err();
        assert!(err.to_string().contains("sum of the middle"), "{err}");
    }
}
