//! hibari's acoustic model (`hibari.onnx`) in candle: phoneme ids → durations, f0/energy and the
//! five spectra the vocoder ([`super::dsp`]) turns into audio. Spec: `docs/hibari_port.md` §4;
//! executable spec: `tools/reference/hibari_numpy.py`.
//!
//! Activations are kept time-major (`[rows, channels]`) throughout, so every linear layer is a
//! plain `x @ W`. The 45 int8 MatMul weights are run the way onnxruntime runs them
//! ([`Numerics::DynamicInt8`]): each activation is quantized per tensor to uint8 over the whole
//! sentence, multiplied with the int8 weight exactly (integer values in an f32 matmul: every
//! accumulator stays far below 2^24) and rescaled. Reproducing that rounding matters: the
//! quantization steps are coarse, so a float-weight model drifts about twice as far from the
//! package's output (spec §5). It also means a sentence must be run as a whole.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::dsp::{BINS, PARTS, Spectra};

/// Rows of the phoneme embedding tables (ids 0..=177, 0 = pad).
pub const VOCAB_ROWS: usize = 178;
/// Weight file inside the installed model directory.
pub const WEIGHTS_FILE: &str = "hibari.safetensors";
const LN_EPS: f64 = 1e-5;
/// Upper bound on one call's 25 ms frames (100 s): a 400-phoneme chunk speaks for well under
/// a minute; the bound keeps a corrupt weight file from allocating without limit.
pub const MAX_FRAMES: u64 = 4000;
/// Dilations of the six prosody ConvNeXt blocks `pn.pro.0..5`.
const PROSODY_DILATIONS: [usize; 6] = [1, 2, 4, 8, 1, 2];

/// Errors of loading or running the acoustic model.
#[derive(Debug, thiserror::Error)]
pub enum AcousticError {
    #[error(
        "hibari model file {} is missing: run `parley models fetch --model hibari-tts`",
        .0.display()
    )]
    MissingWeights(PathBuf),
    #[error("hibari acoustic model: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("hibari weight {name}: {reason}")]
    BadWeight { name: String, reason: String },
    #[error("phoneme id {0} is outside the model's vocabulary (0..178)")]
    BadId(u32),
    #[error("need at least 3 ids (pad, phoneme, pad), got {0}")]
    TooShort(usize),
    #[error("speed must be finite and positive, got {0}")]
    BadSpeed(f32),
    #[error("predicted {0} frames of 25 ms, more than the {MAX_FRAMES} one model call may make")]
    TooLong(u64),
}

type Result<T> = std::result::Result<T, AcousticError>;

/// How the int8-weight linear layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// onnxruntime's dynamic quantization, emulated exactly (what the package computes).
    #[default]
    DynamicInt8,
    /// Dequantized weights on f32 activations: simpler, but further from the package (spec §5).
    FloatWeights,
}

/// A linear layer whose weight is symmetric per-tensor int8 (`y = x @ W + b`, W `[in, out]`).
struct QuantLinear {
    /// The int8 values as f32 `[in, out]`.
    q: Tensor,
    scale: f32,
    bias: Tensor,
}

impl QuantLinear {
    /// `onnx_name` is the dequantized weight (`(q - 0) · scale`, as the model converter stores it);
    /// `bias` the owner's bias. Recovers `q` and `scale` and checks they reproduce the file
    /// bit for bit: onnxruntime's symmetric quantization puts max|q| = 127, so
    /// `scale = max|w| / 127` (verified for all 45 weights against `hibari.onnx`).
    fn load(vb: &VarBuilder, onnx_name: &str, bias: &str) -> Result<Self> {
        let w = vb.get_unchecked(onnx_name)?;
        let (rows, cols) = w.dims2()?;
        let values = w.flatten_all()?.to_vec1::<f32>()?;
        let bad = |reason: String| AcousticError::BadWeight {
            name: onnx_name.to_string(),
            reason,
        };
        let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if max == 0.0 || !max.is_finite() {
            return Err(bad(format!("max |w| = {max}")));
        }
        let scale = max / 127.0;
        let mut q = Vec::with_capacity(values.len());
        for &v in &values {
            let qi = (v / scale).round_ties_even();
            if qi.abs() > 127.0 || qi * scale != v {
                return Err(bad(format!(
                    "not int8 × {scale:e}: {v} (the converter must keep the int8 values exactly)"
                )));
            }
            q.push(qi);
        }
        let q = Tensor::from_vec(q, (rows, cols), vb.device())?;
        let bias = vb.get(cols, bias)?;
        Ok(Self { q, scale, bias })
    }

