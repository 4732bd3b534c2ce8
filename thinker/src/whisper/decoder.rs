//! Whisper's text decoder with a self-attention KV cache.
//!
//! candle-transformers' `TextDecoder` caches only the cross-attention keys/values (its
//! `flush_kv_cache` flag); self-attention has no cache and its causal mask assumes queries start
//! at position 0, so every step must feed the whole prefix again (quadratic in the transcript
//! length). This decoder reads the same weights (HF names under `model.decoder`) and keeps both
//! caches, so one step costs one token through the four layers. The encoder is candle's.

use candle_core::{D, Device, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use candle_transformers::models::whisper::Config;

use super::f16_matrix::F16Matrix;

/// Keys and values of the positions seen so far, `[1, heads, positions, head_dim]` each.
#[derive(Debug, Clone)]
struct KeyValues {
    keys: Tensor,
    values: Tensor,
}

/// Rows up to which `Linear` uses its f16 copy; more rows (the audio's cross-attention keys and
/// values, once per transcript) go through candle's gemm, which reuses each weight many times.
const MAX_ROWS_F16: usize = 4;

/// A linear layer `y = x W^T + b`. A decoder step has one token, i.e. a matrix x vector product
/// bound by reading the weights, which the f16 copy halves (see `f16_matrix`).
#[derive(Debug, Clone)]
struct Linear {
    candle: candle_nn::Linear,
    weight: F16Matrix,
    bias: Option<Vec<f32>>,
}

impl Linear {
    fn load(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let candle = if bias {
            candle_nn::linear(in_dim, out_dim, vb)?
        } else {
            candle_nn::linear_no_bias(in_dim, out_dim, vb)?
        };
        let weight = F16Matrix::new(candle.weight())?;
        let bias = candle.bias().map(|b| b.to_vec1::<f32>()).transpose()?;
        Ok(Self {
            candle,
            weight,
            bias,
        })
    }

    /// `[batch, n, in]` -> `[batch, n, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, n, in_dim) = x.dims3()?;
        if batch * n > MAX_ROWS_F16 {
            return self.candle.forward(x);
        }
        let out_dim = self.weight.n_rows();
        let input = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; batch * n * out_dim];
        for (row_in, row_out) in input
            .chunks_exact(in_dim)
            .zip(out.chunks_exact_mut(out_dim))
        {
            self.weight.mul_vec(row_in, row_out)?;
            if let Some(bias) = &self.bias {
                for (o, b) in row_out.iter_mut().zip(bias) {
                    *o += b;
                }
            }
        }
        Tensor::from_vec(out, (batch, n, out_dim), x.device())
    }
}

#[derive(Debug, Clone)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: usize,
}

impl Attention {
    fn load(d_model: usize, n_head: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: Linear::load(d_model, d_model, true, vb.pp("q_proj"))?,
            key: Linear::load(d_model, d_model, false, vb.pp("k_proj"))?,
            value: Linear::load(d_model, d_model, true, vb.pp("v_proj"))?,
            out: Linear::load(d_model, d_model, true, vb.pp("out_proj"))?,
            n_head,
        })
    }

    /// `[1, n, d_model]` -> `[1, heads, n, head_dim]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, n, d_model) = x.dims3()?;
        x.reshape((batch, n, self.n_head, d_model / self.n_head))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn keys_values(&self, x: &Tensor) -> Result<KeyValues> {
        Ok(KeyValues {
            keys: self.split_heads(&self.key.forward(x)?)?,
            values: self.split_heads(&self.value.forward(x)?)?,
        })
    }

    /// Attention of the queries of `x` over `kv`, with an optional additive mask `[n, keys]`.
    fn attend(&self, x: &Tensor, kv: &KeyValues, mask: Option<&Tensor>) -> Result<Tensor> {
        self.attend_with_weights(x, kv, mask).map(|(out, _)| out)
    }

    /// `attend`, also returning the attention weights `[1, heads, n, keys]`.
    fn attend_with_weights(
        &self,
        x: &Tensor,
        kv: &KeyValues,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let q = self.split_heads(&self.query.forward(x)?)?;
        let head_dim = q.dim(D::Minus1)?;
        let q = (q * (1.0 / (head_dim as f64).sqrt()))?;
        let mut scores = q.matmul(&kv.keys.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let mixed = weights
            .matmul(&kv.values)?
            .transpose(1, 2)?
            .flatten_from(2)?;
        Ok((self.out.forward(&mixed)?, weights))
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    cross_attn: Attention,
    cross_attn_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    mlp_norm: LayerNorm,
    self_cache: Option<KeyValues>,
    cross_cache: Option<KeyValues>,
    /// Cross-attention weights of the last forward, `[1, heads, n, audio positions]`.
    cross_weights: Option<Tensor>,
}

impl DecoderLayer {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        let heads = cfg.decoder_attention_heads;
        // Whisper's MLP is 4 * d_model wide (candle's Config has no field for it).
        let ffn_dim = 4 * d;
        Ok(Self {
            self_attn: Attention::load(d, heads, vb.pp("self_attn"))?,
            self_attn_norm: candle_nn::layer_norm(d, 1e-5, vb.pp("self_attn_layer_norm"))?,
            cross_attn: Attention::load(d, heads, vb.pp("encoder_attn"))?,
            cross_attn_norm: candle_nn::layer_norm(d, 1e-5, vb.pp("encoder_attn_layer_norm"))?,
            fc1: Linear::load(d, ffn_dim, true, vb.pp("fc1"))?,
            fc2: Linear::load(ffn_dim, d, true, vb.pp("fc2"))?,
            mlp_norm: candle_nn::layer_norm(d, 1e-5, vb.pp("final_layer_norm"))?,
            self_cache: None,
            cross_cache: None,
            cross_weights: None,
        })
    }

    fn forward(&mut self, x: &Tensor, audio: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.self_attn_norm.forward(x)?;
        let new = self.self_attn.keys_values(&h)?;
        let kv = match self.self_cache.take() {
            None => new,
            Some(old) => KeyValues {
                keys: Tensor::cat(&[&old.keys, &new.keys], 2)?,
                values: Tensor::cat(&[&old.values, &new.values], 2)?,
            },
        };
        let x = (x + self.self_attn.attend(&h, &kv, mask)?)?;
        self.self_cache = Some(kv);

        // The audio's keys/values are projected once per transcript.
        let cross_kv = match self.cross_cache.take() {
            Some(kv) => kv,
            None => self.cross_attn.keys_values(audio)?,
        };
        let h = self.cross_attn_norm.forward(&x)?;
        let (cross, weights) = self.cross_attn.attend_with_weights(&h, &cross_kv, None)?;
        let x = (x + cross)?;
        self.cross_cache = Some(cross_kv);
        self.cross_weights = Some(weights);

        let h = self.mlp_norm.forward(&x)?;
        // PyTorch's nn.GELU (exact erf form), as Whisper was trained with.
        let h = self.fc2.forward(&self.fc1.forward(&h)?.gelu_erf()?)?;
        x + h
    }
}

