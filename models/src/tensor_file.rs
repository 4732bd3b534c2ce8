//! The small tensor vocabulary the converters share: a named tensor as raw little-endian bytes, and
//! writing a list of them to a safetensors file.

use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::ModelError;

/// Element types the converters meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    I8,
    U8,
    I16,
    I32,
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    fn safetensors(self) -> Dtype {
        match self {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
            DType::I8 => Dtype::I8,
            DType::U8 => Dtype::U8,
            DType::I16 => Dtype::I16,
            DType::I32 => Dtype::I32,
            DType::I64 => Dtype::I64,
        }
    }
}

/// A tensor ready to be written: name, element type, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

impl NamedTensor {
    /// An f32 tensor from values.
    pub fn f32(name: impl Into<String>, dims: Vec<usize>, values: &[f32]) -> Self {
        NamedTensor {
            name: name.into(),
            dtype: DType::F32,
            dims,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Writes `tensors` to `path` as safetensors (names must be unique).
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor]) -> Result<(), ModelError> {
    let views = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype.safetensors(), t.dims.clone(), &t.data)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| ModelError::corrupt(path, format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| ModelError::corrupt(path, format!("writing safetensors: {e}")))
}
