//! The nucleus (top-p) cut against candle's full-sort definition, and `Sampler` against
//! candle's `Sampling::TopP` (same seed, same tokens).

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use parley_thinker::llm::sampling::{Sampler, keep_nucleus};

/// candle's `sample_topp` cut, written out: stable sort by probability, zero after the sum
/// reaches `top_p`.
fn reference_nucleus(prs: &mut [f32], top_p: f32) {
    let mut order: Vec<usize> = (0..prs.len()).collect();
    order.sort_by(|&i, &j| prs[j].total_cmp(&prs[i]));
    let mut cumsum = 0.0f32;
    for i in order {
        if cumsum >= top_p {
            prs[i] = 0.0;
        } else {
            cumsum += prs[i];
        }
    }
}

/// Deterministic pseudo-random numbers in [0, 1) (a 64-bit LCG; no rand dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[test]
fn nucleus_equals_the_full_sort_definition() {
    let mut rng = Lcg(42);
    let mut cases: Vec<Vec<f32>> = Vec::new();
    // Peaked (the nucleus is in the candidates), flat (it is not: fallback), and small.
    for (n, spread) in [
        (49_152, 12.0),
        (49_152, 0.5),
        (1_000, 3.0),
        (10, 1.0),
        (300, 0.0),
    ] {
        cases.push(softmax(
            &(0..n).map(|_| rng.next() * spread).collect::<Vec<_>>(),
        ));
    }
    // Ties across the candidate boundary: many equal probabilities.
    let mut tied = vec![1.0f32; 5_000];
    tied[17] = 500.0;
    cases.push(softmax(&tied.iter().map(|x| x.ln()).collect::<Vec<_>>()));
    for prs in cases {
        for top_p in [0.1f32, 0.5, 0.9, 0.999] {
            let mut fast = prs.clone();
            let mut reference = prs.clone();
            keep_nucleus(&mut fast, top_p);
            reference_nucleus(&mut reference, top_p);
            assert_eq!(fast, reference, "n {} top_p {top_p}", prs.len());
            assert!(fast.iter().any(|&p| p > 0.0));
        }
    }
}

#[test]
fn sampler_gives_the_same_tokens_as_candle_top_p() {
    let mut rng = Lcg(7);
    let mut ours = Sampler::new(1234, 0.8, 0.9);
    let mut candle = LogitsProcessor::from_sampling(
        1234,
        Sampling::TopP {
            p: 0.9,
            temperature: 0.8,
        },
    );
    let mut distinct = std::collections::HashSet::new();
    for _ in 0..50 {
        let logits: Vec<f32> = (0..49_152).map(|_| rng.next() * 10.0).collect();
        let logits = Tensor::new(logits, &Device::Cpu).unwrap();
        let a = ours.sample(&logits).unwrap();
        assert_eq!(a, candle.sample(&logits).unwrap());
        distinct.insert(a);
    }
    assert!(distinct.len() > 10, "sampling is not random: {distinct:?}");
    // Greedy is argmax.
    let mut greedy = Sampler::new(1, 0.0, 0.9);
    let logits = Tensor::new(&[0.1f32, 3.0, -2.0, 2.9], &Device::Cpu).unwrap();
    assert_eq!(greedy.sample(&logits).unwrap(), 1);
}
