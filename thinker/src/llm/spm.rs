//! SentencePiece tokenization as GGUF describes it (`tokenizer.ggml.model == "llama"`: Llama 2,
//! TinyLlama, Mistral v0.1, ...).
//!
//! The vocabulary holds pieces with scores; spaces are `▁` (U+2581) and a text gets a leading
//! `▁` (SentencePiece's dummy prefix, `tokenizer.ggml.add_space_prefix`, default on). Encoding
//! starts from the text's characters and repeatedly merges the adjacent pair whose concatenation
//! is a piece with the highest score (leftmost on ties), as SentencePiece's BPE and llama.cpp do;
//! a priority queue of candidate pairs keeps this O(n log n) in the text's length. A final
//! symbol that is not a piece (a character the vocabulary lacks) falls back to its UTF-8 bytes,
//! each the piece `<0xXX>`, or to the unknown piece when the vocabulary has no byte pieces.
//!
//! Where the dummy prefix goes is the caller's business ([`super::GgufTokenizer::encode`]
//! follows llama.cpp: at the start of the text and after every special token).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::LlmError;

/// GGUF token types (llama.cpp `llama_token_type`) that text may merge into.
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// Byte-fallback pieces `<0xXX>`.
pub(super) const TOKEN_TYPE_BYTE: i32 = 6;

/// SentencePiece's stand-in for a space.
pub(super) const SPACE: char = '\u{2581}';

/// The SentencePiece side of a GGUF tokenizer (the vocabulary itself is the tokenizer's).
#[derive(Debug)]
pub(super) struct SentencePiece {
    scores: Vec<f32>,
    /// Which ids text may merge into: normal and user-defined pieces, as in SentencePiece
    /// (control, unknown, unused and byte pieces never come out of a merge).
    mergeable: Vec<bool>,
    byte_ids: [Option<u32>; 256],
    unk_id: Option<u32>,
    pub(super) add_space_prefix: bool,
}