    fn forward(&self, x: &Tensor, numerics: Numerics) -> Result<Tensor> {
        self.forward_inner(x, numerics, false)
    }

    /// `GELU(x) @ W + b`: the GELU is fused into the activation pass the quantizer makes anyway.
    fn forward_gelu(&self, x: &Tensor, numerics: Numerics) -> Result<Tensor> {
        self.forward_inner(x, numerics, true)
    }

    fn forward_inner(&self, x: &Tensor, numerics: Numerics, gelu_first: bool) -> Result<Tensor> {
        let shape = x.shape().clone();
        let mut v = x.flatten_all()?.to_vec1::<f32>()?;
        if gelu_first {
            v.iter_mut().for_each(|a| *a = gelu(*a));
        }
        let s = match numerics {
            Numerics::FloatWeights => self.scale,
            // f32(acc) · f32(s_x · s_w) + b, the scale product in f32 as onnxruntime does.
            Numerics::DynamicInt8 => quantize_activation(&mut v) * self.scale,
        };
        let x = Tensor::from_vec(v, shape, x.device())?;
        let acc = x.matmul(&self.q)?;
        Ok(acc.affine(s as f64, 0.0)?.broadcast_add(&self.bias)?)
    }
}

/// ONNX DynamicQuantizeLinear as onnxruntime computes it, in place and centred: each value
/// becomes `q - zp`, an integer in `[-zp, 255 - zp]`; returns the scale. The range is over the
/// whole tensor and always includes 0; rounding is half to even.
fn quantize_activation(v: &mut [f32]) -> f32 {
    let (lo, hi) = v
        .iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &a| (lo.min(a), hi.max(a)));
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even();
    let (min, max) = (-zp, 255.0 - zp);
    for a in v.iter_mut() {
        *a = (*a / scale).max(min).min(max).round_ties_even();
    }
    scale
}

/// Exact GELU as the graph writes it: `(x · (erf(x / 1.4142135) + 1)) · 0.5`.
fn gelu(x: f32) -> f32 {
    (x * (erf(x / std::f32::consts::SQRT_2) + 1.0)) * 0.5
}

/// erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4] (beyond, |erf| is 1 in f32): a rational least-squares
/// fit, max abs error 3.5e-7 (checked against libm in the tests). Branch-free, so the GELU loop
/// vectorizes; libm's `erff` made GELU a quarter of the model's time.
pub fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        std::f32::consts::FRAC_2_SQRT_PI, // erf'(0): the fit lands on it
        0.184_665_78,
        0.054_330_677,
        0.003_838_248_3,
        0.000_382_829_6,
        4.785_033_5e-6,
        -1.368_557e-8,
    ];
    const Q: [f32; 6] = [
        1.0,
        0.496_989_34,
        0.113_811_43,
        0.015_451_407,
        0.001_309_508,
        6.405_269e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let u = x * x;
    let p = P.iter().rev().fold(0.0, |acc, &c| acc * u + c);
    let q = Q.iter().rev().fold(0.0, |acc, &c| acc * u + c);
    (x * p / q).clamp(-1.0, 1.0)
}

fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    // Two-pass mean/variance like the reference (candle's fused kernel uses E[x²] - E[x]², which
    // loses precision on the residual stream and would flip quantization steps).
    Ok(candle_nn::ops::layer_norm_slow(x, w, b, LN_EPS as f32)?)
}

/// A LayerNorm's weight and bias.
struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    fn load(vb: &VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            w: vb.get(channels, "weight")?,
            b: vb.get(channels, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.w, &self.b)
    }
}

