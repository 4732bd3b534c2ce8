//! Matrix x vector with the weights stored as f16: the decoder's linear layers and output layer.
//!
//! A decoder step pushes one token through the layers, so every weight is read once per step
//! for a single multiply-add: the step is bound by memory bandwidth, not arithmetic. As f32 the
//! tiny.en decoder reads ~32 MB of layer weights plus 80 MB of output layer (the tied token
//! embedding, 51864 x 384) per step; candle's gemv took ~7 ms for the output layer alone.
//! Whisper ships its weights as f16 (loading widened them to f32 exactly), so keeping them as
//! f16 halves the bytes read. Each row is widened back to f32 before its dot product, so every
//! product is the same as in f32; only the summation order is our own. With F16C the widening
//! is fused into the dot product (no row buffer). Matrices of more than a few hundred rows are
//! split across candle's CPU thread pool (its workers spin between calls, so handing them work
//! costs about a microsecond, not a thread spawn).
//!
//! If the weights are not exactly representable in f16 (a model stored in f32), they stay f32.

use candle_core::{DType, Result, Tensor};
use half::f16;
use std::sync::{Arc, Mutex};

/// Below this many rows a matrix is multiplied on the calling thread: its product takes a few
/// microseconds, about what handing half of it to another thread costs.
const MIN_ROWS_TO_SPLIT: usize = 256;

/// Row storage: f16 when lossless, else f32. Shared (`Arc`): clones of a loaded model (one per
/// session) use the same weights.
#[derive(Debug, Clone)]
enum Rows {
    F16(Arc<[f16]>),
    F32(Arc<[f32]>),
}

/// A `[rows, cols]` matrix kept for `matrix x vector` products.
#[derive(Debug, Clone)]
pub struct F16Matrix {
    rows: Rows,
    n_rows: usize,
    n_cols: usize,
}

impl F16Matrix {
    /// Takes a `[rows, cols]` tensor of any float dtype.
    pub fn new(matrix: &Tensor) -> Result<Self> {
        let (n_rows, n_cols) = matrix.dims2()?;
        let as_f32 = matrix
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let as_f16: Vec<f16> = as_f32.iter().map(|&w| f16::from_f32(w)).collect();
        let lossless = as_f16.iter().zip(&as_f32).all(|(h, &w)| h.to_f32() == w);
        let rows = if lossless {
            Rows::F16(as_f16.into())
        } else {
            Rows::F32(as_f32.into())
        };
        Ok(Self {
            rows,
            n_rows,
            n_cols,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// `out = matrix x vector`; `vector` has `cols` values, `out` `rows`.
    pub fn mul_vec(&self, vector: &[f32], out: &mut [f32]) -> Result<()> {
        if vector.len() != self.n_cols || out.len() != self.n_rows {
            candle_core::bail!(
                "f16 matrix [{}, {}] x vector of {} into {} values",
                self.n_rows,
                self.n_cols,
                vector.len(),
                out.len()
            );
        }
        if self.n_rows < MIN_ROWS_TO_SPLIT {
            self.mul_rows(0, vector, out);
            return Ok(());
        }
        let pool = candle_core::utils::barrier_pool();
        let rows_per_thread = self.n_rows.div_ceil(pool.n_workers() + 1);
        let chunks: Vec<Mutex<&mut [f32]>> =
            out.chunks_mut(rows_per_thread).map(Mutex::new).collect();
        pool.execute(|thread| {
            if let Some(chunk) = chunks.get(thread) {
                // Each thread takes its own chunk: the lock is never contended.
                let mut chunk = chunk.lock().unwrap_or_else(|e| e.into_inner());
                self.mul_rows(thread * rows_per_thread, vector, &mut chunk);
            }
        });
        Ok(())
    }

    /// Fills `out` with the products of rows `first_row..first_row + out.len()`.
    fn mul_rows(&self, first_row: usize, vector: &[f32], out: &mut [f32]) {
        let d = self.n_cols;
        let range = first_row * d..(first_row + out.len()) * d;
        match &self.rows {
            Rows::F16(rows) => {
                for (value, row) in out.iter_mut().zip(rows[range].chunks_exact(d)) {
                    *value = dot_f16(row, vector);
                }
            }
            Rows::F32(rows) => {
                for (value, row) in out.iter_mut().zip(rows[range].chunks_exact(d)) {
                    *value = dot(row, vector);
                }
            }
        }
    }
}

// `row . vector` with the row widened from f16 as it is read: AVX2 where the build enables it
// (see `crate::simd`), the plain definition elsewhere.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
use avx2::dot_f16;
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
)))]
use plain::dot_f16;

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
    use half::f16;
    use half::slice::HalfFloatSliceExt;

    /// Widens 32 values at a time into a stack buffer (vectorised where the target has it;
    /// exact) and takes their dot product.
    pub(super) fn dot_f16(row: &[f16], vector: &[f32]) -> f32 {
        let mut widened = [0f32; 32];
        row.chunks(32)
            .zip(vector.chunks(32))
            .map(|(w, v)| {
                let widened = &mut widened[..w.len()];
                w.convert_to_f32_slice(widened);
                super::dot(widened, v)
            })
            .sum()
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod avx2 {
    use half::f16;
    use std::arch::x86_64::*;

    use crate::simd::sum8;

    pub(super) fn dot_f16(row: &[f16], vector: &[f32]) -> f32 {
        // SAFETY: this module is compiled only when the whole build enables AVX2, FMA and F16C,
        // so the binary already requires a CPU that has them.
        unsafe { dot_f16_simd(row, vector) }
    }

    /// Four chains of 8-wide FMAs over 32 values at a time, then the tail.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_f16_simd(row: &[f16], vector: &[f32]) -> f32 {
        let n = row.len().min(vector.len());
        let whole = n - n % 32;
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < whole {
            for (k, acc) in acc.iter_mut().enumerate() {
                let at = i + 8 * k;
                // SAFETY: at + 8 <= whole <= both lengths; unaligned loads of 8 f16 / 8 f32.
                let (w, v) = unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(at).cast())),
                        _mm256_loadu_ps(vector.as_ptr().add(at)),
                    )
                };
                *acc = _mm256_fmadd_ps(w, v, *acc);
            }
            i += 32;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let tail: f32 = row[whole..n]
            .iter()
            .zip(&vector[whole..n])
            .map(|(w, v)| w.to_f32() * v)
            .sum();
        sum8(sum) + tail
    }
}

