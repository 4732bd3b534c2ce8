//! Silero VAD v6, 16 kHz, ported to candle (f32, CPU). The exact computation is in
//! `docs/silero_port.md`; `tools/reference/silero_numpy.py` is its executable form.
//!
//! Per 512-sample window: STFT magnitude (as a matmul with the conv basis) → 4 ReLU convs →
//! LSTM cell → linear + sigmoid. The 64-sample context and the LSTM state carry over between
//! windows exactly as the package's `OnnxWrapper` does it, so probabilities match the package's
//! within float rounding whatever the chunking of the input.
//!
//! Cost (criterion, `benches/benches/vad.rs`): ≈45 µs per 32 ms window on the 2-core dev machine
//! when idle, with `RAYON_NUM_THREADS` set. Without that variable candle 0.11.1 re-reads
//! /proc/cpuinfo on every matmul (6 per window here, ≈17 µs each), so the binary should set it.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::error::VadError;
use super::{CONTEXT_SAMPLES, WINDOW_SAMPLES};
use crate::stream::{Step, StreamingModule};

/// File name of the weights inside the installed model directory.
pub const WEIGHTS_FILE: &str = "silero_vad_16k.safetensors";

/// Right reflect padding applied before the STFT.
const PAD: usize = 64;
/// context + window + pad = 640 samples.
const PADDED: usize = CONTEXT_SAMPLES + WINDOW_SAMPLES + PAD;
const N_FFT: usize = 256;
const HOP: usize = 128;
/// STFT frames per window: offsets 0, 128, 256, 384.
const FRAMES: usize = (PADDED - N_FFT) / HOP + 1;
/// Frequency bins of the 256-point real FFT.
const BINS: usize = N_FFT / 2 + 1;
const HIDDEN: usize = 128;

/// The STFT as a matrix: `model.stft.forward_basis_buffer` [258, 1, 256] holds 129 cosine rows then
/// 129 sine rows; applying it to the 4 frames at once is one [4, 256] × [256, 258] matmul.
#[derive(Clone)]
struct StftBasis {
    /// [256, 258], the basis transposed.
    basis_t: Tensor,
}

impl StftBasis {
    fn load(vb: &VarBuilder) -> candle_core::Result<Self> {
        let basis = vb.get((2 * BINS, 1, N_FFT), "model.stft.forward_basis_buffer")?;
        Ok(Self {
            basis_t: basis.reshape((2 * BINS, N_FFT))?.t()?.contiguous()?,
        })
    }

    /// `frames`: [4, 256] (one frame per row) → magnitude spectrum [4, 129] (time-major).
    fn magnitude(&self, frames: &Tensor) -> candle_core::Result<Tensor> {
        let power = frames.matmul(&self.basis_t)?.sqr()?;
        (power.narrow(1, 0, BINS)? + power.narrow(1, BINS, BINS)?)?.sqrt()
    }
}

/// One `model.encoder.N.reparam_conv` (kernel 3, padding 1) followed by ReLU.
///
/// Activations are time-major, [T, C], and T is fixed per layer (4 → 4 → 2 → 1 → 1), so the conv
/// is done as im2col + one matmul: the input rows each output step reads (a zero row stands for
/// the padding) are gathered with a precomputed index, then multiplied by the kernel rearranged
/// once at load to [3 · in, out]. candle's own `conv1d` does the same but re-packs the kernel
/// on every call, which costs more than the arithmetic at these sizes.
#[derive(Clone)]
struct EncoderConv {
    /// [3 · in, out]: row `k · in + c` holds `w[:, c, k]`.
    weight: Tensor,
    /// [out]
    bias: Tensor,
    /// For output step t and tap k (row-major), the input row to read: `t · stride + k − 1`, or
    /// `t_in` (the appended zero row) where that falls in the padding.
    taps: Tensor,
    /// [1, in] zeros, appended to the input as the padding row.
    zero_row: Tensor,
    t_out: usize,
}

impl EncoderConv {
    const KERNEL: usize = 3;

    fn load(
        vb: &VarBuilder,
        index: usize,
        (c_in, c_out): (usize, usize),
        (t_in, stride): (usize, usize),
        device: &Device,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp(format!("model.encoder.{index}.reparam_conv"));
        let k = Self::KERNEL;
        let weight = vb
            .get((c_out, c_in, k), "weight")?
            .permute((2, 1, 0))? // [k, in, out]
            .contiguous()?
            .reshape((k * c_in, c_out))?;
        let t_out = (t_in + 2 - k) / stride + 1;
        let taps: Vec<u32> = (0..t_out)
            .flat_map(|t| (0..k).map(move |tap| (t * stride + tap) as i64 - 1))
            .map(|row| {
                if (0..t_in as i64).contains(&row) {
                    row as u32
                } else {
                    t_in as u32
                }
            })
            .collect();
        Ok(Self {
            weight,
            bias: vb.get(c_out, "bias")?,
            taps: Tensor::new(taps, device)?,
            zero_row: Tensor::zeros((1, c_in), DType::F32, device)?,
            t_out,
        })
    }