/// A dense 1-D convolution (stride 1, "same" zero padding) on time-major input, as one matmul over
/// the `k` shifted copies of the input (im2col).
struct Conv1d {
    /// `[k · in, out]`, row `j · in + c` = `weight[o, c, j]`.
    w: Tensor,
    b: Tensor,
    kernel: usize,
}

impl Conv1d {
    fn load(vb: &VarBuilder, out: usize, inp: usize, kernel: usize) -> Result<Self> {
        let w = vb.get((out, inp, kernel), "weight")?;
        let w = w.permute((2, 1, 0))?.reshape((kernel * inp, out))?;
        Ok(Self {
            w: w.contiguous()?,
            b: vb.get(out, "bias")?,
            kernel,
        })
    }

    /// `x` `[T, in]` → `[T, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(0)?;
        let cols = if self.kernel == 1 {
            x.clone()
        } else {
            let pad = self.kernel / 2;
            let xp = x.pad_with_zeros(0, pad, pad)?;
            let shifted: Vec<Tensor> = (0..self.kernel)
                .map(|j| xp.narrow(0, j, t))
                .collect::<candle_core::Result<_>>()?;
            Tensor::cat(&shifted, 1)?
        };
        Ok(cols.contiguous()?.matmul(&self.w)?.broadcast_add(&self.b)?)
    }
}

/// `x + γ ⊙ pw2(GELU(pw1(LN(depthwise_conv(x)))))`, the depthwise conv dilated and length-keeping.
struct ConvNext {
    /// Depthwise taps `[k, C]`.
    dw_w: Tensor,
    dw_b: Tensor,
    norm: Norm,
    pw1: QuantLinear,
    pw2: QuantLinear,
    gamma: Tensor,
    kernel: usize,
    dilation: usize,
}

impl ConvNext {
    /// `vb` at the block (`m.dec.3`), `root` for the int8 weights, named after the ONNX node
    /// path `<stem>/pw1<suffix>/Transpose_output_0` (suffix `_1` for the second text encoder).
    fn load(
        vb: &VarBuilder,
        root: &VarBuilder,
        (stem, suffix): (&str, &str),
        channels: usize,
        kernel: usize,
        dilation: usize,
    ) -> Result<Self> {
        let dw_w = vb.get((channels, 1, kernel), "dw.weight")?;
        let dw_w = dw_w.squeeze(1)?.t()?.contiguous()?;
        let pw1 = format!("{stem}/pw1{suffix}/Transpose_output_0");
        let pw2 = format!("{stem}/pw2{suffix}/Transpose_output_0");
        Ok(Self {
            dw_w,
            dw_b: vb.get(channels, "dw.bias")?,
            norm: Norm::load(&vb.pp("norm"), channels)?,
            pw1: QuantLinear::load(root, &pw1, &format!("{}.pw1.bias", vb.prefix()))?,
            pw2: QuantLinear::load(root, &pw2, &format!("{}.pw2.bias", vb.prefix()))?,
            gamma: vb.get(channels, "gamma")?,
            kernel,
            dilation,
        })
    }

    /// `x` `[T, C]` → `[T, C]`.
    fn forward(&self, x: &Tensor, numerics: Numerics) -> Result<Tensor> {
        let t = x.dim(0)?;
        let pad = self.dilation * (self.kernel - 1) / 2;
        let xp = x.pad_with_zeros(0, pad, pad)?;
        // Taps summed in order, then the bias (the reference's order).
        let mut h = xp.narrow(0, 0, t)?.broadcast_mul(&self.dw_w.get(0)?)?;
        for j in 1..self.kernel {
            let tap = xp.narrow(0, j * self.dilation, t)?;
            h = (h + tap.broadcast_mul(&self.dw_w.get(j)?)?)?;
        }
        let h = h.broadcast_add(&self.dw_b)?;
        let h = self.norm.forward(&h)?;
        let h = self.pw1.forward(&h, numerics)?;
        let h = self.pw2.forward_gelu(&h, numerics)?;
        Ok((x + h.broadcast_mul(&self.gamma)?)?)
    }
}

