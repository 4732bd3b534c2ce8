//! CTranslate2 Whisper (`model.bin`, spec `WhisperSpec`) → Hugging Face Whisper safetensors.
//!
//! The file is a flat list of named tensors: `version u32 | spec name (u16 len + bytes) | revision
//! u32 | count u32`, then per tensor `name | rank u8 | dims u32… | dtype u8 | nbytes u32 | data`,
//! then aliases. The converter renames tensors to the names candle-transformers' whisper model
//! expects, splits CTranslate2's fused attention projections, and writes the matching HF
//! `config.json`. Weights keep their stored precision (fp16 in the published file), so the
//! conversion is exact.

use std::collections::BTreeMap;
use std::path::Path;

use crate::ModelError;
use crate::tensor_file::{DType, NamedTensor, write_safetensors};

/// Converts `model_bin` (with the CTranslate2 `config.json` beside it in `ct2_config`) into
/// `out_dir/model.safetensors` and `out_dir/config.json`.
pub fn convert_whisper(
    model_bin: &Path,
    ct2_config: &Path,
    out_dir: &Path,
) -> Result<(), ModelError> {
    let bytes = std::fs::read(model_bin).map_err(|e| ModelError::io(model_bin, e))?;
    let ct2 = parse(&bytes).map_err(|msg| ModelError::corrupt(model_bin, msg))?;
    let config_text =
        std::fs::read_to_string(ct2_config).map_err(|e| ModelError::io(ct2_config, e))?;
    let ct2_cfg: serde_json::Value = serde_json::from_str(&config_text)
        .map_err(|e| ModelError::corrupt(ct2_config, e.to_string()))?;

    let (tensors, config) =
        to_hf_whisper(&ct2, &ct2_cfg).map_err(|msg| ModelError::corrupt(model_bin, msg))?;
    write_safetensors(&out_dir.join("model.safetensors"), &tensors)?;
    let config_path = out_dir.join("config.json");
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| ModelError::corrupt(&config_path, e.to_string()))?;
    std::fs::write(&config_path, text).map_err(|e| ModelError::io(&config_path, e))?;
    Ok(())
}

/// One tensor of a CTranslate2 model, borrowing its data from the file bytes.
pub struct Ct2Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

pub struct Ct2Model<'a> {
    pub spec: String,
    pub variables: BTreeMap<String, Ct2Variable<'a>>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        // Strings are stored NUL-terminated inside their length.
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
    }
}

/// Parses a CTranslate2 model file (binary version 6).
pub fn parse(bytes: &[u8]) -> Result<Ct2Model<'_>, String> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u32()?;
    if version != 6 {
        return Err(format!(
            "unsupported CTranslate2 binary version {version} (expected 6)"
        ));
    }
    let spec = r.string()?;
    let _revision = r.u32()?;
    let count = r.u32()?;
    let mut variables = BTreeMap::new();
    for _ in 0..count {
        let name = r.string()?;
        let rank = r.u8()? as usize;
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = match r.u8()? {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            other => return Err(format!("{name}: unknown dtype code {other}")),
        };
        let nbytes = r.u32()? as usize;
        let elements: usize = dims.iter().product();
        if nbytes != elements * dtype.size() {
            return Err(format!(
                "{name}: {nbytes} bytes for {elements} {dtype:?} elements"
            ));
        }
        let data = r.take(nbytes)?;
        variables.insert(name, Ct2Variable { dims, dtype, data });
    }
    Ok(Ct2Model { spec, variables })
}

fn get<'m, 'a>(m: &'m Ct2Model<'a>, name: &str) -> Result<&'m Ct2Variable<'a>, String> {
    m.variables
        .get(name)
        .ok_or_else(|| format!("tensor {name} is missing"))
}

fn scalar_i64(m: &Ct2Model, name: &str) -> Result<i64, String> {
    let v = get(m, name)?;
    Ok(match v.dtype {
        DType::I8 => v.data[0] as i8 as i64,
        DType::I16 => i16::from_le_bytes([v.data[0], v.data[1]]) as i64,
        DType::I32 => i32::from_le_bytes([v.data[0], v.data[1], v.data[2], v.data[3]]) as i64,
        other => return Err(format!("{name}: expected an integer scalar, got {other:?}")),
    })
}

fn whole(name: String, v: &Ct2Variable) -> NamedTensor {
    NamedTensor {
        name,
        dtype: v.dtype,
        dims: v.dims.clone(),
        data: v.data.to_vec(),
    }
}

/// One piece of a split tensor: its dims and bytes.
type Piece = (Vec<usize>, Vec<u8>);

