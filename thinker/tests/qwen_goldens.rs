//! Qwen2.5-Omni Thinker parity with transformers 5.23.0 on the tiny random checkpoints of
//! `tools/reference/qwen_omni_goldens.py` (assets/goldens/qwen/), through
//! `parley_thinker::qwen::reference_check::run` exactly as `parley reference-check` runs it.
//!
//! Tolerance: 1e-4 max abs difference (f32 on both sides).

#[path = "support/tensors.rs"]
mod tensors;

use tensors::{load, token_ids};

use candle_core::{DType, Device, IndexOp, Tensor};
use parley_thinker::qwen::{
    AudioEncoderConfig, Checkpoint, MropePositions, QwenError, QwenThinker, reference_check,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-4;
const CONFIGS: [&str; 2] = ["tiny_a", "tiny_b"];
const FRAME_COUNTS: [usize; 3] = [70, 200, 530];

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen")
}

fn checkpoint_dir(config: &str) -> PathBuf {
    goldens().join(config).join("checkpoint")
}

/// A fresh output path per test case (tests run in parallel).
fn out_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-qwen-goldens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.safetensors"))
}

fn max_abs_diff(ours: &Tensor, reference: &Tensor, what: &str) -> f32 {
    assert_eq!(ours.dtype(), DType::F32, "{what}: dtype");
    let diff = tensors::max_abs_diff(ours, reference);
    eprintln!("{what}: max abs diff {diff:.3e}");
    diff
}

fn assert_close(ours: &Tensor, reference: &Tensor, what: &str) {
    let diff = max_abs_diff(ours, reference, what);
    assert!(
        diff <= TOLERANCE,
        "{what}: max abs diff {diff} > {TOLERANCE}"
    );
}

#[test]
fn audio_encoder_matches_transformers() {
    for config in CONFIGS {
        for frames in FRAME_COUNTS {
            let inputs = goldens().join(format!("features_{frames}.safetensors"));
            let output = out_path(&format!("{config}_audio_{frames}"));
            reference_check::run(&checkpoint_dir(config), "audio-encoder", &inputs, &output)
                .unwrap();
            let ours = &load(&output)["audio_embeds"];
            let golden = goldens()
                .join(config)
                .join(format!("audio_encoder_{frames}.safetensors"));
            let reference = &load(&golden)["audio_embeds"];
            assert_eq!(ours.dim(0).unwrap(), AudioEncoderConfig::output_len(frames));
            assert_close(
                ours,
                reference,
                &format!("{config} audio_embeds {frames} frames"),
            );
        }
    }
}

#[test]
fn thinker_matches_transformers_with_and_without_audio() {
    for config in CONFIGS {
        for case in ["thinker_text", "thinker_audio"] {
            let inputs = goldens()
                .join(config)
                .join(format!("{case}_inputs.safetensors"));
            let output = out_path(&format!("{config}_{case}"));
            reference_check::run(&checkpoint_dir(config), "thinker", &inputs, &output).unwrap();
            let ours = load(&output);
            let reference = load(&goldens().join(config).join(format!("{case}.safetensors")));
            for name in ["logits", "hidden_states"] {
                assert_close(
                    &ours[name],
                    &reference[name],
                    &format!("{config} {case} {name}"),
                );
            }
        }
    }
}

/// The clip lengths of each config's smaller `thinker_audio_<T>` goldens (the full
/// `thinker_audio` golden holds the other: tiny_a 200 frames, tiny_b 70).
fn other_audio_lengths(config: &str) -> [usize; 2] {
    match config {
        "tiny_a" => [70, 530],
        _ => [200, 530],
    }
}

