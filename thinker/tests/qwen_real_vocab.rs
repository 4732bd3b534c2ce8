//! The real Qwen2.5-Omni vocabulary (151936 ids) and published special-token ids: the tiny
//! `tiny_r` checkpoint of `tools/reference/qwen_omni_goldens.py` (width 8, tied embeddings, so
//! no `thinker.lm_head.weight` is stored) against transformers 5.23.0 through
//! `reference_check::run`, as `parley reference-check` runs it.
//!
//! Real-vocabulary logits are too big to commit, so the goldens hold them at a subset of columns
//! (every special id and a spread of ordinary ids) plus the argmax over all 151936.

#[path = "support/tensors.rs"]
mod tensors;

use tensors::{load, max_abs_diff};

use candle_core::{D, DType};
use parley_thinker::qwen::{Checkpoint, reference_check};
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen/tiny_r")
}

fn out_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-qwen-real-vocab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.safetensors"))
}

#[test]
fn the_published_ids_and_vocabulary_are_read_from_config_json() {
    let checkpoint = Checkpoint::open(&dir().join("checkpoint")).unwrap();
    let config = &checkpoint.config;
    assert_eq!(config.text_config.vocab_size, 151936);
    assert_eq!(config.audio_token_index, 151646);
    assert_eq!(config.audio_start_token_id, 151647);
    assert_eq!(config.audio_end_token_id, 151648);
    assert!(config.text_config.tie_word_embeddings);
}

#[test]
fn thinker_with_the_real_vocabulary_matches_transformers() {
    for case in ["thinker_text", "thinker_audio"] {
        let output = out_path(case);
        reference_check::run(
            &dir().join("checkpoint"),
            "thinker",
            &dir().join(format!("{case}_inputs.safetensors")),
            &output,
        )
        .unwrap();
        let ours = load(&output);
        let golden = load(&dir().join(format!("{case}.safetensors")));

        let hidden = max_abs_diff(&ours["hidden_states"], &golden["hidden_states"]);
        assert!(hidden <= TOLERANCE, "{case} hidden_states: {hidden}");

        let logits = &ours["logits"];
        assert_eq!(logits.dim(D::Minus1).unwrap(), 151936);
        let columns = golden["logit_columns"].to_dtype(DType::U32).unwrap();
        let at_columns = logits.index_select(&columns, 2).unwrap();
        let diff = max_abs_diff(&at_columns, &golden["logits_at_columns"]);
        assert!(diff <= TOLERANCE, "{case} logits: {diff}");
        eprintln!("{case}: hidden {hidden:.2e}, logits at columns {diff:.2e}");

        let argmax = logits
            .argmax(D::Minus1)
            .unwrap()
            .to_dtype(DType::I64)
            .unwrap();
        let golden_argmax = &golden["argmax"];
        assert_eq!(
            argmax.to_vec2::<i64>().unwrap(),
            golden_argmax.to_vec2::<i64>().unwrap(),
            "{case} argmax over the whole vocabulary"
        );
    }
}

#[test]
fn audio_encoder_matches_transformers_at_width_8() {
    for frames in [70, 200, 530] {
        let output = out_path(&format!("audio_{frames}"));
        reference_check::run(
            &dir().join("checkpoint"),
            "audio-encoder",
            &dir().join(format!("../features_{frames}.safetensors")),
            &output,
        )
        .unwrap();
        let golden = load(&dir().join(format!("audio_encoder_{frames}.safetensors")));
        let diff = max_abs_diff(&load(&output)["audio_embeds"], &golden["audio_embeds"]);
        assert!(diff <= TOLERANCE, "{frames} frames: {diff}");
    }
}
