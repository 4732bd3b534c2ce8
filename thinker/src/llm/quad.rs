//! [`QuadMatrix`]: quantized GGUF weights (Q4_1 or Q8_0) times f32 activations on the CPU,
//! computed the way llama.cpp does it: the activations are quantized to 8 bits per 32 values
//! (Q8_1/Q8_0: a scale, and for Q4_1 the scaled sum), then each 32-value block is an integer
//! dot product of the weights with them.
//!
//! Why our own kernels:
//! - candle 0.11 has only scalar code for Q4_1 (SmolLM2's format), and re-quantizing the
//!   weights to Q8_0 for its SIMD kernels doubles the bytes every token reads (decode is bound
//!   by memory bandwidth). Here the 4-bit values stay as they are; the unsigned nibbles are
//!   exactly the operand AVX2's `maddubs` wants.
//! - For Q8_0 (SmolLM2's token embedding, also its output layer) candle's fast kernel needs
//!   AVX-VNNI and input widths padded to 256 (a third more bytes for SmolLM2); its AVX2 path
//!   is slow (measured 75 vs 95 tokens/s when the output layer took it).
//!
//! Rows are interleaved by four at load so a thread reads the matrix front to back and four
//! rows share each activation load. The numbers are llama.cpp's: the same activation
//! quantization (scales rounded to f16, ties to even as in its SIMD code) and the same integer
//! products; only the float summation order is ours. The work is split across candle's CPU
//! thread pool, so no threads are added.

use std::sync::Mutex;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{D, Result, Tensor};
use half::f16;

/// Values per block, in the weights and in the activations.
const BLOCK: usize = 32;
/// Bytes of one GGUF Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// Bytes of one GGUF Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Weight rows stored and computed together against one activation block.
const QUAD: usize = 4;

// The kernels: AVX2 where the build enables it (see `crate::simd`), the plain definitions
// elsewhere. Both modules have the same functions.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
use avx2 as kernels;
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
)))]
use plain as kernels;

/// One weight format's block of four rows: how it is read from GGUF bytes and multiplied.
pub trait QuadFormat: Copy + std::fmt::Debug + Send + Sync + 'static {
    const DTYPE: GgmlDType;
    /// Bytes of one GGUF block of one row.
    const GGUF_BYTES: usize;
    /// The all-zero block (rows beyond the last one).
    const ZERO: Self;
    /// Copies row `r`'s GGUF block `bytes` into this quad block.
    fn set_row(&mut self, r: usize, bytes: &[u8]);
    /// The dot products of a quad's four rows with one row of activations.
    fn dot4(quads: &[Self], y: &[ActivationBlock]) -> [f32; QUAD];
    /// The same for two rows of activations (two tokens); formats whose blocks are costly to
    /// unpack share that work between them.
    fn dot4x2(quads: &[Self], y0: &[ActivationBlock], y1: &[ActivationBlock]) -> [[f32; QUAD]; 2] {
        [Self::dot4(quads, y0), Self::dot4(quads, y1)]
    }
}

/// Q4_1 block `b` of four consecutive rows. Row `r`'s 32 weights are
/// `w[i] = scales[r] * q[i] + scales[4 + r]`; the low nibble of `nibbles[r][j]` is `q[j]`, the
/// high one `q[j + 16]` (GGUF's order within a block).
#[derive(Debug, Clone, Copy)]
pub struct Q4_1Quad {
    scales: [f16; 2 * QUAD],
    nibbles: [[u8; 16]; QUAD],
}

/// Q8_0 block `b` of four consecutive rows: row `r`'s weights are `scales[r] * values[r][i]`.
#[derive(Debug, Clone, Copy)]
pub struct Q8_0Quad {
    scales: [f16; QUAD],
    values: [[i8; BLOCK]; QUAD],
}

/// One block of 32 activations `x[i] ~ d * q[i]`, laid out for the kernels: `low` is
/// `q[0..16]` twice, `high` is `q[16..32]` twice (two Q4_1 rows' nibbles share one 32-byte
/// load), `scales` is `d` four times then `s = d * sum(q)` four times (Q4_1's minimum term).
#[derive(Debug, Clone, Copy)]
pub struct ActivationBlock {
    low: [i8; BLOCK],
    high: [i8; BLOCK],
    scales: [f32; 2 * QUAD],
}

