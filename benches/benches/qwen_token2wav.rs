//! Token2Wav's DiT on this CPU: one guided velocity evaluation (the CFG pair as a batch of two)
//! over a streaming window, for a tiny config and for the published full-size DiT (22 layers,
//! width 1024, random weights: the shapes and FLOPs of the real model, ~1.3 GB f32).
//!
//! A streamed chunk costs 9 intervals x (4 evaluations with RK4, 1 with Euler); its first chunk
//! runs over a 72-frame window (48 frames + 24 of look-ahead), later ones over 120 (48 of past
//! context + 48 + 24). Multiply the per-evaluation time accordingly.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group};
use parley_talker::qwen::dit::Dit;
use parley_talker::qwen::dit_config::DitConfig;

fn tiny() -> DitConfig {
    DitConfig {
        hidden_size: 64,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        head_dim: 16,
        emb_dim: 32,
        num_embeds: 100,
        enc_emb_dim: 16,
        enc_dim: 16,
        enc_channels: vec![16, 16, 16, 32],
        enc_kernel_sizes: vec![5, 3, 3, 1],
        enc_dilations: vec![1, 2, 3, 1],
        enc_attention_channels: 8,
        enc_se_channels: 8,
        look_ahead_layers: vec![2],
        look_backward_layers: vec![0, 3],
        ..DitConfig::default()
    }
}

fn bench_velocity(c: &mut Criterion, name: &str, config: &DitConfig, frames: usize) {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    // Variables are created with their layers' default random init.
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let dit = Dit::load(config, vb).expect("random DiT");
    let cond = Tensor::randn(0f32, 1.0, (1, config.enc_emb_dim), &device).unwrap();
    let ref_mel = Tensor::randn(0f32, 1.0, (1, 300, config.mel_dim), &device).unwrap();
    let speaker = dit.speaker_conditioning(&cond, &ref_mel).unwrap();
    let codes: Vec<u32> = (0..frames / config.repeats)
        .map(|i| (i * 37 % config.num_embeds) as u32)
        .collect();
    let codes = Tensor::from_vec(codes, (1, frames / config.repeats), &device).unwrap();
    let code_embeddings = dit.code_embeddings(&codes).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, frames, config.mel_dim), &device).unwrap();
    c.bench_function(&format!("dit_velocity/{name}/{frames}_frames"), |b| {
        b.iter(|| {
            dit.velocity(&x, &code_embeddings, &speaker, 0.5)
                .unwrap()
                .guided(0.5)
                .unwrap()
        })
    });
}

fn benches(c: &mut Criterion) {
    bench_velocity(c, "tiny", &tiny(), 120);
    let mut slow = Criterion::default().sample_size(10);
    for frames in [72, 120] {
        bench_velocity(&mut slow, "full_size", &DitConfig::default(), frames);
    }
}

criterion_group!(qwen_token2wav, benches);

parley_benches::bench_main!(qwen_token2wav);
