//! [`Linear`]: one projection of the decoder over quantized GGUF weights, prepared at load so
//! candle's fastest CPU kernel applies.
//!
//! Why the preparation:
//! - candle has SIMD dot products for Q4_0, Q8_0 and the k-quants but only scalar code for Q4_1,
//!   Q5_0 and Q5_1, so those are re-quantized to Q8_0: 8 bits per weight represent their 4/5-bit
//!   values to within 0.4% of each 32-value block's range.
//! - On CPUs with 8-bit dot-product instructions (AVX512-VNNI or AVX-VNNI) candle 0.11 runs Q8_0
//!   through repacked tiles, several times faster than its AVX2 `vec_dot`, but only when the
//!   input width is a multiple of 256 (`repack_x86::select`). Small models have widths like 576,
//!   so the weights get zero columns up to the next multiple of 256 and the inputs zero values:
//!   the products are unchanged (zero blocks add nothing) and the kernel applies. Its
//!   activations are quantized per 256 values (Q8_K) instead of per 32 (Q8_0); the logits test
//!   in `tests/llm_logits.rs` bounds the difference.
//! - With the same padded input, projections sharing it (q/k/v, gate/up) go through candle's
//!   fused call: one activation quantization and one thread-pool round for all of them.
//! - Q4_1 and Q8_0 weights (SmolLM2's formats) go through our own kernels where AVX2 is
//!   compiled in ([`super::quad`]): Q4_1 stays 4-bit (half the bytes of Q8_0 per token), no
//!   padding, llama.cpp's numerics (activations quantized per 32 values). On VNNI CPUs a
//!   padded copy for candle's kernel is kept for prefill, where that kernel is faster.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, Device, Module, Tensor};

use super::LlmError;
use super::quad::{Q4_1Matrix, Q8_0Matrix};

/// Input widths are padded to a multiple of this (candle's repacked kernel needs it).
const FAST_KERNEL_WIDTH: usize = 256;
/// Output widths the repacked kernel needs a multiple of.
const FAST_KERNEL_TILE: usize = 16;

/// Whether this CPU runs candle's repacked Q8_0 kernel (8-bit dot-product instructions).
pub fn fast_q8_kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The input width `width` is padded to when `pad` is on.
fn padded_width(width: usize, pad: bool) -> usize {
    if pad {
        width.next_multiple_of(FAST_KERNEL_WIDTH)
    } else {
        width
    }
}

/// Whether Q4_1 and Q8_0 weights go through our kernels: where their SIMD code is compiled in
/// (AVX2, FMA and F16C, see `.cargo/config.toml`) and the weights live on the CPU.
fn our_kernels_apply(device: &Device) -> bool {
    cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    )) && device.is_cpu()
}

/// A weight prepared for one of candle's kernels; `in_width` includes any zero padding.
#[derive(Debug)]
struct CandleKernel {
    weight: Arc<QTensor>,
    matmul: QMatMul,
    in_width: usize,
}

impl CandleKernel {
    /// `weight` (`[out, in]`) for candle's fastest kernel: re-quantized to Q8_0 where its own
    /// dtype has no SIMD code, padded to a multiple of 256 with `pad` where that applies.
    fn new(weight: Arc<QTensor>, pad: bool, device: &Device) -> Result<Self, LlmError> {
        let (out_width, in_width) = weight.shape().dims2()?;
        let dtype = weight.dtype();
        let slow = matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1);
        let q8_able = in_width.is_multiple_of(GgmlDType::Q8_0.block_size());
        let to_q8 = (slow || (pad && dtype == GgmlDType::Q4_0)) && q8_able;
        let pad = pad
            && q8_able
            && (to_q8 || dtype == GgmlDType::Q8_0)
            && out_width.is_multiple_of(FAST_KERNEL_TILE);
        let target = if to_q8 { GgmlDType::Q8_0 } else { dtype };
        let width = padded_width(in_width, pad);
        let weight = if width != in_width || target != dtype {
            let mut values = weight.dequantize(device)?;
            if width != in_width {
                values = values.pad_with_zeros(1, 0, width - in_width)?;
            }
            Arc::new(QTensor::quantize(&values, target)?)
        } else {
            weight
        };
        Ok(Self {
            matmul: QMatMul::from_arc(Arc::clone(&weight))?,
            weight,
            in_width: width,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.matmul.forward(&pad_last(x, self.in_width)?)
    }
}

/// One of our kernels' matrices.
#[derive(Debug)]
enum OurMatrix {
    Q4_1(Q4_1Matrix),
    Q8_0(Q8_0Matrix),
}

impl OurMatrix {
    fn new(weight: &QTensor) -> Result<Option<Self>, LlmError> {
        Ok(match weight.dtype() {
            GgmlDType::Q4_1 => Q4_1Matrix::from_qtensor(weight)?.map(Self::Q4_1),
            GgmlDType::Q8_0 => Q8_0Matrix::from_qtensor(weight)?.map(Self::Q8_0),
            _ => None,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Q4_1(m) => m.forward(x),
            Self::Q8_0(m) => m.forward(x),
        }
    }

    /// The fused product of `parts` if they are all of one format.
    fn forward_shared<const N: usize>(
        parts: [&OurMatrix; N],
        x: &Tensor,
    ) -> Option<candle_core::Result<[Tensor; N]>> {
        if let Some(m) = all_some(parts.map(|p| match p {
            Self::Q4_1(m) => Some(m),
            Self::Q8_0(_) => None,
        })) {
            return Some(Q4_1Matrix::forward_shared(m, x));
        }
        let m = all_some(parts.map(|p| match p {
            Self::Q8_0(m) => Some(m),
            Self::Q4_1(_) => None,
        }))?;
        Some(Q8_0Matrix::forward_shared(m, x))
    }
}

/// Which code multiplies.
#[derive(Debug)]
enum Kernel {
    Candle(CandleKernel),
    /// Our kernel; on CPUs with candle's repacked 8-bit kernel, also a padded Q8_0 copy
    /// for inputs of several tokens (prefill), where that kernel is faster (measured on a
    /// 2-core Xeon with AVX-VNNI: 75-80 vs 96 ms for a 50-token turn; for decode it is the
    /// other way round, 90.5 vs 95 tokens/s, and ours is 3.5x closer to the f32 logits).
    Ours {
        matrix: OurMatrix,
        prefill: Option<CandleKernel>,
    },
}

/// A projection `x -> x W^T`; any zero padding a kernel needs is added inside.
#[derive(Debug)]
pub struct Linear {
    kernel: Kernel,
    /// The weight's input width (before padding).
    in_width: usize,
}

impl Linear {
    /// Prepares `weight` (`[out, in]`); with `pad`, its input width is padded to a multiple of
    /// 256 when that lets candle's fast kernel run.
    pub fn new(weight: Arc<QTensor>, pad: bool, device: &Device) -> Result<Self, LlmError> {
        Self::prepare(weight, pad, true, device)
    }