impl QuadFormat for Q4_1Quad {
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
    const GGUF_BYTES: usize = Q4_1_BYTES;
    const ZERO: Self = Self {
        scales: [f16::ZERO; 2 * QUAD],
        nibbles: [[0; 16]; QUAD],
    };

    fn set_row(&mut self, r: usize, bytes: &[u8]) {
        self.scales[r] = f16::from_le_bytes([bytes[0], bytes[1]]);
        self.scales[QUAD + r] = f16::from_le_bytes([bytes[2], bytes[3]]);
        self.nibbles[r].copy_from_slice(&bytes[4..Q4_1_BYTES]);
    }

    #[inline]
    fn dot4(quads: &[Self], y: &[ActivationBlock]) -> [f32; QUAD] {
        kernels::dot4_q4_1(quads, y)
    }

    #[inline]
    fn dot4x2(quads: &[Self], y0: &[ActivationBlock], y1: &[ActivationBlock]) -> [[f32; QUAD]; 2] {
        kernels::dot4_q4_1_tokens(quads, [y0, y1])
    }
}

impl QuadFormat for Q8_0Quad {
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
    const GGUF_BYTES: usize = Q8_0_BYTES;
    const ZERO: Self = Self {
        scales: [f16::ZERO; QUAD],
        values: [[0; BLOCK]; QUAD],
    };

    fn set_row(&mut self, r: usize, bytes: &[u8]) {
        self.scales[r] = f16::from_le_bytes([bytes[0], bytes[1]]);
        for (v, &b) in self.values[r].iter_mut().zip(&bytes[2..Q8_0_BYTES]) {
            *v = b as i8;
        }
    }

    #[inline]
    fn dot4(quads: &[Self], y: &[ActivationBlock]) -> [f32; QUAD] {
        kernels::dot4_q8_0(quads, y)
    }
}

/// A `[rows, cols]` matrix of one format.
#[derive(Debug)]
pub struct QuadMatrix<F: QuadFormat> {
    /// `[quads][cols / 32]`; rows beyond `rows` (up to a multiple of four) are zeros.
    quads: Vec<F>,
    rows: usize,
    cols: usize,
}

pub type Q4_1Matrix = QuadMatrix<Q4_1Quad>;
pub type Q8_0Matrix = QuadMatrix<Q8_0Quad>;

impl<F: QuadFormat> QuadMatrix<F> {
    /// The matrix of a `[rows, cols]` tensor of this format; `None` for other dtypes or shapes.
    pub fn from_qtensor(weight: &QTensor) -> Result<Option<Self>> {
        if weight.dtype() != F::DTYPE {
            return Ok(None);
        }
        let Ok((rows, cols)) = weight.shape().dims2() else {
            return Ok(None);
        };
        if !cols.is_multiple_of(BLOCK) || rows == 0 {
            return Ok(None);
        }
        let per_row = cols / BLOCK;
        let bytes = weight.data()?;
        if bytes.len() != rows * per_row * F::GGUF_BYTES {
            candle_core::bail!(
                "{:?} tensor [{rows}, {cols}] holds {} bytes, expected {}",
                F::DTYPE,
                bytes.len(),
                rows * per_row * F::GGUF_BYTES
            );
        }
        let mut quads = vec![F::ZERO; rows.div_ceil(QUAD) * per_row];
        for (index, block) in bytes.chunks_exact(F::GGUF_BYTES).enumerate() {
            let (row, b) = (index / per_row, index % per_row);
            quads[(row / QUAD) * per_row + b].set_row(row % QUAD, block);
        }
        Ok(Some(Self { quads, rows, cols }))
    }

    fn n_quads(&self) -> usize {
        self.rows.div_ceil(QUAD)
    }

    fn quad(&self, quad: usize) -> &[F] {
        let per_row = self.cols / BLOCK;
        &self.quads[quad * per_row..(quad + 1) * per_row]
    }

