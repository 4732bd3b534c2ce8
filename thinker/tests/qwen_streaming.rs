//! The user's speech streamed into the Qwen Thinker: features from samples like transformers'
//! WhisperFeatureExtractor, block-by-block encoding plus chunked prefill equal to one offline pass,
//! and the feature normalization's streaming rule bounded against the offline clip maximum.

#[path = "support/tensors.rs"]
mod tensors;

use tensors::{load, max_abs_diff, token_ids};

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use parley_thinker::qwen::audio_stream::StreamingAudioEncoder;
use parley_thinker::qwen::features::{self, StreamingFeatures};
use parley_thinker::qwen::{Checkpoint, QwenThinker};
use parley_thinker::stream::{Step, StreamingModule};
use parley_thinker::whisper::mel::LogMel;

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/qwen")
}

fn thinker(config: &str) -> QwenThinker {
    let checkpoint = Checkpoint::open(&goldens().join(config).join("checkpoint")).unwrap();
    QwenThinker::load(&checkpoint, &Device::Cpu).unwrap()
}

fn golden_samples() -> (Vec<f32>, Tensor) {
    let golden = load(&goldens().join("log_mel.safetensors"));
    (
        golden["samples"].to_vec1::<f32>().unwrap(),
        golden["input_features"].clone(),
    )
}

/// A clip cut off loud (`qwen_features_golden.py`): the first 0.3 s with a loud 2 kHz ending, so
/// the reference's maximum lies in a frame past the kept ones. Returns it and its features.
fn loud_end_clip() -> (Vec<f32>, Tensor) {
    const LOUD_END: [f32; 8] = [0.0, 0.6, 0.9, 0.6, 0.0, -0.6, -0.9, -0.6];
    let (samples, _) = golden_samples();
    let mut clip = samples[..4800].to_vec();
    for (i, v) in clip[4740..].iter_mut().enumerate() {
        *v = LOUD_END[i % 8];
    }
    let golden = load(&goldens().join("log_mel.safetensors"));
    (clip, golden["loud_end_features"].clone())
}

/// Splits `n` into pieces of the given sizes, cycling (the last piece takes the rest).
fn pieces(n: usize, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for size in sizes.iter().cycle() {
        if start >= n {
            break;
        }
        let end = (start + size).min(n);
        out.push(start..end);
        start = end;
    }
    out
}

