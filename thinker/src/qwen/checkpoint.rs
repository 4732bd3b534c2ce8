//! A Qwen2.5-Omni checkpoint directory in the Hugging Face layout: `config.json` and the weights
//! in `*.safetensors` (one file, or shards listed by `model.safetensors.index.json`).

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use std::path::{Path, PathBuf};

use super::QwenError;
use super::config::ThinkerConfig;

/// Weight-name prefixes of the published checkpoints.
pub const AUDIO_TOWER_PREFIX: &str = "thinker.audio_tower";
pub const TEXT_MODEL_PREFIX: &str = "thinker.model";
pub const LM_HEAD_PREFIX: &str = "thinker.lm_head";

/// An audio-tower embedding transformers creates but its forward never reads.
const UNUSED_AUDIO_BOS_EOS: &str = "thinker.audio_tower.audio_bos_eos_token.weight";

/// Whether [`super::QwenThinker`] loads this checkpoint tensor: the audio tower, the language
/// model and its head. The vision tower (`thinker.visual.*`, ~0.7 B parameters in the 3B) and
/// the Talker and Token2Wav weights are not the Thinker's memory.
fn loaded_by_the_thinker(name: &str) -> bool {
    [AUDIO_TOWER_PREFIX, TEXT_MODEL_PREFIX, LM_HEAD_PREFIX]
        .iter()
        .any(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
        })
        && name != UNUSED_AUDIO_BOS_EOS
}

/// What loading the Thinker puts in memory, from the safetensors headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightReport {
    /// Tensors the Thinker loads (audio tower, language model, head; not the vision tower,
    /// Talker or Token2Wav).
    pub tensors: usize,
    /// Bytes as stored, by stored dtype (`BF16` in the published checkpoints).
    pub stored_bytes: std::collections::BTreeMap<String, u64>,
    /// Bytes once loaded in the compute dtype.
    pub loaded_bytes: u64,
}

impl std::fmt::Display for WeightReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = |bytes: u64| {
            if bytes >= 1_000_000_000 {
                format!("{:.2} GB", bytes as f64 / 1e9)
            } else {
                format!("{:.1} MB", bytes as f64 / 1e6)
            }
        };
        let stored: Vec<String> = self
            .stored_bytes
            .iter()
            .map(|(dtype, bytes)| format!("{} {dtype}", size(*bytes)))
            .collect();
        write!(
            f,
            "{} thinker tensors, stored {}, {} in memory",
            self.tensors,
            stored.join(" + "),
            size(self.loaded_bytes)
        )
    }
}

/// The files of a checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: ThinkerConfig,
    pub weight_files: Vec<PathBuf>,
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self, QwenError> {
        let config = ThinkerConfig::from_checkpoint_dir(dir)?;
        let weight_files = weight_files(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            weight_files,
        })
    }

    /// The Thinker's weights as stored and as loaded in `dtype`.
    pub fn weight_report(&self, dtype: DType) -> Result<WeightReport, QwenError> {
        // SAFETY: read-only mapping of the checkpoint files, as in `var_builder`.
        let files =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(&self.weight_files) }
                .map_err(|e| QwenError::Weights(format!("{}: {e}", self.dir.display())))?;
        let mut report = WeightReport {
            tensors: 0,
            stored_bytes: Default::default(),
            loaded_bytes: 0,
        };
        for (name, view) in files.tensors() {
            if !loaded_by_the_thinker(&name) {
                continue;
            }
            let numel: usize = view.shape().iter().product();
            report.tensors += 1;
            *report
                .stored_bytes
                .entry(format!("{:?}", view.dtype()))
                .or_default() += view.data().len() as u64;
            report.loaded_bytes += (numel * dtype.size_in_bytes()) as u64;
        }
        Ok(report)
    }

    /// All weights, memory-mapped, read as `dtype` whatever their stored dtype (bf16 in the
    /// published checkpoints).
    pub fn var_builder(
        &self,
        device: &Device,
        dtype: DType,
    ) -> Result<VarBuilder<'static>, QwenError> {
        self.var_builder_with_progress(device, dtype, None)
    }

    /// [`Self::var_builder`] that calls `progress` with the bytes (in `dtype`) of every tensor
    /// as it is read, so a caller can show loading progress against
    /// [`WeightReport::loaded_bytes`].
    pub fn var_builder_with_progress(
        &self,
        device: &Device,
        dtype: DType,
        progress: Option<LoadProgress>,
    ) -> Result<VarBuilder<'static>, QwenError> {
        // SAFETY: the files are mapped read-only; like every mmap-based loader this assumes
        // nobody truncates them while the model is loaded.
        let files =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(&self.weight_files) }
                .map_err(|e| QwenError::Weights(format!("{}: {e}", self.dir.display())))?;
        let backend: Box<dyn SimpleBackend> = match progress {
            Some(progress) => Box::new(Counted {
                files,
                progress,
                seen: Default::default(),
            }),
            None => Box::new(files),
        };
        Ok(VarBuilder::from_backend(backend, dtype, device.clone()))
    }
}

/// Called with the bytes of each weight tensor as it is loaded.
pub type LoadProgress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// The mapped files, reporting each tensor handed out.
struct Counted {
    files: candle_core::safetensors::MmapedSafetensors,
    progress: LoadProgress,
    /// Names already reported: a tied embedding is read twice but loaded once.
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Counted {
    fn counted(
        &self,
        name: &str,
        tensor: candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        if let Ok(t) = &tensor {
            // A poisoned lock only means another load panicked; the count is still right.
            let first = self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
            if first {
                (self.progress)((t.elem_count() * t.dtype().size_in_bytes()) as u64);
            }
        }
        tensor
    }
}

impl SimpleBackend for Counted {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.counted(
            name,
            SimpleBackend::get(&self.files, shape, name, init, dtype, device),
        )
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.counted(
            name,
            SimpleBackend::get_unchecked(&self.files, name, dtype, device),
        )
    }

    fn contains_tensor(&self, name: &str) -> bool {
        SimpleBackend::contains_tensor(&self.files, name)
    }
}

/// The safetensors files: the shards the index names if there is one, else `model.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, QwenError> {
    let index = dir.join("model.safetensors.index.json");
    let mut files = if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| QwenError::Io {
            path: index.clone(),
            source,
        })?;
        let bad = |message: String| QwenError::BadConfig {
            path: index.clone(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect::<Vec<_>>()
    } else {
        vec![dir.join("model.safetensors")]
    };
    files.sort();
    if files.is_empty() {
        return Err(QwenError::MissingFile {
            path: dir.join("model.safetensors"),
        });
    }
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(QwenError::MissingFile {
            path: missing.clone(),
        });
    }
    Ok(files)
}
