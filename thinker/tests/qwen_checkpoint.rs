//! Finding and reading a Qwen2.5-Omni checkpoint: a repo id served from the standard HF cache
//! without the network, a clear error when the hub cannot be reached, sharded safetensors through
//! the index file, and the memory report.

#[path = "support/tensors.rs"]
mod tensors;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use parley_thinker::qwen::{Checkpoint, QwenError, QwenThinker, hub};

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen/tiny_a/checkpoint")
}

fn logits(dir: &Path) -> Tensor {
    let checkpoint = Checkpoint::open(dir).unwrap();
    let mut thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
    thinker.prefill(&[1, 5, 9, 200, 17], None).unwrap().logits
}

/// Writes `dir`'s files into an HF cache under `home` as repo `repo` (the hub's cache layout).
fn fill_hf_cache(home: &Path, repo: &str, dir: &Path) {
    let revision = "0123456789abcdef0123456789abcdef01234567";
    let repo_dir = home
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = repo_dir.join("snapshots").join(revision);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), revision).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_repo_id_loads_from_the_hf_cache_offline_and_an_unreachable_hub_says_what_to_do() {
    // One test owns the process environment (HF_HOME, HF_ENDPOINT).
    let home = tempfile::tempdir().unwrap();
    // SAFETY: no other test of this binary reads these variables.
    unsafe {
        std::env::set_var("HF_HOME", home.path());
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    }
    fill_hf_cache(home.path(), "parley/tiny-omni", &tiny_a());
    let dir = hub::resolve("parley/tiny-omni", false).unwrap();
    assert!(dir.starts_with(home.path()), "{}", dir.display());
    assert_eq!(
        logits(&dir).to_vec3::<f32>().unwrap(),
        logits(&tiny_a()).to_vec3::<f32>().unwrap()
    );

    let err = hub::resolve("Qwen/Qwen2.5-Omni-3B", false).unwrap_err();
    assert!(matches!(err, QwenError::Hub { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Qwen/Qwen2.5-Omni-3B") && text.contains("pass its directory"),
        "{text}"
    );
}

#[test]
fn sharded_weights_load_through_the_index() {
    let source =
        candle_core::safetensors::load(tiny_a().join("model.safetensors"), &Device::Cpu).unwrap();
    let sharded = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_a().join("config.json"),
        sharded.path().join("config.json"),
    )
    .unwrap();
    let mut names: Vec<&String> = source.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let tensors: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), source[*n].clone()))
            .collect();
        candle_core::safetensors::save(&tensors, sharded.path().join(shard)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), shard.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        sharded.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let checkpoint = Checkpoint::open(sharded.path()).unwrap();
    assert_eq!(checkpoint.weight_files.len(), 2);
    assert_eq!(
        logits(sharded.path()).to_vec3::<f32>().unwrap(),
        logits(&tiny_a()).to_vec3::<f32>().unwrap()
    );

    // A shard the index names but the directory lacks is named in the error.
    std::fs::remove_file(sharded.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = Checkpoint::open(sharded.path()).unwrap_err();
    assert!(
        err.to_string().contains("model-00002-of-00002.safetensors"),
        "{err}"
    );
}

#[test]
fn the_memory_report_counts_the_thinker_weights() {
    let checkpoint = Checkpoint::open(&tiny_a()).unwrap();
    let report = checkpoint.weight_report(DType::F32).unwrap();
    let tensors =
        candle_core::safetensors::load(tiny_a().join("model.safetensors"), &Device::Cpu).unwrap();
    // What the Thinker loads: not the vision tower (parley hears, it does not see) nor the
    // audio tower's unused bos/eos embedding.
    let thinker: Vec<&Tensor> = tensors
        .iter()
        .filter(|(n, _)| {
            n.starts_with("thinker.")
                && !n.starts_with("thinker.visual.")
                && !n.ends_with("audio_bos_eos_token.weight")
        })
        .map(|(_, t)| t)
        .collect();
    assert!(tensors.keys().any(|n| n.starts_with("thinker.visual.")));
    let numel: usize = thinker.iter().map(|t| t.elem_count()).sum();
    assert_eq!(report.tensors, thinker.len());
    assert_eq!(report.loaded_bytes, 4 * numel as u64);
    // tiny_a is stored in f32.
    assert_eq!(report.stored_bytes.get("F32"), Some(&(4 * numel as u64)));
    assert!(report.to_string().contains("thinker tensors"), "{report}");
    let bf16 = Checkpoint::open(&tiny_a().join("../../tiny_b/checkpoint"))
        .unwrap()
        .weight_report(DType::F32)
        .unwrap();
    assert!(bf16.stored_bytes.contains_key("BF16"), "{bf16}");
    assert_eq!(bf16.stored_bytes["BF16"] * 2, bf16.loaded_bytes);
}

#[test]
fn bf16_weights_compute_close_to_f32() {
    // What the `cuda` build runs (bf16), checked on the CPU: the same prompt with audio.
    let dir = tiny_a();
    let inputs = candle_core::safetensors::load(
        dir.join("../thinker_audio_inputs.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let ids = tensors::token_ids(&inputs["input_ids"]);
    let features = &inputs["input_features"];
    let checkpoint = Checkpoint::open(&dir).unwrap();
    let run = |dtype| {
        let mut thinker = QwenThinker::load_with_dtype(&checkpoint, &Device::Cpu, dtype).unwrap();
        let out = thinker.prefill(&ids, Some(features)).unwrap();
        assert_eq!(out.logits.dtype(), DType::F32);
        out.logits
    };
    let (f32_logits, bf16_logits) = (run(DType::F32), run(DType::BF16));
    let diff = tensors::max_abs_diff(&f32_logits, &bf16_logits);
    let scale = f32_logits
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    eprintln!("bf16 vs f32 logits: max abs diff {diff:.3} of {scale:.2}");
    assert!(diff < 0.05 * scale, "{diff} vs {scale}");
}

#[test]
fn loading_reports_progress_that_adds_up_to_the_weights_in_memory() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // tiny_a (untied lm_head, f32) and tiny_r (tied embeddings, bf16 on disk, read as f32).
    for dir in [tiny_a(), tiny_a().join("../../tiny_r/checkpoint")] {
        let checkpoint = Checkpoint::open(&dir).unwrap();
        let report = checkpoint.weight_report(DType::F32).unwrap();
        let (loaded, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let progress = {
            let (loaded, calls) = (Arc::clone(&loaded), Arc::clone(&calls));
            Arc::new(move |bytes: u64| {
                loaded.fetch_add(bytes, Ordering::Relaxed);
                calls.fetch_add(1, Ordering::Relaxed);
            })
        };
        QwenThinker::load_with_progress(&checkpoint, &Device::Cpu, DType::F32, Some(progress))
            .unwrap();
        assert_eq!(
            loaded.load(Ordering::Relaxed),
            report.loaded_bytes,
            "{report}"
        );
        assert_eq!(
            calls.load(Ordering::Relaxed),
            report.tensors as u64,
            "{report}"
        );
    }
}
