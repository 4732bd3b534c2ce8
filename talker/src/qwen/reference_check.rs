//! `parley reference-check` for the speech side of a Qwen2.5-Omni checkpoint (the same contract
//! as the Thinker's components in `parley_thinker::qwen::reference_check`):
//!
//! - `talker`: in `inputs_embeds` f32 `[1, L, embedding_size]` (Thinker space, before
//!   `thinker_to_talker_proj`) and `position_ids` i64 `[3, 1, L]`; out `logits` f32 `[1, L, vocab]`.
//! - `generate`: in `input_ids` i64 `[1, L]` (and `input_features` f32 `[128, T]` when the ids
//!   hold `<|AUDIO|>`); greedy Thinker for up to 8 new tokens, greedy Talker for up to 64 codes
//!   with the reference's penalty, EOS and suppression, speaker Chelsie; out `text_ids` i64
//!   `[1, n]` and `codec_ids` i64 `[1, m]` (the codes the reference hands to Token2Wav).
//! - `dit`: in `x` f32 `[1, N, 80]`, `code` i64 `[1, N/2]`, `cond` f32 `[1, enc_emb_dim]`,
//!   `ref_mel` f32 `[1, T, 80]`, `t` f32 `[1]`; out `v_cond` and `v_uncond` f32 `[1, N, 80]`.
//! - `bigvgan`: in `mel` f32 `[1, 80, T]`; out `wav` f32 `[1, S]`.
//! - `token2wav`: in `code` i64 `[1, n]`, `cond`, `ref_mel`, `noise` f32 `[1, 2n, 80]` (the
//!   sampler's initial state); 10 steps, RK4, guidance 0.5, sway -1; out `mel` f32 `[1, 80, 2n]`
//!   and `wav` f32 `[1, S]`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use parley_thinker::qwen::QwenError;
use parley_thinker::qwen::reference_check::{input_ids, read_tensors, write_tensors};
use parley_thinker::stream::CancelGuard;

use super::sampler::{SampleError, SamplerSettings};
use super::speakers::{DEFAULT_SPEAKER, Speakers};
use super::talker_model::TalkerModel;
use super::talker_session::generate;
use super::token2wav::Token2Wav;
use parley_thinker::qwen::MropePositions;
use parley_thinker::qwen::{Checkpoint, QwenThinker, QwenTokenizer};

pub const TALKER: &str = "talker";
pub const GENERATE: &str = "generate";
/// `generate`'s budgets (the contract's).
const GENERATE_TEXT_TOKENS: usize = 8;
const GENERATE_CODES: usize = 64;
pub const DIT: &str = "dit";
pub const BIGVGAN: &str = "bigvgan";
pub const TOKEN2WAV: &str = "token2wav";

/// Whether this module runs `component`.
pub fn handles(component: &str) -> bool {
    [TALKER, GENERATE, DIT, BIGVGAN, TOKEN2WAV].contains(&component)
}

pub fn run(
    checkpoint_dir: &Path,
    component: &str,
    inputs: &Path,
    output: &Path,
) -> Result<(), QwenError> {
    if !handles(component) {
        return Err(QwenError::UnknownComponent(component.to_string()));
    }
    let device = Device::Cpu;
    let inputs = read_tensors(inputs, &device)?;
    if component == TALKER {
        let mut talker = TalkerModel::load(checkpoint_dir, &device)?;
        let embeds = f32_input(&inputs, "inputs_embeds", 3)?;
        let positions = positions(&inputs, embeds.dim(1)?)?;
        let logits = talker.forward(&embeds, &positions)?;
        return write_tensors(&HashMap::from([("logits".to_string(), logits)]), output);
    }
    if component == GENERATE {
        return write_tensors(&run_generate(checkpoint_dir, &inputs)?, output);
    }
    let model = Token2Wav::load(checkpoint_dir, &device)?;
    let outputs: HashMap<String, Tensor> = match component {
        DIT => {
            let x = f32_input(&inputs, "x", 3)?;
            let frames = x.dim(1)?;
            let codes = codes(&inputs, &model)?;
            check_frames(frames, &codes, &model)?;
            let speaker = model.dit.speaker_conditioning(
                &f32_input(&inputs, "cond", 2)?,
                &f32_input(&inputs, "ref_mel", 3)?,
            )?;
            let t = f32_input(&inputs, "t", 1)?.to_vec1::<f32>()?;
            let t = *t
                .first()
                .ok_or_else(|| QwenError::bad_input("t", "empty"))?;
            let embeddings = model.dit.code_embeddings(&codes)?;
            let v = model.dit.velocity(&x, &embeddings, &speaker, t)?;
            HashMap::from([("v_cond".into(), v.cond), ("v_uncond".into(), v.uncond)])
        }
        BIGVGAN => {
            let mel = f32_input(&inputs, "mel", 3)?;
            HashMap::from([("wav".into(), model.bigvgan.forward(&mel)?)])
        }
        _ => {
            let codes = codes(&inputs, &model)?;
            let noise = f32_input(&inputs, "noise", 3)?;
            check_frames(noise.dim(1)?, &codes, &model)?;
            let speaker = model.dit.speaker_conditioning(
                &f32_input(&inputs, "cond", 2)?,
                &f32_input(&inputs, "ref_mel", 3)?,
            )?;
            let (mel, wav) = model
                .synthesize(
                    &codes,
                    &speaker,
                    &noise,
                    &SamplerSettings::default(),
                    &CancelGuard::never(),
                )
                .map_err(|e| match e {
                    SampleError::Model(e) => QwenError::Candle(e),
                    SampleError::Cancelled => QwenError::bad_input("token2wav", "cancelled"),
                })?;
            HashMap::from([("mel".into(), mel), ("wav".into(), wav)])
        }
    };
    write_tensors(&outputs, output)
}

