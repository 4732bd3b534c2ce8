//! TMRoPE: the Thinker's time-aligned multimodal rotary embedding.
//!
//! Every token has three position ids (temporal, height, width). The head's frequency pairs are
//! split into `mrope_section` groups; group `i` rotates by the position of stream `i % 3`, and the
//! result is applied with the usual half-split rotation (`rotate_half`). For text and audio the
//! three ids are equal, which makes it plain 1-D RoPE; they differ only for images and video.
//!
//! [`prompt_positions`] builds the ids of a prompt like transformers' `get_rope_index`: text
//! tokens count up by one; `<|audio_bos|>`, the `<|AUDIO|>` run and `<|audio_eos|>` continue the
//! count, the audio tokens consecutively, so one temporal id is one 40 ms audio token (the encoder
//! emits 25 per second and `position_id_per_seconds` is 25).

use candle_core::{D, DType, Device, Tensor};

use super::QwenError;
use super::config::{MropeConfig, ThinkerConfig};

/// Position ids of a run of tokens, one entry per token for each of the three streams.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MropePositions {
    pub temporal: Vec<i64>,
    pub height: Vec<i64>,
    pub width: Vec<i64>,
}

impl MropePositions {
    /// `len` text (or audio) positions starting at `start`: the same id on all three streams.
    pub fn sequential(start: i64, len: usize) -> Self {
        let ids: Vec<i64> = (start..start + len as i64).collect();
        Self {
            temporal: ids.clone(),
            height: ids.clone(),
            width: ids,
        }
    }

    pub fn len(&self) -> usize {
        self.temporal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.temporal.is_empty()
    }

    /// The id the next token gets: one past the largest id so far (the `mrope_position_delta`
    /// rule), on all streams.
    pub fn next_position(&self) -> i64 {
        [&self.temporal, &self.height, &self.width]
            .iter()
            .filter_map(|s| s.iter().max().copied())
            .max()
            .map_or(0, |m| m + 1)
    }

    /// Tokens `start..start + len` (for chunked prefill).
    pub fn slice(&self, start: usize, len: usize) -> Self {
        Self {
            temporal: self.temporal[start..start + len].to_vec(),
            height: self.height[start..start + len].to_vec(),
            width: self.width[start..start + len].to_vec(),
        }
    }

    fn extend(&mut self, other: &MropePositions) {
        self.temporal.extend_from_slice(&other.temporal);
        self.height.extend_from_slice(&other.height);
        self.width.extend_from_slice(&other.width);
    }

    fn streams(&self) -> [&[i64]; 3] {
        [&self.temporal, &self.height, &self.width]
    }
}

/// Position ids of a prompt of text and audio (`<|audio_bos|>`, `<|AUDIO|>` x n, `<|audio_eos|>`)
/// starting at id `start`. Images and video are not supported by this port yet: their tokens are
/// an error rather than silently wrong positions.
pub fn prompt_positions(
    input_ids: &[u32],
    start: i64,
    config: &ThinkerConfig,
) -> Result<MropePositions, QwenError> {
    let mut positions = MropePositions::default();
    let mut next = start;
    let mut i = 0;
    while i < input_ids.len() {
        let id = input_ids[i];
        if [
            config.image_token_index,
            config.video_token_index,
            config.vision_start_token_id,
        ]
        .contains(&id)
        {
            return Err(QwenError::bad_input(
                "input_ids",
                format!(
                    "token {id} at {i} is an image/video token; only text and audio are supported"
                ),
            ));
        }
        // A run of one kind: consecutive `<|AUDIO|>` tokens are one audio segment whose ids are
        // consecutive from `next`; a text token is a run of one.
        let run = if id == config.audio_token_index {
            input_ids[i..]
                .iter()
                .take_while(|&&t| t == config.audio_token_index)
                .count()
        } else {
            1
        };
        let segment = MropePositions::sequential(next, run);
        next = segment.next_position();
        positions.extend(&segment);
        i += run;
    }
    Ok(positions)
}

