//! ECAPA-TDNN speaker encoder of Token2Wav's DiT (`input_embed.spk_encoder`): the reference mel
//! `[batch, frames, mel]` -> a speaker embedding `[batch, enc_dim]`.
//!
//! TDNN (conv + ReLU) -> SE-Res2Net blocks -> multi-layer aggregation -> attentive statistics
//! pooling -> 1x1 conv. Every conv pads "same" with reflected edges, like the reference's
//! `padding="same", padding_mode="reflect"`.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};

use super::dit_config::DitConfig;

/// Smallest variance the statistics pooling takes a square root of.
const STATS_EPS: f64 = 1e-12;

/// A 1-D conv with "same" reflect padding.
#[derive(Debug, Clone)]
struct SameConv {
    conv: Conv1d,
    pad_left: usize,
    pad_right: usize,
}

impl SameConv {
    fn load(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let config = Conv1dConfig {
            dilation,
            ..Default::default()
        };
        let conv = candle_nn::conv1d(in_channels, out_channels, kernel, config, vb)?;
        // PyTorch "same": the total padding dilation*(k-1), the odd one on the right.
        let total = dilation * (kernel - 1);
        Ok(Self {
            conv,
            pad_left: total / 2,
            pad_right: total - total / 2,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv
            .forward(&reflect_pad(x, self.pad_left, self.pad_right)?)
    }
}

/// Pads the last dim of `x` by mirroring it around its edges (without repeating the edge).
pub(crate) fn reflect_pad(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    let len = x.dim(D::Minus1)?;
    if left >= len || right >= len {
        candle_core::bail!("reflect padding of {left}/{right} needs more than {len} frames");
    }
    let mut index: Vec<u32> = (1..=left).rev().map(|i| i as u32).collect();
    index.extend(0..len as u32);
    index.extend((0..right).map(|i| (len - 2 - i) as u32));
    let index = Tensor::from_vec(index, left + len + right, x.device())?;
    x.contiguous()?.index_select(&index, x.rank() - 1)
}

/// Conv + ReLU.
#[derive(Debug, Clone)]
struct Tdnn(SameConv);

impl Tdnn {
    fn load(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self(SameConv::load(
            in_channels,
            out_channels,
            kernel,
            dilation,
            vb.pp("conv"),
        )?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)?.relu()
    }
}

/// Res2Net: the channels split in `scale` groups; group 0 passes, group i > 0 goes through a
/// TDNN after adding group i-1's output (hierarchical receptive fields).
#[derive(Debug, Clone)]
struct Res2Net {
    blocks: Vec<Tdnn>,
    scale: usize,
}

impl Res2Net {
    fn load(
        channels: usize,
        scale: usize,
        kernel: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let width = channels / scale;
        let blocks = (0..scale - 1)
            .map(|i| Tdnn::load(width, width, kernel, dilation, vb.pp("blocks").pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self { blocks, scale })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let parts = x.chunk(self.scale, 1)?;
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.scale);
        for (i, part) in parts.iter().enumerate() {
            let out = match i {
                0 => part.clone(),
                1 => self.blocks[0].forward(part)?,
                _ => self.blocks[i - 1].forward(&(part + &outputs[i - 1])?)?,
            };
            outputs.push(out);
        }
        Tensor::cat(&outputs, 1)
    }
}

/// Squeeze-excitation: channel weights from the time average.
#[derive(Debug, Clone)]
struct SqueezeExcitation {
    conv1: SameConv,
    conv2: SameConv,
}

impl SqueezeExcitation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.mean_keepdim(2)?;
        let s = self.conv1.forward(&s)?.relu()?;
        let s = candle_nn::ops::sigmoid(&self.conv2.forward(&s)?)?;
        x.broadcast_mul(&s)
    }
}

/// TDNN -> Res2Net -> TDNN -> SE, plus the input.
#[derive(Debug, Clone)]
struct SeRes2NetBlock {
    tdnn1: Tdnn,
    res2net: Res2Net,
    tdnn2: Tdnn,
    se: SqueezeExcitation,
}

impl SeRes2NetBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.tdnn1.forward(x)?;
        let h = self.res2net.forward(&h)?;
        let h = self.tdnn2.forward(&h)?;
        self.se.forward(&h)? + x
    }
}

/// Attentive statistics pooling: per-channel attention over time (seeing the utterance's global
/// mean and std), then the weighted mean and std.
#[derive(Debug, Clone)]
struct AttentiveStatsPooling {
    tdnn: Tdnn,
    conv: SameConv,
}