/// Pre-norm transformer layer, 2 heads, no mask: `x += MHA(LN1 x); x += FFN(LN2 x)`.
struct AttnLayer {
    norm1: Norm,
    norm2: Norm,
    in_proj: QuantLinear,
    out_proj: QuantLinear,
    linear1: QuantLinear,
    linear2: QuantLinear,
    channels: usize,
}

/// ONNX names of one attention layer's four int8 weights (in_proj, out_proj, linear1, linear2).
struct AttnOnnxNames {
    in_proj: &'static str,
    out_proj: &'static str,
    linear1: &'static str,
    linear2: &'static str,
}

const HEADS: usize = 2;

impl AttnLayer {
    fn load(vb: &VarBuilder, root: &VarBuilder, names: &AttnOnnxNames, c: usize) -> Result<Self> {
        let p = vb.prefix();
        Ok(Self {
            norm1: Norm::load(&vb.pp("norm1"), c)?,
            norm2: Norm::load(&vb.pp("norm2"), c)?,
            in_proj: QuantLinear::load(
                root,
                names.in_proj,
                &format!("{p}.self_attn.in_proj_bias"),
            )?,
            out_proj: QuantLinear::load(
                root,
                names.out_proj,
                &format!("{p}.self_attn.out_proj.bias"),
            )?,
            linear1: QuantLinear::load(root, names.linear1, &format!("{p}.linear1.bias"))?,
            linear2: QuantLinear::load(root, names.linear2, &format!("{p}.linear2.bias"))?,
            channels: c,
        })
    }

    /// `x` `[L, C]` → `[L, C]`.
    fn forward(&self, x: &Tensor, numerics: Numerics) -> Result<Tensor> {
        let (l, c) = (x.dim(0)?, self.channels);
        let hd = c / HEADS;
        let h = self.norm1.forward(x)?;
        let qkv = self.in_proj.forward(&h, numerics)?;
        let head_major = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(1, i * c, c)?
                .reshape((l, HEADS, hd))?
                .transpose(0, 1)?
                .contiguous()
        };
        let (q, k, v) = (head_major(0)?, head_major(1)?, head_major(2)?);
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let o = attn.matmul(&v)?.transpose(0, 1)?.reshape((l, c))?;
        let x = (x + self.out_proj.forward(&o, numerics)?)?;
        let h = self.norm2.forward(&x)?;
        let h = self.linear1.forward(&h, numerics)?;
        Ok((&x + self.linear2.forward_gelu(&h, numerics)?)?)
    }
}

/// Embedding → 2 ConvNeXt (k 5) → ONE shared attention layer applied `repeats` times → LayerNorm.
struct TextEncoder {
    emb: Tensor,
    convs: [ConvNext; 2],
    attn: AttnLayer,
    norm: Norm,
    repeats: usize,
}

impl TextEncoder {
    /// ids `[L]` (u32) → `[L, C]`.
    fn forward(&self, ids: &Tensor, numerics: Numerics) -> Result<Tensor> {
        let mut x = self.emb.index_select(ids, 0)?;
        for conv in &self.convs {
            x = conv.forward(&x, numerics)?;
        }
        for _ in 0..self.repeats {
            x = self.attn.forward(&x, numerics)?;
        }
        self.norm.forward(&x)
    }
}

/// `logd = conv1x1(GELU(conv_k3(tp)))`, one value per phoneme.
struct DurationPredictor {
    conv: Conv1d,
    proj: Conv1d,
}

impl DurationPredictor {
    fn forward(&self, tp: &Tensor) -> Result<Vec<f32>> {
        let d = self.conv.forward(tp)?;
        let shape = d.shape().clone();
        let v = d.flatten_all()?.to_vec1::<f32>()?;
        let d = Tensor::from_vec(v.into_iter().map(gelu).collect(), shape, tp.device())?;
        Ok(self.proj.forward(&d)?.squeeze(1)?.to_vec1::<f32>()?)
    }
}

/// f0 and energy per 25 ms frame: conv1x1 → 6 dilated ConvNeXt (k 7) → conv1x1 to 4 channels.
struct Prosody {
    pro_in: Conv1d,
    blocks: Vec<ConvNext>,
    pro_out: Conv1d,
}

