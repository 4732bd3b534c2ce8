//! Qwen2.5-Omni's mouth: the Talker (Thinker hidden states -> codec tokens) and Token2Wav
//! (codec tokens -> 24 kHz audio), loaded from a checkpoint directory in the Hugging Face layout.
//!
//! - [`talker_model`]: the Talker LM (Thinker states + codec embeddings -> codec logits).
//! - [`talker_session`]: the dual-track codec stream of one answer, and greedy `generate`.
//! - [`speakers`]: the voices of `spk_dict.pt` (text-BOS token, speaker vector, reference mel).
//! - [`dit_config`]: `token2wav_config.dit_config`, alias keys and the missing defaults.
//! - [`ecapa`]: the DiT's ECAPA-TDNN speaker encoder.
//! - [`dit`]: the DiT velocity (classifier-free guidance pair, block attention).
//! - [`codec_sampling`]: the Talker's next-code choice (penalty, suppression, top-k/top-p).
//! - [`bigvgan`]: the vocoder, mel -> 24 kHz audio.
//! - [`sampler`]: time grid and RK4 / Euler integration from noise to mel.
//! - [`token2wav`]: DiT + sampler + BigVGAN from a checkpoint directory.
//! - [`token2wav_stream`]: Token2Wav in 0.48 s chunks while codes arrive.
//! - [`streaming_talker`]: [`streaming_talker::QwenTalker`], Talker + Token2Wav behind the engine's seam.
//! - [`reference_check`]: `dit`, `bigvgan`, `token2wav` on safetensors inputs (parity checks).

pub mod bigvgan;
pub mod codec_sampling;
pub mod dit;
pub mod dit_config;
pub mod ecapa;
pub mod reference_check;
pub mod sampler;
pub mod speakers;
pub mod streaming_talker;
pub mod talker_model;
pub mod talker_session;
pub mod token2wav;
pub mod token2wav_stream;
