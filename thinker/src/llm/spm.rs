//! SentencePiece tokenization as GGUF describes it (`tokenizer.ggml.model == "llama"`: Llama 2,
//! TinyLlama, Mistral v0.1, ...).
//!
//! The vocabulary holds pieces with scores; spaces are `▁` (U+2581) and a text gets a leading
//! `▁` (SentencePiece's dummy prefix, `tokenizer.ggml.add_space_prefix`, default on). Encoding
//! starts from the text's characters and repeatedly merges the adjacent pair whose concatenation
//! is a piece with the highest score (leftmost on ties), as SentencePiece's BPE and llama.cpp do.
//! A final symbol that is not a piece falls back to its UTF-8 bytes, each the piece `<0xXX>`
//! (or the unknown piece when the vocabulary has no byte pieces).

use std::collections::HashMap;

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
    /// Which ids text may merge into (normal and user-defined pieces).
    mergeable: Vec<bool>,
    byte_ids: [Option<u32>; 256],
    unk_id: Option<u32>,
    pub(super) add_space_prefix: bool,
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
        Self {
            scores,
            mergeable,
            byte_ids,
            unk_id,
            add_space_prefix,
        }
    }

    /// Encodes one stretch of plain text (no special tokens in it). `at_start`: it begins the
    /// text or follows a special token, where SentencePiece adds the dummy prefix.
    pub(super) fn encode(
        &self,
        vocab: &HashMap<String, u32>,
        text: &str,
        at_start: bool,
        ids: &mut Vec<u32>,
    ) {
        let mut normalized = String::with_capacity(text.len() + 3);
        if at_start && self.add_space_prefix {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        let mut symbols: Vec<String> = normalized.chars().map(String::from).collect();
        loop {
            let mut best: Option<(f32, usize)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                let merged = format!("{}{}", symbols[i], symbols[i + 1]);
                let Some(&id) = vocab.get(&merged) else {
                    continue;
                };
                if !self.mergeable.get(id as usize).copied().unwrap_or(false) {
                    continue;
                }
                let score = self.scores.get(id as usize).copied().unwrap_or(f32::MIN);
                // Strictly greater: the leftmost pair wins a tie.
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, i));
                }
            }
            let Some((_, i)) = best else { break };
            let right = symbols.remove(i + 1);
            symbols[i].push_str(&right);
        }
        for symbol in symbols {
            match vocab.get(&symbol) {
                Some(&id) => ids.push(id),
                None => {
                    for byte in symbol.bytes() {
                        if let Some(id) = self.byte_ids[byte as usize].or(self.unk_id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
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

    #[test]
    fn byte_pieces_parse() {
        assert_eq!(parse_byte_piece("<0x41>"), Some(0x41));
        assert_eq!(parse_byte_piece("<0xFF>"), Some(0xff));
        assert_eq!(parse_byte_piece("<0x4>"), Some(4));
        assert_eq!(parse_byte_piece("<s>"), None);
        assert_eq!(parse_byte_piece("<0xZZ>"), None);
    }
}