/// The rotary tables of the decoder: inverse frequencies and the section split.
#[derive(Debug, Clone)]
pub struct Mrope {
    /// `[head_dim / 2]`, `1 / theta^(2i / head_dim)`.
    inv_freq: Tensor,
    sections: Vec<usize>,
}

impl Mrope {
    pub fn new(
        config: &MropeConfig,
        head_dim: usize,
        device: &Device,
    ) -> candle_core::Result<Self> {
        // f32 like the reference, which computes the table in float32.
        let theta = config.theta as f32;
        let inv: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Ok(Self {
            inv_freq: Tensor::from_vec(inv, (1, 1, head_dim / 2), device)?,
            sections: config.sections.clone(),
        })
    }

    /// `(cos, sin)`, each `[len, head_dim / 2]`, for `candle_nn::rotary_emb::rope`.
    pub fn cos_sin(&self, positions: &MropePositions) -> candle_core::Result<(Tensor, Tensor)> {
        let len = positions.len();
        let device = self.inv_freq.device();
        let ids: Vec<f32> = positions
            .streams()
            .iter()
            .flat_map(|s| s.iter().map(|&p| p as f32))
            .collect();
        // [3, len, 1] * [1, 1, head_dim/2] -> angles of every stream
        let angles = Tensor::from_vec(ids, (3, len, 1), device)?.broadcast_mul(&self.inv_freq)?;
        let mut parts = Vec::with_capacity(self.sections.len());
        let mut offset = 0;
        for (i, &width) in self.sections.iter().enumerate() {
            parts.push(angles.narrow(0, i % 3, 1)?.narrow(2, offset, width)?);
            offset += width;
        }
        let angles = Tensor::cat(&parts, D::Minus1)?
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        Ok((angles.cos()?.contiguous()?, angles.sin()?.contiguous()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThinkerConfig {
        ThinkerConfig::from_json(
            r#"{"audio_config": {"output_dim": 64}, "text_config": {"hidden_size": 64,
            "vocab_size": 100, "num_attention_heads": 4, "num_key_value_heads": 2,
            "rope_parameters": {"rope_theta": 100.0, "mrope_section": [2, 3, 3]}},
            "audio_token_index": 90, "audio_start_token_id": 91, "audio_end_token_id": 92,
            "image_token_index": 93, "video_token_index": 94, "vision_start_token_id": 95}"#,
        )
        .unwrap()
    }

    #[test]
    fn audio_prompt_positions_count_one_per_token_on_all_streams() {
        let c = config();
        let ids = [1, 2, 91, 90, 90, 90, 92, 5];
        let p = prompt_positions(&ids, 10, &c).unwrap();
        assert_eq!(p, MropePositions::sequential(10, 8));
        assert_eq!(p.next_position(), 18);
        assert!(prompt_positions(&[1, 93, 2], 0, &c).is_err());
    }

    #[test]
    fn sections_take_their_stream() {
        let c = config();
        let m = Mrope::new(&c.text_config.mrope().unwrap(), 16, &Device::Cpu).unwrap();
        let p = MropePositions {
            temporal: vec![1],
            height: vec![2],
            width: vec![3],
        };
        let (cos, _) = m.cos_sin(&p).unwrap();
        let cos = cos.to_vec2::<f32>().unwrap()[0].clone();
        let inv = |i: usize| 1.0 / 100f32.powf(2.0 * i as f32 / 16.0);
        // pairs 0-1: temporal (1), 2-4: height (2), 5-7: width (3)
        assert!((cos[1] - (1.0 * inv(1)).cos()).abs() < 1e-6);
        assert!((cos[2] - (2.0 * inv(2)).cos()).abs() < 1e-6);
        assert!((cos[7] - (3.0 * inv(7)).cos()).abs() < 1e-6);
    }
}