    /// [`Linear::new`] for a projection that only ever multiplies one position at a time (the
    /// output layer: only the last position's logits are computed), so no copy is kept for
    /// prefill.
    pub fn new_for_one_position(
        weight: Arc<QTensor>,
        pad: bool,
        device: &Device,
    ) -> Result<Self, LlmError> {
        Self::prepare(weight, pad, false, device)
    }

    fn prepare(
        weight: Arc<QTensor>,
        pad: bool,
        prefill_copy: bool,
        device: &Device,
    ) -> Result<Self, LlmError> {
        let (_, in_width) = weight.shape().dims2()?;
        if our_kernels_apply(device)
            && let Some(matrix) = OurMatrix::new(&weight)?
        {
            let prefill = if pad && prefill_copy {
                Some(CandleKernel::new(weight, pad, device)?)
            } else {
                None
            };
            return Ok(Self {
                kernel: Kernel::Ours { matrix, prefill },
                in_width,
            });
        }
        Ok(Self {
            kernel: Kernel::Candle(CandleKernel::new(weight, pad, device)?),
            in_width,
        })
    }

    /// The candle kernel that multiplies `tokens` positions, if candle's does.
    fn candle_kernel(&self, tokens: usize) -> Option<&CandleKernel> {
        match &self.kernel {
            Kernel::Candle(k) => Some(k),
            Kernel::Ours {
                prefill: Some(k), ..
            } if tokens > 1 => Some(k),
            Kernel::Ours { .. } => None,
        }
    }

    /// `x` (`[.., in_width]`) times the weight.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match (self.candle_kernel(positions(x)), &self.kernel) {
            (Some(k), _) => k.forward(x),
            (None, Kernel::Ours { matrix, .. }) => matrix.forward(x),
            // `candle_kernel` always gives a candle weight its kernel.
            (None, Kernel::Candle(k)) => k.forward(x),
        }
    }

    /// Several projections of the same input, fused into one kernel call where they can be.
    pub fn forward_shared<const N: usize>(
        parts: [&Linear; N],
        x: &Tensor,
    ) -> candle_core::Result<[Tensor; N]> {
        let width = x.dim(D::Minus1).unwrap_or(0);
        let tokens = positions(x);
        if parts.iter().all(|p| p.in_width == width) {
            let candle = all_some(parts.map(|p| p.candle_kernel(tokens)));
            let ours = all_some(parts.map(|p| match &p.kernel {
                Kernel::Ours { matrix, .. } => Some(matrix),
                Kernel::Candle(_) => None,
            }));
            if let Some(kernels) = candle
                && kernels.iter().all(|k| {
                    k.weight.dtype() == kernels[0].weight.dtype()
                        && k.in_width == kernels[0].in_width
                        && matches!(k.matmul, QMatMul::QTensor(_))
                })
            {
                let x = pad_last(x, kernels[0].in_width)?;
                let weights = kernels.map(|k| k.weight.as_ref());
                if x.is_contiguous()
                    && let Some(outs) = QTensor::gemv_fused_shared_lhs(&weights, &x)?
                    && let Ok(outs) = <[Tensor; N]>::try_from(outs)
                {
                    return Ok(outs);
                }
            } else if let Some(matrices) = ours
                && let Some(outs) = OurMatrix::forward_shared(matrices, x)
            {
                return outs;
            }
        }
        let mut outs = Vec::with_capacity(N);
        for p in parts {
            outs.push(p.forward(x)?);
        }
        <[Tensor; N]>::try_from(outs)
            .map_err(|_| candle_core::Error::Msg("fused projections lost an output".into()))
    }
}

/// Positions (rows) in `x`: all but its last dimension.
fn positions(x: &Tensor) -> usize {
    let width = x.dim(D::Minus1).unwrap_or(1).max(1);
    x.elem_count() / width
}

/// All of `items` if none is `None`.
fn all_some<T, const N: usize>(items: [Option<T>; N]) -> Option<[T; N]> {
    let items: Option<Vec<T>> = items.into_iter().collect();
    items?.try_into().ok()
}

/// `x` with zeros appended along the last dimension up to `width` (itself if already that wide).
fn pad_last(x: &Tensor, width: usize) -> candle_core::Result<Tensor> {
    let current = x.dim(D::Minus1)?;
    if current >= width {
        return Ok(x.clone());
    }
    x.pad_with_zeros(D::Minus1, 0, width - current)
}
