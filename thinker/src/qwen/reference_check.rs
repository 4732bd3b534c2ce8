//! `parley reference-check`: run one component of a checkpoint on tensors from a safetensors
//! file and write its outputs to another, so any checkpoint (tiny or real) can be compared with
//! transformers.
//!
//! - `audio-encoder`: in `input_features` f32 `[num_mel_bins, T]` (T >= 1, no padding);
//!   out `audio_embeds` f32 `[N, output_dim]`.
//! - `thinker`: in `input_ids` i64 `[1, L]` and, when the ids hold `<|AUDIO|>` tokens,
//!   `input_features` f32 `[num_mel_bins, T]` whose encoder output length equals their count;
//!   out `logits` f32 `[1, L, vocab]` and `hidden_states` f32 `[1, L, hidden]` (after the final norm).

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

use super::QwenError;
use super::audio_encoder::AudioEncoder;
use super::checkpoint::{AUDIO_TOWER_PREFIX, Checkpoint};
use super::thinker::QwenThinker;

pub const AUDIO_ENCODER: &str = "audio-encoder";
pub const THINKER: &str = "thinker";

/// Runs `component` of the checkpoint in `checkpoint_dir` on `inputs` and writes `output`.
pub fn run(
    checkpoint_dir: &Path,
    component: &str,
    inputs: &Path,
    output: &Path,
) -> Result<(), QwenError> {
    if component != AUDIO_ENCODER && component != THINKER {
        return Err(QwenError::UnknownComponent(component.to_string()));
    }
    let device = Device::Cpu;
    let checkpoint = Checkpoint::open(checkpoint_dir)?;
    let inputs = read_tensors(inputs, &device)?;
    let outputs: HashMap<String, Tensor> = if component == AUDIO_ENCODER {
        let features = features(&inputs)?.ok_or_else(|| missing("input_features"))?;
        let vb = checkpoint.var_builder(&device, candle_core::DType::F32)?;
        let encoder =
            AudioEncoder::load(&checkpoint.config.audio_config, vb.pp(AUDIO_TOWER_PREFIX))?;
        HashMap::from([("audio_embeds".to_string(), encoder.forward(&features)?)])
    } else {
        let ids = input_ids(&inputs)?;
        // Parity runs in f32 on the CPU, like the goldens.
        let mut thinker =
            QwenThinker::load_with_dtype(&checkpoint, &device, candle_core::DType::F32)?;
        let has_audio = ids.contains(&thinker.config().audio_token_index);
        let features = features(&inputs)?;
        if has_audio && features.is_none() {
            return Err(missing("input_features"));
        }
        if !has_audio && features.is_some() {
            return Err(QwenError::bad_input(
                "input_features",
                "given, but input_ids hold no <|AUDIO|> token to place them",
            ));
        }
        let out = thinker.prefill(&ids, features.as_ref())?;
        HashMap::from([
            ("logits".to_string(), out.logits),
            ("hidden_states".to_string(), out.hidden_states),
        ])
    };
    write_tensors(&outputs, output)
}

/// Writes the outputs file.
pub fn write_tensors(outputs: &HashMap<String, Tensor>, output: &Path) -> Result<(), QwenError> {
    candle_core::safetensors::save(outputs, output).map_err(|e| QwenError::Io {
        path: output.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn missing(name: &str) -> QwenError {
    QwenError::bad_input(name, "missing from the inputs file")
}

/// The tensors of an inputs file (a clear error when it is missing or not safetensors).
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, QwenError> {
    if !path.is_file() {
        return Err(QwenError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    candle_core::safetensors::load(path, device).map_err(|e| QwenError::BadInput {
        name: path.display().to_string(),
        message: format!("not a readable safetensors file: {e}"),
    })
}

/// `input_features`, f32 `[bins, T]` with T >= 1, if present.
fn features(inputs: &HashMap<String, Tensor>) -> Result<Option<Tensor>, QwenError> {
    let Some(t) = inputs.get("input_features") else {
        return Ok(None);
    };
    if t.dtype() != DType::F32 || t.rank() != 2 || t.dim(1)? == 0 {
        return Err(QwenError::bad_input(
            "input_features",
            format!(
                "expected f32 [num_mel_bins, T >= 1], got {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    Ok(Some(t.clone()))
}

/// `input_ids`, i64 `[1, L]` with L >= 1 and no negative id, as u32.
pub fn input_ids(inputs: &HashMap<String, Tensor>) -> Result<Vec<u32>, QwenError> {
    let t = inputs
        .get("input_ids")
        .ok_or_else(|| missing("input_ids"))?;
    if t.dtype() != DType::I64 || t.rank() != 2 || t.dim(0)? != 1 || t.dim(1)? == 0 {
        return Err(QwenError::bad_input(
            "input_ids",
            format!(
                "expected i64 [1, L >= 1], got {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    t.squeeze(0)?
        .to_vec1::<i64>()?
        .into_iter()
        .map(|id| {
            u32::try_from(id)
                .map_err(|_| QwenError::bad_input("input_ids", format!("invalid token id {id}")))
        })
        .collect()
}
