//! The Qwen2.5-Omni Thinker on this CPU (f32): one audio block through the encoder, and one
//! decode step with 100 positions in the KV cache, for the tiny checkpoints and for synthetic
//! full-width configs with random weights (the published 3B shapes: audio encoder 32 x 1280, text
//! decoder width 2048 / 11008 with 16 / 2 heads and the 151936 vocabulary).
//!
//! The full-size text decoder is measured with 4 and 8 layers (12 GB of f32 for all 36 layers would
//! crowd this machine): the difference is the cost of 4 layers, the rest the embedding and the
//! 151936-wide output projection; 36 layers follow by extrapolation (docs/qwen_performance.md).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group};
use parley_thinker::qwen::audio_encoder::AudioEncoder;
use parley_thinker::qwen::text_model::TextModel;
use parley_thinker::qwen::{Checkpoint, MropePositions, QwenThinker, ThinkerConfig};

const CACHED: usize = 100;

fn full_size(layers: usize) -> ThinkerConfig {
    ThinkerConfig::from_json(&format!(
        r#"{{"audio_config": {{"d_model": 1280, "encoder_layers": 32,
        "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "output_dim": 2048}},
        "text_config": {{"hidden_size": 2048, "intermediate_size": 11008,
        "num_hidden_layers": {layers}, "num_attention_heads": 16, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": true,
        "rope_scaling": {{"mrope_section": [16, 24, 24], "type": "default"}}}}}}"#
    ))
    .expect("synthetic config")
}

fn random_vb(varmap: &VarMap) -> VarBuilder<'_> {
    // Variables are created on first use with their layers' random init.
    VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu)
}

fn bench_block(c: &mut Criterion, name: &str, encoder: &AudioEncoder) {
    let frames = encoder.config().block_frames();
    let features = Tensor::randn(
        0f32,
        1.0,
        (encoder.config().num_mel_bins, frames),
        &Device::Cpu,
    )
    .unwrap();
    c.bench_function(&format!("qwen_audio_block/{name}"), |b| {
        b.iter(|| encoder.forward(&features).unwrap())
    });
}

fn bench_decode(c: &mut Criterion, name: &str, text: &mut TextModel) {
    let vocab = text.config().vocab_size as u32;
    let ids: Vec<u32> = (0..CACHED as u32)
        .map(|i| (i * 7919) % vocab.min(300))
        .collect();
    let embeds = text.embed(&ids).unwrap();
    text.forward(&embeds, &MropePositions::sequential(0, CACHED))
        .unwrap();
    let next = text.embed(&[42]).unwrap();
    let position = MropePositions::sequential(CACHED as i64, 1);
    c.bench_function(&format!("qwen_decode_step/{name}"), |b| {
        b.iter(|| {
            let hidden = text.forward(&next, &position).unwrap();
            let logits = text.logits(&hidden).unwrap();
            text.truncate_cache(CACHED).unwrap();
            logits
        })
    });
}

/// The process's resident memory in GB, to show what a synthetic model holds.
fn resident_gb() -> f64 {
    parley_models::memory::resident_bytes().unwrap_or(0) as f64 / 1e9
}

fn benches(c: &mut Criterion) {
    // Both tiny checkpoints: tiny_a (2 s blocks, f32) and tiny_b (0.5 s blocks, bf16 on disk,
    // 3 query heads per kv head).
    for name in ["tiny_a", "tiny_b"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/goldens/qwen")
            .join(name)
            .join("checkpoint");
        let checkpoint = Checkpoint::open(&dir).unwrap();
        let mut tiny = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
        bench_block(c, name, tiny.audio_encoder());
        bench_decode(c, name, tiny.text_model());
    }

    let mut slow = Criterion::default().sample_size(10);
    {
        let config = full_size(1);
        let varmap = VarMap::new();
        let before = resident_gb();
        let encoder = AudioEncoder::load(&config.audio_config, random_vb(&varmap)).unwrap();
        eprintln!(
            "full-size audio encoder: +{:.2} GB resident",
            resident_gb() - before
        );
        bench_block(&mut slow, "full_size_32x1280", &encoder);
    }
    for layers in [4, 8] {
        let config = full_size(layers);
        let varmap = VarMap::new();
        let vb = random_vb(&varmap);
        let before = resident_gb();
        let mut text =
            TextModel::load(&config.text_config, vb.pp("model"), vb.pp("lm_head")).unwrap();
        eprintln!(
            "full-width decoder with {layers} layers: +{:.2} GB resident",
            resident_gb() - before
        );
        bench_decode(&mut slow, &format!("full_width_{layers}_layers"), &mut text);
    }
}

criterion_group!(qwen_thinker, benches);

parley_benches::bench_main!(qwen_thinker);
