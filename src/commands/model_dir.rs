//! Where the subcommands find installed models.

use std::path::PathBuf;

use anyhow::Context;

/// The directory of installed model `name`, or an error that names it and `parley models fetch`.
pub fn require(name: &str) -> anyhow::Result<PathBuf> {
    parley_models::installed_model_dir(&parley_models::default_models_dir(), name)
        .with_context(|| format!("cannot load {name}"))
}
