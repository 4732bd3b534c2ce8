//! `parley models fetch` and `parley models list`.

use std::path::PathBuf;

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
