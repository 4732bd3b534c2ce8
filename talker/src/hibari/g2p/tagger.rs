//! Averaged-perceptron part-of-speech tagger (Penn Treebank tags, `hibari/g2p/tagger.py`).
//! A word with one dominant tag is answered from the tag dictionary, everything else by summing
//! the weights of 15 context features (in feature order, f64, as Python does).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::data::read_json;
use super::error::G2pError;
use super::pystr::{self, is_alpha, is_alpha_char, is_digit, is_digit_char};

const START: [&str; 2] = ["-START2-", "-START-"];
const END: [&str; 2] = ["-END-", "-END2-"];

#[derive(Deserialize)]
struct Model {
    tags: Vec<String>,
    tagdict: HashMap<String, String>,
    vocab: Vec<String>,
    weights: HashMap<String, HashMap<String, f64>>,
}

/// The tagger's tables, with each feature's weights keyed by tag index.
pub struct Tagger {
    tags: Vec<String>,
    tagdict: HashMap<String, String>,
    vocab: HashSet<String>,
    weights: HashMap<String, Vec<(usize, f64)>>,
}

/// `norm(w)`: "!HYPHEN", "!YEAR", "!DIGITS" or the lowercased word.
fn norm(w: &str) -> String {
    if w.contains('-') && !w.starts_with('-') {
        return "!HYPHEN".into();
    }
    if is_digit(w) && pystr::len(w) == 4 {
        return "!YEAR".into();
    }
    if w.chars().next().is_some_and(is_digit_char) {
        return "!DIGITS".into();
    }
    pystr::lower(w)
}

/// `shape(w)`: "x", "XX", "X1", "Xx", "xX", "d", or the first 4 chars mapped d/x/kept.
fn shape(w: &str) -> String {
    if is_alpha(w) {
        if pystr::is_lower(w) {
            return "x".into();
        }
        if pystr::is_upper(w) {
            return if pystr::len(w) > 1 { "XX" } else { "X1" }.into();
        }
        let first = pystr::slice(w, 0, 1);
        if pystr::is_upper(first) && pystr::is_lower(pystr::skip(w, 1)) {
            return "Xx".into();
        }
        return "xX".into();
    }
    if is_digit(w) {
        return "d".into();
    }
    w.chars()
        .take(4)
        .map(|c| {
            if is_digit_char(c) {
                'd'
            } else if is_alpha_char(c) {
                'x'
            } else {
                c
            }
        })
        .collect()
}

impl Tagger {
    pub fn load(dir: &Path) -> Result<Tagger, G2pError> {
        let m: Model = read_json(dir, "tagger.json.gz")?;
        let index: HashMap<&str, usize> = m
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut weights = HashMap::with_capacity(m.weights.len());
        for (feat, ws) in m.weights {
            let mut v = Vec::with_capacity(ws.len());
            for (tag, w) in ws {
                let Some(&i) = index.get(tag.as_str()) else {
                    return Err(G2pError::BadData {
                        path: dir.join("tagger.json.gz"),
                        reason: format!("weight for unknown tag {tag:?}"),
                    });
                };
                v.push((i, w));
            }
            weights.insert(feat, v);
        }
        Ok(Tagger {
            tags: m.tags,
            tagdict: m.tagdict,
            vocab: m.vocab.into_iter().collect(),
            weights,
        })
    }

    /// Tags for a sentence's token texts.
    pub fn tag(&self, words: &[String]) -> Vec<String> {
        let mut ctx: Vec<String> = START.iter().map(|s| s.to_string()).collect();
        for w in words {
            let n = norm(w);
            ctx.push(if self.vocab.contains(&n) {
                n
            } else {
                format!("<{}>", shape(w))
            });
        }
        ctx.extend(END.iter().map(|s| s.to_string()));
        let (mut prev, mut prev2) = (START[1].to_string(), START[0].to_string());
        let mut tags = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let tag = match self.tagdict.get(w) {
                Some(t) => t.clone(),
                None => self.predict(&features(i, w, &ctx, &prev, &prev2)),
            };
            prev2 = std::mem::replace(&mut prev, tag.clone());
            tags.push(tag);
        }
        tags
    }

    /// argmax over all tags by (score, tag name); "NN" when no feature is known.
    fn predict(&self, feats: &[String]) -> String {
        let mut scores = vec![0.0f64; self.tags.len()];
        let mut any = false;
        for f in feats {
            if let Some(ws) = self.weights.get(f)
                && !ws.is_empty()
            {
                any = true;
                for &(t, w) in ws {
                    scores[t] += w;
                }
            }
        }
        if !any {
            return "NN".into();
        }
        let mut best = 0;
        for t in 1..self.tags.len() {
            let better = scores[t] > scores[best]
                || (scores[t] == scores[best] && self.tags[t] > self.tags[best]);
            if better {
                best = t;
            }
        }
        self.tags[best].clone()
    }
}

/// The 15 feature strings of `features()`; `ctx[i + 2]` is the current word.
fn features(i: usize, word: &str, ctx: &[String], prev: &str, prev2: &str) -> Vec<String> {
    let j = i + 2;
    vec![
        "b".to_string(),
        format!("s3={}", pystr::last_n(word, 3)),
        format!("p1={}", pystr::slice(word, 0, 1)),
        format!("w={}", ctx[j]),
        format!("sh={}", shape(word)),
        if i == 0 { "i0" } else { "i+" }.to_string(),
        format!("t-1={prev}"),
        format!("t-2={prev2}"),
        format!("t-12={prev},{prev2}"),
        format!("w-1={}", ctx[j - 1]),
        format!("s3-1={}", pystr::last_n(&ctx[j - 1], 3)),
        format!("w-2={}", ctx[j - 2]),
        format!("w+1={}", ctx[j + 1]),
        format!("s3+1={}", pystr::last_n(&ctx[j + 1], 3)),
        format!("w+2={}", ctx[j + 2]),
    ]
}
