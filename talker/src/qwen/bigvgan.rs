//! Token2Wav's vocoder (`token2wav.code2wav_bigvgan_model`): BigVGAN from the DiT's mel
//! (natural-log amplitude, 80 bins at 100 frames/s) to 24 kHz audio (x240 in six transposed-conv
//! stages, 5 x 3 x 2 x 2 x 2 x 2).
//!
//! Each stage upsamples, then averages three AMP blocks (kernels 3/7/11, dilations 1/3/5) whose
//! activation is SnakeBeta run at twice the rate between Kaiser-sinc anti-aliasing filters
//! (../shared/docs/qwen2_5_omni.md §5.5). No weight norm in the published checkpoints.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig, VarBuilder};
use serde::Deserialize;

/// `token2wav_config.bigvgan_config`; defaults are the published values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct BigVganConfig {
    pub mel_dim: usize,
    pub upsample_initial_channel: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
}

impl Default for BigVganConfig {
    fn default() -> Self {
        Self {
            mel_dim: 80,
            upsample_initial_channel: 1536,
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            upsample_rates: vec![5, 3, 2, 2, 2, 2],
            upsample_kernel_sizes: vec![11, 7, 4, 4, 4, 4],
        }
    }
}

impl BigVganConfig {
    /// Audio samples per mel frame.
    pub fn hop(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// The mel's dynamic range floor, in dB.
const MIN_DB: f64 = -115.0;
/// Taps of the anti-aliasing filters around each activation.
const FILTER_TAPS: usize = 12;
/// Run rate of the activations relative to the signal.
const OVERSAMPLE: usize = 2;

/// Kaiser-windowed sinc low-pass (`kaiser_sinc_filter1d` of the reference), normalized to sum 1.
fn kaiser_sinc(cutoff: f64, half_width: f64, taps: usize) -> Vec<f32> {
    let half = taps / 2;
    let attenuation = 2.285 * (half as f64 - 1.0) * std::f64::consts::PI * 4.0 * half_width + 7.95;
    let beta = if attenuation > 50.0 {
        0.1102 * (attenuation - 8.7)
    } else if attenuation >= 21.0 {
        0.5842 * (attenuation - 21.0).powf(0.4) + 0.07886 * (attenuation - 21.0)
    } else {
        0.0
    };
    let bessel_i0 = |x: f64| {
        // Power series of the modified Bessel function of order 0.
        let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
        while term > 1e-12 * sum {
            term *= (x / (2.0 * k)).powi(2);
            sum += term;
            k += 1.0;
        }
        sum
    };
    let filter: Vec<f64> = (0..taps)
        .map(|n| {
            let ratio = 2.0 * n as f64 / (taps - 1) as f64 - 1.0;
            let window = bessel_i0(beta * (1.0 - ratio * ratio).max(0.0).sqrt()) / bessel_i0(beta);
            let t = if taps.is_multiple_of(2) {
                n as f64 - half as f64 + 0.5
            } else {
                n as f64 - half as f64
            };
            let x = 2.0 * cutoff * t;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            2.0 * cutoff * window * sinc
        })
        .collect();
    let sum: f64 = filter.iter().sum();
    filter.iter().map(|v| (v / sum) as f32).collect()
}

/// Pads the last dim by repeating its edge values.
fn replicate_pad(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    let len = x.dim(D::Minus1)?;
    let index: Vec<u32> = (0..left + len + right)
        .map(|i| i.saturating_sub(left).min(len - 1) as u32)
        .collect();
    let index = Tensor::from_vec(index, left + len + right, x.device())?;
    x.contiguous()?.index_select(&index, x.rank() - 1)
}

/// SnakeBeta between a 2x upsampler and a 2x downsampler (`Activation1d` of the reference).
#[derive(Debug, Clone)]
struct AntiAliasedSnake {
    /// `exp(alpha)`, `[1, channels, 1]`.
    frequency: Tensor,
    /// `1 / (exp(beta) + 1e-9)`, `[1, channels, 1]`.
    magnitude: Tensor,
    /// `[1, 1, taps]`, shared by both filters (same cutoff and width).
    filter: Tensor,
}

impl AntiAliasedSnake {
    fn load(channels: usize, filter: &Tensor, vb: VarBuilder) -> Result<Self> {
        let alpha = vb.get(channels, "act.alpha")?;
        let beta = vb.get(channels, "act.beta")?;
        Ok(Self {
            frequency: alpha.exp()?.reshape((1, channels, 1))?,
            magnitude: (beta.exp()? + 1e-9)?.recip()?.reshape((1, channels, 1))?,
            filter: filter.clone(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        // Every channel alone through the same filter: channels become batch rows.
        let rows = x.reshape((b * c, 1, t))?;
        // Upsample: replicate-pad 5, zero-stuff by transposed conv, scale, crop 15 each side.
        let pad = FILTER_TAPS / OVERSAMPLE - 1;
        let crop = pad * OVERSAMPLE + (FILTER_TAPS - OVERSAMPLE) / 2;
        let up = replicate_pad(&rows, pad, pad)?.conv_transpose1d(
            &self.filter,
            0,
            0,
            OVERSAMPLE,
            1,
            1,
        )?;
        let up_len = up.dim(2)?;
        let up = (up.narrow(2, crop, up_len - 2 * crop)? * OVERSAMPLE as f64)?;
        let up = up.reshape((b, c, ()))?;
        let sin = up.broadcast_mul(&self.frequency)?.sin()?;
        let act = (up + sin.sqr()?.broadcast_mul(&self.magnitude)?)?;
        // Downsample: replicate-pad 5 left / 6 right, filter, stride 2.
        let len = act.dim(2)?;
        let rows = act.reshape((b * c, 1, len))?;
        let down = replicate_pad(&rows, FILTER_TAPS / 2 - 1, FILTER_TAPS / 2)?.conv1d(
            &self.filter,
            0,
            OVERSAMPLE,
            1,
            1,
        )?;
        down.reshape((b, c, ()))
    }
}

/// Three (activation, dilated conv, activation, conv) pairs with residuals.
#[derive(Debug, Clone)]
struct AmpBlock {
    convs1: Vec<Conv1d>,
    convs2: Vec<Conv1d>,
    activations: Vec<AntiAliasedSnake>,
}

impl AmpBlock {
    fn load(
        channels: usize,
        kernel: usize,
        dilations: &[usize],
        filter: &Tensor,
        vb: VarBuilder,
    ) -> Result<Self> {
        let conv = |dilation: usize, vb: VarBuilder| {
            let config = Conv1dConfig {
                padding: (kernel * dilation - dilation) / 2,
                dilation,
                ..Default::default()
            };
            candle_nn::conv1d(channels, channels, kernel, config, vb)
        };
        let convs1 = dilations
            .iter()
            .enumerate()
            .map(|(i, &d)| conv(d, vb.pp("convs1").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let convs2 = (0..dilations.len())
            .map(|i| conv(1, vb.pp("convs2").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let activations = (0..2 * dilations.len())
            .map(|i| AntiAliasedSnake::load(channels, filter, vb.pp("activations").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            convs1,
            convs2,
            activations,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, (conv1, conv2)) in self.convs1.iter().zip(&self.convs2).enumerate() {
            let h = conv1.forward(&self.activations[2 * i].forward(&x)?)?;
            let h = conv2.forward(&self.activations[2 * i + 1].forward(&h)?)?;
            x = (x + h)?;
        }
        Ok(x)
    }
}

/// The vocoder.
#[derive(Debug, Clone)]
pub struct BigVgan {
    config: BigVganConfig,
    conv_pre: Conv1d,
    ups: Vec<ConvTranspose1d>,
    /// `resblock_kernel_sizes.len()` blocks per stage.
    resblocks: Vec<AmpBlock>,
    activation_post: AntiAliasedSnake,
    conv_post: Conv1d,
}

impl BigVgan {
    /// Loads `token2wav.code2wav_bigvgan_model` (pass the VarBuilder at that prefix).
    pub fn load(config: &BigVganConfig, vb: VarBuilder) -> Result<Self> {
        let filter = Tensor::from_vec(
            kaiser_sinc(
                0.5 / OVERSAMPLE as f64,
                0.6 / OVERSAMPLE as f64,
                FILTER_TAPS,
            ),
            (1, 1, FILTER_TAPS),
            vb.device(),
        )?;
        let c0 = config.upsample_initial_channel;
        let same = |k: usize| Conv1dConfig {
            padding: k / 2,
            ..Default::default()
        };
        let conv_pre = candle_nn::conv1d(config.mel_dim, c0, 7, same(7), vb.pp("conv_pre"))?;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        for (i, (&rate, &kernel)) in config
            .upsample_rates
            .iter()
            .zip(&config.upsample_kernel_sizes)
            .enumerate()
        {
            let (cin, cout) = (c0 >> i, c0 >> (i + 1));
            let up = ConvTranspose1dConfig {
                padding: (kernel - rate) / 2,
                stride: rate,
                ..Default::default()
            };
            ups.push(candle_nn::conv_transpose1d(
                cin,
                cout,
                kernel,
                up,
                vb.pp("ups").pp(i).pp(0),
            )?);
            for (j, (&k, dilations)) in config
                .resblock_kernel_sizes
                .iter()
                .zip(&config.resblock_dilation_sizes)
                .enumerate()
            {
                let index = i * config.resblock_kernel_sizes.len() + j;
                resblocks.push(AmpBlock::load(
                    cout,
                    k,
                    dilations,
                    &filter,
                    vb.pp("resblocks").pp(index),
                )?);
            }
        }
        let last = c0 >> config.upsample_rates.len();
        Ok(Self {
            activation_post: AntiAliasedSnake::load(last, &filter, vb.pp("activation_post"))?,
            conv_post: candle_nn::conv1d_no_bias(last, 1, 7, same(7), vb.pp("conv_post"))?,
            conv_pre,
            ups,
            resblocks,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BigVganConfig {
        &self.config
    }

    /// `mel` `[1, mel_dim, frames]` (natural-log amplitude) -> `[1, frames * hop]` in [-1, 1].
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        // exp -> dB (floored at -115, minus 20) -> [-1, 1].
        let floor = (MIN_DB / 20.0 * std::f64::consts::LN_10).exp();
        let db = mel
            .exp()?
            .clamp(floor, f64::MAX)?
            .log()?
            .affine(20.0 / std::f64::consts::LN_10, -20.0)?;
        // 2 (dB - MIN_DB) / -MIN_DB - 1 = dB * 2 / -MIN_DB + 1
        let x = db.affine(2.0 / -MIN_DB, 1.0)?.clamp(-1.0, 1.0)?;
        let mut h = self.conv_pre.forward(&x)?;
        let per_stage = self.config.resblock_kernel_sizes.len();
        for (i, up) in self.ups.iter().enumerate() {
            h = up.forward(&h)?;
            let mut sum: Option<Tensor> = None;
            for block in &self.resblocks[i * per_stage..(i + 1) * per_stage] {
                let out = block.forward(&h)?;
                sum = Some(match sum {
                    Some(s) => (s + out)?,
                    None => out,
                });
            }
            // `per_stage` >= 1 for any config this loaded with blocks; keep `h` otherwise.
            if let Some(sum) = sum {
                h = (sum / per_stage as f64)?;
            }
        }
        let h = self.activation_post.forward(&h)?;
        self.conv_post.forward(&h)?.clamp(-1.0, 1.0)?.squeeze(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anti_aliasing_filter_is_a_symmetric_low_pass_summing_to_one() {
        let f = kaiser_sinc(0.25, 0.3, 12);
        assert_eq!(f.len(), 12);
        assert!((f.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for i in 0..6 {
            assert!((f[i] - f[11 - i]).abs() < 1e-7);
        }
        // The centre taps carry the most weight.
        assert!(f[5] > f[4] && f[4] > f[0].abs());
    }

    #[test]
    fn replicate_padding_repeats_the_edges() {
        let x = Tensor::new(&[[1f32, 2., 3.]], &candle_core::Device::Cpu).unwrap();
        let padded = replicate_pad(&x, 2, 1).unwrap();
        assert_eq!(padded.to_vec2::<f32>().unwrap(), [[1., 1., 1., 2., 3., 3.]]);
    }
}