/// Splits a tensor along its first axis into `parts` equal pieces.
fn split_rows(v: &Ct2Variable, parts: usize) -> Result<Vec<Piece>, String> {
    let rows = v.dims[0];
    if !rows.is_multiple_of(parts) {
        return Err(format!("cannot split {rows} rows into {parts}"));
    }
    let row_bytes = v.data.len() / rows;
    let chunk = rows / parts;
    Ok((0..parts)
        .map(|p| {
            let mut dims = v.dims.clone();
            dims[0] = chunk;
            let start = p * chunk * row_bytes;
            (dims, v.data[start..start + chunk * row_bytes].to_vec())
        })
        .collect())
}

fn layer_count(m: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            m.variables
                .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
        })
        .count()
}

/// Renames CTranslate2 Whisper tensors to Hugging Face names and builds the HF config.
fn to_hf_whisper(
    m: &Ct2Model,
    ct2_cfg: &serde_json::Value,
) -> Result<(Vec<NamedTensor>, serde_json::Value), String> {
    if m.spec != "WhisperSpec" {
        return Err(format!("expected a WhisperSpec model, found {}", m.spec));
    }
    let mut out = Vec::new();
    let mut put = |hf: String, ct: &str| -> Result<(), String> {
        out.push(whole(hf, get(m, ct)?));
        Ok(())
    };
    // Encoder stem and final norm.
    put("model.encoder.conv1.weight".into(), "encoder/conv1/weight")?;
    put("model.encoder.conv1.bias".into(), "encoder/conv1/bias")?;
    put("model.encoder.conv2.weight".into(), "encoder/conv2/weight")?;
    put("model.encoder.conv2.bias".into(), "encoder/conv2/bias")?;
    put(
        "model.encoder.embed_positions.weight".into(),
        "encoder/position_encodings/encodings",
    )?;
    put(
        "model.encoder.layer_norm.weight".into(),
        "encoder/layer_norm/gamma",
    )?;
    put(
        "model.encoder.layer_norm.bias".into(),
        "encoder/layer_norm/beta",
    )?;
    put(
        "model.decoder.embed_tokens.weight".into(),
        "decoder/embeddings/weight",
    )?;
    put(
        "model.decoder.embed_positions.weight".into(),
        "decoder/position_encodings/encodings",
    )?;
    put(
        "model.decoder.layer_norm.weight".into(),
        "decoder/layer_norm/gamma",
    )?;
    put(
        "model.decoder.layer_norm.bias".into(),
        "decoder/layer_norm/beta",
    )?;

    let encoder_layers = layer_count(m, "encoder");
    let decoder_layers = layer_count(m, "decoder");
    for (side, layers) in [("encoder", encoder_layers), ("decoder", decoder_layers)] {
        for i in 0..layers {
            let ct = format!("{side}/layer_{i}");
            let hf = format!("model.{side}.layers.{i}");
            // Fused self-attention q,k,v; HF Whisper's k_proj has no bias, and CTranslate2's
            // fused k bias is zero, so it is dropped.
            let qkv_w = split_rows(get(m, &format!("{ct}/self_attention/linear_0/weight"))?, 3)?;
            let qkv_b = split_rows(get(m, &format!("{ct}/self_attention/linear_0/bias"))?, 3)?;
            let w_dtype = get(m, &format!("{ct}/self_attention/linear_0/weight"))?.dtype;
            let b_dtype = get(m, &format!("{ct}/self_attention/linear_0/bias"))?.dtype;
            for (j, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                let (dims, data) = qkv_w[j].clone();
                out.push(NamedTensor {
                    name: format!("{hf}.self_attn.{proj}.weight"),
                    dtype: w_dtype,
                    dims,
                    data,
                });
                if *proj != "k_proj" {
                    let (dims, data) = qkv_b[j].clone();
                    out.push(NamedTensor {
                        name: format!("{hf}.self_attn.{proj}.bias"),
                        dtype: b_dtype,
                        dims,
                        data,
                    });
                }
            }
            let mut put = |hf_name: String, ct_name: String| -> Result<(), String> {
                out.push(whole(hf_name, get(m, &ct_name)?));
                Ok(())
            };
            for (p, ctp) in [("weight", "weight"), ("bias", "bias")] {
                put(
                    format!("{hf}.self_attn.out_proj.{p}"),
                    format!("{ct}/self_attention/linear_1/{ctp}"),
                )?;
                put(format!("{hf}.fc1.{p}"), format!("{ct}/ffn/linear_0/{ctp}"))?;
                put(format!("{hf}.fc2.{p}"), format!("{ct}/ffn/linear_1/{ctp}"))?;
            }
            for (p, ctp) in [("weight", "gamma"), ("bias", "beta")] {
                put(
                    format!("{hf}.self_attn_layer_norm.{p}"),
                    format!("{ct}/self_attention/layer_norm/{ctp}"),
                )?;
                put(
                    format!("{hf}.final_layer_norm.{p}"),
                    format!("{ct}/ffn/layer_norm/{ctp}"),
                )?;
            }
            if side == "decoder" {
                for (p, ctp) in [("weight", "gamma"), ("bias", "beta")] {
                    put(
                        format!("{hf}.encoder_attn_layer_norm.{p}"),
                        format!("{ct}/attention/layer_norm/{ctp}"),
                    )?;
                }
                for p in ["weight", "bias"] {
                    put(
                        format!("{hf}.encoder_attn.q_proj.{p}"),
                        format!("{ct}/attention/linear_0/{p}"),
                    )?;
                    put(
                        format!("{hf}.encoder_attn.out_proj.{p}"),
                        format!("{ct}/attention/linear_2/{p}"),
                    )?;
                }
                // Fused cross-attention k,v (k without bias, as above).
                let kv_w = get(m, &format!("{ct}/attention/linear_1/weight"))?;
                let kv_b = get(m, &format!("{ct}/attention/linear_1/bias"))?;
                let w = split_rows(kv_w, 2)?;
                let b = split_rows(kv_b, 2)?;
                for (j, proj) in ["k_proj", "v_proj"].iter().enumerate() {
                    out.push(NamedTensor {
                        name: format!("{hf}.encoder_attn.{proj}.weight"),
                        dtype: kv_w.dtype,
                        dims: w[j].0.clone(),
                        data: w[j].1.clone(),
                    });
                    if *proj == "v_proj" {
                        out.push(NamedTensor {
                            name: format!("{hf}.encoder_attn.{proj}.bias"),
                            dtype: kv_b.dtype,
                            dims: b[j].0.clone(),
                            data: b[j].1.clone(),
                        });
                    }
                }
            }
        }
    }

    let conv1 = get(m, "encoder/conv1/weight")?;
    let d_model = conv1.dims[0];
    let num_mel_bins = conv1.dims[1];
    let vocab_size = get(m, "decoder/embeddings/weight")?.dims[0];
    let max_source_positions = get(m, "encoder/position_encodings/encodings")?.dims[0];
    let max_target_positions = get(m, "decoder/position_encodings/encodings")?.dims[0];
    let encoder_heads = scalar_i64(m, "encoder/num_heads")?;
    let decoder_heads = scalar_i64(m, "decoder/num_heads")?;
    let suppress = ct2_cfg
        .get("suppress_ids")
        .cloned()
        .unwrap_or(serde_json::Value::Array(vec![]));
    let suppress_begin = ct2_cfg
        .get("suppress_ids_begin")
        .cloned()
        .unwrap_or(serde_json::Value::Array(vec![]));
    let config = serde_json::json!({
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "num_mel_bins": num_mel_bins,
        "d_model": d_model,
        "encoder_layers": encoder_layers,
        "decoder_layers": decoder_layers,
        "encoder_attention_heads": encoder_heads,
        "decoder_attention_heads": decoder_heads,
        "encoder_ffn_dim": get(m, "encoder/layer_0/ffn/linear_0/weight")?.dims[0],
        "decoder_ffn_dim": get(m, "decoder/layer_0/ffn/linear_0/weight")?.dims[0],
        "vocab_size": vocab_size,
        "max_source_positions": max_source_positions,
        "max_target_positions": max_target_positions,
        "suppress_tokens": suppress,
        "begin_suppress_tokens": suppress_begin,
        "alignment_heads": ct2_cfg.get("alignment_heads").cloned().unwrap_or(serde_json::Value::Null),
        "torch_dtype": "float16",
    });
    Ok((out, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn push_var(out: &mut Vec<u8>, name: &str, dims: &[u32], dtype: u8, data: &[u8]) {
        push_string(out, name);
        out.push(dims.len() as u8);
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.push(dtype);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }

    #[test]
    fn parses_variables_and_rejects_truncation() {
        let mut file = Vec::new();
        file.extend_from_slice(&6u32.to_le_bytes());
        push_string(&mut file, "WhisperSpec");
        file.extend_from_slice(&3u32.to_le_bytes());
        file.extend_from_slice(&2u32.to_le_bytes());
        let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        push_var(&mut file, "a/weight", &[3, 2], 0, &w);
        push_var(&mut file, "a/num_heads", &[], 2, &6i16.to_le_bytes());
        let m = parse(&file).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.variables["a/weight"].dims, vec![3, 2]);
        assert_eq!(scalar_i64(&m, "a/num_heads").unwrap(), 6);
        let parts = split_rows(&m.variables["a/weight"], 3).unwrap();
        assert_eq!(parts[1].0, vec![1, 2]);
        assert_eq!(parts[1].1, w[8..16].to_vec());

        let err = parse(&file[..file.len() - 1]).err().unwrap();
        assert!(err.contains("truncated"), "{err}");
        let mut wrong_version = file.clone();
        wrong_version[0] = 5;
        assert!(parse(&wrong_version).is_err());
    }
}