impl Prosody {
    /// Phoneme features expanded to frames `[T, 192]` → `[T, 4]` (f0/100 of half-frames 2t and
    /// 2t+1, then energy/5 of the same).
    fn forward(&self, x: &Tensor, numerics: Numerics) -> Result<Tensor> {
        let mut x = self.pro_in.forward(x)?;
        for block in &self.blocks {
            x = block.forward(&x, numerics)?;
        }
        self.pro_out.forward(&x)
    }
}

/// Decoder: conv k7 (130 → 256) → 8 ConvNeXt (k 7, hidden 768) → LayerNorm → head (256 → 3005).
struct Decoder {
    dec_in: Conv1d,
    blocks: Vec<ConvNext>,
    norm: Norm,
    head: QuantLinear,
}

impl Decoder {
    /// `[F, 130]` → `[F, 3005]`.
    fn forward(&self, x: &Tensor, numerics: Numerics) -> Result<Tensor> {
        let mut x = self.dec_in.forward(x)?;
        for block in &self.blocks {
            x = block.forward(&x, numerics)?;
        }
        let h = self.norm.forward(&x)?;
        self.head.forward(&h, numerics)
    }
}

/// Everything one model call produces.
#[derive(Debug, Clone)]
pub struct AcousticOutput {
    /// Duration-head output per phoneme (before `exp`).
    pub logd: Vec<f32>,
    /// 25 ms frames per phoneme (pads included, each ≥ 1).
    pub durations: Vec<u32>,
    /// f0 in Hz per 12.5 ms frame (≤ 40 = unvoiced).
    pub f0: Vec<f32>,
    /// lh, theta, ln, lr, phi for each of the `F = 2 Σ durations` frames.
    pub spectra: Spectra,
}

/// The whole acoustic model.
pub struct AcousticModel {
    m_text: TextEncoder,
    pn_text: TextEncoder,
    duration: DurationPredictor,
    prosody: Prosody,
    decoder: Decoder,
    numerics: Numerics,
    device: Device,
}

impl AcousticModel {
    /// Loads `dir/hibari.safetensors` (installed by `parley models fetch`).
    pub fn load(dir: &Path, numerics: Numerics) -> Result<Self> {
        let path = dir.join(WEIGHTS_FILE);
        if !path.is_file() {
            return Err(AcousticError::MissingWeights(path));
        }
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&path, &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Self::from_var_builder(&vb, numerics)
    }

