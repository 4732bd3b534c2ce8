//! Thinker -> Talker as transformers 5.23.0 runs `Qwen2_5OmniForConditionalGeneration.generate`
//! (greedy, 8 text tokens, 64 codes, penalty 1.05, BOS suppressed, speaker Chelsie) on the two tiny
//! full checkpoints of `tools/reference/qwen_generate_golden.py` (tiny_full asked by text,
//! tiny_full_b by voice): the same text ids and the same codec ids, exactly. And the codec
//! stream fed one Thinker token at a time waits (`Pending`) for text it does not have yet, then
//! gives the same codes.

#[path = "../../thinker/tests/support/tensors.rs"]
mod tensors;

use tensors::load;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use parley_talker::qwen::reference_check;

fn dir() -> PathBuf {
    config_dir("tiny_full")
}

fn config_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/goldens/qwen_omni")
        .join(name)
}

fn ids(t: &Tensor) -> Vec<i64> {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap()
}

fn assert_generate_matches(name: &str) {
    let dir = config_dir(name);
    let out = tempfile::NamedTempFile::new().unwrap();
    reference_check::run(
        &dir.join("checkpoint"),
        "generate",
        &dir.join("generate_inputs.safetensors"),
        out.path(),
    )
    .unwrap();
    let ours = load(out.path());
    let golden = load(&dir.join("generate.safetensors"));
    assert_eq!(ids(&ours["text_ids"]), ids(&golden["text_ids"]), "{name}");
    assert_eq!(ids(&ours["codec_ids"]), ids(&golden["codec_ids"]), "{name}");
}

#[test]
fn greedy_generate_gives_the_reference_text_and_codes() {
    assert_generate_matches("tiny_full");
}

#[test]
fn greedy_generate_on_a_spoken_prompt_gives_the_reference_text_and_codes() {
    // Another Thinker layout (rope_parameters, GQA 3:1, 0.5 s blocks), another Talker shape and
    // codec ids, audio positions in the Talker's prompt.
    let inputs = load(&config_dir("tiny_full_b").join("generate_inputs.safetensors"));
    assert_eq!(inputs["input_features"].dims(), [128, 70]);
    assert_generate_matches("tiny_full_b");
}

#[test]
fn the_codec_stream_waits_for_thinker_tokens_and_gives_the_same_codes() {
    use parley_talker::qwen::codec_sampling::CodecSampling;
    use parley_talker::qwen::speakers::Speakers;
    use parley_talker::qwen::talker_model::TalkerModel;
    use parley_talker::qwen::talker_session::{CodecStream, thinker_answer};
    use parley_thinker::qwen::{Checkpoint, QwenThinker, QwenTokenizer};
    use parley_thinker::stream::{Cancel, CancelGuard, Step};

    let ckpt = dir().join("checkpoint");
    let checkpoint = Checkpoint::open(&ckpt).unwrap();
    let mut thinker = QwenThinker::load(&checkpoint, &Device::Cpu).unwrap();
    let mut talker = TalkerModel::load(&ckpt, &Device::Cpu).unwrap();
    let tokenizer = QwenTokenizer::from_checkpoint_dir(&ckpt, &checkpoint.config).unwrap();
    let speakers = Speakers::from_torch(&ckpt.join("spk_dict.pt")).unwrap();
    let prompt_ids: Vec<u32> = ids(&load(&dir().join("generate_inputs.safetensors"))["input_ids"])
        .into_iter()
        .map(|id| id as u32)
        .collect();
    let special = tokenizer.special();
    let answer = thinker_answer(
        &mut thinker,
        &prompt_ids,
        None,
        speakers.get("Chelsie").unwrap().bos_token,
        &[special.im_end, special.end_of_text],
        8,
    )
    .unwrap();
    let mut stream = CodecStream::start(
        &mut talker,
        &thinker,
        &answer.prompt,
        CodecSampling::greedy(),
        64,
    )
    .unwrap();
    // The Thinker's later tokens arrive only when the Talker asks for them.
    let mut rest = answer.rest.clone().into_iter();
    let (mut codes, mut waits) = (Vec::new(), 0);
    let never = CancelGuard::never();
    loop {
        match stream.next_code(&mut talker, &never).unwrap() {
            Step::Ready(code) => codes.push(code),
            Step::Pending => {
                waits += 1;
                match rest.next() {
                    Some(state) => stream.push_text(state),
                    None => stream.finish_text(),
                }
            }
            Step::Done => break,
        }
    }
    assert_eq!(waits, answer.rest.len() + 1);
    let golden: Vec<u32> = ids(&load(&dir().join("generate.safetensors"))["codec_ids"])
        .into_iter()
        .map(|id| id as u32)
        .collect();
    assert_eq!(codes, golden);

    // A cancelled answer stops before the next model step.
    let mut stream = CodecStream::start(
        &mut talker,
        &thinker,
        &answer.prompt,
        CodecSampling::greedy(),
        64,
    )
    .unwrap();
    let cancel = Cancel::new();
    let guard = cancel.guard();
    assert!(matches!(
        stream.next_code(&mut talker, &guard).unwrap(),
        Step::Ready(_)
    ));
    cancel.cancel_all();
    stream.finish_text();
    assert!(matches!(
        stream.next_code(&mut talker, &guard).unwrap(),
        Step::Done
    ));
    assert_eq!(stream.codes(), 1);
}
