//! Token2Wav's DiT (`token2wav.code2wav_dit_model`): the velocity of the flow from noise to mel,
//! given codec codes, a speaker vector and a reference mel.
//!
//! One evaluation runs the classifier-free-guidance pair as a batch of two: row 0 sees the codes,
//! the speaker vector and ECAPA(reference mel); row 1 (the null branch) sees every code as row 0
//! of the codec table, a zero speaker vector and ECAPA of an all-zero mel
//! (../shared/docs/qwen2_5_omni.md §5.2). 22 AdaLN-Zero blocks attend within blocks of 24 mel
//! frames; some layers also see one block ahead or back. RoPE is applied to head 0 only, in the
//! interleaved (adjacent pairs) layout the checkpoints were trained with.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::dit_config::DitConfig;
use super::ecapa::Ecapa;

/// Width of the sinusoidal time features.
const TIME_FEATURES: usize = 256;
/// The time features see `t * 1000` (t in [0, 1]).
const TIME_SCALE: f64 = 1000.0;
const NORM_EPS: f64 = 1e-6;

/// The speaker part of the DiT input, computed once per voice: `[2, enc_dim]` ECAPA outputs and
/// `[2, enc_emb_dim]` speaker vectors (row 1 is the null branch's).
#[derive(Debug, Clone)]
pub struct SpeakerConditioning {
    ecapa: Tensor,
    cond: Tensor,
}

/// The two halves of a guided evaluation, each `[1, frames, mel_dim]`.
#[derive(Debug)]
pub struct Velocity {
    pub cond: Tensor,
    pub uncond: Tensor,
}

impl Velocity {
    /// `cond + (cond - uncond) * guidance` (the reference's classifier-free guidance).
    pub fn guided(&self, guidance: f64) -> Result<Tensor> {
        &self.cond + ((&self.cond - &self.uncond)? * guidance)?
    }
}

/// LayerNorm without weights over the last dim.
fn layer_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered.broadcast_div(&(var + NORM_EPS)?.sqrt()?)
}

/// `norm(x) * (1 + scale) + shift`, with `scale`/`shift` `[batch, hidden]` per row.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    layer_norm(x)?
        .broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?
        .broadcast_add(&shift.unsqueeze(1)?)
}

#[derive(Debug, Clone)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(config: &DitConfig, vb: VarBuilder) -> Result<Self> {
        let inner = config.num_attention_heads * config.head_dim;
        let h = config.hidden_size;
        Ok(Self {
            to_q: candle_nn::linear(h, inner, vb.pp("to_q"))?,
            to_k: candle_nn::linear(h, inner, vb.pp("to_k"))?,
            to_v: candle_nn::linear(h, inner, vb.pp("to_v"))?,
            to_out: candle_nn::linear(inner, h, vb.pp("to_out.0"))?,
            heads: config.num_attention_heads,
            head_dim: config.head_dim,
        })
    }

    /// `x` `[batch, frames, hidden]`; `mask` `[frames, frames]` additive (0 or -inf);
    /// `cos`/`sin` `[frames, head_dim / 2]`.
    fn forward(&self, x: &Tensor, mask: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, n, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.to_q.forward(x)?)?;
        let k = split(self.to_k.forward(x)?)?;
        let v = split(self.to_v.forward(x)?)?;
        // "Due to training process, only first head is applied with RoPE" (the reference).
        let rope_head0 = |t: &Tensor| -> Result<Tensor> {
            let head0 = t.narrow(1, 0, 1)?.contiguous()?;
            let rotated = candle_nn::rotary_emb::rope_i(&head0, cos, sin)?;
            Tensor::cat(&[rotated, t.narrow(1, 1, self.heads - 1)?], 1)
        };
        let q = rope_head0(&q)?;
        let k = rope_head0(&k)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out =
            weights
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, n, self.heads * self.head_dim))?;
        self.to_out.forward(&out)
    }
}

#[derive(Debug, Clone)]
struct DitBlock {
    /// SiLU(time) -> 6 modulations.
    attn_norm: Linear,
    attn: Attention,
    ff_in: Linear,
    ff_out: Linear,
    look_back: i64,
    look_ahead: i64,
}

