//! ONNX graph initializers → safetensors.
//!
//! parley ports the small ONNX models it uses (hibari TTS and its G2P network) to candle by hand;
//! only their weights are taken from the `.onnx` file. The protobuf messages below are the subset
//! of `onnx.proto` that holds weights (field numbers as in the ONNX spec), decoded with prost, so
//! no `protoc` is needed.
//!
//! Weights quantized by onnxruntime's dynamic quantization (`W_quantized` int8/uint8 with
//! `W_scale` and `W_zero_point`, consumed by `MatMulInteger`) are dequantized to f32 and stored
//! under the original name `W`: `W = (W_quantized - W_zero_point) * W_scale`, per tensor or per
//! output column.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::ModelError;
use crate::tensor_file::{DType, NamedTensor, write_safetensors};

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

// ONNX TensorProto.DataType codes.
const ONNX_FLOAT: i32 = 1;
const ONNX_UINT8: i32 = 2;
const ONNX_INT8: i32 = 3;
const ONNX_INT32: i32 = 6;
const ONNX_INT64: i32 = 7;
const ONNX_FLOAT16: i32 = 10;

/// Reads and decodes an ONNX model file.
pub fn read_model(path: &Path) -> Result<ModelProto, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    ModelProto::decode(bytes.as_slice())
        .map_err(|e| ModelError::corrupt(path, format!("not an ONNX model: {e}")))
}

/// Converts one initializer (or Constant value) to raw little-endian bytes.
pub fn tensor_bytes(t: &TensorProto) -> Result<NamedTensor, String> {
    if t.data_location == 1 {
        return Err(format!("{}: external data is not supported", t.name));
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let n: usize = dims.iter().product();
    let (dtype, data) = match t.data_type {
        ONNX_FLOAT => (
            DType::F32,
            if t.raw_data.is_empty() {
                t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            } else {
                t.raw_data.clone()
            },
        ),
        ONNX_FLOAT16 => (
            DType::F16,
            if t.raw_data.is_empty() {
                // float16 values live in the low 16 bits of int32_data.
                t.int32_data
                    .iter()
                    .flat_map(|v| (*v as u16).to_le_bytes())
                    .collect()
            } else {
                t.raw_data.clone()
            },
        ),
        ONNX_INT8 | ONNX_UINT8 => (
            if t.data_type == ONNX_INT8 {
                DType::I8
            } else {
                DType::U8
            },
            if t.raw_data.is_empty() {
                t.int32_data.iter().map(|v| *v as u8).collect()
            } else {
                t.raw_data.clone()
            },
        ),
        ONNX_INT32 => (
            DType::I32,
            if t.raw_data.is_empty() {
                t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            } else {
                t.raw_data.clone()
            },
        ),
        ONNX_INT64 => (
            DType::I64,
            if t.raw_data.is_empty() {
                t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            } else {
                t.raw_data.clone()
            },
        ),
        other => return Err(format!("{}: unsupported ONNX data type {other}", t.name)),
    };
    if data.len() != n * dtype.size() {
        return Err(format!(
            "{}: {} bytes for shape {dims:?} of {dtype:?}",
            t.name,
            data.len()
        ));
    }
    Ok(NamedTensor {
        name: t.name.clone(),
        dtype,
        dims,
        data,
    })
}

fn as_f32(t: &NamedTensor) -> Result<Vec<f32>, String> {
    match t.dtype {
        DType::F32 => Ok(t
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        DType::F16 => Ok(t
            .data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        other => Err(format!(
            "{}: expected a float tensor, got {other:?}",
            t.name
        )),
    }
}

fn as_integers(t: &NamedTensor) -> Result<Vec<f32>, String> {
    match t.dtype {
        DType::I8 => Ok(t.data.iter().map(|&b| b as i8 as f32).collect()),
        DType::U8 => Ok(t.data.iter().map(|&b| b as f32).collect()),
        other => Err(format!(
            "{}: expected an 8-bit tensor, got {other:?}",
            t.name
        )),
    }
}

/// Dequantizes `q` with `scale` and `zero_point`, each a scalar or one value per output column
/// (the last axis of a MatMul weight).
pub fn dequantize(
    name: &str,
    q: &NamedTensor,
    scale: &NamedTensor,
    zero_point: Option<&NamedTensor>,
) -> Result<NamedTensor, String> {
    let values = as_integers(q)?;
    let scales = as_f32(scale)?;
    let zeros = match zero_point {
        Some(z) => as_integers(z)?,
        None => vec![0.0],
    };
    let cols = *q.dims.last().unwrap_or(&1);
    let per_column = |v: &[f32], what: &str| -> Result<(), String> {
        if v.len() == 1 || v.len() == cols {
            Ok(())
        } else {
            Err(format!(
                "{name}: {what} has {} values; expected 1 or {cols}",
                v.len()
            ))
        }
    };
    per_column(&scales, "scale")?;
    per_column(&zeros, "zero point")?;
    let pick = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i % cols] };
    let out: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, &x)| (x - pick(&zeros, i)) * pick(&scales, i))
        .collect();
    Ok(NamedTensor::f32(name, q.dims.clone(), &out))
}

