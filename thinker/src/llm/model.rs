//! A llama / qwen2 decoder over quantized GGUF weights, with a KV cache that can be truncated.
//!
//! candle-transformers' `quantized_llama` / `quantized_qwen2` keep their KV cache private and can
//! only clear it, but a barge-in has to roll the conversation back to the start of the answer.
//! So the forward pass lives here, built from candle's `QMatMul`, `RmsNorm` and rope kernels:
//! - llama: interleaved rope (GGUF conversion permutes q/k for it), no attention biases;
//! - qwen2: neox rope, q/k/v biases.
//!
//! Grouped-query attention is computed without repeating k/v: the query heads sharing one kv
//! head are stacked along the sequence axis, so one batched matmul per kv head does it.

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;
use std::sync::Arc;

use super::LlmError;
use super::linear::{Linear, fast_q8_kernel_available};

/// The architecture parameters read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: String,
    pub block_count: usize,
    pub hidden_size: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    /// Positions the model was trained for (`<arch>.context_length`); rope tables cover these.
    pub context_length: usize,
    /// Neox (half-split) rope rather than interleaved pairs.
    rope_neox: bool,
}

impl ModelConfig {
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self, LlmError> {
        let architecture = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| LlmError::MissingMetadata("general.architecture".into()))?;
        let rope_neox = match architecture.as_str() {
            "llama" => false,
            "qwen2" => true,
            other => return Err(LlmError::UnsupportedArchitecture(other.to_string())),
        };
        let get = |key: &str| -> Result<u32, LlmError> {
            let full = format!("{architecture}.{key}");
            ct.metadata
                .get(&full)
                .ok_or_else(|| LlmError::MissingMetadata(full.clone()))?
                .to_u32()
                .map_err(|e| LlmError::BadMetadata(full, e.to_string()))
        };
        let get_f32 = |key: &str| -> Option<f32> {
            ct.metadata
                .get(&format!("{architecture}.{key}"))
                .and_then(|v| v.to_f32().ok())
        };
        let hidden_size = get("embedding_length")? as usize;
        let head_count = get("attention.head_count")? as usize;
        let head_count_kv = get("attention.head_count_kv")? as usize;
        if head_count == 0 || head_count_kv == 0 || !head_count.is_multiple_of(head_count_kv) {
            return Err(LlmError::BadMetadata(
                format!("{architecture}.attention.head_count_kv"),
                format!("{head_count} heads cannot share {head_count_kv} kv heads"),
            ));
        }
        let head_dim = hidden_size / head_count;
        if let Ok(rope_dim) = get("rope.dimension_count")
            && rope_dim as usize != head_dim
        {
            return Err(LlmError::BadMetadata(
                format!("{architecture}.rope.dimension_count"),
                format!("partial rotary ({rope_dim} of {head_dim}) is not supported"),
            ));
        }
        Ok(Self {
            block_count: get("block_count")? as usize,
            hidden_size,
            head_count,
            head_count_kv,
            head_dim,
            rope_theta: get_f32("rope.freq_base").unwrap_or(10_000.0),
            rms_norm_eps: get_f32("attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f64,
            context_length: get("context_length")? as usize,
            rope_neox,
            architecture,
        })
    }
}

/// Keys and values of one layer, `[1, kv_heads, capacity, head_dim]`, valid up to `len`.
/// Preallocated and written in place so a decode step does not copy the whole history;
/// truncating is just moving `len` back.
#[derive(Debug)]
struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

/// Initial cache capacity in positions; it doubles as the conversation grows.
const KV_INITIAL_CAPACITY: usize = 512;

impl KvCache {
    fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(2).unwrap_or(0))
    }

    /// Appends `k`/`v` (`[1, kv_heads, t, head_dim]`) and returns views of everything cached.
    fn append(
        &mut self,
        k: &Tensor,
        v: &Tensor,
        max_len: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let needed = self.len + t;
        if needed > self.capacity() {
            let capacity = needed
                .max(self.capacity() * 2)
                .max(KV_INITIAL_CAPACITY)
                .min(max_len.max(needed));
            let (b, h, _, d) = k.dims4()?;
            let grow = |old: &Option<Tensor>| -> candle_core::Result<Tensor> {
                let fresh = Tensor::zeros((b, h, capacity, d), k.dtype(), k.device())?;
                if let Some(old) = old
                    && self.len > 0
                {
                    fresh.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(fresh)
            };
            self.k = Some(grow(&self.k)?);
            self.v = Some(grow(&self.v)?);
        }
        let (Some(k_all), Some(v_all)) = (&self.k, &self.v) else {
            candle_core::bail!("kv cache storage missing after allocation")
        };
        k_all.slice_set(k, 2, self.len)?;
        v_all.slice_set(v, 2, self.len)?;
        self.len = needed;
        Ok((k_all.narrow(2, 0, needed)?, v_all.narrow(2, 0, needed)?))
    }
}