impl DitBlock {
    fn forward(
        &self,
        h: &Tensor,
        time: &Tensor,
        mask: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let emb = self.attn_norm.forward(&time.silu()?)?;
        let m = emb.chunk(6, 1)?;
        let (shift_msa, scale_msa, gate_msa) = (&m[0], &m[1], &m[2]);
        let (shift_mlp, scale_mlp, gate_mlp) = (&m[3], &m[4], &m[5]);
        let normed = modulate(h, shift_msa, scale_msa)?;
        let attn = self.attn.forward(&normed, mask, cos, sin)?;
        let h = (h + attn.broadcast_mul(&gate_msa.unsqueeze(1)?)?)?;
        let normed = modulate(&h, shift_mlp, scale_mlp)?;
        let ff = self.ff_out.forward(&self.ff_in.forward(&normed)?.gelu()?)?;
        h + ff.broadcast_mul(&gate_mlp.unsqueeze(1)?)?
    }
}

/// The DiT.
#[derive(Debug, Clone)]
pub struct Dit {
    config: DitConfig,
    time_in: Linear,
    time_out: Linear,
    codec_embed: Embedding,
    input_proj: Linear,
    spk_encoder: Ecapa,
    blocks: Vec<DitBlock>,
    norm_out: Linear,
    proj_out: Linear,
    /// `[head_dim / 2]`
    inv_freq: Vec<f32>,
}

