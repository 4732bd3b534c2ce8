//! Streaming Token2Wav on the tiny checkpoints of `tools/reference/qwen_token2wav_goldens.py`:
//! codes arriving a few at a time give the audio of the reference's chunked algorithm (same
//! noise) within 1e-3, the first chunk comes after 36 codes, chunk joins do not click, and the
//! difference from synthesizing the whole utterance at once is bounded.

#[path = "../../thinker/tests/support/tensors.rs"]
mod tensors;

use tensors::load;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use parley_talker::qwen::sampler::SamplerSettings;
use parley_talker::qwen::token2wav::Token2Wav;
use parley_talker::qwen::token2wav_stream::Token2WavStream;
use parley_thinker::stream::{CancelGuard, Step};

fn dir(config: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens/qwen_token2wav")
        .join(config)
}

#[test]
fn streamed_audio_matches_the_chunked_reference_and_stays_near_offline() {
    for config in ["t2w_a", "t2w_b"] {
        let model = Token2Wav::load(&dir(config).join("checkpoint"), &Device::Cpu).unwrap();
        let inputs = load(&dir(config).join("token2wav_stream_inputs.safetensors"));
        let golden = load(&dir(config).join("token2wav_stream.safetensors"));
        let codes: Vec<u32> = inputs["code"]
            .flatten_all()
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let speaker = model
            .dit
            .speaker_conditioning(&inputs["cond"], &inputs["ref_mel"])
            .unwrap();
        let mut stream = Token2WavStream::new(inputs["noise"].clone(), SamplerSettings::default());
        let never = CancelGuard::never();
        let mut audio: Vec<f32> = Vec::new();
        let mut joins = Vec::new();
        let mut first_chunk_at = None;
        let mut drain = |stream: &mut Token2WavStream, pushed: usize, audio: &mut Vec<f32>| {
            while let Step::Ready(chunk) = stream.next_audio(&model, &speaker, &never).unwrap() {
                first_chunk_at.get_or_insert(pushed);
                if !audio.is_empty() {
                    joins.push(audio.len());
                }
                audio.extend(chunk);
            }
        };
        for (i, piece) in codes.chunks(7).enumerate() {
            stream.push_codes(piece);
            drain(
                &mut stream,
                (i * 7 + piece.len()).min(codes.len()),
                &mut audio,
            );
        }
        stream.finish();
        drain(&mut stream, codes.len(), &mut audio);
        assert!(matches!(
            stream.next_audio(&model, &speaker, &never).unwrap(),
            Step::Done
        ));
        // 36 codes = 48 frames + 24 of look-ahead; codes arrive 7 at a time, so at 42.
        assert_eq!(first_chunk_at, Some(42), "{config}");

        let reference = golden["wav"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(audio.len(), reference.len(), "{config}");
        let worst = audio
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{config}: streamed vs chunked reference {worst:.2e}");
        assert!(worst < 1e-3, "{config}: {worst}");

        // Joins: no step across a chunk boundary larger than the largest step inside chunks.
        let step = |i: usize| (audio[i] - audio[i - 1]).abs();
        let inside = (1..audio.len())
            .filter(|i| !joins.contains(i))
            .map(step)
            .fold(0f32, f32::max);
        let at_joins = joins.iter().map(|&i| step(i)).fold(0f32, f32::max);
        assert!(
            at_joins <= inside,
            "{config}: join step {at_joins} vs {inside}"
        );

        // Against the whole utterance at once (same noise): bounded, documented in the module.
        let offline = golden["offline_wav"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        let difference: Vec<f32> = audio.iter().zip(&offline).map(|(a, b)| a - b).collect();
        let ratio = rms(&difference) / rms(&offline);
        eprintln!(
            "{config}: streamed vs offline RMS difference {:.3}% of the signal",
            100.0 * ratio
        );
        assert!(ratio < 0.05, "{config}: {ratio}");
    }
}
