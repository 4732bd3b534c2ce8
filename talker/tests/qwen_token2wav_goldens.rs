//! Token2Wav parity with transformers 5.23.0 on the tiny random checkpoints of
//! `tools/reference/qwen_token2wav_goldens.py`, through `reference_check::run` exactly as
//! `parley reference-check` runs it: DiT velocities (both CFG halves), BigVGAN audio, and the
//! whole code -> mel -> audio path with the reference's noise (10 RK4 steps, guidance 0.5).

#[path = "../../thinker/tests/support/tensors.rs"]
mod tensors;

use tensors::{load, max_abs_diff};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use parley_talker::qwen::reference_check;
use parley_thinker::qwen::QwenError;

const CONFIGS: [&str; 2] = ["t2w_a", "t2w_b"];
const TOLERANCE: f32 = 1e-4;

fn dir(config: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens/qwen_token2wav")
        .join(config)
}

fn run(config: &str, component: &str) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let out = tempfile::NamedTempFile::new().unwrap();
    reference_check::run(
        &dir(config).join("checkpoint"),
        component,
        &dir(config).join(format!("{component}_inputs.safetensors")),
        out.path(),
    )
    .unwrap();
    (
        load(out.path()),
        load(&dir(config).join(format!("{component}.safetensors"))),
    )
}

fn assert_close(ours: &Tensor, reference: &Tensor, what: &str) {
    let diff = max_abs_diff(ours, reference);
    eprintln!("{what}: max abs diff {diff:.2e}");
    assert!(diff <= TOLERANCE, "{what}: {diff}");
}

#[test]
fn dit_velocities_match_transformers() {
    for config in CONFIGS {
        let (ours, golden) = run(config, "dit");
        for name in ["v_cond", "v_uncond"] {
            assert_close(&ours[name], &golden[name], &format!("{config} {name}"));
        }
    }
}

#[test]
fn bigvgan_audio_matches_transformers() {
    for config in CONFIGS {
        let (ours, golden) = run(config, "bigvgan");
        assert_close(&ours["wav"], &golden["wav"], &format!("{config} wav"));
    }
}

#[test]
fn token2wav_from_codes_matches_transformers() {
    for config in CONFIGS {
        let (ours, golden) = run(config, "token2wav");
        assert_close(&ours["mel"], &golden["mel"], &format!("{config} mel"));
        assert_close(&ours["wav"], &golden["wav"], &format!("{config} wav"));
    }
}

#[test]
fn codes_outside_the_table_are_refused_clearly() {
    let inputs = load(&dir("t2w_a").join("token2wav_inputs.safetensors"));
    let mut bad = inputs.clone();
    let n = inputs["code"].dim(1).unwrap();
    let mut codes = inputs["code"]
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap();
    codes[0] = 8294; // the codec EOS, which must be stripped before Token2Wav
    bad.insert(
        "code".into(),
        Tensor::from_vec(codes, (1, n), &Device::Cpu).unwrap(),
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    candle_core::safetensors::save(&bad, file.path()).unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = reference_check::run(
        &dir("t2w_a").join("checkpoint"),
        "token2wav",
        file.path(),
        out.path(),
    )
    .unwrap_err();
    assert!(matches!(err, QwenError::BadInput { .. }), "{err}");
    assert!(err.to_string().contains("8294"), "{err}");
}