/// 0.7 s, exactly 2 s and 5.3 s of audio in a prompt, for both configs: hidden states at every
/// position, logits from `<|audio_eos|>` on (the rest follow from the hidden states through
/// lm_head, which the full goldens check) and the rope positions.
#[test]
fn thinker_matches_transformers_at_every_clip_length() {
    for config in CONFIGS {
        for frames in other_audio_lengths(config) {
            let golden = goldens().join(config);
            let mut inputs = load(&golden.join(format!("thinker_audio_{frames}_ids.safetensors")));
            let features = load(&goldens().join(format!("features_{frames}.safetensors")));
            inputs.insert("input_features".into(), features["input_features"].clone());
            let inputs_path = out_path(&format!("{config}_audio_{frames}_inputs"));
            candle_core::safetensors::save(&inputs, &inputs_path).unwrap();
            let output = out_path(&format!("{config}_audio_{frames}"));
            reference_check::run(&checkpoint_dir(config), "thinker", &inputs_path, &output)
                .unwrap();
            let ours = load(&output);
            let reference = load(&golden.join(format!("thinker_audio_{frames}.safetensors")));
            let what = format!("{config} thinker audio {frames} frames");
            assert_close(
                &ours["hidden_states"],
                &reference["hidden_states"],
                &format!("{what} hidden_states"),
            );
            let tail = reference["logits_tail"].dim(1).unwrap();
            let len = ours["logits"].dim(1).unwrap();
            assert_close(
                &ours["logits"].narrow(1, len - tail, tail).unwrap(),
                &reference["logits_tail"],
                &format!("{what} logits"),
            );

            let thinker = QwenThinker::load(
                &Checkpoint::open(&checkpoint_dir(config)).unwrap(),
                &Device::Cpu,
            )
            .unwrap();
            let ids = token_ids(&inputs["input_ids"]);
            let audio = ids
                .iter()
                .filter(|&&id| id == thinker.config().audio_token_index)
                .count();
            assert_eq!(audio, AudioEncoderConfig::output_len(frames), "{what}");
            let positions = thinker.prompt_positions(&ids).unwrap();
            assert_positions_equal(&positions, &reference["position_ids"], &what);
        }
    }
}

/// Our TMRoPE positions equal transformers' `get_rope_index` output (`[3, 1, L]`).
fn assert_positions_equal(ours: &MropePositions, reference: &Tensor, what: &str) {
    let stream = |s: usize| reference.i((s, 0)).unwrap().to_vec1::<i64>().unwrap();
    assert_eq!(ours.temporal, stream(0), "{what} temporal");
    assert_eq!(ours.height, stream(1), "{what} height");
    assert_eq!(ours.width, stream(2), "{what} width");
}

fn prompt(config: &str) -> (Vec<u32>, Tensor) {
    let inputs = load(
        &goldens()
            .join(config)
            .join("thinker_audio_inputs.safetensors"),
    );
    let ids = token_ids(&inputs["input_ids"]);
    (ids, inputs["input_features"].clone())
}

#[test]
fn prompt_positions_equal_get_rope_index() {
    for config in CONFIGS {
        let thinker = QwenThinker::load(
            &Checkpoint::open(&checkpoint_dir(config)).unwrap(),
            &Device::Cpu,
        )
        .unwrap();
        let (ids, _) = prompt(config);
        let ours = thinker.prompt_positions(&ids).unwrap();
        let reference = load(&goldens().join(config).join("thinker_audio.safetensors"));
        assert_positions_equal(&ours, &reference["position_ids"], config);
        assert!(
            ids.contains(&thinker.config().audio_token_index),
            "the prompt must hold audio"
        );
    }
}

/// Prefilling the audio prompt in uneven chunks, then token by token, through the KV cache gives
/// transformers' one-pass logits.
#[test]
fn chunked_prefill_and_decode_steps_match_one_pass() {
    for config in CONFIGS {
        let checkpoint = Checkpoint::open(&checkpoint_dir(config)).unwrap();
        let mut thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
        let (ids, features) = prompt(config);
        let audio = thinker.audio_encoder().forward(&features).unwrap();
        let embeds = thinker.prompt_embeddings(&ids, Some(&audio)).unwrap();
        let positions = thinker.prompt_positions(&ids).unwrap();
        let len = ids.len();
        // Chunk boundaries inside the audio run and single-token steps at the end.
        let mut bounds = vec![0, 5, 12, 30];
        bounds.retain(|&b| b < len - 3);
        bounds.extend([len - 3, len - 2, len - 1, len]);
        let mut logits = Vec::new();
        for w in bounds.windows(2) {
            let (start, n) = (w[0], w[1] - w[0]);
            assert_eq!(thinker.text_model().cache_len(), start);
            let chunk = embeds.narrow(1, start, n).unwrap();
            let out = thinker
                .forward_embeds(&chunk, &positions.slice(start, n))
                .unwrap();
            logits.push(out.logits);
        }
        let ours = Tensor::cat(&logits, 1).unwrap();
        let reference = &load(&goldens().join(config).join("thinker_audio.safetensors"))["logits"];
        assert_close(
            &ours,
            reference,
            &format!("{config} chunked prefill logits"),
        );

        // Rolling the cache back and replaying the tail reproduces it too.
        thinker.text_model().truncate_cache(len - 2).unwrap();
        let tail = thinker
            .forward_embeds(
                &embeds.narrow(1, len - 2, 2).unwrap(),
                &positions.slice(len - 2, 2),
            )
            .unwrap();
        assert_close(
            &tail.logits,
            &reference.narrow(1, len - 2, 2).unwrap(),
            &format!("{config} replay after truncate"),
        );
    }
}

