//! Out-of-vocabulary words (`hibari/g2p/oov.py`, spec `docs/hibari_port.md` §3.4): a 0.65 M
//! parameter character transformer trained on espeak-ng's readings, run with candle on the CPU.
//! Each of the (≤ 24) input characters predicts 4 output slots; the slot ids are decoded
//! CTC-style (drop repeats of the previous slot, then blanks).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use serde::Deserialize;

use super::data::read_json;
use super::error::G2pError;

const LAYERS: usize = 4;
const HEADS: usize = 4;
const HEAD_DIM: usize = 32;
const LN_EPS: f32 = 1e-5;

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "in")]
    input: Vec<String>,
    out: Vec<String>,
    slots: usize,
    maxlen: usize,
}

struct Layer {
    norm1: (Tensor, Tensor),
    in_proj: (Tensor, Tensor),
    out_proj: (Tensor, Tensor),
    norm2: (Tensor, Tensor),
    linear1: (Tensor, Tensor),
    linear2: (Tensor, Tensor),
}

/// The OOV network and its character tables.
pub struct Oov {
    chars_in: HashMap<char, u32>,
    chars_out: Vec<String>,
    slots: usize,
    maxlen: usize,
    emb: Tensor,
    pos: Tensor,
    layers: Vec<Layer>,
    norm: (Tensor, Tensor),
    head: (Tensor, Tensor),
}

/// `x @ w + b` for x [L, in], w [in, out] (ONNX layout), b [out].
fn linear(x: &Tensor, (w, b): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
    x.matmul(w)?.broadcast_add(b)
}

fn layer_norm(x: &Tensor, (w, b): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
    candle_nn::ops::layer_norm(x, w, b, LN_EPS)
}

impl Oov {
    pub fn load(dir: &Path) -> Result<Oov, G2pError> {
        let meta: Meta = read_json(dir, "oov.json")?;
        let path = dir.join("oov.safetensors");
        if !path.exists() {
            return Err(G2pError::MissingFile { path });
        }
        let mut w = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let bad = |reason: String| G2pError::BadData {
            path: path.clone(),
            reason,
        };
        // The 17 MatMul weights are unnamed in the ONNX graph; in graph (= numeric) order they are
        // per layer in_proj, out_proj, linear1, linear2, then the head.
        let mut mats: Vec<(u32, String)> = w
            .keys()
            .filter_map(|k| Some((k.strip_prefix("onnx::MatMul_")?.parse().ok()?, k.clone())))
            .collect();
        mats.sort();
        if mats.len() != LAYERS * 4 + 1 {
            return Err(bad(format!(
                "expected {} MatMul weights, found {}",
                LAYERS * 4 + 1,
                mats.len()
            )));
        }
        let mut take = |name: &str| {
            w.remove(name)
                .ok_or_else(|| bad(format!("tensor {name} is missing")))
        };
        let mut mat_iter = mats.into_iter();
        let mut next_mat = |take: &mut dyn FnMut(&str) -> Result<Tensor, G2pError>| {
            let (_, name) = mat_iter
                .next()
                .ok_or_else(|| bad("MatMul weights run out".into()))?;
            take(&name)
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("m.layers.{i}");
            let norm1 = (
                take(&format!("{p}.norm1.weight"))?,
                take(&format!("{p}.norm1.bias"))?,
            );
            let in_proj = (
                next_mat(&mut take)?,
                take(&format!("{p}.self_attn.in_proj_bias"))?,
            );
            let out_proj = (
                next_mat(&mut take)?,
                take(&format!("{p}.self_attn.out_proj.bias"))?,
            );
            let norm2 = (
                take(&format!("{p}.norm2.weight"))?,
                take(&format!("{p}.norm2.bias"))?,
            );
            let linear1 = (next_mat(&mut take)?, take(&format!("{p}.linear1.bias"))?);
            let linear2 = (next_mat(&mut take)?, take(&format!("{p}.linear2.bias"))?);
            layers.push(Layer {
                norm1,
                in_proj,
                out_proj,
                norm2,
                linear1,
                linear2,
            });
        }
        let head = (next_mat(&mut take)?, take("m.head.bias")?);
        let norm = (take("m.norm.weight")?, take("m.norm.bias")?);
        let emb = take("m.emb.weight")?;
        let pos = take("m.pos")?;
        let mut chars_in = HashMap::new();
        for (i, s) in meta.input.iter().enumerate() {
            let mut it = s.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                chars_in.insert(c, i as u32 + 1);
            }
        }
        Ok(Oov {
            chars_in,
            chars_out: meta.out,
            slots: meta.slots,
            maxlen: meta.maxlen,
            emb,
            pos,
            layers,
            norm,
            head,
        })
    }

    /// Character ids of a word (unknown characters dropped, first `maxlen` kept).
    pub fn char_ids(&self, word: &str) -> Vec<u32> {
        word.chars()
            .filter_map(|c| self.chars_in.get(&c).copied())
            .take(self.maxlen)
            .collect()
    }

    /// The network's raw output: one id per slot (4 per character), argmax (first on ties).
    pub fn net_ids(&self, ids: &[u32]) -> Result<Vec<u32>, G2pError> {
        let l = ids.len();
        let idx = Tensor::new(ids, &Device::Cpu)?;
        let mut x = self
            .emb
            .index_select(&idx, 0)?
            .add(&self.pos.narrow(0, 0, l)?)?;
        let scale = 1.0 / (HEAD_DIM as f64).sqrt();
        let d = HEADS * HEAD_DIM;
        for layer in &self.layers {
            let h = layer_norm(&x, &layer.norm1)?;
            let qkv = linear(&h, &layer.in_proj)?;
            let heads = |j: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(1, j * d, d)?
                    .reshape((l, HEADS, HEAD_DIM))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
            let s = (q.matmul(&k.transpose(1, 2)?.contiguous()?)? * scale)?;
            let p = candle_nn::ops::softmax_last_dim(&s)?;
            let o = p
                .matmul(&v)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((l, d))?;
            x = x.add(&linear(&o, &layer.out_proj)?)?;
            let h = layer_norm(&x, &layer.norm2)?;
            let h = linear(&h, &layer.linear1)?.gelu_erf()?;
            x = x.add(&linear(&h, &layer.linear2)?)?;
        }
        let x = layer_norm(&x, &self.norm)?;
        let logits = linear(&x, &self.head)?.to_dtype(DType::F32)?;
        let classes = logits.dim(D::Minus1)? / self.slots;
        let flat: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        Ok(flat
            .chunks(classes)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best as u32
            })
            .collect())
    }

    /// The word's phonemes, or None when none of its characters are in the table.
    pub fn phonemize(&self, word: &str) -> Result<Option<String>, G2pError> {
        let ids = self.char_ids(word);
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.decode(&self.net_ids(&ids)?)))
    }

    /// CTC-style collapse: emit `out[i - 1]` when `i` differs from the previous slot and is not 0.
    pub fn decode(&self, net_ids: &[u32]) -> String {
        let mut ps = String::new();
        let mut prev = 0;
        for &i in net_ids {
            if i != prev
                && i != 0
                && let Some(s) = self.chars_out.get(i as usize - 1)
            {
                ps.push_str(s);
            }
            prev = i;
        }
        ps
    }
}