impl Dit {
    /// Loads `token2wav.code2wav_dit_model` (pass the VarBuilder at that prefix).
    pub fn load(config: &DitConfig, vb: VarBuilder) -> Result<Self> {
        let h = config.hidden_size;
        let blocks = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp("transformer_blocks").pp(i);
                Ok(DitBlock {
                    attn_norm: candle_nn::linear(h, 6 * h, vb.pp("attn_norm.linear"))?,
                    attn: Attention::load(config, vb.pp("attn"))?,
                    ff_in: candle_nn::linear(h, h * config.ff_mult, vb.pp("ff.ff.0"))?,
                    ff_out: candle_nn::linear(h * config.ff_mult, h, vb.pp("ff.ff.3"))?,
                    look_back: i64::from(config.look_backward_layers.contains(&i)),
                    look_ahead: i64::from(config.look_ahead_layers.contains(&i)),
                })
            })
            .collect::<Result<_>>()?;
        let half = config.head_dim / 2;
        let inv_freq = (0..half)
            .map(|i| {
                1.0 / config
                    .rope_theta
                    .powf((2 * i) as f64 / config.head_dim as f64) as f32
            })
            .collect();
        Ok(Self {
            time_in: candle_nn::linear(TIME_FEATURES, h, vb.pp("time_embed.time_mlp.0"))?,
            time_out: candle_nn::linear(h, h, vb.pp("time_embed.time_mlp.2"))?,
            codec_embed: candle_nn::embedding(
                config.num_embeds + 1,
                config.emb_dim,
                vb.pp("text_embed.codec_embed"),
            )?,
            input_proj: candle_nn::linear(config.input_width(), h, vb.pp("input_embed.proj"))?,
            spk_encoder: Ecapa::load(config, vb.pp("input_embed.spk_encoder"))?,
            blocks,
            norm_out: candle_nn::linear(h, 2 * h, vb.pp("norm_out.linear"))?,
            proj_out: candle_nn::linear(h, config.mel_dim, vb.pp("proj_out"))?,
            inv_freq,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &DitConfig {
        &self.config
    }

    /// The speaker inputs of both guidance branches: `cond` `[1, enc_emb_dim]`, `ref_mel`
    /// `[1, frames, mel_dim]`.
    pub fn speaker_conditioning(
        &self,
        cond: &Tensor,
        ref_mel: &Tensor,
    ) -> Result<SpeakerConditioning> {
        let ref_mel = ref_mel.to_dtype(DType::F32)?;
        let mels = Tensor::cat(&[&ref_mel, &ref_mel.zeros_like()?], 0)?;
        let cond = cond.to_dtype(DType::F32)?;
        Ok(SpeakerConditioning {
            ecapa: self.spk_encoder.forward(&mels)?,
            cond: Tensor::cat(&[&cond, &cond.zeros_like()?], 0)?,
        })
    }

    /// Codec embeddings of both branches, repeated per mel frame: `codes` `[1, n]` (u32 ids
    /// below `num_embeds + 1`) -> `[2, n * repeats, emb_dim]`.
    pub fn code_embeddings(&self, codes: &Tensor) -> Result<Tensor> {
        let cond = self.codec_embed.forward(codes)?;
        let null = self.codec_embed.forward(&codes.zeros_like()?)?;
        let both = Tensor::cat(&[cond, null], 0)?;
        let (b, n, e) = both.dims3()?;
        both.unsqueeze(2)?
            .repeat((1, 1, self.config.repeats, 1))?
            .reshape((b, n * self.config.repeats, e))
    }

    /// Sinusoidal time features -> `[1, hidden]`.
    fn time_embedding(&self, t: f32, device: &candle_core::Device) -> Result<Tensor> {
        let half = TIME_FEATURES / 2;
        let step = (10000f64).ln() / (half - 1) as f64;
        let mut features = vec![0f32; TIME_FEATURES];
        for k in 0..half {
            let freq = (-(k as f64) * step).exp() as f32;
            let angle = (TIME_SCALE as f32) * t * freq;
            features[k] = angle.sin();
            features[half + k] = angle.cos();
        }
        let features = Tensor::from_vec(features, (1, TIME_FEATURES), device)?;
        self.time_out
            .forward(&self.time_in.forward(&features)?.silu()?)
    }

    /// Additive attention mask `[frames, frames]`: query i sees key j iff
    /// `-look_back <= block(j) - block(i) <= look_ahead`, blocks counted from the input's first
    /// frame (streaming windows start on block boundaries, so they keep the utterance's blocks).
    fn block_mask(
        &self,
        frames: usize,
        look_back: i64,
        look_ahead: i64,
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let block = |i: usize| (i / self.config.block_size) as i64;
        let mut mask = vec![0f32; frames * frames];
        for i in 0..frames {
            for j in 0..frames {
                let diff = block(j) - block(i);
                if diff < -look_back || diff > look_ahead {
                    mask[i * frames + j] = f32::NEG_INFINITY;
                }
            }
        }
        Tensor::from_vec(mask, (frames, frames), device)
    }

    /// The velocity of both guidance branches at time `t` for the noisy mel `x`
    /// `[1, frames, mel_dim]`, with `codes` embedded by [`Self::code_embeddings`] (`[2, frames,
    /// emb_dim]`).
    pub fn velocity(
        &self,
        x: &Tensor,
        code_embeddings: &Tensor,
        speaker: &SpeakerConditioning,
        t: f32,
    ) -> Result<Velocity> {
        let (_, frames, _) = x.dims3()?;
        let device = x.device();
        let x2 = Tensor::cat(&[x, x], 0)?;
        let spread = |t: &Tensor| -> Result<Tensor> {
            let (b, w) = t.dims2()?;
            t.unsqueeze(1)?.broadcast_as((b, frames, w))?.contiguous()
        };
        let input = Tensor::cat(
            &[
                x2,
                spread(&speaker.ecapa)?,
                code_embeddings.clone(),
                spread(&speaker.cond)?,
            ],
            2,
        )?;
        let mut h = self.input_proj.forward(&input)?;

        let time = self.time_embedding(t, device)?.repeat((2, 1))?;
        // RoPE angles of positions 0.. within this window (the reference numbers the frames of
        // its input from 0).
        let half = self.inv_freq.len();
        let mut angles = vec![0f32; frames * half];
        for p in 0..frames {
            for (k, f) in self.inv_freq.iter().enumerate() {
                angles[p * half + k] = p as f32 * f;
            }
        }
        let angles = Tensor::from_vec(angles, (frames, half), device)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);

        let mut masks: Vec<((i64, i64), Tensor)> = Vec::new();
        for block in &self.blocks {
            let key = (block.look_back, block.look_ahead);
            let mask = match masks.iter().find(|(k, _)| *k == key) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = self.block_mask(frames, key.0, key.1, device)?;
                    masks.push((key, m.clone()));
                    m
                }
            };
            h = block.forward(&h, &time, &mask, &cos, &sin)?;
        }
        let emb = self.norm_out.forward(&time.silu()?)?;
        let m = emb.chunk(2, 1)?;
        // norm_out's order is [scale, shift], the reverse of the blocks'.
        let h = modulate(&h, &m[1], &m[0])?;
        let out = self.proj_out.forward(&h)?;
        Ok(Velocity {
            cond: out.narrow(0, 0, 1)?,
            uncond: out.narrow(0, 1, 1)?,
        })
    }
}
