//! Token2Wav's flow-matching sampler: integrate the DiT's guided velocity from noise (t = 0) to
//! mel (t = 1) over a cosine-swayed time grid, with the reference's RK4 (3/8 rule, 4 DiT
//! evaluations per interval) or the fast Euler solver (1 per interval).

use candle_core::Tensor;

use super::dit::{Dit, SpeakerConditioning};
use parley_thinker::stream::CancelGuard;

/// The published defaults: 10 grid points, guidance 0.5, sway -1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSettings {
    pub steps: usize,
    pub guidance: f64,
    pub sway: f32,
    pub solver: Solver,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            steps: 10,
            guidance: 0.5,
            sway: -1.0,
            solver: Solver::Rk4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// The reference (transformers): RK4 with the 3/8 rule.
    Rk4,
    /// Qwen's streaming engine and low-VRAM mode: one evaluation per interval.
    Euler,
}

/// `linspace(0, 1, steps)` swayed by `t + sway * (cos(pi t / 2) - 1 + t)`, in f32 like the
/// reference (sway -1 gives `1 - cos(pi t / 2)`: small steps near the noise end).
pub fn time_grid(steps: usize, sway: f32) -> Vec<f32> {
    (0..steps)
        .map(|i| {
            let t = if steps > 1 {
                i as f32 / (steps - 1) as f32
            } else {
                0.0
            };
            t + sway * ((std::f32::consts::PI / 2.0 * t).cos() - 1.0 + t)
        })
        .collect()
}

/// Why sampling stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] candle_core::Error),
}

/// Integrates from `noise` `[1, frames, mel_dim]` (the initial state) to the mel
/// `[1, frames, mel_dim]` for `codes` `[1, frames / repeats]`. Checks `cancel` before every DiT
/// evaluation.
pub fn sample(
    dit: &Dit,
    codes: &Tensor,
    speaker: &SpeakerConditioning,
    noise: &Tensor,
    settings: &SamplerSettings,
    cancel: &CancelGuard,
) -> std::result::Result<Tensor, SampleError> {
    let code_embeddings = dit.code_embeddings(codes)?;
    let f = |t: f32, x: &Tensor| -> std::result::Result<Tensor, SampleError> {
        if cancel.is_cancelled() {
            return Err(SampleError::Cancelled);
        }
        Ok(dit
            .velocity(x, &code_embeddings, speaker, t)?
            .guided(settings.guidance)?)
    };
    let grid = time_grid(settings.steps, settings.sway);
    let mut x = noise.clone();
    for w in grid.windows(2) {
        let (t0, t1) = (w[0], w[1]);
        let h = t1 - t0;
        x = match settings.solver {
            Solver::Euler => (&x + (f(t0, &x)? * f64::from(h))?)?,
            Solver::Rk4 => {
                let third = 1.0 / 3.0;
                let k1 = f(t0, &x)?;
                let k2 = f(t0 + h * third, &(&x + (&k1 * f64::from(h * third))?)?)?;
                let k3 = f(
                    t0 + h * 2.0 * third,
                    &(&x + ((&k2 - (&k1 * f64::from(third))?)? * f64::from(h))?)?,
                )?;
                let k4 = f(t1, &(&x + (((&k1 - &k2)? + &k3)? * f64::from(h))?)?)?;
                let sum = ((&k1 + ((&k2 + &k3)? * 3.0)?)? + &k4)?;
                (&x + (sum * f64::from(h / 8.0))?)?
            }
        };
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swayed_grid_is_one_minus_cosine() {
        let grid = time_grid(10, -1.0);
        let expected = [
            0.0, 0.0152, 0.0603, 0.1340, 0.2340, 0.3572, 0.5, 0.6580, 0.8264, 1.0,
        ];
        for (g, e) in grid.iter().zip(expected) {
            assert!((g - e).abs() < 1e-4, "{grid:?}");
        }
    }
}
