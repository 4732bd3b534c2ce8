//! Byte-level BPE tokenizer built from GGUF metadata (`tokenizer.ggml.model == "gpt2"`).
//!
//! This is the tokenizer family of SmolLM, Qwen2 and Llama 3 GGUFs: text is split on special
//! tokens first, then into pre-tokens by the regexes named by `tokenizer.ggml.pre` (the same
//! regexes llama.cpp uses), each pre-token's bytes are mapped to GPT-2's printable byte alphabet
//! and merged pairwise by merge rank. SentencePiece GGUFs (`tokenizer.ggml.model == "llama"`)
//! share the vocabulary and special-token handling and tokenize plain text with [`super::spm`].

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use fancy_regex::Regex;

use super::LlmError;
use super::spm::{self, SentencePiece};

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// GPT-2's pre-tokenizer regex (also HF `ByteLevel(use_regex=true)`).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Qwen2's pre-tokenizer regex (single digits).
const QWEN2_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer regex (digits in groups of up to three).
const LLAMA3_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Pre-tokenized words whose BPE result is remembered; the cache is cleared when full so memory
/// stays bounded whatever the input.
const WORD_CACHE_LIMIT: usize = 16_384;

/// A byte-level BPE tokenizer with its vocabulary, merges and special tokens.
#[derive(Debug)]
pub struct GgufTokenizer {
    tokens: Vec<String>,
    token_types: Vec<i32>,
    vocab: HashMap<String, u32>,
    /// (left id, right id) → (merge rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens matched verbatim in text, longest first.
    specials: Vec<(String, u32)>,
    /// Applied in order; each splits the pieces the previous one produced.
    pre_tokenizers: Vec<Regex>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    /// The token of each byte; `None` for the few bytes some vocabularies lack (SmolLM's has no
    /// 0x04 or 0xff), which are dropped like HF `tokenizers` does for a BPE without unk token.
    byte_tokens: [Option<u32>; 256],
    word_cache: std::sync::Mutex<HashMap<String, Vec<u32>>>,
    /// Set for SentencePiece vocabularies: plain text goes through it instead of byte-level BPE.
    sentence_piece: Option<SentencePiece>,
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: a prompt starts with BOS (see [`Self::encode_prompt`]).
    /// Defaults as llama.cpp: on for SentencePiece, off for byte-level BPE.
    pub add_bos: bool,
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`, when the GGUF names one.
    pub eot_id: Option<u32>,
}

fn md_string_array(ct: &gguf_file::Content, key: &str) -> Result<Vec<String>, LlmError> {
    let value = ct
        .metadata
        .get(key)
        .ok_or_else(|| LlmError::MissingMetadata(key.to_string()))?;
    let array = value
        .to_vec()
        .map_err(|e| LlmError::BadMetadata(key.to_string(), e.to_string()))?;
    array
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|e| LlmError::BadMetadata(key.to_string(), e.to_string()))
        })
        .collect()
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok())
}

/// GPT-2's reversible map from bytes to printable characters.
fn byte_alphabet() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next_extra = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next_extra).unwrap_or('\u{FFFD}');
            next_extra += 1;
            c
        };
    }
    map
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self, LlmError> {
        let model = ct
            .metadata
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if model != "gpt2" && model != "llama" {
            return Err(LlmError::UnsupportedTokenizer(format!(
                "tokenizer.ggml.model is `{model}`; byte-level BPE (`gpt2`) and SentencePiece \
                 (`llama`) GGUFs are supported"
            )));
        }
        let tokens = md_string_array(ct, "tokenizer.ggml.tokens")?;
        let merges_text = if model == "gpt2" {
            md_string_array(ct, "tokenizer.ggml.merges")?
        } else {
            Vec::new()
        };
        let token_types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| {
                    LlmError::BadMetadata("tokenizer.ggml.token_type".into(), e.to_string())
                })?
                .iter()
                .map(|t| t.to_i32().unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        let sentence_piece = if model == "llama" {
            let scores: Vec<f32> = match ct.metadata.get("tokenizer.ggml.scores") {
                Some(v) => v
                    .to_vec()
                    .map_err(|e| {
                        LlmError::BadMetadata("tokenizer.ggml.scores".into(), e.to_string())
                    })?
                    .iter()
                    .map(|s| s.to_f32().unwrap_or(0.0))
                    .collect(),
                None => {
                    return Err(LlmError::MissingMetadata("tokenizer.ggml.scores".into()));
                }
            };
            let add_space_prefix = ct
                .metadata
                .get("tokenizer.ggml.add_space_prefix")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(true);
            Some(SentencePiece::new(
                &tokens,
                &token_types,
                scores,
                md_u32(ct, "tokenizer.ggml.unknown_token_id"),
                add_space_prefix,
            ))
        } else {
            None
        };
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".to_string());
        let patterns: Vec<&str> = match pre.as_str() {
            // SmolLM / StarCoder style: every digit alone, then GPT-2.
            "smollm" | "starcoder" | "refact" | "codeshell" | "exaone" | "minerva" => {
                vec![r"\p{N}", GPT2_PATTERN]
            }
            "qwen2" | "deepseek-r1-qwen" => vec![QWEN2_PATTERN],
            "llama-bpe" | "llama3" | "smaug-bpe" => vec![LLAMA3_PATTERN],
            "gpt-2" | "gpt2" | "default" => vec![GPT2_PATTERN],
            other => {
                tracing::warn!(
                    pre = other,
                    "unknown tokenizer.ggml.pre; using the GPT-2 pre-tokenizer"
                );
                vec![GPT2_PATTERN]
            }
        };
        let pre_tokenizers = patterns
            .into_iter()
            .map(|p| Regex::new(p).map_err(|e| LlmError::UnsupportedTokenizer(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;

        let vocab: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut merges = HashMap::with_capacity(merges_text.len());
        for (rank, merge) in merges_text.iter().enumerate() {
            let Some((left, right)) = merge.split_once(' ') else {
                return Err(LlmError::BadMetadata(
                    "tokenizer.ggml.merges".into(),
                    format!("merge `{merge}` is not `left right`"),
                ));
            };
            let (Some(&l), Some(&r), Some(&m)) = (
                vocab.get(left),
                vocab.get(right),
                vocab.get(&format!("{left}{right}")),
            ) else {
                // A merge whose parts are not in the vocabulary can never apply.
                continue;
            };
            merges.entry((l, r)).or_insert((rank as u32, m));
        }
        let byte_to_char = byte_alphabet();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let mut byte_tokens = [None; 256];
        for (b, c) in byte_to_char.iter().enumerate() {
            byte_tokens[b] = vocab.get(&c.to_string()).copied();
        }
        if sentence_piece.is_none()
            && (byte_tokens[b'a' as usize].is_none() || byte_tokens[b' ' as usize].is_none())
        {
            return Err(LlmError::UnsupportedTokenizer(
                "the vocabulary does not use GPT-2's byte alphabet".into(),
            ));
        }
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&token_types)
            .enumerate()
            .filter(|(_, (t, ty))| {
                !t.is_empty() && matches!(**ty, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)
            })
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        specials.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        let add_bos = ct
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(sentence_piece.is_some());
        Ok(Self {
            bos_id: md_u32(ct, "tokenizer.ggml.bos_token_id"),
            add_bos,
            eos_id: md_u32(ct, "tokenizer.ggml.eos_token_id"),
            eot_id: md_u32(ct, "tokenizer.ggml.eot_token_id"),
            tokens,
            token_types,
            vocab,
            merges,
            specials,
            pre_tokenizers,
            byte_to_char,
            char_to_byte,
            byte_tokens,
            word_cache: std::sync::Mutex::new(HashMap::new()),
            sentence_piece,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token given its exact vocabulary string (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// The vocabulary string of a token id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is a control token (`<|im_start|>`, `<|endoftext|>`, ...).
    pub fn is_control(&self, id: u32) -> bool {
        self.token_types.get(id as usize) == Some(&TOKEN_TYPE_CONTROL)
    }

    /// Encodes text; special-token strings in it become their special ids (the rendered chat
    /// template relies on this).
    ///
    /// SentencePiece vocabularies: like llama.cpp, every stretch of plain text that begins `text`
    /// or follows a special token gets the dummy prefix `▁` (so `"hi"` is `▁hi`, and
    /// `"<s>[INST] hi"` is `<s>`, `▁[INST]▁hi`). No BOS is added; see [`Self::encode_prompt`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.encode_stretches(text, true)
    }

    /// Encodes text that continues text encoded before (e.g. the next part of a conversation
    /// after the cached one): like [`Self::encode`], except that for SentencePiece the start gets
    /// no dummy prefix unless it is a special token, so the pieces equal those of encoding the
    /// whole text at once (up to merges across the boundary). Byte-level BPE: same as `encode`.
    pub fn encode_continuation(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.encode_stretches(text, false)
    }

    /// Splits `text` at special tokens and encodes the plain stretches between them; `fresh`:
    /// whether the first stretch begins the input.
    fn encode_stretches(&self, text: &str, mut fresh: bool) -> Result<Vec<u32>, LlmError> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match self.next_special(rest) {
                Some((at, token, id)) => {
                    self.encode_plain(&rest[..at], fresh, &mut ids)?;
                    ids.push(id);
                    // llama.cpp: the text after a special token starts afresh.
                    fresh = true;
                    rest = &rest[at + token.len()..];
                }
                None => {
                    self.encode_plain(rest, fresh, &mut ids)?;
                    break;
                }
            }
        }
        Ok(ids)
    }

    /// Encodes a whole prompt as llama.cpp does with `add_special`: BOS first when the GGUF asks
    /// for it (`tokenizer.ggml.add_bos_token`) and the text (e.g. a chat template that prints
    /// `bos_token`) does not already start with it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let ids = self.encode(text)?;
        match self.bos_id {
            Some(bos) if self.add_bos && ids.first() != Some(&bos) => {
                let mut with_bos = Vec::with_capacity(ids.len() + 1);
                with_bos.push(bos);
                with_bos.extend(ids);
                Ok(with_bos)
            }
            _ => Ok(ids),
        }
    }

    /// Whether this is a SentencePiece vocabulary (`tokenizer.ggml.model == "llama"`).
    pub fn is_sentence_piece(&self) -> bool {
        self.sentence_piece.is_some()
    }

    /// The earliest special token in `text` (the longest one when several start there).
    fn next_special<'a>(&'a self, text: &str) -> Option<(usize, &'a str, u32)> {
        let mut best: Option<(usize, &str, u32)> = None;
        for (token, id) in &self.specials {
            if let Some(at) = text.find(token.as_str()) {
                // `specials` is sorted longest first, so a tie keeps the longer token.
                if best.is_none_or(|(b, _, _)| at < b) {
                    best = Some((at, token.as_str(), *id));
                }
            }
        }
        best
    }

    /// Encodes text without special tokens. `fresh`: the text begins the input or follows a
    /// special token (SentencePiece then adds its dummy prefix).
    fn encode_plain(&self, text: &str, fresh: bool, ids: &mut Vec<u32>) -> Result<(), LlmError> {
        if text.is_empty() {
            return Ok(());
        }
        if let Some(sp) = &self.sentence_piece {
            return sp.encode(&self.vocab, text, fresh, ids);
        }
        let mut pieces = vec![text];
        for regex in &self.pre_tokenizers {
            let mut next = Vec::with_capacity(pieces.len());
            for piece in pieces {
                split_keeping_gaps(regex, piece, &mut next)?;
            }
            pieces = next;
        }
        for piece in pieces {
            self.encode_word(piece, ids);
        }
        Ok(())
    }

    /// BPE over one pre-token: start from its bytes, repeatedly merge the lowest-ranked adjacent
    /// pair (leftmost first), as HF `tokenizers` and llama.cpp do.
    fn encode_word(&self, word: &str, ids: &mut Vec<u32>) {
        // A poisoned lock only means another thread panicked mid-insert; the cache is still a
        // valid map, so keep using it.
        let mut cache = self.word_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get(word) {
            ids.extend_from_slice(cached);
            return;
        }
        let mut symbols: Vec<u32> = word
            .bytes()
            .filter_map(|b| self.byte_tokens[b as usize])
            .collect();
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(symbols[i], symbols[i + 1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        ids.extend_from_slice(&symbols);
        if cache.len() >= WORD_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(word.to_string(), symbols);
    }

    /// The bytes one token stands for. Control tokens give their literal text.
    pub fn token_bytes(&self, id: u32, out: &mut Vec<u8>) {
        let Some(token) = self.tokens.get(id as usize) else {
            return;
        };
        if matches!(
            self.token_types.get(id as usize),
            Some(&TOKEN_TYPE_CONTROL) | Some(&TOKEN_TYPE_USER_DEFINED)
        ) {
            out.extend_from_slice(token.as_bytes());
            return;
        }
        if self.sentence_piece.is_some() {
            if self.token_types.get(id as usize) == Some(&spm::TOKEN_TYPE_BYTE)
                && let Some(byte) = spm::parse_byte_piece(token)
            {
                out.push(byte);
            } else {
                let text: String = token
                    .chars()
                    .map(|c| if c == spm::SPACE { ' ' } else { c })
                    .collect();
                out.extend_from_slice(text.as_bytes());
            }
            return;
        }
        for c in token.chars() {
            match self.char_to_byte.get(&c) {
                Some(&b) => out.push(b),
                // Not from the byte alphabet: the vocabulary stores the text itself.
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// The text `ids` stand for where they continue earlier text: every token's bytes, the
    /// SentencePiece dummy-prefix space included (unlike [`Self::decode`]); invalid UTF-8
    /// becomes U+FFFD.
    pub fn continuation_text(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            self.token_bytes(id, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Decodes ids to text (invalid UTF-8 becomes U+FFFD). Control tokens give their literal
    /// text.
    ///
    /// SentencePiece vocabularies: as SentencePiece does, the dummy prefix's space is dropped
    /// again from the first piece that is not a control token (so `decode(encode(t)) == t` and a
    /// leading BOS changes nothing but its own `<s>`). Streaming callers that decode token by
    /// token with [`Self::token_bytes`] get the space (it separates the answer from the prompt).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut strip_space = self
            .sentence_piece
            .as_ref()
            .is_some_and(|sp| sp.add_space_prefix);
        let mut bytes = Vec::new();
        for &id in ids {
            let start = bytes.len();
            self.token_bytes(id, &mut bytes);
            if strip_space && !self.is_control(id) {
                if bytes.get(start) == Some(&b' ') {
                    bytes.remove(start);
                }
                strip_space = false;
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The printable character GPT-2's alphabet uses for a byte (tests use this to read vocab).
    pub fn byte_char(&self, byte: u8) -> char {
        self.byte_to_char[byte as usize]
    }
}

/// Splits `text` into the regex's matches and the gaps between them (HF `Split` with
/// `Isolated` behaviour), all kept in order.
fn split_keeping_gaps<'a>(
    regex: &Regex,
    text: &'a str,
    out: &mut Vec<&'a str>,
) -> Result<(), LlmError> {
    let mut last = 0;
    for m in regex.find_iter(text) {
        let m = m.map_err(|e| LlmError::Tokenize(e.to_string()))?;
        if m.start() > last {
            out.push(&text[last..m.start()]);
        }
        if m.end() > m.start() {
            out.push(m.as_str());
        }
        last = m.end();
    }
    if last < text.len() {
        out.push(&text[last..]);
    }
    Ok(())
}

/// Turns a growing byte stream (token after token) into text pieces that are always whole
/// UTF-8 characters: a character split across tokens is emitted once its last byte arrives.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes and returns the text that became complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    text.push_str(s);
                    self.pending.clear();
                    return text;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe by construction: `valid_up_to` bytes are valid UTF-8.
                    text.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete sequence at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return text;
                        }
                        // Invalid bytes can never complete: replace them and go on.
                        Some(bad) => {
                            text.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}
