//! The Qwen2.5-Omni Talker LM against transformers 5.23.0 on the tiny random checkpoints of
//! `tools/reference/qwen_talker_goldens.py` (explicit head_dim, both rope layouts, position ids
//! that differ per stream), through `reference_check::run` as `parley reference-check` runs it;
//! and step-by-step decoding through the KV cache equal to the one-pass logits.

#[path = "../../thinker/tests/support/tensors.rs"]
mod tensors;

use tensors::{load, max_abs_diff};

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use parley_talker::qwen::reference_check;
use parley_talker::qwen::talker_model::TalkerModel;
use parley_thinker::qwen::MropePositions;

const CONFIGS: [&str; 2] = ["talker_a", "talker_b"];

fn dir(config: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens/qwen_talker")
        .join(config)
}

#[test]
fn talker_logits_match_transformers() {
    for config in CONFIGS {
        let out = tempfile::NamedTempFile::new().unwrap();
        reference_check::run(
            &dir(config).join("checkpoint"),
            "talker",
            &dir(config).join("talker_inputs.safetensors"),
            out.path(),
        )
        .unwrap();
        let diff = max_abs_diff(
            &load(out.path())["logits"],
            &load(&dir(config).join("talker.safetensors"))["logits"],
        );
        eprintln!("{config} logits: {diff:.2e}");
        assert!(diff < 1e-4, "{config}: {diff}");
    }
}

#[test]
fn decoding_step_by_step_equals_one_pass() {
    for config in CONFIGS {
        let inputs = load(&dir(config).join("talker_inputs.safetensors"));
        let embeds = &inputs["inputs_embeds"];
        let streams = inputs["position_ids"]
            .squeeze(1)
            .unwrap()
            .to_vec2::<i64>()
            .unwrap();
        let positions = MropePositions {
            temporal: streams[0].clone(),
            height: streams[1].clone(),
            width: streams[2].clone(),
        };
        let len = positions.len();
        let mut one_pass =
            TalkerModel::load(&dir(config).join("checkpoint"), &Device::Cpu).unwrap();
        let all = one_pass.forward(embeds, &positions).unwrap();

        let mut stepped = TalkerModel::load(&dir(config).join("checkpoint"), &Device::Cpu).unwrap();
        let prefill = len - 5;
        let mut parts = vec![
            stepped
                .forward(
                    &embeds.narrow(1, 0, prefill).unwrap(),
                    &positions.slice(0, prefill),
                )
                .unwrap(),
        ];
        for i in prefill..len {
            parts.push(
                stepped
                    .forward(&embeds.narrow(1, i, 1).unwrap(), &positions.slice(i, 1))
                    .unwrap(),
            );
        }
        assert_eq!(stepped.cache_len(), len);
        let diff = max_abs_diff(&Tensor::cat(&parts, 1).unwrap(), &all);
        assert!(diff < 1e-4, "{config}: {diff}");
    }
}
