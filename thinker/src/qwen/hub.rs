//! Where a Qwen2.5-Omni checkpoint comes from: `--model Qwen/Qwen2.5-Omni-3B` (or `-7B`, or any
//! repo in the same layout) through the Hugging Face hub into the standard HF cache, or a local
//! directory in that layout.
//!
//! The HF cache is looked at first, so a checkpoint downloaded once (by parley, `huggingface-cli`
//! or transformers) loads without the network.

use std::path::{Path, PathBuf};

use super::QwenError;

/// Files every checkpoint has.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
/// Files read when present (the chat template, the special tokens, the voices).
const OPTIONAL: &[&str] = &[
    "tokenizer_config.json",
    "chat_template.json",
    "added_tokens.json",
    "generation_config.json",
    "spk_dict.pt",
];
const INDEX: &str = "model.safetensors.index.json";
const SINGLE_WEIGHTS: &str = "model.safetensors";

/// Resolves `model` to a checkpoint directory: an existing directory as is, else a hub repo id
/// (`owner/name`) fetched into the HF cache (with download progress bars when `progress`).
pub fn resolve(model: &str, progress: bool) -> Result<PathBuf, QwenError> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if !is_repo_id(model) {
        return Err(QwenError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = cached(model) {
        tracing::info!(repo = model, dir = %dir.display(), "checkpoint from the HF cache");
        return Ok(dir);
    }
    download(model, progress)
}

/// `owner/name`, as the hub spells repo ids.
fn is_repo_id(model: &str) -> bool {
    let mut parts = model.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The snapshot directory when the HF cache holds the whole checkpoint.
fn cached(repo: &str) -> Option<PathBuf> {
    let cache = hf_hub::Cache::from_env().model(repo.to_string());
    let config = cache.get("config.json")?;
    let dir = config.parent()?.to_path_buf();
    let weights = weight_names(&dir).ok()?;
    let all_there = REQUIRED
        .iter()
        .map(|f| f.to_string())
        .chain(weights)
        .all(|f| cache.get(&f).is_some());
    all_there.then_some(dir)
}

/// The weight files a checkpoint directory needs (from its index, if it has one).
fn weight_names(dir: &Path) -> Result<Vec<String>, QwenError> {
    let index = dir.join(INDEX);
    if !index.is_file() {
        return Ok(vec![SINGLE_WEIGHTS.to_string()]);
    }
    shard_names(&index)
}

fn shard_names(index: &Path) -> Result<Vec<String>, QwenError> {
    let text = std::fs::read_to_string(index).map_err(|source| QwenError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| QwenError::BadConfig {
            path: index.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut names: Vec<String> = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

fn download(repo: &str, progress: bool) -> Result<PathBuf, QwenError> {
    let hub_error = |message: String| QwenError::Hub {
        repo: repo.to_string(),
        message,
    };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(progress)
        .build()
        .map_err(|e| hub_error(e.to_string()))?;
    let remote = api.model(repo.to_string());
    let config = remote
        .get("config.json")
        .map_err(|e| hub_error(e.to_string()))?;
    let dir = config
        .parent()
        .ok_or_else(|| hub_error("the HF cache gave a path without a directory".into()))?
        .to_path_buf();
    let weights = match remote.get(INDEX) {
        Ok(index) => shard_names(&index)?,
        Err(_) => vec![SINGLE_WEIGHTS.to_string()],
    };
    for file in REQUIRED.iter().map(|f| f.to_string()).chain(weights) {
        remote
            .get(&file)
            .map_err(|e| hub_error(format!("{file}: {e}")))?;
    }
    for file in OPTIONAL {
        // Absent from some repos (e.g. a thinker-only export): read only when present.
        if let Err(e) = remote.get(file) {
            tracing::debug!(repo, file, "not fetched: {e}");
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_paths_are_told_apart() {
        assert!(is_repo_id("Qwen/Qwen2.5-Omni-3B"));
        assert!(!is_repo_id("Qwen2.5-Omni-3B"));
        assert!(!is_repo_id("./models/Qwen2.5-Omni-3B/"));
        assert!(!is_repo_id("/abs/path"));
    }

    #[test]
    fn a_missing_local_directory_is_named() {
        let err = resolve("./no/such/checkpoint", false).unwrap_err();
        assert!(err.to_string().contains("./no/such/checkpoint"), "{err}");
    }
}