    /// [t_in, in] → [t_out, out]
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c_in = x.dim(1)?;
        Tensor::cat(&[x, &self.zero_row], 0)?
            .index_select(&self.taps, 0)?
            .reshape((self.t_out, Self::KERNEL * c_in))?
            .matmul(&self.weight)?
            .broadcast_add(&self.bias)?
            .relu()
    }
}

/// `model.decoder.rnn`: a PyTorch LSTMCell. Both input projections are fused into one
/// [u | h] × [256, 512] matmul with the two biases summed, and the gate blocks are reordered at
/// load from PyTorch's i, f, g, o to i, f, o, g so one sigmoid covers the first three.
#[derive(Clone)]
struct LstmCell {
    /// [256, 512] = [W_ih | W_hh]ᵀ, gate columns i, f, o, g.
    weight: Tensor,
    /// [512] = b_ih + b_hh, same gate order.
    bias: Tensor,
}

impl LstmCell {
    fn load(vb: &VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("model.decoder.rnn");
        // PyTorch's i, f, g, o blocks → i, f, o, g (along dim 0, the gate dimension).
        let reorder = |t: Tensor| -> candle_core::Result<Tensor> {
            let block = |i: usize| t.narrow(0, i * HIDDEN, HIDDEN);
            Tensor::cat(&[block(0)?, block(1)?, block(3)?, block(2)?], 0)
        };
        let w_ih = reorder(vb.get((4 * HIDDEN, HIDDEN), "weight_ih")?)?;
        let w_hh = reorder(vb.get((4 * HIDDEN, HIDDEN), "weight_hh")?)?;
        let b_ih = reorder(vb.get(4 * HIDDEN, "bias_ih")?)?;
        let b_hh = reorder(vb.get(4 * HIDDEN, "bias_hh")?)?;
        Ok(Self {
            weight: Tensor::cat(&[&w_ih, &w_hh], 1)?.t()?.contiguous()?,
            bias: (b_ih + b_hh)?,
        })
    }

    /// `u`, `h`, `c`: [1, 128] → (h', c')
    fn forward(&self, u: &Tensor, h: &Tensor, c: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let gates = Tensor::cat(&[u, h], 1)?
            .matmul(&self.weight)?
            .broadcast_add(&self.bias)?;
        let ifo = candle_nn::ops::sigmoid(&gates.narrow(1, 0, 3 * HIDDEN)?)?;
        let g = gates.narrow(1, 3 * HIDDEN, HIDDEN)?.tanh()?;
        let (i, f, o) = (
            ifo.narrow(1, 0, HIDDEN)?,
            ifo.narrow(1, HIDDEN, HIDDEN)?,
            ifo.narrow(1, 2 * HIDDEN, HIDDEN)?,
        );
        let c_next = ((f * c)? + (i * g)?)?;
        let h_next = (o * c_next.tanh()?)?;
        Ok((h_next, c_next))
    }
}

/// `model.decoder.decoder.2`: ReLU, 1×1 conv to one channel (a dot product), sigmoid.
#[derive(Clone)]
struct FinalConv {
    /// [1, 128]
    weight: Tensor,
    /// [1]
    bias: Tensor,
}

impl FinalConv {
    fn load(vb: &VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("model.decoder.decoder.2");
        Ok(Self {
            weight: vb.get((1, HIDDEN, 1), "weight")?.reshape((1, HIDDEN))?,
            bias: vb.get(1, "bias")?,
        })
    }

    /// `h`: [1, 128] → speech probability.
    fn forward(&self, h: &Tensor) -> candle_core::Result<f32> {
        let logit = (h.relu()? * &self.weight)?.sum(1)?.add(&self.bias)?;
        let prob = candle_nn::ops::sigmoid(&logit)?.to_vec1::<f32>()?;
        // `logit` has shape [1], so `prob` holds exactly one value.
        Ok(prob[0])
    }
}

/// Streaming Silero VAD: feed 16 kHz mono samples in any chunk sizes, get one speech probability
/// per completed 512-sample window.
///
/// `Clone` shares the weights (tensors are reference-counted) and copies the stream state, so
/// one loaded model can start any number of independent streams (call `reset` on the clone).
#[derive(Clone)]
pub struct SileroVad {
    stft: StftBasis,
    encoder: [EncoderConv; 4],
    lstm: LstmCell,
    decoder: FinalConv,
    device: Device,
    /// [context 64 | window 512 | reflect pad 64]; the window part fills up as samples arrive.
    input: Vec<f32>,
    /// Samples of the current window received so far.
    filled: usize,
    /// The 4 overlapping STFT frames as the rows of a [4, 256] matrix (reused every window).
    frames: Vec<f32>,
    h: Tensor,
    c: Tensor,
    /// [1, 128] zeros: the initial h and c (tensors are immutable, so sharing it is safe).
    zero_state: Tensor,
    windows_done: u64,
}