/// One symbol of the text being merged: a byte range of the normalized text, linked to its
/// neighbours. A symbol merged into its left neighbour keeps `len == 0`.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of symbol `left` with the symbol after it. `len` is the merged byte length
/// when the candidate was made: if either symbol changed since, the candidate is stale.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    left: usize,
    len: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    /// The max-heap's top is the highest score, and among equal scores the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl SentencePiece {
    pub(super) fn new(
        tokens: &[String],
        token_types: &[i32],
        scores: Vec<f32>,
        unk_id: Option<u32>,
        add_space_prefix: bool,
    ) -> Self {
        let mut byte_ids = [None; 256];
        for (id, (token, &ty)) in tokens.iter().zip(token_types).enumerate() {
            if ty == TOKEN_TYPE_BYTE
                && let Some(byte) = parse_byte_piece(token)
            {
                byte_ids[byte as usize] = Some(id as u32);
            }
        }
        let mergeable = token_types
            .iter()
            .map(|&ty| matches!(ty, TOKEN_TYPE_NORMAL | TOKEN_TYPE_USER_DEFINED))
            .collect();
        // NaN would break the queue's order and -0.0 would rank below 0.0 under `total_cmp`
        // while SentencePiece treats them as equal: normalize both.
        let scores = scores
            .into_iter()
            .map(|s| if s.is_nan() { f32::MIN } else { s + 0.0 })
            .collect();
        Self {
            scores,
            mergeable,
            byte_ids,
            unk_id,
            add_space_prefix,
        }
    }

    /// The id of `piece` if text may become it.
    fn piece_id(&self, vocab: &HashMap<String, u32>, piece: &str) -> Option<u32> {
        vocab
            .get(piece)
            .copied()
            .filter(|&id| self.mergeable.get(id as usize).copied().unwrap_or(false))
    }

    /// Encodes one stretch of plain text (no special tokens in it). `dummy_prefix`: whether this
    /// stretch gets SentencePiece's leading `▁` (when `add_space_prefix` is on).
    pub(super) fn encode(
        &self,
        vocab: &HashMap<String, u32>,
        text: &str,
        dummy_prefix: bool,
        ids: &mut Vec<u32>,
    ) -> Result<(), LlmError> {
        let mut normalized = String::with_capacity(text.len() + 3);
        if dummy_prefix && self.add_space_prefix {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        if normalized.is_empty() {
            return Ok(());
        }

        let mut symbols: Vec<Symbol> = normalized
            .char_indices()
            .map(|(start, c)| Symbol {
                start,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let count = symbols.len();
        for (i, symbol) in symbols.iter_mut().enumerate() {
            symbol.prev = i.checked_sub(1);
            symbol.next = (i + 1 < count).then_some(i + 1);
        }

        let mut queue = BinaryHeap::new();
        let candidate = |symbols: &[Symbol], left: usize| -> Option<Candidate> {
            let right = symbols[left].next?;
            let start = symbols[left].start;
            let len = symbols[left].len + symbols[right].len;
            let id = self.piece_id(vocab, &normalized[start..start + len])?;
            Some(Candidate {
                score: self.scores.get(id as usize).copied().unwrap_or(f32::MIN),
                left,
                len,
            })
        };
        for left in 0..count {
            queue.extend(candidate(&symbols, left));
        }
        while let Some(Candidate { left, len, .. }) = queue.pop() {
            let Some(right) = symbols[left].next else {
                continue;
            };
            if symbols[left].len == 0 || symbols[left].len + symbols[right].len != len {
                // One side merged with something else since this candidate was queued.
                continue;
            }
            symbols[left].len = len;
            symbols[right].len = 0;
            let after = symbols[right].next;
            symbols[left].next = after;
            if let Some(after) = after {
                symbols[after].prev = Some(left);
            }
            if let Some(before) = symbols[left].prev {
                queue.extend(candidate(&symbols, before));
            }
            queue.extend(candidate(&symbols, left));
        }

        let mut at = Some(0);
        while let Some(i) = at {
            let Symbol { start, len, .. } = symbols[i];
            let piece = &normalized[start..start + len];
            match self.piece_id(vocab, piece) {
                Some(id) => ids.push(id),
                // Only single characters can miss the vocabulary (merges always make pieces).
                None => self.fall_back(piece, ids)?,
            }
            at = symbols[i].next;
        }
        Ok(())
    }

    /// A character that is not a piece: its UTF-8 bytes as `<0xXX>` pieces, or the unknown piece
    /// (once, as SentencePiece does) for a vocabulary without byte pieces.
    fn fall_back(&self, piece: &str, ids: &mut Vec<u32>) -> Result<(), LlmError> {
        let bytes: Option<Vec<u32>> = piece.bytes().map(|b| self.byte_ids[b as usize]).collect();
        match (bytes, self.unk_id) {
            (Some(bytes), _) => ids.extend(bytes),
            (None, Some(unk)) => ids.push(unk),
            (None, None) => {
                return Err(LlmError::Tokenize(format!(
                    "{piece:?} is not in the vocabulary, which has neither byte pieces nor an \
                     unknown piece"
                )));
            }
        }
        Ok(())
    }
}

/// `<0x41>` -> 0x41.
pub(super) fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: `<unk>`, the pieces given with their scores (all normal), no bytes.
    fn toy(pieces: &[(&str, f32)]) -> (SentencePiece, HashMap<String, u32>) {
        let mut tokens = vec!["<unk>".to_string()];
        let mut types = vec![2];
        let mut scores = vec![0.0];
        for (piece, score) in pieces {
            tokens.push(piece.to_string());
            types.push(TOKEN_TYPE_NORMAL);
            scores.push(*score);
        }
        let vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        (
            SentencePiece::new(&tokens, &types, scores, Some(0), true),
            vocab,
        )
    }

    #[test]
    fn byte_pieces_parse() {
        assert_eq!(parse_byte_piece("<0x41>"), Some(0x41));
        assert_eq!(parse_byte_piece("<0xFF>"), Some(0xff));
        assert_eq!(parse_byte_piece("<0x4>"), Some(4));
        assert_eq!(parse_byte_piece("<s>"), None);
        assert_eq!(parse_byte_piece("<0xZZ>"), None);
    }

    #[test]
    fn highest_score_merges_first_and_ties_go_left() {
        // ids: a=1 b=2 ab=3 bb=4 ▁=5
        let (sp, vocab) = toy(&[
            ("a", -5.0),
            ("b", -5.0),
            ("ab", -1.0),
            ("bb", -2.0),
            ("▁", -5.0),
        ]);
        let mut ids = Vec::new();
        // "abb": `ab` (-1) beats `bb` (-2), leaving a, ab... -> [ab, b].
        sp.encode(&vocab, "abb", false, &mut ids).unwrap();
        assert_eq!(ids, [3, 2]);
        // "bbb": both pairs are `bb`; the left one merges first -> [bb, b].
        ids.clear();
        sp.encode(&vocab, "bbb", false, &mut ids).unwrap();
        assert_eq!(ids, [4, 2]);
        // The dummy prefix and spaces are `▁`; `c` is unknown (no byte pieces) -> <unk> once.
        ids.clear();
        sp.encode(&vocab, "a c", true, &mut ids).unwrap();
        assert_eq!(ids, [5, 1, 5, 0]);
    }

    #[test]
    fn unknown_text_without_unk_or_bytes_is_an_error() {
        let tokens = vec!["a".to_string()];
        let vocab = HashMap::from([("a".to_string(), 0)]);
        let sp = SentencePiece::new(&tokens, &[TOKEN_TYPE_NORMAL], vec![0.0], None, false);
        let mut ids = Vec::new();
        assert!(sp.encode(&vocab, "ab", false, &mut ids).is_err());
    }
}
