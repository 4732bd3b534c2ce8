//! Reading Qwen2.5-Omni's `spk_dict.pt` (a torch pickle) and its safetensors copy: a small file
//! in the published layout written by `tools/reference/qwen_spk_dict.py`, compared with the same
//! values saved by safetensors from Python.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use parley_talker::qwen::speakers::{DEFAULT_SPEAKER, Speakers, SpeakersError};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen_speakers")
}

fn assert_same(speakers: &Speakers) {
    let expected =
        candle_core::safetensors::load(dir().join("expected.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(speakers.names().collect::<Vec<_>>(), ["Chelsie", "Ethan"]);
    for name in ["Chelsie", "Ethan"] {
        let s = speakers.get(name).unwrap();
        let bos = expected[&format!("{name}.bos_token")]
            .to_vec1::<i64>()
            .unwrap();
        assert_eq!(i64::from(s.bos_token), bos[0]);
        for (field, ours) in [("cond", &s.cond), ("ref_mel", &s.ref_mel)] {
            let reference = &expected[&format!("{name}.{field}")];
            assert_eq!(ours.dims(), reference.dims(), "{name}.{field}");
            assert_eq!(ours.dtype(), DType::F32);
            let same = ours
                .eq(reference)
                .unwrap()
                .flatten_all()
                .unwrap()
                .min(0)
                .unwrap()
                .to_scalar::<u8>()
                .unwrap();
            assert_eq!(same, 1, "{name}.{field} differs");
        }
    }
}

#[test]
fn the_torch_pickle_reads_as_python_wrote_it() {
    let speakers = Speakers::from_torch(&dir().join("spk_dict.pt")).unwrap();
    assert_same(&speakers);
    assert_eq!(speakers.get(DEFAULT_SPEAKER).unwrap().bos_token, 151872);
    // Names from a command line or a session.update are matched without case.
    assert_eq!(speakers.get("ethan").unwrap().name, "Ethan");
}

#[test]
fn the_safetensors_copy_round_trips() {
    let speakers = Speakers::from_torch(&dir().join("spk_dict.pt")).unwrap();
    let copy = tempfile::NamedTempFile::new().unwrap();
    speakers.save(copy.path()).unwrap();
    assert_same(&Speakers::load(copy.path()).unwrap());
}

#[test]
fn an_unknown_voice_names_the_ones_there_are() {
    let speakers = Speakers::from_torch(&dir().join("spk_dict.pt")).unwrap();
    let err = speakers.get("Cherry").unwrap_err();
    assert!(matches!(err, SpeakersError::UnknownSpeaker { .. }));
    assert_eq!(
        err.to_string(),
        "unknown speaker \"Cherry\"; this checkpoint has Chelsie, Ethan"
    );
}

#[test]
fn a_file_that_is_not_a_torch_archive_is_a_clear_error() {
    let path = dir().join("expected.safetensors");
    let err = Speakers::from_torch(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("expected.safetensors") && text.contains("not a torch zip archive"),
        "{text}"
    );
}
