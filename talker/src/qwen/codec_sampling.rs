//! Choosing the Talker's next codec token the way the reference's `generate` does: a repetition
//! penalty over every id the codec track has seen (the prompt's mask/pad/BOS ids included),
//! suppressed ids (BOS) set to -inf, then greedy or temperature -> top-k -> top-p sampling
//! (../shared/docs/qwen2_5_omni.md §4.4).

use candle_core::{DType, Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

/// Sampling settings of the codec track. The defaults are the published ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecSampling {
    /// 0 picks the most likely code (greedy).
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    /// HF semantics: positive logits of seen ids are divided by it, negative ones multiplied.
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for CodecSampling {
    fn default() -> Self {
        Self {
            temperature: 0.9,
            top_k: 40,
            top_p: 0.8,
            repetition_penalty: 1.05,
            seed: 0,
        }
    }
}

impl CodecSampling {
    /// Greedy decoding with the reference's penalty (what `reference-check generate` uses).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

/// The codec-token chooser of one answer.
pub struct CodecSampler {
    settings: CodecSampling,
    processor: LogitsProcessor,
    /// `seen[id]`: the id is in the codec track (prompt or generated), so it is penalized.
    seen: Vec<bool>,
    suppressed: Vec<u32>,
}

impl std::fmt::Debug for CodecSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecSampler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CodecSampler {
    /// `vocab`: codec vocabulary size; `suppressed`: ids never chosen (the codec BOS).
    pub fn new(settings: CodecSampling, vocab: usize, suppressed: &[u32]) -> Self {
        let sampling = if settings.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            Sampling::TopKThenTopP {
                k: settings.top_k,
                p: settings.top_p,
                temperature: settings.temperature,
            }
        };
        Self {
            processor: LogitsProcessor::from_sampling(settings.seed, sampling),
            seen: vec![false; vocab],
            suppressed: suppressed.to_vec(),
            settings,
        }
    }

    /// Never chooses `ids` from now on.
    pub fn suppress(&mut self, ids: impl IntoIterator<Item = u32>) {
        self.suppressed.extend(ids);
    }

    /// Chooses the next code as `sample` does, never one of `excluded`.
    pub fn sample_excluding(
        &mut self,
        logits: &Tensor,
        excluded: &[u32],
    ) -> candle_core::Result<u32> {
        let before = self.suppressed.len();
        self.suppressed.extend_from_slice(excluded);
        let code = self.sample(logits);
        self.suppressed.truncate(before);
        code
    }

    /// Codec vocabulary size.
    pub fn vocab(&self) -> usize {
        self.seen.len()
    }

    /// Records ids of the codec track (the prompt's, then every chosen code).
    pub fn observe(&mut self, ids: &[u32]) {
        for &id in ids {
            if let Some(seen) = self.seen.get_mut(id as usize) {
                *seen = true;
            }
        }
    }

    /// Chooses the next code from `[vocab]` logits and records it.
    pub fn sample(&mut self, logits: &Tensor) -> candle_core::Result<u32> {
        let mut values = logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let penalty = self.settings.repetition_penalty;
        if penalty != 1.0 {
            for (value, &seen) in values.iter_mut().zip(&self.seen) {
                if seen {
                    *value = if *value < 0.0 {
                        *value * penalty
                    } else {
                        *value / penalty
                    };
                }
            }
        }
        for &id in &self.suppressed {
            if let Some(value) = values.get_mut(id as usize) {
                *value = f32::NEG_INFINITY;
            }
        }
        let len = values.len();
        let id = self
            .processor
            .sample(&Tensor::from_vec(values, len, &Device::Cpu)?)?;
        self.observe(&[id]);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(values: &[f32]) -> Tensor {
        Tensor::new(values, &Device::Cpu).unwrap()
    }

    #[test]
    fn greedy_applies_the_penalty_and_never_picks_a_suppressed_id() {
        let mut sampler = CodecSampler::new(CodecSampling::greedy(), 4, &[3]);
        // 3 is the best but suppressed; 1 wins.
        assert_eq!(sampler.sample(&logits(&[0.0, 2.0, 1.99, 9.0])).unwrap(), 1);
        // 1 is now seen: 2.0 / 1.05 < 1.99, so 2 wins.
        assert_eq!(sampler.sample(&logits(&[0.0, 2.0, 1.99, 9.0])).unwrap(), 2);
        // Negative logits of seen ids are pushed down (multiplied).
        let mut sampler = CodecSampler::new(CodecSampling::greedy(), 3, &[]);
        sampler.observe(&[0]);
        assert_eq!(sampler.sample(&logits(&[-1.0, -1.04, -5.0])).unwrap(), 1);
    }

    #[test]
    fn sampling_stays_within_the_top_k() {
        let settings = CodecSampling {
            top_k: 2,
            top_p: 1.0,
            temperature: 5.0,
            repetition_penalty: 1.0,
            seed: 3,
        };
        let mut sampler = CodecSampler::new(settings, 5, &[]);
        for _ in 0..200 {
            let id = sampler.sample(&logits(&[0.0, 3.0, 2.9, 0.1, 0.2])).unwrap();
            assert!(id == 1 || id == 2, "{id}");
        }
    }
}