impl AttentiveStatsPooling {
    /// `x` `[batch, channels, frames]` -> `[batch, 2 * channels, 1]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let frames = x.dim(2)?;
        let uniform = Tensor::full(1.0 / frames as f32, x.dims(), x.device())?;
        let (mean, std) = weighted_stats(x, &uniform)?;
        let global = Tensor::cat(
            &[
                x.clone(),
                mean.unsqueeze(2)?.repeat((1, 1, frames))?,
                std.unsqueeze(2)?.repeat((1, 1, frames))?,
            ],
            1,
        )?;
        let attention = self.conv.forward(&self.tdnn.forward(&global)?.tanh()?)?;
        let attention = candle_nn::ops::softmax(&attention, 2)?;
        let (mean, std) = weighted_stats(x, &attention)?;
        Tensor::cat(&[mean, std], 1)?.unsqueeze(2)
    }
}

/// Weighted mean and std over the last dim (`weights` sum to 1 over it).
fn weighted_stats(x: &Tensor, weights: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = (weights * x)?.sum(2)?;
    let centered = x.broadcast_sub(&mean.unsqueeze(2)?)?;
    let var = (weights * centered.sqr()?)?.sum(2)?;
    let std = var.clamp(STATS_EPS, f64::MAX)?.sqrt()?;
    Ok((mean, std))
}

/// The speaker encoder.
#[derive(Debug, Clone)]
pub struct Ecapa {
    first: Tdnn,
    blocks: Vec<SeRes2NetBlock>,
    mfa: Tdnn,
    asp: AttentiveStatsPooling,
    fc: SameConv,
}

impl Ecapa {
    pub fn load(config: &DitConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &config.enc_channels;
        let k = &config.enc_kernel_sizes;
        let d = &config.enc_dilations;
        let n = ch.len();
        let first = Tdnn::load(config.mel_dim, ch[0], k[0], d[0], vb.pp("blocks.0"))?;
        let mut blocks = Vec::with_capacity(n - 2);
        for i in 1..n - 1 {
            let vb = vb.pp("blocks").pp(i);
            let (cin, cout) = (ch[i - 1], ch[i]);
            blocks.push(SeRes2NetBlock {
                tdnn1: Tdnn::load(cin, cout, 1, 1, vb.pp("tdnn1"))?,
                res2net: Res2Net::load(
                    cout,
                    config.enc_res2net_scale,
                    k[i],
                    d[i],
                    vb.pp("res2net_block"),
                )?,
                tdnn2: Tdnn::load(cout, cout, 1, 1, vb.pp("tdnn2"))?,
                se: SqueezeExcitation {
                    conv1: SameConv::load(
                        cout,
                        config.enc_se_channels,
                        1,
                        1,
                        vb.pp("se_block.conv1"),
                    )?,
                    conv2: SameConv::load(
                        config.enc_se_channels,
                        cout,
                        1,
                        1,
                        vb.pp("se_block.conv2"),
                    )?,
                },
            });
        }
        let last = ch[n - 1];
        Ok(Self {
            first,
            blocks,
            mfa: Tdnn::load(last, last, k[n - 1], d[n - 1], vb.pp("mfa"))?,
            asp: AttentiveStatsPooling {
                tdnn: Tdnn::load(
                    last * 3,
                    config.enc_attention_channels,
                    1,
                    1,
                    vb.pp("asp.tdnn"),
                )?,
                conv: SameConv::load(config.enc_attention_channels, last, 1, 1, vb.pp("asp.conv"))?,
            },
            fc: SameConv::load(last * 2, config.enc_dim, 1, 1, vb.pp("fc"))?,
        })
    }

    /// `mel` `[batch, frames, mel_dim]` -> `[batch, enc_dim]`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let mut h = self.first.forward(&mel.transpose(1, 2)?.contiguous()?)?;
        let mut aggregated = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            h = block.forward(&h)?;
            aggregated.push(h.clone());
        }
        let h = self.mfa.forward(&Tensor::cat(&aggregated, 1)?)?;
        let h = self.asp.forward(&h)?;
        self.fc.forward(&h)?.squeeze(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reflect_padding_mirrors_without_repeating_the_edge() {
        let x = Tensor::new(&[[1f32, 2., 3., 4., 5.]], &Device::Cpu).unwrap();
        let padded = reflect_pad(&x, 2, 3).unwrap();
        assert_eq!(
            padded.to_vec2::<f32>().unwrap(),
            [[3., 2., 1., 2., 3., 4., 5., 4., 3., 2.]]
        );
        assert!(reflect_pad(&x, 5, 0).is_err());
    }
}
