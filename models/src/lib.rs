//! Model management for parley: where models live, what is installed, the pinned catalogue, and
//! `parley models fetch` with its converters (CTranslate2 Whisper and ONNX initializers → safetensors).
//!
//! Each model is installed in its own directory `<models dir>/<name>/` together with a
//! `manifest.json` listing every file with its size and sha256. A directory without a manifest,
//! or whose files do not match it, is not used: fetching replaces it.

pub mod catalog;
pub mod compute_threads;
pub mod ct2;
pub mod fetch;
pub mod memory;
pub mod onnx;
pub mod tensor_file;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use catalog::{CATALOG, ModelSpec, Profile};

/// Environment variable that overrides the models directory.
pub const MODELS_DIR_ENV: &str = "PARLEY_MODELS";
/// The file that records a complete install.
pub const MANIFEST: &str = "manifest.json";

/// Why a model could not be fetched, converted or loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: sha256 is {actual}, expected {expected}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "model `{name}` is not installed (or is incomplete) in {dir}; run `parley models fetch` to install it"
    )]
    NotInstalled { name: String, dir: PathBuf },
    #[error("model `{name}` is broken: {problem}; run `parley models fetch` to replace it")]
    Broken { name: String, problem: String },
    #[error("could not download {what}: {message}")]
    Download { what: String, message: String },
    #[error("unknown model `{0}`; `parley models list` shows the known ones")]
    Unknown(String),
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn corrupt(path: &Path, message: impl Into<String>) -> Self {
        ModelError::Corrupt {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The models directory: `$PARLEY_MODELS`, else `$XDG_CACHE_HOME/parley/models`, else
/// `~/.cache/parley/models`.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("parley").join("models")
}

/// One installed file as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What `manifest.json` says about an installed model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    /// Where the files came from, e.g. `hub:openai/whisper-tiny.en` or `wheel:silero-vad==6.2.3`.
    pub source: String,
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| ModelError::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How an installed model directory checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallState {
    /// Manifest present and every file matches it (sizes always; hashes when verified).
    Ok(Manifest),
    Missing,
    /// Present but unusable; the reason names the file.
    Broken(String),
}

/// Checks the install of `name` under `models_dir`. With `hash`, every file's sha256 is compared
/// (slower); without, sizes only.
pub fn check_install(models_dir: &Path, name: &str, hash: bool) -> InstallState {
    let dir = models_dir.join(name);
    if !dir.exists() {
        return InstallState::Missing;
    }
    let manifest_path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(_) => return InstallState::Broken(format!("{} is missing", manifest_path.display())),
    };
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return InstallState::Broken(format!("{}: {e}", manifest_path.display())),
    };
    for f in &manifest.files {
        let path = dir.join(&f.name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == f.bytes => {}
            Ok(meta) => {
                return InstallState::Broken(format!(
                    "{} has {} bytes, expected {}",
                    path.display(),
                    meta.len(),
                    f.bytes
                ));
            }
            Err(_) => return InstallState::Broken(format!("{} is missing", path.display())),
        }
        if hash {
            match sha256_file(&path) {
                Ok(sum) if sum == f.sha256 => {}
                Ok(_) => {
                    return InstallState::Broken(format!(
                        "{} is corrupt (sha256 differs)",
                        path.display()
                    ));
                }
                Err(e) => return InstallState::Broken(e.to_string()),
            }
        }
    }
    InstallState::Ok(manifest)
}

/// The directory of an installed model, or an error that names it and the command that fixes it.
/// Model loaders call this before touching any file.
pub fn installed_model_dir(models_dir: &Path, name: &str) -> Result<PathBuf, ModelError> {
    match check_install(models_dir, name, false) {
        InstallState::Ok(_) => Ok(models_dir.join(name)),
        InstallState::Missing => Err(ModelError::NotInstalled {
            name: name.to_string(),
            dir: models_dir.to_path_buf(),
        }),
        // The problem names the file (missing, truncated, unreadable manifest).
        InstallState::Broken(problem) => Err(ModelError::Broken {
            name: name.to_string(),
            problem,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_states_detect_missing_truncated_and_corrupt_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(check_install(root, "m", true), InstallState::Missing);
        let dir = root.join("m");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            check_install(root, "m", true),
            InstallState::Broken(_)
        ));

        std::fs::write(dir.join("w.bin"), b"hello").unwrap();
        let manifest = Manifest {
            name: "m".into(),
            source: "test".into(),
            files: vec![ManifestFile {
                name: "w.bin".into(),
                bytes: 5,
                sha256: sha256_file(&dir.join("w.bin")).unwrap(),
            }],
        };
        std::fs::write(
            dir.join(MANIFEST),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        assert_eq!(
            check_install(root, "m", true),
            InstallState::Ok(manifest.clone())
        );
        assert!(installed_model_dir(root, "m").is_ok());

        // Same size, different bytes: only the hash check sees it.
        std::fs::write(dir.join("w.bin"), b"jello").unwrap();
        assert!(matches!(
            check_install(root, "m", false),
            InstallState::Ok(_)
        ));
        assert!(matches!(
            check_install(root, "m", true),
            InstallState::Broken(_)
        ));

        // A truncated file: the error names the file, what is wrong and the fix.
        std::fs::write(dir.join("w.bin"), b"hel").unwrap();
        let err = installed_model_dir(root, "m").unwrap_err().to_string();
        assert!(err.contains("parley models fetch"), "{err}");
        assert!(err.contains("w.bin has 3 bytes, expected 5"), "{err}");

        // A file gone: named too.
        std::fs::remove_file(dir.join("w.bin")).unwrap();
        let err = installed_model_dir(root, "m").unwrap_err().to_string();
        assert!(err.contains("w.bin is missing"), "{err}");

        // Nothing there at all: which model, where, and the fix.
        let err = installed_model_dir(root, "other").unwrap_err().to_string();
        assert!(err.contains("`other` is not installed"), "{err}");
        assert!(err.contains("parley models fetch"), "{err}");
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
