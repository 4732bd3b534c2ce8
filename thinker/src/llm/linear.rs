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

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, Device, Module, Tensor};

use super::LlmError;

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
pub fn padded_width(width: usize, pad: bool) -> usize {
    if pad {
        width.next_multiple_of(FAST_KERNEL_WIDTH)
    } else {
        width
    }
}

/// A projection `x -> x W^T` whose input is `in_width` wide (zero-padded if the weight is).
#[derive(Debug)]
pub struct Linear {
    weight: Arc<QTensor>,
    matmul: QMatMul,
    in_width: usize,
    out_width: usize,
}

impl Linear {
    /// Prepares `weight` (`[out, in]`); with `pad`, its input width is padded to a multiple of
    /// 256 when that lets the fast kernel run.
    pub fn new(weight: Arc<QTensor>, pad: bool, device: &Device) -> Result<Self, LlmError> {
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
            out_width,
        })
    }

    /// Width of the input this projection takes (after padding).
    pub fn in_width(&self) -> usize {
        self.in_width
    }

    pub fn out_width(&self) -> usize {
        self.out_width
    }

    /// `x` (`[.., in_width]`, padded with [`pad_last`]) times the weight.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.matmul.forward(x)
    }

    /// Several projections of the same input, fused into one kernel call where candle can.
    pub fn forward_shared<const N: usize>(
        parts: [&Linear; N],
        x: &Tensor,
    ) -> candle_core::Result<[Tensor; N]> {
        let same = parts.iter().all(|p| {
            p.weight.dtype() == parts[0].weight.dtype()
                && matches!(p.matmul, QMatMul::QTensor(_))
                && p.in_width == x.dim(D::Minus1).unwrap_or(0)
        });
        if same && x.is_contiguous() {
            let weights = parts.map(|p| p.weight.as_ref());
            if let Some(outs) = QTensor::gemv_fused_shared_lhs(&weights, x)?
                && let Ok(outs) = <[Tensor; N]>::try_from(outs)
            {
                return Ok(outs);
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

/// `x` with zeros appended along the last dimension up to `width` (itself if already that wide).
pub fn pad_last(x: &Tensor, width: usize) -> candle_core::Result<Tensor> {
    let current = x.dim(D::Minus1)?;
    if current >= width {
        return Ok(x.clone());
    }
    x.pad_with_zeros(D::Minus1, 0, width - current)
}
