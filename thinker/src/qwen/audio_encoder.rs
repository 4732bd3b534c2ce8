//! Qwen2.5-Omni's audio encoder (`thinker.audio_tower`): Whisper-large-v3 style, but block-wise.
//!
//! The log-mel frames are cut into blocks of `2 * n_window` frames (2 s). Each block goes through
//! the conv stem on its own (zero padding at the block edges), gets sinusoidal positions starting
//! at 0, and attends only to itself in every layer. So the blocks are independent, which is what
//! lets a stream encode each 2 s block as it arrives. After the layers the post-conv frames of all
//! blocks are concatenated, averaged in pairs (25 tokens per second), normalised (`ln_post`) and
//! projected to the Thinker's width (`proj`).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear, VarBuilder};

use super::QwenError;
use super::config::AudioEncoderConfig;

/// nn.LayerNorm's default epsilon, which the encoder uses throughout.
const LAYER_NORM_EPS: f64 = 1e-5;

/// Timescale range of Whisper's sinusoidal position table.
const MAX_TIMESCALE: f64 = 10_000.0;

#[derive(Debug)]
struct EncoderAttention {
    q_proj: Linear,
    /// Whisper's key projection has no bias.
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
}

impl EncoderAttention {
    fn load(config: &AudioEncoderConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = config.d_model;
        Ok(Self {
            q_proj: candle_nn::linear(d, d, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear_no_bias(d, d, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out_proj: candle_nn::linear(d, d, vb.pp("out_proj"))?,
            heads: config.encoder_attention_heads,
            head_dim: d / config.encoder_attention_heads,
        })
    }

    /// Full (non-causal) attention inside each block: `xs` is `[blocks, frames, d_model]`.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (blocks, frames, d) = xs.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((blocks, frames, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q_proj.forward(xs)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((blocks, frames, d))?;
        self.out_proj.forward(&out)
    }
}

#[derive(Debug)]
struct EncoderLayer {
    self_attn_layer_norm: LayerNorm,
    self_attn: EncoderAttention,
    final_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl EncoderLayer {
    fn load(config: &AudioEncoderConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = config.d_model;
        Ok(Self {
            self_attn_layer_norm: candle_nn::layer_norm(
                d,
                LAYER_NORM_EPS,
                vb.pp("self_attn_layer_norm"),
            )?,
            self_attn: EncoderAttention::load(config, vb.pp("self_attn"))?,
            final_layer_norm: candle_nn::layer_norm(d, LAYER_NORM_EPS, vb.pp("final_layer_norm"))?,
            fc1: candle_nn::linear(d, config.encoder_ffn_dim, vb.pp("fc1"))?,
            fc2: candle_nn::linear(config.encoder_ffn_dim, d, vb.pp("fc2"))?,
        })
    }

    /// Pre-LN transformer layer.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.self_attn_layer_norm.forward(xs)?)?;
        let xs = (xs + attn)?;
        let ffn = self.fc2.forward(
            &self
                .fc1
                .forward(&self.final_layer_norm.forward(&xs)?)?
                .gelu_erf()?,
        )?;
        xs + ffn
    }
}

/// The audio encoder with its weights.
#[derive(Debug)]
pub struct AudioEncoder {
    config: AudioEncoderConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    /// `[max_source_positions, d_model]`, `[sin | cos]` halves; not stored in checkpoints.
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    proj: Linear,
}

impl AudioEncoder {
    /// Loads the weights under `vb` (the checkpoints' `thinker.audio_tower`).
    pub fn load(config: &AudioEncoderConfig, vb: VarBuilder) -> Result<Self, QwenError> {
        let load = || -> candle_core::Result<Self> {
            let d = config.d_model;
            let same = Conv1dConfig {
                padding: 1,
                ..Default::default()
            };
            let halve = Conv1dConfig {
                padding: 1,
                stride: 2,
                ..Default::default()
            };
            let layers = (0..config.encoder_layers)
                .map(|i| EncoderLayer::load(config, vb.pp(format!("layers.{i}"))))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Self {
                conv1: candle_nn::conv1d(config.num_mel_bins, d, 3, same, vb.pp("conv1"))?,
                conv2: candle_nn::conv1d(d, d, 3, halve, vb.pp("conv2"))?,
                positions: sinusoids(config.max_source_positions, d, vb.device())?
                    .to_dtype(vb.dtype())?,
                layers,
                ln_post: candle_nn::layer_norm(d, LAYER_NORM_EPS, vb.pp("ln_post"))?,
                proj: candle_nn::linear(d, config.output_dim, vb.pp("proj"))?,
                config: config.clone(),
            })
        };
        load().map_err(|e| QwenError::Weights(format!("audio encoder: {e}")))
    }