    /// `x W^T` for `x` of shape `[.., cols]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [out] = Self::forward_shared([self], x)?;
        Ok(out)
    }

    /// `x W_i^T` for each of `parts` (same `cols`): the activations are quantized once and all
    /// rows go through the thread pool in one round.
    pub fn forward_shared<const N: usize>(
        parts: [&QuadMatrix<F>; N],
        x: &Tensor,
    ) -> Result<[Tensor; N]> {
        let cols = x.dim(D::Minus1)?;
        if let Some(p) = parts.iter().find(|p| p.cols != cols) {
            candle_core::bail!(
                "{:?} matrix [{}, {}] times input of width {cols}",
                F::DTYPE,
                p.rows,
                p.cols
            );
        }
        let leading = x.dims()[..x.rank() - 1].to_vec();
        let values = x
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let tokens = values.len() / cols;
        let activations = quantize_activations(&values);

        // The quads of all parts in order, split into one contiguous range per thread.
        let total_quads: usize = parts.iter().map(|p| p.n_quads()).sum();
        let quad_of = |global: usize| -> &[F] {
            let mut q = global;
            for p in &parts {
                if q < p.n_quads() {
                    return p.quad(q);
                }
                q -= p.n_quads();
            }
            unreachable!("quad {global} is below the total of the parts' quads")
        };
        let pool = candle_core::utils::barrier_pool();
        let quads_per_thread = total_quads.div_ceil(pool.n_workers() + 1);
        let rows_per_thread = quads_per_thread * QUAD;
        // Thread i computes quads [i * quads_per_thread, ..) into its own `[tokens][its rows]`.
        let per_thread: Vec<Mutex<Vec<f32>>> = (0..total_quads.div_ceil(quads_per_thread))
            .map(|_| Mutex::new(Vec::new()))
            .collect();
        let blocks_per_row = cols / BLOCK;
        pool.execute(|thread| {
            let Some(slot) = per_thread.get(thread) else {
                return;
            };
            let first_quad = thread * quads_per_thread;
            let n_quads = quads_per_thread.min(total_quads - first_quad);
            let width = n_quads * QUAD;
            let mut dst = vec![0f32; tokens * width];
            for local in 0..n_quads {
                let weights = quad_of(first_quad + local);
                // The quad's weights stay in L1 while every token goes past them, two at a time.
                let mut by_token = activations.chunks_exact(blocks_per_row).enumerate();
                while let Some((t, y)) = by_token.next() {
                    let at = t * width + local * QUAD;
                    match by_token.next() {
                        Some((_, y1)) => {
                            let [first, second] = F::dot4x2(weights, y, y1);
                            dst[at..at + QUAD].copy_from_slice(&first);
                            dst[at + width..at + width + QUAD].copy_from_slice(&second);
                        }
                        None => dst[at..at + QUAD].copy_from_slice(&F::dot4(weights, y)),
                    }
                }
            }
            // Each thread has its own slot: the lock is never contended.
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = dst;
        });
        let per_thread: Vec<Vec<f32>> = per_thread
            .into_iter()
            .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();

        // Each part's rows gathered from the threads' results, token by token.
        let mut first_row = 0;
        let mut outputs = Vec::with_capacity(N);
        for p in parts {
            let mut values = Vec::with_capacity(tokens * p.rows);
            for t in 0..tokens {
                let mut row = first_row;
                while row < first_row + p.rows {
                    let (thread, local) = (row / rows_per_thread, row % rows_per_thread);
                    let computed = &per_thread[thread];
                    let width = computed.len() / tokens;
                    let take = (width - local).min(first_row + p.rows - row);
                    let at = t * width + local;
                    values.extend_from_slice(&computed[at..at + take]);
                    row += take;
                }
            }
            let mut shape = leading.clone();
            shape.push(p.rows);
            outputs.push(Tensor::from_vec(values, shape, x.device())?);
            first_row += p.n_quads() * QUAD;
        }
        <[Tensor; N]>::try_from(outputs)
            .map_err(|_| candle_core::Error::Msg("quantized projections lost an output".into()))
    }
}

/// Q8_1 blocks of `values` (a whole number of blocks), as llama.cpp and candle make them
/// (scale and scaled sum rounded to f16), so results match their Q4_1 paths.
fn quantize_activations(values: &[f32]) -> Vec<ActivationBlock> {
    let (blocks, _) = values.as_chunks::<BLOCK>();
    blocks
        .iter()
        .map(|x| {
            let (d, q, sum) = kernels::quantize_block(x);
            let d = f16::from_f32(d);
            let s = f16::from_f32(sum as f32) * d;
            let mut block = ActivationBlock {
                low: [0; BLOCK],
                high: [0; BLOCK],
                scales: std::array::from_fn(|i| if i < QUAD { d.to_f32() } else { s.to_f32() }),
            };
            for half in 0..2 {
                block.low[half * 16..][..16].copy_from_slice(&q[..16]);
                block.high[half * 16..][..16].copy_from_slice(&q[16..]);
            }
            block
        })
        .collect()
}

