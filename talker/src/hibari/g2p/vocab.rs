//! Phonemes → model ids (`vocab.json`) and the long-sentence chunking rule of `hibari/tts.py`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use super::data::read_json;
use super::error::G2pError;
use super::pystr::S;
use super::re::Re;

/// Sentences with more phonemes (code points) than this are split at clause punctuation.
pub const MAX_PHONEMES: usize = 400;

/// The acoustic model's phoneme alphabet.
pub struct Vocab {
    ids: HashMap<char, i64>,
}

impl Vocab {
    pub fn load(dir: &Path) -> Result<Vocab, G2pError> {
        let map: HashMap<String, i64> = read_json(dir, "vocab.json")?;
        let mut ids = HashMap::with_capacity(map.len());
        for (k, v) in map {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => {
                    ids.insert(c, v);
                }
                _ => {
                    return Err(G2pError::BadData {
                        path: dir.join("vocab.json"),
                        reason: format!("key {k:?} is not one character"),
                    });
                }
            }
        }
        Ok(Vocab { ids })
    }

    /// `[0] + [vocab[c] for c in phonemes if c in vocab] + [0]`: unknown characters are dropped.
    pub fn ids(&self, phonemes: &str) -> Vec<i64> {
        let mut out = Vec::with_capacity(phonemes.len() + 2);
        out.push(0);
        out.extend(phonemes.chars().filter_map(|c| self.ids.get(&c).copied()));
        out.push(0);
        out
    }
}

static CLAUSE: LazyLock<Option<Re>> = LazyLock::new(|| Re::new(&format!("(?<=[,;:—])[{S}]+")).ok());

/// One sentence's phonemes → model chunks: the whole string when it has ≤ 400 code points,
/// else clauses (split after , ; : —) packed greedily while `len(cur) + len(part) + 1 <= 400`.
pub fn chunk_phonemes(phonemes: &str) -> Vec<String> {
    if phonemes.is_empty() {
        return Vec::new();
    }
    let len = |s: &str| s.chars().count();
    if len(phonemes) <= MAX_PHONEMES {
        return vec![phonemes.to_string()];
    }
    // The clause pattern is a constant (compiles; covered by the tests); a failed split keeps
    // the sentence whole rather than losing text.
    let parts = CLAUSE
        .as_ref()
        .and_then(|re| re.split(phonemes).ok())
        .unwrap_or_else(|| vec![phonemes]);
    let mut chunks = Vec::new();
    let mut cur = String::new();
    for part in parts {
        if !cur.is_empty() && len(&cur) + len(part) + 1 > MAX_PHONEMES {
            chunks.push(std::mem::replace(&mut cur, part.to_string()));
        } else if cur.is_empty() {
            cur = part.to_string();
        } else {
            cur.push(' ');
            cur.push_str(part);
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}