/// One decoder layer's weights.
#[derive(Debug)]
struct Block {
    attn_norm: RmsNorm,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    wo: Linear,
    ffn_norm: RmsNorm,
    w_gate: Linear,
    w_up: Linear,
    w_down: Linear,
}

/// The decoder's weights and rope tables: read-only after loading, so one copy (in an `Arc`)
/// serves every conversation.
#[derive(Debug)]
pub struct GgufWeights {
    pub config: ModelConfig,
    embeddings: Arc<QTensor>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// One conversation's decoder: shared weights plus this conversation's KV cache.
#[derive(Debug)]
pub struct GgufModel {
    weights: Arc<GgufWeights>,
    caches: Vec<KvCache>,
    /// Positions currently in the KV cache.
    position: usize,
}

fn add_bias(x: Tensor, bias: &Option<Tensor>) -> candle_core::Result<Tensor> {
    match bias {
        Some(b) => x.broadcast_add(b),
        None => Ok(x),
    }
}

impl GgufWeights {
    /// Loads the weights named by the GGUF tensor table.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self, LlmError> {
        let config = ModelConfig::from_gguf(ct)?;
        let mut tensor = |name: &str| -> Result<QTensor, LlmError> {
            ct.tensor(reader, name, device)
                .map_err(|e| LlmError::Weights(format!("{name}: {e}")))
        };
        let pad = fast_q8_kernel_available();
        let embeddings = Arc::new(tensor("token_embd.weight")?);
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, config.rms_norm_eps)?;
        // Small models tie the output projection to the embedding table. Only the last
        // position's logits are ever computed.
        let output = match tensor("output.weight") {
            Ok(t) => Linear::new_for_one_position(Arc::new(t), pad, device)?,
            Err(_) => Linear::new_for_one_position(Arc::clone(&embeddings), pad, device)?,
        };
        let mut blocks = Vec::with_capacity(config.block_count);
        for i in 0..config.block_count {
            let mut qmm = |n: &str| -> Result<Linear, LlmError> {
                Linear::new(Arc::new(tensor(&format!("blk.{i}.{n}"))?), pad, device)
            };
            let (wq, wk, wv, wo) = (
                qmm("attn_q.weight")?,
                qmm("attn_k.weight")?,
                qmm("attn_v.weight")?,
                qmm("attn_output.weight")?,
            );
            let (w_gate, w_up, w_down) = (
                qmm("ffn_gate.weight")?,
                qmm("ffn_up.weight")?,
                qmm("ffn_down.weight")?,
            );
            let mut bias = |n: &str| -> Result<Option<Tensor>, LlmError> {
                let name = format!("blk.{i}.{n}");
                if ct.tensor_infos.contains_key(&name) {
                    Ok(Some(tensor(&name)?.dequantize(device)?))
                } else {
                    Ok(None)
                }
            };
            let (bq, bk, bv) = (
                bias("attn_q.bias")?,
                bias("attn_k.bias")?,
                bias("attn_v.bias")?,
            );
            let attn_norm = RmsNorm::from_qtensor(
                tensor(&format!("blk.{i}.attn_norm.weight"))?,
                config.rms_norm_eps,
            )?;
            let ffn_norm = RmsNorm::from_qtensor(
                tensor(&format!("blk.{i}.ffn_norm.weight"))?,
                config.rms_norm_eps,
            )?;
            blocks.push(Block {
                attn_norm,
                wq,
                wk,
                wv,
                bq,
                bk,
                bv,
                wo,
                ffn_norm,
                w_gate,
                w_up,
                w_down,
            });
        }
        let (cos, sin) = rope_tables(&config, device)?;
        Ok(Self {
            config,
            embeddings,
            blocks,
            norm,
            output,
            cos,
            sin,
            device: device.clone(),
        })
    }
}

impl KvCache {
    fn empty() -> Self {
        Self {
            k: None,
            v: None,
            len: 0,
        }
    }
}

impl GgufModel {
    /// A new conversation (empty KV cache) over `weights`.
    pub fn new(weights: Arc<GgufWeights>) -> Self {
        let caches = weights.blocks.iter().map(|_| KvCache::empty()).collect();
        Self {
            weights,
            caches,
            position: 0,
        }
    }