#[test]
fn offline_features_match_the_whisper_feature_extractor() {
    let (samples, reference) = golden_samples();
    let mel = LogMel::new(128, features::SAMPLE_RATE);
    let ours = features::features(&mel, &samples, &Device::Cpu).unwrap();
    assert_eq!(ours.dims(), reference.dims());
    let diff = max_abs_diff(&ours, &reference);
    eprintln!("features vs WhisperFeatureExtractor: {diff:.2e}");
    assert!(diff < 1e-4, "{diff}");

    // Cut off loud: the maximum is in a frame the mask drops (0.26 off if it were left out).
    let (clip, reference) = loud_end_clip();
    let ours = features::features(&mel, &clip, &Device::Cpu).unwrap();
    let diff = max_abs_diff(&ours, &reference);
    eprintln!("loud ending vs WhisperFeatureExtractor: {diff:.2e}");
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn a_clip_cut_off_loud_streams_to_the_offline_embeddings() {
    // 30 frames, less than one of tiny_b's 50-frame blocks: all of it is encoded at the end, at
    // the clip's maximum, which lies past the last kept frame.
    let thinker = thinker("tiny_b");
    let (clip, reference) = loud_end_clip();
    let offline = thinker.audio_encoder().forward(&reference).unwrap();
    let mut stream = StreamingAudioEncoder::new(thinker.shared_audio_encoder());
    for range in pieces(clip.len(), &[1000, 3]) {
        assert!(matches!(stream.step(&clip[range]).unwrap(), Step::Pending));
    }
    let streamed = stream.finish().unwrap().unwrap();
    let diff = max_abs_diff(&streamed, &offline);
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn streamed_raw_frames_do_not_depend_on_the_chunking() {
    let (samples, _) = golden_samples();
    let mel = LogMel::new(128, features::SAMPLE_RATE);
    let frames = features::frames_for(samples.len());
    let offline = mel.log10_frames(&samples, 0, 0, frames);
    for sizes in [&[1234, 7, 30000][..], &[160], &[samples.len()]] {
        let mut stream = StreamingFeatures::new(128);
        let mut columns: Vec<Vec<f32>> = Vec::new();
        let mut take = |out: Option<(Vec<f32>, usize)>| {
            if let Some((values, n)) = out {
                for t in 0..n {
                    columns.push((0..128).map(|b| values[b * n + t]).collect());
                }
            }
        };
        for range in pieces(samples.len(), sizes) {
            take(stream.push(&samples[range]));
        }
        take(stream.finish());
        assert_eq!(columns.len(), frames);
        for (t, column) in columns.iter().enumerate() {
            for (b, v) in column.iter().enumerate() {
                assert_eq!(*v, offline[b * frames + t], "frame {t} bin {b}, {sizes:?}");
            }
        }
    }
}

#[test]
fn block_by_block_encoding_equals_the_offline_encoder() {
    for config in ["tiny_a", "tiny_b", "tiny_r"] {
        let thinker = thinker(config);
        for frames in [70, 200, 530] {
            let features =
                load(&goldens().join(format!("features_{frames}.safetensors")))["input_features"]
                    .clone();
            let offline = thinker.audio_encoder().forward(&features).unwrap();
            let mut stream = StreamingAudioEncoder::new(thinker.shared_audio_encoder());
            let mut parts = Vec::new();
            for range in pieces(frames, &[37, 1, 120]) {
                let columns = features.narrow(1, range.start, range.len()).unwrap();
                parts.extend(stream.push_features(&columns).unwrap());
            }
            parts.extend(stream.finish().unwrap());
            let streamed = Tensor::cat(&parts, 0).unwrap();
            let diff = max_abs_diff(&streamed, &offline);
            assert!(diff < 1e-5, "{config} {frames} frames: {diff}");
        }
    }
}

/// `<text> <|audio_bos|> <|AUDIO|> x n <|audio_eos|> <text>` with the golden prompt's text ids.
fn prompt(config: &str, thinker: &QwenThinker, audio_tokens: usize) -> (Vec<u32>, Vec<u32>) {
    let ids = token_ids(
        &load(
            &goldens()
                .join(config)
                .join("thinker_audio_inputs.safetensors"),
        )["input_ids"],
    );
    let c = thinker.config();
    let mut before: Vec<u32> = ids[..7].to_vec();
    before.push(c.audio_start_token_id);
    let mut after = vec![c.audio_end_token_id];
    after.extend(&ids[ids.len() - 6..]);
    let mut whole = before.clone();
    whole.extend(std::iter::repeat_n(c.audio_token_index, audio_tokens));
    whole.extend(&after);
    (whole, [before, after].concat())
}

#[test]
fn streamed_blocks_and_chunked_prefill_equal_one_offline_pass() {
    for config in ["tiny_a", "tiny_b"] {
        for frames in [70, 200, 530] {
            let features =
                load(&goldens().join(format!("features_{frames}.safetensors")))["input_features"]
                    .clone();
            let mut offline_thinker = thinker(config);
            let tokens = offline_thinker
                .audio_encoder()
                .forward(&features)
                .unwrap()
                .dim(0)
                .unwrap();
            let (whole, text) = prompt(config, &offline_thinker, tokens);
            let offline = offline_thinker.prefill(&whole, Some(&features)).unwrap();

            // The prompt up to <|audio_bos|>, then each block as the user speaks, then the rest.
            let mut thinker = thinker(config);
            let (before, after) = text.split_at(8);
            let mut hidden = vec![thinker.prefill(before, None).unwrap().hidden_states];
            let mut logits = vec![];
            let mut stream = StreamingAudioEncoder::new(thinker.shared_audio_encoder());
            for range in pieces(frames, &[61, 100, 3]) {
                let columns = features.narrow(1, range.start, range.len()).unwrap();
                if let Some(embeddings) = stream.push_features(&columns).unwrap() {
                    let out = thinker.prefill_audio(&embeddings).unwrap();
                    hidden.push(out.hidden_states);
                    logits.push(out.logits);
                }
            }
            if let Some(embeddings) = stream.finish().unwrap() {
                hidden.push(thinker.prefill_audio(&embeddings).unwrap().hidden_states);
            }
            let end = thinker.prefill(after, None).unwrap();
            hidden.push(end.hidden_states);
            let hidden = Tensor::cat(&hidden, 1).unwrap();
            let diff = max_abs_diff(&hidden, &offline.hidden_states);
            let last = |t: &Tensor| t.narrow(1, t.dim(1).unwrap() - after.len(), after.len());
            let logit_diff = max_abs_diff(&end.logits, &last(&offline.logits).unwrap());
            eprintln!("{config} {frames} frames: hidden {diff:.2e}, logits {logit_diff:.2e}");
            assert!(diff < 1e-4 && logit_diff < 1e-4, "{config} {frames}");
            assert_eq!(thinker.text_model().cache_len(), whole.len());
        }
    }
}

#[test]
fn samples_in_any_chunking_give_the_same_embeddings_within_the_rule_bound_of_offline() {
    // tiny_b encodes 0.5 s blocks, so the 1.1 s clip has two whole blocks before the end.
    let thinker = thinker("tiny_b");
    let (samples, reference_features) = golden_samples();
    let run = |sizes: &[usize]| -> Tensor {
        let mut stream = StreamingAudioEncoder::new(thinker.shared_audio_encoder());
        let mut parts = Vec::new();
        for range in pieces(samples.len(), sizes) {
            if let Step::Ready(e) = stream.step(&samples[range]).unwrap() {
                parts.push(e);
            }
        }
        assert_eq!(stream.blocks_encoded(), 2);
        parts.extend(stream.finish().unwrap());
        Tensor::cat(&parts, 0).unwrap()
    };
    let at_once = run(&[samples.len()]);
    for sizes in [&[1234, 7, 30000][..], &[160], &[400, 401]] {
        let streamed = run(sizes);
        assert_eq!(max_abs_diff(&streamed, &at_once), 0.0, "{sizes:?}");
    }
    // Against the offline features (whole-clip maximum): the rule only changes values more than
    // 80 dB below the clip's loudest frame, in blocks before the one holding it. From that block
    // on the embeddings are the offline ones.
    let offline = thinker
        .audio_encoder()
        .forward(&reference_features)
        .unwrap();
    let mel = LogMel::new(128, features::SAMPLE_RATE);
    let frames = features::frames_for(samples.len());
    let raw = mel.log10_frames(&samples, 0, 0, frames);
    let loudest = (0..raw.len())
        .max_by(|&a, &b| raw[a].total_cmp(&raw[b]))
        .unwrap()
        % frames;
    let block = thinker.config().audio_config.block_frames();
    // Post-conv frames per block, and the first token pooling two frames of the loud block.
    let per_block = block.div_ceil(2);
    let first_exact = (loudest / block * per_block).div_ceil(2);
    let tokens = offline.dim(0).unwrap();
    let tail = |t: &Tensor| t.narrow(0, first_exact, tokens - first_exact).unwrap();
    let exact = max_abs_diff(&tail(&at_once), &tail(&offline));
    let head = max_abs_diff(
        &at_once.narrow(0, 0, first_exact).unwrap(),
        &offline.narrow(0, 0, first_exact).unwrap(),
    );
    eprintln!(
        "loudest frame {loudest}: tokens {first_exact}.. differ by {exact:.2e}, earlier tokens by \
         {head:.3e} (embeddings up to {:.2})",
        offline
            .abs()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    );
    assert!(
        first_exact > 0 && first_exact < tokens,
        "{first_exact} of {tokens}"
    );
    assert!(exact < 1e-4, "{exact}");
    assert!(head > 0.0 && head < 1.0, "{head}");
}

/// The streaming rule on features: the blocks encoded while samples arrive are normalized at the
/// running maximum up to their end, the rest at the clip's. Checks the encoder applies exactly
/// that, and bounds it against the offline features: values differ only where the offline ones
/// sit on their floor (more than 80 dB below the clip's loudest frame), the streamed ones lower,
/// by at most (clip max - running max) / 4.
#[test]
fn the_streaming_rule_changes_only_features_far_below_the_peak() {
    let thinker = thinker("tiny_b");
    let (samples, reference) = golden_samples();
    let mut stream = StreamingAudioEncoder::new(thinker.shared_audio_encoder());
    let mut parts = Vec::new();
    if let Step::Ready(e) = stream.step(&samples).unwrap() {
        parts.push(e);
    }
    let blocks_while_talking = stream.blocks_encoded();
    parts.extend(stream.finish().unwrap());
    let from_samples = Tensor::cat(&parts, 0).unwrap();

    // The rule, written out on the raw frames.
    let mel = LogMel::new(128, features::SAMPLE_RATE);
    let frames = features::frames_for(samples.len());
    let raw = mel.log10_frames(&samples, 0, 0, frames);
    let column_max = |range: std::ops::Range<usize>| {
        (0..128)
            .flat_map(|b| raw[b * frames + range.start..b * frames + range.end].iter())
            .copied()
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let clip_max = column_max(0..frames);
    let block = thinker.config().audio_config.block_frames();
    let mut streamed = vec![0f32; 128 * frames];
    let mut smallest_max = clip_max;
    for t in 0..frames {
        let max = if t < blocks_while_talking * block {
            column_max(0..(t / block + 1) * block)
        } else {
            clip_max
        };
        smallest_max = smallest_max.min(max);
        for b in 0..128 {
            streamed[b * frames + t] = (raw[b * frames + t].max(max - 8.0) + 4.0) / 4.0;
        }
    }
    let streamed = Tensor::from_vec(streamed, (128, frames), &Device::Cpu).unwrap();

    // The encoder applies the rule.
    let mut by_features = StreamingAudioEncoder::new(thinker.shared_audio_encoder());
    let mut parts: Vec<Tensor> = by_features
        .push_features(&streamed)
        .unwrap()
        .into_iter()
        .collect();
    parts.extend(by_features.finish().unwrap());
    let diff = max_abs_diff(&Tensor::cat(&parts, 0).unwrap(), &from_samples);
    assert!(diff < 1e-5, "{diff}");

    // Against the reference's offline features.
    let offline = reference.to_vec2::<f32>().unwrap();
    let streamed = streamed.to_vec2::<f32>().unwrap();
    let floor = (clip_max - 8.0 + 4.0) / 4.0;
    let bound = (clip_max - smallest_max) / 4.0;
    let (mut largest, mut changed) = (0f32, 0usize);
    for (offline_row, streamed_row) in offline.iter().zip(&streamed) {
        for (&o, &s) in offline_row.iter().zip(streamed_row) {
            let d = o - s;
            if d.abs() > 1e-4 {
                changed += 1;
                assert!(
                    (o - floor).abs() < 1e-4,
                    "offline {o} above the floor {floor}"
                );
                assert!(d > 0.0 && d <= bound + 1e-4, "{d} vs bound {bound}");
            }
            largest = largest.max(d.abs());
        }
    }
    eprintln!(
        "{blocks_while_talking} blocks streamed; {changed} of {} values changed, by up to \
         {largest:.3} (bound {bound:.3}: running max {:.1} dB under the clip's), all on the \
         offline floor (80 dB under the peak)",
        128 * frames,
        10.0 * (clip_max - smallest_max)
    );
    assert_eq!(blocks_while_talking, 2);
    assert!(changed > 0);
}