    /// Builds the model from weights under their ONNX names (see `docs/hibari_port.md` §4.1).
    pub fn from_var_builder(vb: &VarBuilder, numerics: Numerics) -> Result<Self> {
        let text = |prefix: &str, c: usize, repeats: usize, suffix: &str, attn: AttnOnnxNames| {
            let p = vb.pp(prefix);
            let conv = |i: usize| {
                let stem = format!("/convs.{i}");
                ConvNext::load(&p.pp(format!("convs.{i}")), vb, (&stem, suffix), c, 5, 1)
            };
            Ok::<_, AcousticError>(TextEncoder {
                emb: p.get((VOCAB_ROWS, c), "emb.weight")?,
                convs: [conv(0)?, conv(1)?],
                attn: AttnLayer::load(&p.pp("attn"), vb, &attn, c)?,
                norm: Norm::load(&p.pp("norm"), c)?,
                repeats,
            })
        };
        let m_text = text(
            "m.text",
            128,
            4,
            "",
            AttnOnnxNames {
                in_proj: "/Transpose_2_output_0",
                out_proj: "/out_proj/Transpose_output_0",
                linear1: "/linear1/Transpose_output_0",
                linear2: "/linear2/Transpose_output_0",
            },
        )?;
        let pn_text = text(
            "pn.text",
            192,
            6,
            "_1",
            AttnOnnxNames {
                in_proj: "/Transpose_25_output_0",
                out_proj: "/out_proj_4/Transpose_output_0",
                linear1: "/linear1_4/Transpose_output_0",
                linear2: "/linear2_4/Transpose_output_0",
            },
        )?;
        let duration = DurationPredictor {
            conv: Conv1d::load(&vb.pp("pn.dur.0"), 192, 192, 3)?,
            proj: Conv1d::load(&vb.pp("pn.dur.2"), 1, 192, 1)?,
        };
        let prosody = Prosody {
            pro_in: Conv1d::load(&vb.pp("pn.pro_in"), 192, 192, 1)?,
            blocks: PROSODY_DILATIONS
                .iter()
                .enumerate()
                .map(|(i, &dil)| {
                    let stem = format!("/pro.{i}");
                    ConvNext::load(&vb.pp(format!("pn.pro.{i}")), vb, (&stem, ""), 192, 7, dil)
                })
                .collect::<Result<_>>()?,
            pro_out: Conv1d::load(&vb.pp("pn.pro_out"), 4, 192, 1)?,
        };
        let decoder = Decoder {
            dec_in: Conv1d::load(&vb.pp("m.dec_in"), 256, 130, 7)?,
            blocks: (0..8)
                .map(|i| {
                    let stem = format!("/dec.{i}");
                    ConvNext::load(&vb.pp(format!("m.dec.{i}")), vb, (&stem, ""), 256, 7, 1)
                })
                .collect::<Result<_>>()?,
            norm: Norm::load(&vb.pp("m.dec_norm"), 256)?,
            head: QuantLinear::load(vb, "/head/Transpose_output_0", "m.head.bias")?,
        };
        Ok(Self {
            m_text,
            pn_text,
            duration,
            prosody,
            decoder,
            numerics,
            device: vb.device().clone(),
        })
    }

    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// Runs the whole model on one sentence's ids (with the 0 pads at both ends).
    pub fn forward(&self, ids: &[u32], speed: f32) -> Result<AcousticOutput> {
        let (tm, tp) = self.text_encoders(ids)?;
        let logd = self.duration.forward(&tp)?;
        let durations = durations_from_logd(&logd, speed)?;
        let pro = self.prosody(&tp, &durations)?;
        let (f0, spectra) = self.decode(&tm, &durations, &pro)?;
        Ok(AcousticOutput {
            logd,
            durations,
            f0,
            spectra,
        })
    }

    /// The two text encoders: `(m.text [L, 128], pn.text [L, 192])`.
    pub fn text_encoders(&self, ids: &[u32]) -> Result<(Tensor, Tensor)> {
        if ids.len() < 3 {
            return Err(AcousticError::TooShort(ids.len()));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= VOCAB_ROWS) {
            return Err(AcousticError::BadId(bad));
        }
        let ids = Tensor::new(ids, &self.device)?;
        let tm = self.m_text.forward(&ids, self.numerics)?;
        let tp = self.pn_text.forward(&ids, self.numerics)?;
        Ok((tm, tp))
    }

    /// Duration head output `logd` per phoneme from `pn.text` `[L, 192]`.
    pub fn log_durations(&self, tp: &Tensor) -> Result<Vec<f32>> {
        self.duration.forward(tp)
    }

    /// Prosody head `[T, 4]` from `pn.text` `[L, 192]` and the durations.
    pub fn prosody(&self, tp: &Tensor, durations: &[u32]) -> Result<Tensor> {
        let idx = Tensor::new(frame_phonemes(durations).as_slice(), &self.device)?;
        let x = tp.index_select(&idx, 0)?;
        self.prosody.forward(&x, self.numerics)
    }