/// Dot product with 32 independent accumulators, so the compiler keeps four 8-wide FMA chains
/// in flight instead of waiting on one (a single chain is latency-bound).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 32;
    let mut acc = [0f32; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for i in 0..LANES {
            acc[i] = ca[i].mul_add(cb[i], acc[i]);
        }
    }
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn check(n_rows: usize, n_cols: usize) {
        let weights: Vec<f32> = (0..n_rows * n_cols)
            .map(|i| f16::from_f32(((i * 7919) % 101) as f32 / 50.0 - 1.0).to_f32())
            .collect();
        let vector: Vec<f32> = (0..n_cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let tensor = Tensor::from_vec(weights.clone(), (n_rows, n_cols), &Device::Cpu).unwrap();
        let matrix = F16Matrix::new(&tensor).unwrap();
        assert!(matches!(matrix.rows, Rows::F16(_)));
        let mut out = vec![0f32; n_rows];
        matrix.mul_vec(&vector, &mut out).unwrap();
        for (r, &value) in out.iter().enumerate() {
            let expected: f64 = (0..n_cols)
                .map(|c| weights[r * n_cols + c] as f64 * vector[c] as f64)
                .sum();
            assert!((value as f64 - expected).abs() < 1e-4, "row {r}");
        }
        assert!(matrix.mul_vec(&vector[1..], &mut out).is_err());
    }

    #[test]
    fn matches_a_plain_matrix_vector_product() {
        // Column counts that are not multiples of the 32 lanes; one matrix large enough to be
        // split across threads, with a row count that does not divide evenly.
        check(37, 70);
        check(MIN_ROWS_TO_SPLIT + 3, 40);
    }

    #[test]
    fn keeps_f32_weights_that_f16_cannot_hold() {
        let tensor = Tensor::new(&[[0.1f32, 1.0], [2.0, 3.0]], &Device::Cpu).unwrap();
        let matrix = F16Matrix::new(&tensor).unwrap();
        assert!(matches!(matrix.rows, Rows::F32(_)));
        let mut out = [0f32; 2];
        matrix.mul_vec(&[1.0, 2.0], &mut out).unwrap();
        assert_eq!(out, [2.1, 8.0]);
    }
}
