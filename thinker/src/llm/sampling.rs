//! Token sampling: candle's `LogitsProcessor` with a faster nucleus (top-p) cut.
//!
//! candle's top-p sorts the whole vocabulary (49k entries for SmolLM2) on every token, which
//! cost as much as a tenth of a decode step. [`keep_nucleus`] finds the same nucleus from a
//! partial selection of the most likely tokens, and the probabilities are then sampled by the
//! same `LogitsProcessor` (same random stream), so a seed gives the same tokens as candle's
//! `Sampling::TopP`.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

/// Candidates examined before falling back to sorting everything.
const NUCLEUS_CANDIDATES: usize = 256;

/// Zeroes every probability outside the nucleus: the most likely tokens (ties by lower index
/// first) taken in order until their sum reaches `top_p`. The same set as candle's
/// `LogitsProcessor::sample_topp`.
pub fn keep_nucleus(prs: &mut [f32], top_p: f32) {
    // (probability desc, index asc): a total order, equal to candle's stable sort.
    let order = |prs: &[f32], a: usize, b: usize| prs[b].total_cmp(&prs[a]).then(a.cmp(&b));
    let mut indices: Vec<usize> = (0..prs.len()).collect();
    let candidates = NUCLEUS_CANDIDATES.min(prs.len());
    if candidates < prs.len() {
        indices.select_nth_unstable_by(candidates - 1, |&a, &b| order(prs, a, b));
        indices.truncate(candidates);
    }
    indices.sort_unstable_by(|&a, &b| order(prs, a, b));
    let mut cumsum = 0.0f32;
    let mut kept = None;
    for (rank, &i) in indices.iter().enumerate() {
        if cumsum >= top_p {
            kept = Some(rank);
            break;
        }
        cumsum += prs[i];
    }
    match kept {
        Some(rank) => {
            let mut keep = vec![false; prs.len()];
            for &i in &indices[..rank] {
                keep[i] = true;
            }
            for (p, keep) in prs.iter_mut().zip(keep) {
                if !keep {
                    *p = 0.0;
                }
            }
        }
        None if candidates < prs.len() => {
            // The candidates did not reach `top_p`: a flat distribution; sort everything.
            let mut all: Vec<usize> = (0..prs.len()).collect();
            all.sort_unstable_by(|&a, &b| order(prs, a, b));
            let mut cumsum = 0.0f32;
            for i in all {
                if cumsum >= top_p {
                    prs[i] = 0.0;
                } else {
                    cumsum += prs[i];
                }
            }
        }
        // Every token is needed to reach `top_p`.
        None => {}
    }
}

/// Greedy, temperature or nucleus sampling from logits, reproducible for a seed.
pub struct Sampler {
    processor: LogitsProcessor,
    /// Nucleus mass when below 1 (and sampling is not greedy).
    top_p: Option<f32>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("top_p", &self.top_p)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// `temperature` 0 is greedy; `top_p` >= 1 samples from the whole distribution.
    pub fn new(seed: u64, temperature: f64, top_p: f64) -> Self {
        let (sampling, top_p) = if temperature == 0.0 {
            (Sampling::ArgMax, None)
        } else {
            let top_p = (top_p > 0.0 && top_p < 1.0).then_some(top_p as f32);
            (Sampling::All { temperature }, top_p)
        };
        Self {
            processor: LogitsProcessor::from_sampling(seed, sampling),
            top_p,
        }
    }

    /// Samples a token id from `[vocab]` logits.
    pub fn sample(&mut self, logits: &Tensor) -> candle_core::Result<u32> {
        match self.top_p {
            Some(top_p) => self
                .processor
                .sample_f(logits, |prs| keep_nucleus(prs, top_p)),
            None => self.processor.sample(logits),
        }
    }
}