    /// Decoder: f0 `[F]` and the spectra from `m.text` `[L, 128]`, durations and prosody `[T, 4]`.
    pub fn decode(
        &self,
        tm: &Tensor,
        durations: &[u32],
        pro: &Tensor,
    ) -> Result<(Vec<f32>, Spectra)> {
        let idx = frame_phonemes(durations);
        let t = idx.len();
        let frames = 2 * t;
        let pro = pro.to_vec2::<f32>()?;
        // Half-frame interleave: frame 2t + j takes row t, channel j (f0) and 2 + j (energy).
        let mut f0 = Vec::with_capacity(frames);
        let mut extra = Vec::with_capacity(frames * 2);
        for row in &pro {
            for j in 0..2 {
                let f = row[j] * 100.0;
                let energy = row[2 + j] * 5.0;
                f0.push(f);
                extra.push((1.0 + f.max(0.0)).ln() / 5.0);
                extra.push(energy / 5.0);
            }
        }
        let half_idx: Vec<u32> = idx.iter().flat_map(|&i| [i, i]).collect();
        let half_idx = Tensor::new(half_idx.as_slice(), &self.device)?;
        let text = tm.index_select(&half_idx, 0)?;
        let extra = Tensor::from_vec(extra, (frames, 2), &self.device)?;
        let x = Tensor::cat(&[&text, &extra], 1)?;
        let out = self.decoder.forward(&x, self.numerics)?;
        debug_assert_eq!(out.dim(D::Minus1)?, PARTS * BINS);
        let data = out.flatten_all()?.to_vec1::<f32>()?;
        let spectra = Spectra::from_frame_major(frames, data)
            .map_err(|e| AcousticError::Candle(candle_core::Error::Msg(e.to_string())))?;
        Ok((f0, spectra))
    }
}

/// `max(round_half_even((exp(logd) - 1) / speed), 1)` frames of 25 ms per phoneme.
pub fn durations_from_logd(logd: &[f32], speed: f32) -> Result<Vec<u32>> {
    if !(speed.is_finite() && speed > 0.0) {
        return Err(AcousticError::BadSpeed(speed));
    }
    let durations: Vec<u32> = logd
        .iter()
        .map(|&l| {
            let d = ((l.exp() - 1.0) / speed).round_ties_even().max(1.0);
            // `as` saturates (NaN → 0, caught by the total below being checked per value).
            d.min(MAX_FRAMES as f32 + 1.0) as u32
        })
        .collect();
    let total: u64 = durations.iter().map(|&d| d as u64).sum();
    if total > MAX_FRAMES || durations.contains(&0) {
        return Err(AcousticError::TooLong(total));
    }
    Ok(durations)
}

/// The phoneme of each 25 ms frame: phoneme `i` repeated `durations[i]` times.
pub fn frame_phonemes(durations: &[u32]) -> Vec<u32> {
    durations
        .iter()
        .enumerate()
        .flat_map(|(i, &d)| std::iter::repeat_n(i as u32, d as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_its_stated_error() {
        let mut worst = 0.0f64;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            let exact = candle_core::cpu::erf::erf_f64(x as f64);
            worst = worst.max((erf(x) as f64 - exact).abs());
        }
        assert!(worst <= 4e-7, "max |erf error| {worst:e}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(30.0) - 1.0).abs() <= 1e-7);
        assert!((erf(-30.0) + 1.0).abs() <= 1e-7);
    }

    #[test]
    fn quantization_matches_dynamic_quantize_linear() {
        // Range [-1, 3] → scale 4/255, zero point round(255/4) = 64 (63.75 → 64).
        let mut v = vec![-1.0f32, 0.0, 3.0, 1.0, 0.5 * 4.0 / 255.0, 1.5 * 4.0 / 255.0];
        let s = quantize_activation(&mut v);
        assert_eq!(s, 4.0 / 255.0);
        // -1/s = -63.75 → -64 (clamped to -zp), 3/s = 191.25 → 191, halves round to even.
        assert_eq!(v, vec![-64.0, 0.0, 191.0, 64.0, 0.0, 2.0]);
        // All zeros: scale 1.
        let mut z = vec![0.0f32; 3];
        assert_eq!(quantize_activation(&mut z), 1.0);
        assert_eq!(z, vec![0.0; 3]);
    }

    #[test]
    fn durations_round_half_to_even_and_expand() {
        // exp(ln 3.5) - 1 = 2.5 → 2; exp(ln 4.5) - 1 = 3.5 → 4; tiny → at least 1.
        let d = durations_from_logd(&[3.5f32.ln(), 4.5f32.ln(), -5.0], 1.0).unwrap();
        assert_eq!(d, vec![2, 4, 1]);
        assert_eq!(frame_phonemes(&d), vec![0, 0, 1, 1, 1, 1, 2]);
        assert!(durations_from_logd(&[1.0], 0.0).is_err());
        assert!(durations_from_logd(&[30.0], 1.0).is_err());
    }
}
