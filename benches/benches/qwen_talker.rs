//! The Qwen2.5-Omni Talker on this CPU (f32): one codec step with 300 positions cached (a
//! conversation's prompt), for the tiny full checkpoint and for the published 3B Talker shapes
//! with random weights (24 layers, width 896, 14 / 2 heads of 64, FFN 4864, codec vocabulary
//! 8448, Thinker space 2048).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group};
use parley_talker::qwen::talker_model::{TalkerConfig, TalkerModel};
use parley_thinker::qwen::MropePositions;

const CACHED: usize = 300;

fn bench_step(c: &mut Criterion, name: &str, talker: &mut TalkerModel) {
    let width = talker.config().embedding_size;
    let prompt = Tensor::randn(0f32, 1.0, (1, CACHED, width), &Device::Cpu).unwrap();
    talker
        .forward(&prompt, &MropePositions::sequential(0, CACHED))
        .unwrap();
    let thinker_part = Tensor::randn(0f32, 1.0, (1, 1, width), &Device::Cpu).unwrap();
    let position = MropePositions::sequential(CACHED as i64, 1);
    c.bench_function(&format!("qwen_talker_step/{name}"), |b| {
        b.iter(|| {
            let codec = talker.codec_embeddings(&[42]).unwrap();
            let input = (codec + &thinker_part).unwrap();
            let logits = talker.forward(&input, &position).unwrap();
            talker.truncate_cache(CACHED).unwrap();
            logits
        })
    });
}

fn benches(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens/qwen_omni/tiny_full/checkpoint");
    let mut tiny = TalkerModel::load(&dir, &Device::Cpu).unwrap();
    bench_step(c, "tiny_full", &mut tiny);

    let config: TalkerConfig = serde_json::from_str(
        r#"{"vocab_size": 8448, "embedding_size": 2048, "hidden_size": 896,
        "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "head_dim": 64, "rope_theta": 1000000.0,
        "rope_scaling": {"mrope_section": [16, 16, 0], "type": "default"}}"#,
    )
    .unwrap();
    let varmap = VarMap::new();
    // Variables are created on first use with their layers' random init.
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // The untied codec head exists before the model looks for it.
    vb.pp("codec_head").get((8448, 896), "weight").unwrap();
    let mut full = TalkerModel::new(config, vb).unwrap();
    bench_step(
        &mut Criterion::default().sample_size(20),
        "full_size_3b",
        &mut full,
    );
}

criterion_group!(qwen_talker, benches);

parley_benches::bench_main!(qwen_talker);