    pub fn config(&self) -> &AudioEncoderConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.proj.weight().device()
    }

    /// The dtype the encoder computes in (its weights').
    pub fn dtype(&self) -> DType {
        self.proj.weight().dtype()
    }

    /// Encodes one clip of log-mel `features` `[num_mel_bins, frames]` (any `frames`, no padding)
    /// into `[AudioEncoderConfig::output_len(frames), output_dim]` Thinker embeddings.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor, QwenError> {
        let (bins, frames) = features.dims2().map_err(|_| {
            QwenError::bad_input(
                "input_features",
                format!("expected [num_mel_bins, frames], got {:?}", features.dims()),
            )
        })?;
        if bins != self.config.num_mel_bins {
            return Err(QwenError::bad_input(
                "input_features",
                format!(
                    "{bins} mel bins, the encoder takes {}",
                    self.config.num_mel_bins
                ),
            ));
        }
        let tokens = AudioEncoderConfig::output_len(frames);
        let device = features.device();
        if tokens == 0 {
            return Ok(Tensor::zeros(
                (0, self.config.output_dim),
                DType::F32,
                device,
            )?);
        }
        let features = features.to_dtype(self.dtype())?;
        let block = self.config.block_frames();
        let whole = frames / block;
        let tail = frames % block;
        // Blocks of equal length run as one batch: the whole blocks, then the partial last one.
        let mut encoded = Vec::with_capacity(2);
        if whole > 0 {
            let blocks = features
                .narrow(1, 0, whole * block)?
                .reshape((bins, whole, block))?
                .transpose(0, 1)?
                .contiguous()?;
            encoded.push(self.encode_blocks(&blocks)?);
        }
        if tail > 0 {
            let last = features.narrow(1, whole * block, tail)?.unsqueeze(0)?;
            encoded.push(self.encode_blocks(&last.contiguous()?)?);
        }
        let frames_after_conv = Tensor::cat(&encoded, 0)?;
        Ok(self.pool_and_project(&frames_after_conv, tokens)?)
    }

    /// Conv stem, positions and layers for `[blocks, num_mel_bins, frames]` of equal length;
    /// returns the post-conv frames of all blocks in order, `[blocks * frames', d_model]`.
    pub fn encode_blocks(&self, blocks: &Tensor) -> candle_core::Result<Tensor> {
        let xs = self.conv1.forward(blocks)?.gelu_erf()?;
        let xs = self.conv2.forward(&xs)?.gelu_erf()?.transpose(1, 2)?;
        let (count, frames, d) = xs.dims3()?;
        let mut xs = xs.broadcast_add(&self.positions.narrow(0, 0, frames)?)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        xs.reshape((count * frames, d))
    }

    /// Averages consecutive pairs of post-conv frames over the whole clip (an odd last frame is
    /// dropped), then `ln_post` and `proj`.
    pub fn pool_and_project(&self, frames: &Tensor, tokens: usize) -> candle_core::Result<Tensor> {
        let d = frames.dim(1)?;
        let pooled = frames
            .narrow(0, 0, 2 * tokens)?
            .reshape((tokens, 2, d))?
            .mean(1)?;
        self.proj.forward(&self.ln_post.forward(&pooled)?)
    }
}

/// Whisper's sinusoidal table: row `p` is `[sin(p * f_0..f_{c/2}) | cos(p * f_0..)]` with
/// geometrically spaced `f_i = exp(-i * ln(MAX_TIMESCALE) / (c/2 - 1))`.
fn sinusoids(length: usize, channels: usize, device: &Device) -> candle_core::Result<Tensor> {
    let half = channels / 2;
    let increment = MAX_TIMESCALE.ln() / (half.max(2) - 1) as f64;
    // f32 like the reference (torch computes the table in float32).
    let inv: Vec<f32> = (0..half)
        .map(|i| (-(increment as f32) * i as f32).exp())
        .collect();
    let mut table = Vec::with_capacity(length * channels);
    for p in 0..length {
        let row: Vec<f32> = inv.iter().map(|f| p as f32 * f).collect();
        table.extend(row.iter().map(|x| x.sin()));
        table.extend(row.iter().map(|x| x.cos()));
    }
    Tensor::from_vec(table, (length, channels), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::D;

    #[test]
    fn sinusoid_table_starts_at_sin0_cos1_and_has_whisper_frequencies() {
        let t = sinusoids(4, 8, &Device::Cpu).unwrap();
        let rows = t.to_vec2::<f32>().unwrap();
        assert_eq!(rows[0], vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        // Column 0 has frequency 1, column 3 has 1/10000.
        assert!((rows[2][0] - 2f32.sin()).abs() < 1e-6);
        assert!((rows[2][3] - (2.0f32 / 10_000.0).sin()).abs() < 1e-6);
        assert!(t.dim(D::Minus1).unwrap() == 8);
    }
}
