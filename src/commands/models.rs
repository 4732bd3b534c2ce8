//! `parley models fetch`, `parley models list` and `parley models speakers`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use parley_talker::qwen::speakers::Speakers;

use anyhow::bail;

use parley_models::{self as models, InstallState, Profile, catalog, fetch};

pub fn models_fetch(
    profile: Profile,
    names: &[String],
    dir: Option<PathBuf>,
    offline: bool,
    force: bool,
) -> anyhow::Result<()> {
    let models_dir = dir.unwrap_or_else(models::default_models_dir);
    let specs: Vec<&catalog::ModelSpec> = if names.is_empty() {
        catalog::models_for(profile).collect()
    } else {
        names
            .iter()
            .map(|n| catalog::find(n).ok_or_else(|| models::ModelError::Unknown(n.clone())))
            .collect::<Result<_, _>>()?
    };
    eprintln!("models directory: {}", models_dir.display());
    let opts = fetch::FetchOptions {
        models_dir,
        offline,
        force,
    };
    let mut failed = Vec::new();
    for spec in specs {
        match fetch::fetch(spec, &opts) {
            Ok(fetch::FetchOutcome::UpToDate(m)) => {
                eprintln!("{}: up to date ({})", spec.name, m.source)
            }
            Ok(fetch::FetchOutcome::Installed(m)) => eprintln!(
                "{}: installed from {} ({:.1} MB)",
                spec.name,
                m.source,
                m.total_bytes() as f64 / 1e6
            ),
            Err(e) => {
                eprintln!("{}: {e}", spec.name);
                failed.push(spec.name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not install: {}", failed.join(", "));
    }
    Ok(())
}

pub fn models_list(dir: Option<PathBuf>, verify: bool) -> anyhow::Result<()> {
    let models_dir = dir.unwrap_or_else(models::default_models_dir);
    println!("models directory: {}", models_dir.display());
    println!(
        "{:<24} {:<8} {:>9}  {:<12} source / problem",
        "name", "profile", "size", "state"
    );
    for spec in catalog::CATALOG {
        let profile = format!("{:?}", spec.profile).to_lowercase();
        match models::check_install(&models_dir, spec.name, verify) {
            InstallState::Ok(m) => println!(
                "{:<24} {:<8} {:>7.1}MB  {:<12} {}",
                spec.name,
                profile,
                m.total_bytes() as f64 / 1e6,
                "installed",
                m.source
            ),
            InstallState::Missing => println!(
                "{:<24} {:<8} {:>9}  {:<12} {}",
                spec.name, profile, "-", "missing", spec.summary
            ),
            InstallState::Broken(why) => println!(
                "{:<24} {:<8} {:>9}  {:<12} {why}",
                spec.name, profile, "-", "BROKEN"
            ),
        }
    }
    Ok(())
}

/// `parley models speakers`: a checkpoint's `spk_dict.pt` -> safetensors.
pub fn models_speakers(checkpoint: &Path, output: Option<PathBuf>) -> anyhow::Result<()> {
    let pickle = if checkpoint.is_dir() {
        checkpoint.join("spk_dict.pt")
    } else {
        checkpoint.to_path_buf()
    };
    if !pickle.is_file() {
        bail!(
            "{} not found: a Qwen2.5-Omni checkpoint directory holds spk_dict.pt next to \
             config.json",
            pickle.display()
        );
    }
    let speakers = Speakers::from_torch(&pickle)?;
    let output = output.unwrap_or_else(|| pickle.with_extension("safetensors"));
    speakers
        .save(&output)
        .with_context(|| format!("writing {}", output.display()))?;
    for name in speakers.names() {
        let s = speakers.get(name)?;
        eprintln!(
            "{name}: bos token {}, cond {:?}, reference mel {:?}",
            s.bos_token,
            s.cond.dims(),
            s.ref_mel.dims()
        );
    }
    eprintln!("wrote {}", output.display());
    Ok(())
}
