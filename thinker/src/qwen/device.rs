//! Where the Qwen models run: the CPU in f32, or with the cargo feature `cuda` the first GPU in
//! bf16 (the published checkpoints' dtype; Token2Wav stays f32 either way).

use candle_core::{DType, Device};

use super::QwenError;

/// The first CUDA GPU when built with `cuda`, else the CPU.
pub fn default_device() -> Result<Device, QwenError> {
    #[cfg(feature = "cuda")]
    {
        Ok(Device::new_cuda(0)?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(Device::Cpu)
    }
}

/// bf16 on a GPU, f32 on the CPU (candle's CPU kernels are fastest and exact in f32).
pub fn compute_dtype(device: &Device) -> DType {
    if device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    }
}