impl SileroVad {
    /// Loads `silero_vad_16k.safetensors` from an installed model directory (see
    /// `parley_models::installed_model_dir(dir, parley_models::catalog::SILERO_VAD)`).
    pub fn load(model_dir: &Path) -> Result<Self, VadError> {
        let path = model_dir.join(WEIGHTS_FILE);
        if !path.is_file() {
            return Err(VadError::ModelMissing { path });
        }
        let load_err = |source| VadError::Load {
            path: path.clone(),
            source,
        };
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped; that is sound as long as nobody truncates or rewrites
        // it while mapped. Installed model files are only ever replaced by `parley models fetch`,
        // which stages a new directory and renames it into place: old files are unlinked, never
        // rewritten, so existing mappings stay intact.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(std::slice::from_ref(&path), DType::F32, &device)
        }
        .map_err(load_err)?;
        Self::from_var_builder(&vb, device).map_err(load_err)
    }

    /// Builds the model from tensors under their ONNX initializer names.
    pub fn from_var_builder(vb: &VarBuilder, device: Device) -> candle_core::Result<Self> {
        let zeros = Tensor::zeros((1, HIDDEN), DType::F32, &device)?;
        // (in, out) channels and (input steps, stride); the 4 STFT frames shrink to 4, 2, 1, 1.
        let conv1 = EncoderConv::load(vb, 0, (BINS, 128), (FRAMES, 1), &device)?;
        let conv2 = EncoderConv::load(vb, 1, (128, 64), (conv1.t_out, 2), &device)?;
        let conv3 = EncoderConv::load(vb, 2, (64, 64), (conv2.t_out, 2), &device)?;
        let conv4 = EncoderConv::load(vb, 3, (64, HIDDEN), (conv3.t_out, 1), &device)?;
        debug_assert_eq!(conv4.t_out, 1, "the LSTM takes one encoder step per window");
        Ok(Self {
            stft: StftBasis::load(vb)?,
            encoder: [conv1, conv2, conv3, conv4],
            lstm: LstmCell::load(vb)?,
            decoder: FinalConv::load(vb)?,
            device,
            input: vec![0.0; PADDED],
            filled: 0,
            frames: vec![0.0; N_FFT * FRAMES],
            h: zeros.clone(),
            c: zeros.clone(),
            zero_state: zeros,
            windows_done: 0,
        })
    }

    /// Windows completed since the start (or the last `reset`). Window `i` covers stream samples
    /// `[512 i, 512 i + 512)`; use it to label the probabilities a step returns.
    pub fn windows_done(&self) -> u64 {
        self.windows_done
    }

    /// Samples waiting for their window to complete (0..512).
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Ends the stream like the package's whole-file mode: a partial window is completed with
    /// zeros and its probability returned. `None` if no samples are buffered.
    pub fn flush(&mut self) -> Result<Option<f32>, VadError> {
        if self.filled == 0 {
            return Ok(None);
        }
        self.input[CONTEXT_SAMPLES + self.filled..CONTEXT_SAMPLES + WINDOW_SAMPLES].fill(0.0);
        self.filled = WINDOW_SAMPLES;
        self.run_window().map(Some)
    }

    /// Runs the model on the full window in `self.input` and advances the stream state.
    fn run_window(&mut self) -> Result<f32, VadError> {
        let x = &mut self.input;
        // Reflect pad on the right: x[576 + k] = x[574 - k].
        let end = CONTEXT_SAMPLES + WINDOW_SAMPLES;
        for k in 0..PAD {
            x[end + k] = x[end - 2 - k];
        }
        for (t, frame) in self.frames.chunks_exact_mut(N_FFT).enumerate() {
            frame.copy_from_slice(&x[t * HOP..t * HOP + N_FFT]);
        }
        let frames = Tensor::from_slice(&self.frames, (FRAMES, N_FFT), &self.device)?;
        let mut y = self.stft.magnitude(&frames)?;
        for conv in &self.encoder {
            y = conv.forward(&y)?;
        }
        // y is [1, 128]: the encoder's one output step.
        let (h, c) = self.lstm.forward(&y, &self.h, &self.c)?;
        let prob = self.decoder.forward(&h)?;
        // Only commit the new state once the whole step succeeded.
        self.h = h;
        self.c = c;
        // The next window's context is the last 64 samples of this one.
        x.copy_within(WINDOW_SAMPLES..end, 0);
        self.filled = 0;
        self.windows_done += 1;
        Ok(prob)
    }
}

impl StreamingModule for SileroVad {
    type Input = [f32];
    type Output = Vec<f32>;
    type Error = VadError;

    fn step(&mut self, samples: &[f32]) -> Result<Step<Vec<f32>>, VadError> {
        if let Some((index, &value)) = samples.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(VadError::NonFiniteSample { index, value });
        }
        let mut probs = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = rest.len().min(WINDOW_SAMPLES - self.filled);
            let at = CONTEXT_SAMPLES + self.filled;
            self.input[at..at + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == WINDOW_SAMPLES {
                probs.push(self.run_window()?);
            }
        }
        Ok(if probs.is_empty() {
            Step::Pending
        } else {
            Step::Ready(probs)
        })
    }

    fn reset(&mut self) {
        self.input.fill(0.0);
        self.filled = 0;
        self.windows_done = 0;
        self.h = self.zero_state.clone();
        self.c = self.zero_state.clone();
    }
}