fn f32_input(
    inputs: &HashMap<String, Tensor>,
    name: &str,
    rank: usize,
) -> Result<Tensor, QwenError> {
    let t = inputs
        .get(name)
        .ok_or_else(|| QwenError::bad_input(name, "missing from the inputs file"))?;
    if t.dtype() != DType::F32 || t.rank() != rank || t.dims().contains(&0) {
        return Err(QwenError::bad_input(
            name,
            format!(
                "expected a non-empty f32 tensor of rank {rank}, got {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    Ok(t.clone())
}

/// `code` i64 `[1, n]` with every id in the codec table, as u32.
fn codes(inputs: &HashMap<String, Tensor>, model: &Token2Wav) -> Result<Tensor, QwenError> {
    let t = inputs
        .get("code")
        .ok_or_else(|| QwenError::bad_input("code", "missing from the inputs file"))?;
    if t.dtype() != DType::I64 || t.rank() != 2 || t.dim(0)? != 1 || t.dim(1)? == 0 {
        return Err(QwenError::bad_input(
            "code",
            format!(
                "expected i64 [1, n >= 1], got {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    let table = model.dit.config().num_embeds + 1;
    let ids = t.squeeze(0)?.to_vec1::<i64>()?;
    if let Some(bad) = ids.iter().find(|&&id| id < 0 || id as usize >= table) {
        return Err(QwenError::bad_input(
            "code",
            format!(
                "code {bad} is outside the codec table (0..{table}); strip EOS/pad codes first"
            ),
        ));
    }
    let ids: Vec<u32> = ids.into_iter().map(|id| id as u32).collect();
    let n = ids.len();
    Ok(Tensor::from_vec(ids, (1, n), &Device::Cpu)?)
}

fn check_frames(frames: usize, codes: &Tensor, model: &Token2Wav) -> Result<(), QwenError> {
    let expected = codes.dim(1)? * model.dit.config().repeats;
    if frames != expected {
        return Err(QwenError::bad_input(
            "code",
            format!(
                "{} codes make {expected} mel frames, but the frames are {frames}",
                codes.dim(1)?
            ),
        ));
    }
    Ok(())
}

/// `position_ids` i64 `[3, 1, L]`: the temporal, height and width streams.
fn positions(inputs: &HashMap<String, Tensor>, len: usize) -> Result<MropePositions, QwenError> {
    let t = inputs
        .get("position_ids")
        .ok_or_else(|| QwenError::bad_input("position_ids", "missing from the inputs file"))?;
    if t.dtype() != DType::I64 || t.dims() != [3, 1, len] {
        return Err(QwenError::bad_input(
            "position_ids",
            format!(
                "expected i64 [3, 1, {len}], got {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    let streams = t.squeeze(1)?.to_vec2::<i64>()?;
    Ok(MropePositions {
        temporal: streams[0].clone(),
        height: streams[1].clone(),
        width: streams[2].clone(),
    })
}

/// Greedy Thinker + Talker on the checkpoint, as transformers' `generate`.
fn run_generate(
    dir: &Path,
    inputs: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, QwenError> {
    let device = Device::Cpu;
    let checkpoint = Checkpoint::open(dir)?;
    let mut thinker = QwenThinker::load_with_dtype(&checkpoint, &device, DType::F32)?;
    let mut talker = TalkerModel::load(dir, &device)?;
    let tokenizer = QwenTokenizer::from_checkpoint_dir(dir, &checkpoint.config)?;
    let speakers = Speakers::from_torch(&dir.join("spk_dict.pt"))
        .map_err(|e| QwenError::bad_input("spk_dict.pt", e.to_string()))?;
    let speaker = speakers
        .get(DEFAULT_SPEAKER)
        .map_err(|e| QwenError::bad_input("spk_dict.pt", e.to_string()))?;
    let ids = input_ids(inputs)?;
    let features = inputs.get("input_features");
    let special = tokenizer.special();
    let (text, codes) = generate(
        &mut thinker,
        &mut talker,
        &ids,
        features,
        speaker.bos_token,
        &[special.im_end, special.end_of_text],
        GENERATE_TEXT_TOKENS,
        GENERATE_CODES,
    )?;
    let as_row = |v: &[u32]| -> Result<Tensor, QwenError> {
        let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
        let n = v.len();
        Ok(Tensor::from_vec(v, (1, n), &device)?)
    };
    Ok(HashMap::from([
        ("text_ids".to_string(), as_row(&text)?),
        ("codec_ids".to_string(), as_row(&codes)?),
    ]))
}