/// The 2 s blocks are independent: encoding block by block and pooling the concatenation equals
/// encoding the whole clip (tiny_a's blocks have an even number of post-conv frames).
#[test]
fn audio_blocks_encode_independently() {
    let checkpoint = Checkpoint::open(&checkpoint_dir("tiny_a")).unwrap();
    let thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
    let encoder = thinker.audio_encoder();
    let features = &load(&goldens().join("features_530.safetensors"))["input_features"];
    let block = encoder.config().block_frames();
    let mut frames = Vec::new();
    let mut start = 0;
    while start < 530 {
        let n = block.min(530 - start);
        let one = features
            .narrow(1, start, n)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .contiguous()
            .unwrap();
        frames.push(encoder.encode_blocks(&one).unwrap());
        start += n;
    }
    let blockwise = encoder
        .pool_and_project(
            &Tensor::cat(&frames, 0).unwrap(),
            AudioEncoderConfig::output_len(530),
        )
        .unwrap();
    let whole = encoder.forward(features).unwrap();
    let diff = max_abs_diff(&blockwise, &whole, "block-by-block vs whole clip");
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = checkpoint_dir("tiny_a");
    let out = out_path("errors");
    let features_70 = goldens().join("features_70.safetensors");
    let err = reference_check::run(&dir, "vision", &features_70, &out).unwrap_err();
    assert!(matches!(err, QwenError::UnknownComponent(_)), "{err}");

    // Audio placeholders whose count does not match the clip's encoder output.
    let text_inputs = goldens().join("tiny_a/thinker_text_inputs.safetensors");
    let ids = &load(&text_inputs)["input_ids"];
    let checkpoint = Checkpoint::open(&dir).unwrap();
    let audio_id = checkpoint.config.audio_token_index as i64;
    let with_audio = Tensor::cat(
        &[ids, &Tensor::new(&[[audio_id; 3]], &Device::Cpu).unwrap()],
        1,
    )
    .unwrap();
    let features = &load(&features_70)["input_features"];
    let bad = out_path("bad_inputs");
    let mismatched = HashMap::from([
        ("input_ids".to_string(), with_audio.clone()),
        ("input_features".to_string(), features.clone()),
    ]);
    candle_core::safetensors::save(&mismatched, &bad).unwrap();
    let err = reference_check::run(&dir, "thinker", &bad, &out).unwrap_err();
    assert!(err.to_string().contains("<|AUDIO|>"), "{err}");

    // Audio placeholders without features.
    candle_core::safetensors::save(
        &HashMap::from([("input_ids".to_string(), with_audio)]),
        &bad,
    )
    .unwrap();
    let err = reference_check::run(&dir, "thinker", &bad, &out).unwrap_err();
    assert!(err.to_string().contains("input_features"), "{err}");

    // A token id outside the vocabulary.
    let vocab = checkpoint.config.text_config.vocab_size as i64;
    let outside = Tensor::new(&[[1i64, vocab]], &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("input_ids".to_string(), outside)]), &bad)
        .unwrap();
    let err = reference_check::run(&dir, "thinker", &bad, &out).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");

    // A directory that is not a checkpoint.
    let err = reference_check::run(&goldens(), "thinker", &text_inputs, &out).unwrap_err();
    assert!(matches!(err, QwenError::MissingFile { .. }), "{err}");

    // Too few frames for one token still answers, with zero embeddings.
    let one_frame = out_path("one_frame_in");
    candle_core::safetensors::save(
        &HashMap::from([(
            "input_features".to_string(),
            features.narrow(1, 0, 1).unwrap().contiguous().unwrap(),
        )]),
        &one_frame,
    )
    .unwrap();
    reference_check::run(&dir, "audio-encoder", &one_frame, &out).unwrap();
    assert_eq!(load(&out)["audio_embeds"].dims(), &[0, 64]);
}
