//! `parley reference-check` as a user runs it, on the committed tiny Qwen2.5-Omni checkpoint:
//! its outputs match the transformers goldens.

use std::path::Path;
use std::process::Command;

fn f32_tensor(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors
        .tensor(name)
        .unwrap_or_else(|e| panic!("{name} in {}: {e}", path.display()));
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn reference_check_writes_what_transformers_computes() {
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/goldens/qwen/tiny_a");
    let out_dir = tempfile::tempdir().unwrap();
    for (component, inputs, golden, names) in [
        (
            "thinker",
            "thinker_audio_inputs.safetensors",
            "thinker_audio.safetensors",
            &["logits", "hidden_states"][..],
        ),
        (
            "audio-encoder",
            "../features_200.safetensors",
            "audio_encoder_200.safetensors",
            &["audio_embeds"][..],
        ),
    ] {
        let output = out_dir.path().join(format!("{component}.safetensors"));
        let status = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["reference-check", "--checkpoint"])
            .arg(goldens.join("checkpoint"))
            .args(["--component", component, "--inputs"])
            .arg(goldens.join(inputs))
            .arg("--output")
            .arg(&output)
            .status()
            .unwrap();
        assert!(status.success(), "{component}: {status}");
        for name in names {
            let ours = f32_tensor(&output, name);
            let reference = f32_tensor(&goldens.join(golden), name);
            assert_eq!(ours.len(), reference.len(), "{component} {name}");
            let worst = ours
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{component} {name}: max |diff| {worst}");
        }
    }

    // A bad request names the problem and fails.
    let bad = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["reference-check", "--checkpoint"])
        .arg(goldens.join("checkpoint"))
        .args(["--component", "vocoder", "--inputs"])
        .arg(goldens.join("thinker_text_inputs.safetensors"))
        .arg("--output")
        .arg(out_dir.path().join("bad.safetensors"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("vocoder"), "{message}");
}

#[test]
fn reference_check_runs_token2wav_components_like_transformers() {
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/goldens/qwen_token2wav/t2w_b");
    let out_dir = tempfile::tempdir().unwrap();
    for (component, names) in [
        ("dit", &["v_cond", "v_uncond"][..]),
        ("bigvgan", &["wav"][..]),
        ("token2wav", &["mel", "wav"][..]),
    ] {
        let output = out_dir.path().join(format!("{component}.safetensors"));
        let status = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["reference-check", "--checkpoint"])
            .arg(goldens.join("checkpoint"))
            .args(["--component", component, "--inputs"])
            .arg(goldens.join(format!("{component}_inputs.safetensors")))
            .arg("--output")
            .arg(&output)
            .status()
            .unwrap();
        assert!(status.success(), "{component}: {status}");
        for name in names {
            let ours = f32_tensor(&output, name);
            let reference = f32_tensor(&goldens.join(format!("{component}.safetensors")), name);
            assert_eq!(ours.len(), reference.len(), "{component} {name}");
            let worst = ours
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{component} {name}: max |diff| {worst}");
        }
    }
}
