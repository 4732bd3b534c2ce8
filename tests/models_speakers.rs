//! `parley models speakers` as a user runs it: a checkpoint directory's `spk_dict.pt` (the
//! small one of `tools/reference/qwen_spk_dict.py`) becomes `spk_dict.safetensors` with the same
//! voices; a directory without one is refused with a message naming the file.

use std::path::Path;
use std::process::Command;

use parley_talker::qwen::speakers::Speakers;

#[test]
fn speakers_converts_a_checkpoints_voices_to_safetensors() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/goldens/qwen_speakers");
    let checkpoint = tempfile::tempdir().unwrap();
    std::fs::copy(
        source.join("spk_dict.pt"),
        checkpoint.path().join("spk_dict.pt"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["models", "speakers"])
        .arg(checkpoint.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Chelsie: bos token 151872"), "{stderr}");

    let converted = Speakers::load(&checkpoint.path().join("spk_dict.safetensors")).unwrap();
    let original = Speakers::from_torch(&source.join("spk_dict.pt")).unwrap();
    for name in ["Chelsie", "Ethan"] {
        let (a, b) = (converted.get(name).unwrap(), original.get(name).unwrap());
        assert_eq!(a.bos_token, b.bos_token);
        assert_eq!(
            a.ref_mel.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.ref_mel.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(
            a.cond.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.cond.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["models", "speakers"])
        .arg(empty.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spk_dict.pt not found"), "{stderr}");
}