    /// Loads the weights for a single conversation.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self, LlmError> {
        Ok(Self::new(Arc::new(GgufWeights::from_gguf(
            ct, reader, device,
        )?)))
    }

    pub fn config(&self) -> &ModelConfig {
        &self.weights.config
    }

    pub fn weights(&self) -> &Arc<GgufWeights> {
        &self.weights
    }

    /// Number of positions in the KV cache.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Forgets everything after the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.position);
        for cache in &mut self.caches {
            cache.len = len;
        }
        self.position = len;
    }

    /// Forgets the whole conversation and frees the cache memory.
    pub fn clear(&mut self) {
        for cache in &mut self.caches {
            *cache = KvCache::empty();
        }
        self.position = 0;
    }

    /// Runs `ids` at the next positions, appends them to the KV cache and returns the logits
    /// after the last one, `[vocab]` f32.
    pub fn forward(&mut self, ids: &[u32]) -> Result<Tensor, LlmError> {
        let t = ids.len();
        if t == 0 {
            return Err(LlmError::Internal("forward of no tokens".into()));
        }
        let start = self.position;
        let w = &*self.weights;
        if start + t > w.config.context_length {
            return Err(LlmError::ContextFull {
                needed: start + t,
                limit: w.config.context_length,
            });
        }
        let cfg = &w.config;
        let (h, kvh, d) = (cfg.head_count, cfg.head_count_kv, cfg.head_dim);
        let group = h / kvh;
        let ids_t = Tensor::new(ids, &w.device)?;
        let mut x = w.embeddings.embedding(&ids_t)?.unsqueeze(0)?; // [1, t, hidden]
        let cos = w.cos.narrow(0, start, t)?;
        let sin = w.sin.narrow(0, start, t)?;
        let mask = if t > 1 {
            Some(causal_mask(t, start, &w.device)?)
        } else {
            None
        };
        let scale = 1.0 / (d as f64).sqrt();
        let max_len = cfg.context_length;
        for (block, cache) in w.blocks.iter().zip(&mut self.caches) {
            let residual = &x;
            let xn = block.attn_norm.forward(&x)?;
            let [q, k, v] = Linear::forward_shared([&block.wq, &block.wk, &block.wv], &xn)?;
            let q = add_bias(q, &block.bq)?;
            let k = add_bias(k, &block.bk)?;
            let v = add_bias(v, &block.bv)?;
            let q = q.reshape((1, t, h, d))?.transpose(1, 2)?.contiguous()?;
            let k = k.reshape((1, t, kvh, d))?.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((1, t, kvh, d))?.transpose(1, 2)?.contiguous()?;
            let (q, k) = if cfg.rope_neox {
                (
                    candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
                )
            } else {
                (
                    candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
                )
            };
            let (k_all, v_all) = cache.append(&k, &v, max_len)?;
            let kv_len = k_all.dim(2)?;
            // Query head j*group+r uses kv head j: stack a kv head's queries as rows.
            let q = q.reshape((1, kvh, group * t, d))?;
            let scores = (q.matmul(&k_all.t()?)? * scale)?; // [1, kvh, group*t, kv_len]
            let scores = match &mask {
                Some(mask) => scores
                    .reshape((1, kvh, group, t, kv_len))?
                    .broadcast_add(mask)?
                    .reshape((1, kvh, group * t, kv_len))?,
                None => scores,
            };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let y = probs.matmul(&v_all)?; // [1, kvh, group*t, d]
            let y = y
                .reshape((1, h, t, d))?
                .transpose(1, 2)?
                .reshape((1, t, h * d))?;
            let x1 = (block.wo.forward(&y)? + residual)?;
            let xn = block.ffn_norm.forward(&x1)?;
            let [gate, up] = Linear::forward_shared([&block.w_gate, &block.w_up], &xn)?;
            let hidden = (candle_nn::ops::silu(&gate)? * up)?;
            x = (block.w_down.forward(&hidden)? + x1)?;
        }
        self.position = start + t;
        // Only the last position's logits are needed.
        let last = x.i((.., t - 1..t, ..))?;
        let last = w.norm.forward(&last)?;
        let logits = w.output.forward(&last)?;
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?)
    }
}

fn rope_tables(cfg: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor), LlmError> {
    let d = cfg.head_dim;
    let inv_freq: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1.0 / cfg.rope_theta.powf(i as f32 / d as f32))
        .collect();
    let inv_freq = Tensor::from_vec(inv_freq, (1, d / 2), device)?;
    let positions = Tensor::arange(0u32, cfg.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((cfg.context_length, 1))?;
    let angles = positions.matmul(&inv_freq)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Additive mask `[t, start + t]`: query `i` (at position `start + i`) sees keys up to itself.
fn causal_mask(t: usize, start: usize, device: &Device) -> candle_core::Result<Tensor> {
    let kv_len = start + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..kv_len).map(move |j| {
                if j > start + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, kv_len), device)
}