/// The plain definitions, for targets without AVX2 and as the reference in tests.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ),
    allow(dead_code)
)]
mod plain {
    use super::{ActivationBlock, BLOCK, Q4_1Quad, Q8_0Quad, QUAD};

    /// One block's scale `d = max|x| / 127`, its values `round(x / d)` (ties to even, as in
    /// llama.cpp's SIMD quantization; candle's scalar code rounds them away from zero) and
    /// their sum.
    pub(super) fn quantize_block(x: &[f32; BLOCK]) -> (f32, [i8; BLOCK], i32) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        // |x * inverse| <= 127 by construction of d.
        let q: [i8; BLOCK] = std::array::from_fn(|i| (x[i] * inverse).round_ties_even() as i8);
        (d, q, q.iter().map(|&v| v as i32).sum())
    }

    /// Per row: `sum over blocks of d_w d_x sum(q_w q_x) + m_w s_x`.
    pub(super) fn dot4_q4_1(quads: &[Q4_1Quad], y: &[ActivationBlock]) -> [f32; QUAD] {
        std::array::from_fn(|r| {
            quads
                .iter()
                .zip(y)
                .map(|(w, x)| {
                    let mut sum = 0i32;
                    for j in 0..16 {
                        sum += (w.nibbles[r][j] & 0x0F) as i32 * x.low[j] as i32;
                        sum += (w.nibbles[r][j] >> 4) as i32 * x.high[j] as i32;
                    }
                    let scale = w.scales[r].to_f32() * x.scales[0];
                    let minimum = w.scales[QUAD + r].to_f32() * x.scales[QUAD];
                    sum as f32 * scale + minimum
                })
                .sum()
        })
    }

    pub(super) fn dot4_q4_1_tokens<const T: usize>(
        quads: &[Q4_1Quad],
        ys: [&[ActivationBlock]; T],
    ) -> [[f32; QUAD]; T] {
        ys.map(|y| dot4_q4_1(quads, y))
    }

    /// Per row: `sum over blocks of d_w d_x sum(q_w q_x)`.
    pub(super) fn dot4_q8_0(quads: &[Q8_0Quad], y: &[ActivationBlock]) -> [f32; QUAD] {
        std::array::from_fn(|r| {
            quads
                .iter()
                .zip(y)
                .map(|(w, x)| {
                    let mut sum = 0i32;
                    for j in 0..16 {
                        sum += w.values[r][j] as i32 * x.low[j] as i32;
                        sum += w.values[r][j + 16] as i32 * x.high[j] as i32;
                    }
                    sum as f32 * (w.scales[r].to_f32() * x.scales[0])
                })
                .sum()
        })
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActivationBlock, BLOCK, Q4_1Quad, Q8_0Quad, QUAD};
    use crate::simd::{sum4, sum8};

    // SAFETY (every `unsafe` call of a `_simd` function below): this module is compiled only
    // when the whole build enables AVX2, FMA and F16C, so the binary already requires a CPU
    // that has them.

    pub(super) fn quantize_block(x: &[f32; BLOCK]) -> (f32, [i8; BLOCK], i32) {
        unsafe { quantize_block_simd(x) }
    }

    pub(super) fn dot4_q4_1(quads: &[Q4_1Quad], y: &[ActivationBlock]) -> [f32; QUAD] {
        let [out] = unsafe { dot4_q4_1_tokens_simd(quads, [y]) };
        out
    }

    pub(super) fn dot4_q4_1_tokens<const T: usize>(
        quads: &[Q4_1Quad],
        ys: [&[ActivationBlock]; T],
    ) -> [[f32; QUAD]; T] {
        unsafe { dot4_q4_1_tokens_simd(quads, ys) }
    }

    pub(super) fn dot4_q8_0(quads: &[Q8_0Quad], y: &[ActivationBlock]) -> [f32; QUAD] {
        unsafe { dot4_q8_0_simd(quads, y) }
    }

    /// The 32 nibble bytes of two rows as (low nibbles, high nibbles), one byte per value.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn unpack(nibbles: __m256i) -> (__m256i, __m256i) {
        let mask = _mm256_set1_epi8(0x0F);
        (
            _mm256_and_si256(nibbles, mask),
            _mm256_and_si256(_mm256_srli_epi16(nibbles, 4), mask),
        )
    }

    /// Two rows' integer products with one activation block (`lo`/`hi` from [`unpack`]), as 8
    /// i32 lanes (4 per row).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn pair_products((lo, hi): (__m256i, __m256i), low: __m256i, high: __m256i) -> __m256 {
        // u8 x i8 pairs summed to i16: |2 * 15 * 127| twice still fits in i16.
        let sums = _mm256_add_epi16(
            _mm256_maddubs_epi16(lo, low),
            _mm256_maddubs_epi16(hi, high),
        );
        _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, _mm256_set1_epi16(1)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn quantize_block_simd(x: &[f32; BLOCK]) -> (f32, [i8; BLOCK], i32) {
        // SAFETY: four loads of 8 f32 from a 32-f32 array; no alignment needed.
        let v: [__m256; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) });
        let sign = _mm256_set1_ps(-0.0);
        let magnitude = v.map(|v| _mm256_andnot_ps(sign, v));
        let m8 = _mm256_max_ps(
            _mm256_max_ps(magnitude[0], magnitude[1]),
            _mm256_max_ps(magnitude[2], magnitude[3]),
        );
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = amax / 127.0;
        let inverse = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        // Rounded to nearest (ties to even), then exact conversions: |values| <= 127.
        let ints = v.map(|v| {
            _mm256_cvtps_epi32(_mm256_round_ps(
                _mm256_mul_ps(v, inverse),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            ))
        });
        let total = _mm256_add_epi32(
            _mm256_add_epi32(ints[0], ints[1]),
            _mm256_add_epi32(ints[2], ints[3]),
        );
        let t4 = _mm_add_epi32(
            _mm256_castsi256_si128(total),
            _mm256_extracti128_si256(total, 1),
        );
        let t2 = _mm_add_epi32(t4, _mm_unpackhi_epi64(t4, t4));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(t2, _mm_shuffle_epi32(t2, 1)));
        // The packs work per 128-bit lane; the permute puts the values back in order.
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(ints[0], ints[1]),
            _mm256_packs_epi32(ints[2], ints[3]),
        );
        let ordered =
            _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let mut q = [0i8; BLOCK];
        // SAFETY: `q` is 32 writable bytes; no alignment needed.
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered) };
        (d, q, sum)
    }

    /// A quad against `T` tokens' activations at once: each weight block is loaded and
    /// unpacked once for all of them (prefill).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot4_q4_1_tokens_simd<const T: usize>(
        quads: &[Q4_1Quad],
        ys: [&[ActivationBlock]; T],
    ) -> [[f32; QUAD]; T] {
        let rows_01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        let rows_23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
        let mut acc_01 = [_mm256_setzero_ps(); T];
        let mut acc_23 = [_mm256_setzero_ps(); T];
        let mut acc_minimum = [_mm256_setzero_ps(); T];
        for (b, w) in quads.iter().enumerate() {
            // SAFETY: whole-array loads from the references given (8 f16 of `scales`, 64 bytes
            // of `nibbles`); none needs alignment.
            let (w_scales, n_01, n_23) = unsafe {
                let nibbles = w.nibbles.as_ptr().cast::<u8>();
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(w.scales.as_ptr().cast())),
                    unpack(_mm256_loadu_si256(nibbles.cast())),
                    unpack(_mm256_loadu_si256(nibbles.add(32).cast())),
                )
            };
            for t in 0..T {
                let x = &ys[t][b];
                // SAFETY: 32 bytes of `low`/`high` and 8 f32 of `scales`; no alignment needed.
                let (low, high, x_scales) = unsafe {
                    (
                        _mm256_loadu_si256(x.low.as_ptr().cast()),
                        _mm256_loadu_si256(x.high.as_ptr().cast()),
                        _mm256_loadu_ps(x.scales.as_ptr()),
                    )
                };
                // [d_w d_x for rows 0..4, m_w s_x for rows 0..4]
                let scales = _mm256_mul_ps(w_scales, x_scales);
                acc_minimum[t] = _mm256_add_ps(acc_minimum[t], scales);
                acc_01[t] = _mm256_fmadd_ps(
                    pair_products(n_01, low, high),
                    _mm256_permutevar8x32_ps(scales, rows_01),
                    acc_01[t],
                );
                acc_23[t] = _mm256_fmadd_ps(
                    pair_products(n_23, low, high),
                    _mm256_permutevar8x32_ps(scales, rows_23),
                    acc_23[t],
                );
            }
        }
        std::array::from_fn(|t| {
            let mut minimum = [0f32; QUAD];
            // SAFETY: `minimum` is 4 writable f32.
            unsafe {
                _mm_storeu_ps(
                    minimum.as_mut_ptr(),
                    _mm256_extractf128_ps(acc_minimum[t], 1),
                )
            };
            [
                sum4(_mm256_castps256_ps128(acc_01[t])) + minimum[0],
                sum4(_mm256_extractf128_ps(acc_01[t], 1)) + minimum[1],
                sum4(_mm256_castps256_ps128(acc_23[t])) + minimum[2],
                sum4(_mm256_extractf128_ps(acc_23[t], 1)) + minimum[3],
            ]
        })
    }

    /// One Q8_0 row's block against the activations: signed x signed through `maddubs` by
    /// moving the weight's sign onto the activation.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q8_products(w: __m256i, x: __m256i) -> __m256 {
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot4_q8_0_simd(quads: &[Q8_0Quad], y: &[ActivationBlock]) -> [f32; QUAD] {
        let mut acc = [_mm256_setzero_ps(); QUAD];
        for (w, x) in quads.iter().zip(y) {
            // SAFETY: whole-array loads from the references given (32 bytes of `low`/`high`,
            // 4 f16 of `scales`, 32 bytes per row of `values`); none needs alignment.
            let (low, high, scales, rows) = unsafe {
                (
                    _mm256_loadu_si256(x.low.as_ptr().cast()),
                    _mm256_loadu_si256(x.high.as_ptr().cast()),
                    _mm_loadl_epi64(w.scales.as_ptr().cast()),
                    w.values.map(|row| _mm256_loadu_si256(row.as_ptr().cast())),
                )
            };
            // [q0..q16 | q16..q32]: the activation block in order.
            let xq = _mm256_permute2x128_si256(low, high, 0x20);
            let scales = _mm_mul_ps(_mm_cvtph_ps(scales), _mm_set1_ps(x.scales[0]));
            let mut lanes = [0f32; QUAD];
            // SAFETY: `lanes` is 4 writable f32.
            unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), scales) };
            for r in 0..QUAD {
                acc[r] =
                    _mm256_fmadd_ps(q8_products(rows[r], xq), _mm256_set1_ps(lanes[r]), acc[r]);
            }
        }
        acc.map(|a| sum8(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module};

    fn weights_of(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 211) as f32 / 105.0 - 1.0) * (1.0 + (i % 5) as f32))
            .collect();
        let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&t, dtype).unwrap()
    }

    fn weights(rows: usize, cols: usize) -> QTensor {
        weights_of(GgmlDType::Q4_1, rows, cols)
    }

    fn input(tokens: usize, cols: usize) -> Tensor {
        let values: Vec<f32> = (0..tokens * cols)
            .map(|i| (i as f32 * 0.37).sin() * 3.0)
            .collect();
        Tensor::from_vec(values, (1, tokens, cols), &Device::Cpu).unwrap()
    }

    /// Largest difference relative to the largest output.
    fn relative_difference(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn matches_candles_q4_1_matmul() {
        // Row counts that are and are not multiples of four; one token (decode) and several.
        for (rows, cols, tokens) in [(20, 64, 1), (22, 96, 1), (13, 64, 7), (64, 256, 3)] {
            let w = weights(rows, cols);
            let ours = Q4_1Matrix::from_qtensor(&w).unwrap().unwrap();
            let x = input(tokens, cols);
            let expected = QMatMul::from_qtensor(w).unwrap().forward(&x).unwrap();
            let got = ours.forward(&x).unwrap();
            assert_eq!(got.dims(), expected.dims());
            let diff = relative_difference(&got, &expected);
            assert!(diff < 1e-5, "[{rows}, {cols}] x {tokens} tokens: {diff}");
        }
    }

    #[test]
    fn matches_candles_q8_0_matmul() {
        // Widths that keep candle on its AVX2 Q8_0 path (per-32 activations like ours; at
        // multiples of 256 a VNNI CPU takes its per-256 kernel instead).
        for (rows, cols, tokens) in [(20, 64, 1), (22, 96, 1), (13, 160, 7)] {
            let w = weights_of(GgmlDType::Q8_0, rows, cols);
            let ours = Q8_0Matrix::from_qtensor(&w).unwrap().unwrap();
            let x = input(tokens, cols);
            let expected = QMatMul::from_qtensor(w).unwrap().forward(&x).unwrap();
            let got = ours.forward(&x).unwrap();
            assert_eq!(got.dims(), expected.dims());
            let diff = relative_difference(&got, &expected);
            assert!(diff < 1e-5, "[{rows}, {cols}] x {tokens} tokens: {diff}");
        }
    }

    #[test]
    fn the_simd_and_plain_q8_0_dot_products_agree() {
        let w = Q8_0Matrix::from_qtensor(&weights_of(GgmlDType::Q8_0, 4, 256))
            .unwrap()
            .unwrap();
        let values = input(1, 256)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y = quantize_activations(&values);
        let fast = kernels::dot4_q8_0(w.quad(0), &y);
        let plain = plain::dot4_q8_0(w.quad(0), &y);
        for r in 0..4 {
            assert!(
                (fast[r] - plain[r]).abs() <= 1e-5 * plain[r].abs().max(1.0),
                "row {r}: {} vs {}",
                fast[r],
                plain[r]
            );
        }
    }

    #[test]
    fn shared_inputs_give_each_part_its_own_product() {
        let (a, b) = (weights(12, 64), weights(6, 64));
        let x = input(5, 64);
        let (qa, qb) = (
            Q4_1Matrix::from_qtensor(&a).unwrap().unwrap(),
            Q4_1Matrix::from_qtensor(&b).unwrap().unwrap(),
        );
        let [ya, yb] = Q4_1Matrix::forward_shared([&qa, &qb], &x).unwrap();
        assert_eq!(ya.dims(), &[1, 5, 12]);
        assert_eq!(yb.dims(), &[1, 5, 6]);
        assert!(relative_difference(&ya, &qa.forward(&x).unwrap()) == 0.0);
        assert!(relative_difference(&yb, &qb.forward(&x).unwrap()) == 0.0);
        assert!(Q4_1Matrix::forward_shared([&qa], &input(1, 32)).is_err());
    }

    #[test]
    fn other_dtypes_are_not_taken() {
        let t = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q8 = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        assert!(Q4_1Matrix::from_qtensor(&q8).unwrap().is_none());
    }

    #[test]
    fn the_simd_and_plain_quantizations_agree() {
        for scale in [0.0f32, 1e-3, 1.0, 250.0] {
            let x: [f32; BLOCK] = std::array::from_fn(|i| (i as f32 * 0.61).sin() * scale);
            assert_eq!(
                kernels::quantize_block(&x),
                plain::quantize_block(&x),
                "scale {scale}"
            );
        }
        // Ties go to even in both.
        let mut x = [0f32; BLOCK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        let (d, q, sum) = kernels::quantize_block(&x);
        assert_eq!((d, q[1], q[2], sum), (1.0, 2, -4, 125));
        assert_eq!(plain::quantize_block(&x), (d, q, sum));
    }

    #[test]
    fn the_simd_and_plain_dot_products_agree() {
        let w = Q4_1Matrix::from_qtensor(&weights(4, 128)).unwrap().unwrap();
        let values = input(1, 128)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y = quantize_activations(&values);
        let fast = kernels::dot4_q4_1(w.quad(0), &y);
        let plain = plain::dot4_q4_1(w.quad(0), &y);
        for r in 0..4 {
            assert!(
                (fast[r] - plain[r]).abs() <= 1e-5 * plain[r].abs().max(1.0),
                "row {r}: {} vs {}",
                fast[r],
                plain[r]
            );
        }
    }
}