/// All weights of `model`: its float initializers, with dynamically quantized MatMul weights
/// dequantized (their scale and zero-point tensors are then left out). Integer initializers and
/// Constant nodes are shape plumbing of the exported graph, not weights, and are not kept.
pub fn weights(model: &ModelProto) -> Result<Vec<NamedTensor>, String> {
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    let mut tensors: HashMap<String, NamedTensor> = HashMap::new();
    let mut order = Vec::new();
    for t in &graph.initializer {
        let nt = tensor_bytes(t)?;
        order.push(nt.name.clone());
        tensors.insert(nt.name.clone(), nt);
    }
    let mut dequantized = Vec::new();
    let mut consumed = std::collections::HashSet::new();
    for name in &order {
        let Some(base) = name.strip_suffix("_quantized") else {
            continue;
        };
        let Some(scale) = tensors.get(&format!("{base}_scale")) else {
            continue;
        };
        let q = &tensors[name];
        if !matches!(q.dtype, DType::I8 | DType::U8) {
            continue;
        }
        let zero_name = format!("{base}_zero_point");
        let zero = tensors.get(&zero_name);
        dequantized.push(dequantize(base, q, scale, zero)?);
        consumed.insert(name.clone());
        consumed.insert(format!("{base}_scale"));
        consumed.insert(zero_name);
    }
    let mut out: Vec<NamedTensor> = order
        .iter()
        .filter(|n| !consumed.contains(*n))
        .filter(|n| matches!(tensors[*n].dtype, DType::F32 | DType::F16))
        .map(|n| tensors[n].clone())
        .collect();
    out.extend(dequantized);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Converts the ONNX model at `onnx` to a safetensors file of its weights.
pub fn convert_initializers(onnx: &Path, out: &Path) -> Result<(), ModelError> {
    let model = read_model(onnx)?;
    let tensors = weights(&model).map_err(|msg| ModelError::corrupt(onnx, msg))?;
    write_safetensors(out, &tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], data_type: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type,
            name: name.to_string(),
            raw_data: raw,
            ..Default::default()
        }
    }

    #[test]
    fn dequantizes_per_column_and_keeps_float_weights() {
        let q: Vec<u8> = [-2i8, 0, 4, 6].iter().map(|v| *v as u8).collect();
        let scale: Vec<u8> = [0.5f32, 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bias: Vec<u8> = [1.5f32].iter().flat_map(|v| v.to_le_bytes()).collect();
        let model = ModelProto {
            ir_version: 8,
            producer_name: "test".into(),
            graph: Some(GraphProto {
                node: vec![],
                name: "g".into(),
                initializer: vec![
                    tensor("w_quantized", &[2, 2], ONNX_INT8, q),
                    tensor("w_scale", &[2], ONNX_FLOAT, scale),
                    tensor("w_zero_point", &[2], ONNX_INT8, vec![0, 2]),
                    tensor("b", &[1], ONNX_FLOAT, bias),
                    tensor("shape", &[1], ONNX_INT64, 7i64.to_le_bytes().to_vec()),
                ],
            }),
        };
        // Encode and decode through protobuf, as a file would be.
        let bytes = model.encode_to_vec();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        let ws = weights(&decoded).unwrap();
        let names: Vec<_> = ws.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["b", "w"]);
        let w = as_f32(&ws[1]).unwrap();
        // Column 0: scale 0.5, zero 0; column 1: scale 0.25, zero 2.
        assert_eq!(w, vec![-1.0, -0.5, 2.0, 1.0]);
        assert_eq!(as_f32(&ws[0]).unwrap(), vec![1.5]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(ModelProto::decode(&b"\xff\xff\xff\xff not onnx"[..]).is_err());
        let bad = tensor("x", &[3], ONNX_FLOAT, vec![0; 5]);
        assert!(tensor_bytes(&bad).is_err());
    }
}