/// The decoder; `forward` appends tokens to its cache, `reset` starts a new transcript.
#[derive(Debug, Clone)]
pub struct CachedDecoder {
    token_embedding: Embedding,
    positional_embedding: Tensor,
    layers: Vec<DecoderLayer>,
    norm: LayerNorm,
    /// The output layer (tied to `token_embedding`), kept in its own bandwidth-friendly form.
    vocab_projection: F16Matrix,
    /// Tokens already in the self-attention caches.
    position: usize,
    max_positions: usize,
    device: Device,
}

impl CachedDecoder {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let d = cfg.d_model;
        let token_embedding = candle_nn::embedding(cfg.vocab_size, d, vb.pp("embed_tokens"))?;
        let positional_embedding =
            vb.get((cfg.max_target_positions, d), "embed_positions.weight")?;
        let layers = (0..cfg.decoder_layers)
            .map(|i| DecoderLayer::load(cfg, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = candle_nn::layer_norm(d, 1e-5, vb.pp("layer_norm"))?;
        let vocab_projection = F16Matrix::new(token_embedding.embeddings())?;
        Ok(Self {
            token_embedding,
            vocab_projection,
            positional_embedding,
            layers,
            norm,
            position: 0,
            max_positions: cfg.max_target_positions,
            device: vb.device().clone(),
        })
    }

    /// Forgets the tokens and the audio of the previous transcript.
    pub fn reset(&mut self) {
        self.position = 0;
        for layer in &mut self.layers {
            layer.self_cache = None;
            layer.cross_cache = None;
            layer.cross_weights = None;
        }
    }

    /// Runs `tokens` (following the cached ones) over `audio` (`[1, positions, d_model]`, read
    /// on the first call after `reset`) and returns their final hidden states `[1, n, d_model]`.
    pub fn forward(&mut self, tokens: &[u32], audio: &Tensor) -> Result<Tensor> {
        let n = tokens.len();
        if self.position + n > self.max_positions {
            candle_core::bail!(
                "decoder context full: {} + {n} tokens > {}",
                self.position,
                self.max_positions
            );
        }
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let positions = self.positional_embedding.narrow(0, self.position, n)?;
        let mut x = self
            .token_embedding
            .forward(&ids)?
            .broadcast_add(&positions)?;
        let mask = self.causal_mask(n)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, audio, mask.as_ref())?;
        }
        self.position += n;
        self.norm.forward(&x)
    }

    /// Where in the audio the last query of the last `forward` was reading: the audio position
    /// (encoder frame) with the most cross-attention, averaged over `heads` (`(layer, head)`
    /// pairs; Whisper's `alignment_heads` track the spoken word).
    pub fn attended_position(&self, heads: &[(usize, usize)]) -> Result<Option<usize>> {
        let mut sum: Option<Tensor> = None;
        for &(layer, head) in heads {
            let Some(weights) = self
                .layers
                .get(layer)
                .and_then(|l| l.cross_weights.as_ref())
            else {
                continue;
            };
            let (_, n_head, n, _) = weights.dims4()?;
            if head >= n_head {
                continue;
            }
            let row = weights
                .narrow(1, head, 1)?
                .narrow(2, n - 1, 1)?
                .flatten_all()?;
            sum = Some(match sum {
                None => row,
                Some(s) => (s + row)?,
            });
        }
        match sum {
            None => Ok(None),
            Some(s) => Ok(Some(s.argmax(0)?.to_scalar::<u32>()? as usize)),
        }
    }

    /// Logits over the vocabulary for one hidden state `[1, 1, d_model]` (tied embedding).
    pub fn logits(&self, hidden: &Tensor) -> Result<Vec<f32>> {
        let mut logits = vec![0f32; self.vocab_projection.n_rows()];
        self.vocab_projection
            .mul_vec(&hidden.flatten_all()?.to_vec1::<f32>()?, &mut logits)?;
        Ok(logits)
    }

    /// Mask for `n` new queries after `self.position` cached keys: a query may not see keys
    /// after its own position. `None` for a single query (it sees everything cached).
    fn causal_mask(&self, n: usize) -> Result<Option<Tensor>> {
        if n <= 1 {
            return Ok(None);
        }
        let keys = self.position + n;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..keys).map(move |j| {
                    if j > self.position + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        Tensor::from_vec(mask, (n, keys), &self.device).map(Some)
    }
}
