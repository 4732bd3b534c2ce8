//! The Thinker's language model (`thinker.model`, `thinker.lm_head`): a Qwen2.5 decoder (q/k/v
//! biases, grouped-query attention, RMSNorm, SwiGLU) rotated with TMRoPE, with a KV cache so a
//! prompt can be prefilled in chunks and answers decoded token by token.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, RmsNorm, VarBuilder};

use super::QwenError;
use super::config::TextConfig;
use super::mrope::{Mrope, MropePositions};

/// Keys and values seen so far by one layer, `[1, kv_heads, len, head_dim]`.
#[derive(Debug, Clone, Default)]
struct KvCache {
    kv: Option<(Tensor, Tensor)>,
}

impl KvCache {
    fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    fn append(&mut self, k: Tensor, v: Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (k, v) = match self.kv.take() {
            Some((old_k, old_v)) => (
                Tensor::cat(&[&old_k, &k], 2)?,
                Tensor::cat(&[&old_v, &v], 2)?,
            ),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    fn truncate(&mut self, len: usize) -> candle_core::Result<()> {
        if let Some((k, v)) = self.kv.take()
            && len > 0
        {
            self.kv = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cache: KvCache,
}

impl Attention {
    fn load(config: &TextConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = config.hidden_size;
        let head_dim = config.head_dim();
        let q_out = config.num_attention_heads * head_dim;
        let kv_out = config.num_key_value_heads * head_dim;
        Ok(Self {
            q_proj: candle_nn::linear(h, q_out, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear(h, kv_out, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(h, kv_out, vb.pp("v_proj"))?,
            o_proj: candle_nn::linear_no_bias(q_out, h, vb.pp("o_proj"))?,
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            head_dim,
            cache: KvCache::default(),
        })
    }

    /// `xs` `[1, len, hidden]`; `mask` `[len, cached + len]` additive, or `None` for one token.
    fn forward(
        &mut self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, len, _) = xs.dims3()?;
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, len, n, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(self.q_proj.forward(xs)?, self.heads)?;
        let k = heads(self.k_proj.forward(xs)?, self.kv_heads)?;
        let v = heads(self.v_proj.forward(xs)?, self.kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let (k, v) = self.cache.append(k, v)?;
        let groups = self.heads / self.kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // Scores and softmax in f32 also when the weights are bf16 (as the reference's eager
        // attention upcasts the softmax).
        let mut scores = (q.matmul(&k.t()?)?.to_dtype(DType::F32)? * scale)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
        let out =
            weights
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, len, self.heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn load(config: &TextConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        Ok(Self {
            gate_proj: candle_nn::linear_no_bias(h, i, vb.pp("gate_proj"))?,
            up_proj: candle_nn::linear_no_bias(h, i, vb.pp("up_proj"))?,
            down_proj: candle_nn::linear_no_bias(i, h, vb.pp("down_proj"))?,
        })
    }

    /// SwiGLU.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(xs)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(xs)?)?)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(config: &TextConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let (h, eps) = (config.hidden_size, config.rms_norm_eps);
        Ok(Self {
            input_layernorm: candle_nn::rms_norm(h, eps, vb.pp("input_layernorm"))?,
            self_attn: Attention::load(config, vb.pp("self_attn"))?,
            post_attention_layernorm: candle_nn::rms_norm(
                h,
                eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::load(config, vb.pp("mlp"))?,
        })
    }

    fn forward(
        &mut self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(xs)?, cos, sin, mask)?;
        let xs = (xs + attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&xs)?)?;
        xs + mlp
    }
}

/// The decoder with its conversation state (the KV cache).
#[derive(Debug, Clone)]
pub struct TextModel {
    config: TextConfig,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    mrope: Mrope,
}

impl TextModel {
    /// Loads `thinker.model.*` from `model_vb` and the output projection from `lm_head_vb`
    /// (`thinker.lm_head`); without that tensor the embedding table is used if the config ties them.
    pub fn load(
        config: &TextConfig,
        model_vb: VarBuilder,
        lm_head_vb: VarBuilder,
    ) -> Result<Self, QwenError> {
        Self::load_with_embedding_width(config, model_vb, lm_head_vb, config.hidden_size)
    }

    /// Like [`Self::load`] with an embedding table `embedding_width` wide: Qwen's Talker keeps
    /// its codec embeddings in the Thinker's (wider) space and projects them down itself.
    pub fn load_with_embedding_width(
        config: &TextConfig,
        model_vb: VarBuilder,
        lm_head_vb: VarBuilder,
        embedding_width: usize,
    ) -> Result<Self, QwenError> {
        let weights = |e: candle_core::Error| QwenError::Weights(format!("text model: {e}"));
        let mrope = config.mrope().map_err(QwenError::Unsupported)?;
        let (vocab, h) = (config.vocab_size, config.hidden_size);
        let embed_tokens =
            candle_nn::embedding(vocab, embedding_width, model_vb.pp("embed_tokens"))
                .map_err(weights)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(config, model_vb.pp(format!("layers.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(weights)?;
        let norm =
            candle_nn::rms_norm(h, config.rms_norm_eps, model_vb.pp("norm")).map_err(weights)?;
        let lm_head = if lm_head_vb.contains_tensor("weight") {
            candle_nn::linear_no_bias(h, vocab, lm_head_vb).map_err(weights)?
        } else if config.tie_word_embeddings {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            return Err(QwenError::Weights(
                "thinker.lm_head.weight is missing and text_config.tie_word_embeddings is false"
                    .into(),
            ));
        };
        Ok(Self {
            mrope: Mrope::new(&mrope, config.head_dim(), model_vb.device())?,
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// The dtype the decoder computes in (its embedding table's).
    pub fn dtype(&self) -> candle_core::DType {
        self.embed_tokens.embeddings().dtype()
    }

    /// Token embeddings `[1, len, hidden]` of `ids` (all must be below `vocab_size`).
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor, QwenError> {
        if let Some(&bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(QwenError::bad_input(
                "input_ids",
                format!(
                    "token {bad} is outside the vocabulary ({})",
                    self.config.vocab_size
                ),
            ));
        }
        let ids = Tensor::from_slice(ids, (1, ids.len()), self.device())?;
        Ok(self.embed_tokens.forward(&ids)?)
    }

    /// Positions held in the KV cache.
    pub fn cache_len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.self_attn.cache.len())
    }

    pub fn clear_cache(&mut self) {
        for layer in &mut self.layers {
            layer.self_attn.cache = KvCache::default();
        }
    }

    /// Drops everything after the first `len` cached positions (rolling back an answer).
    pub fn truncate_cache(&mut self, len: usize) -> Result<(), QwenError> {
        for layer in &mut self.layers {
            layer.self_attn.cache.truncate(len)?;
        }
        Ok(())
    }

    /// Runs `embeds` `[1, len, hidden]` at `positions` after what the cache holds, appends their
    /// keys and values, and returns the final-norm hidden states `[1, len, hidden]`.
    pub fn forward(
        &mut self,
        embeds: &Tensor,
        positions: &MropePositions,
    ) -> Result<Tensor, QwenError> {
        let (_, len, _) = embeds.dims3()?;
        if positions.len() != len {
            return Err(QwenError::bad_input(
                "positions",
                format!("{} positions for {len} tokens", positions.len()),
            ));
        }
        let dtype = self.dtype();
        let (cos, sin) = self.mrope.cos_sin(positions)?;
        let (cos, sin) = (cos.to_dtype(dtype)?, sin.to_dtype(dtype)?);
        let mask = causal_mask(len, self.cache_len(), embeds.device())?;
        let mut xs = embeds.to_dtype(dtype)?;
        for layer in &mut self.layers {
            xs = layer.forward(&xs, &cos, &sin, mask.as_ref())?;
        }
        Ok(self.norm.forward(&xs)?)
    }

    /// Next-token logits `[.., vocab]` of final-norm hidden states, in f32 whatever the
    /// compute dtype (sampling and comparisons want full precision).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, QwenError> {
        Ok(self.lm_head.forward(hidden)?.to_dtype(DType::F32)?)
    }

    fn device(&self) -> &Device {
        self.embed_tokens.embeddings().device()
    }
}

/// Additive mask `[len, cached + len]`: token `i` sees the cache and new tokens `0..=i`.
/// `None` for a single token, which may see everything.
fn causal_mask(len: usize, cached: usize, device: &Device) -> candle_core::Result<Option<Tensor>> {
    if len <= 1 {
        return Ok(None);
    }
    let total = cached + len;
    let values: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > cached + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Some(Tensor::from_vec(values, (len, total), device)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lets_new_tokens_see_the_cache_and_their_past() {
        let m = causal_mask(2, 3, &Device::Cpu).unwrap().unwrap();
        let rows = m.to_vec2::<f32>().unwrap();
        assert_eq!(rows[0][..4], [0.0, 0.0, 0.0, 0.0]);
        assert_eq!(rows[0][4], f32::NEG_INFINITY);
        assert_eq!(rows[1], vec![0.0; 5]);
        assert!(causal_mask(1, 7, &Device::Cpu).unwrap().is_none());
    }
}
