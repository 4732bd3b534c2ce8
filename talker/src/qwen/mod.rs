//! Qwen2.5-Omni's mouth: the Talker (Thinker hidden states -> codec tokens) and Token2Wav
//! (codec tokens -> 24 kHz audio), loaded from a checkpoint directory in the Hugging Face layout.
//!
//! - [`speakers`]: the voices of `spk_dict.pt` (text-BOS token, speaker vector, reference mel).

pub mod speakers;
