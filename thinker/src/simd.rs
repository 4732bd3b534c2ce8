//! Pieces shared by the hand-written AVX2 kernels (`llm::quad`, `whisper::f16_matrix`).
//!
//! Those kernels are compiled where the whole build enables AVX2, FMA and F16C
//! (`.cargo/config.toml`), so calling them needs no runtime check; each kernel module keeps a
//! plain fallback for other targets and picks one of the two in a single `use`.

use std::arch::x86_64::*;

/// The four f32 lanes summed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sum4(v: __m128) -> f32 {
    let pair = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}

/// The eight f32 lanes summed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sum8(v: __m256) -> f32 {
    sum4(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps(v, 1),
    ))
}
