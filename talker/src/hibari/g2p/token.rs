//! The token record shared by the tokenizer, tagger and lexicon (`hibari/g2p/token.py`, misaki's
//! MToken flattened). The reference's `stress`, `num_flags` and `rating` fields are left out: hibari
//! never sets the first two (so they never change a reading) and `rating` is never read.

/// One token (or subtoken) and what the G2P has decided about it so far.
#[derive(Debug, Clone, Default)]
pub struct Tok {
    pub text: String,
    /// Penn Treebank tag from the tagger.
    pub tag: String,
    /// " " if the token was followed by whitespace, else "".
    pub whitespace: String,
    /// None = not decided yet (or unknown).
    pub phonemes: Option<String>,
    /// False for the non-first subtokens of a word.
    pub is_head: bool,
    /// Text to read instead of `text` ("2" → "to").
    pub alias: Option<String>,
    /// Currency symbol ($, £, €) an amount is read in.
    pub currency: Option<String>,
    /// Whether a space goes before this subtoken's phonemes when a word is merged.
    pub prespace: bool,
}

impl Tok {
    pub fn new(text: &str, tag: &str, whitespace: &str) -> Tok {
        Tok {
            text: text.to_string(),
            tag: tag.to_string(),
            whitespace: whitespace.to_string(),
            is_head: true,
            ..Tok::default()
        }
    }
}

/// Python's `sum(1 if c == c.lower() else 2 for c in text)`: capitals count double.
fn case_weight(text: &str) -> usize {
    text.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            if lower.next() == Some(c) && lower.next().is_none() {
                1
            } else {
                2
            }
        })
        .sum()
}

/// `merge_tokens(tokens, unk)`: one token spanning `tokens` (non-empty). With `unk` Some, the
/// subtokens' phonemes are concatenated (a space before those with `prespace`).
pub fn merge_tokens(tokens: &[Tok], unk: Option<&str>) -> Tok {
    let Some(last) = tokens.last() else {
        return Tok::default();
    };
    let phonemes = unk.map(|unk| {
        let mut ps = String::new();
        for tk in tokens {
            let needs_space = tk.prespace
                && ps
                    .chars()
                    .last()
                    .is_some_and(|c| !super::pystr::is_space(c))
                && tk.phonemes.as_deref().is_some_and(|p| !p.is_empty());
            if needs_space {
                ps.push(' ');
            }
            ps.push_str(tk.phonemes.as_deref().unwrap_or(unk));
        }
        ps
    });
    let mut text = String::new();
    for tk in &tokens[..tokens.len() - 1] {
        text.push_str(&tk.text);
        text.push_str(&tk.whitespace);
    }
    text.push_str(&last.text);
    // Python's max() keeps the first of equal keys.
    let mut tag_tok = &tokens[0];
    for tk in &tokens[1..] {
        if case_weight(&tk.text) > case_weight(&tag_tok.text) {
            tag_tok = tk;
        }
    }
    let currency = tokens.iter().filter_map(|t| t.currency.clone()).max();
    Tok {
        text,
        tag: tag_tok.tag.clone(),
        whitespace: last.whitespace.clone(),
        phonemes,
        is_head: tokens[0].is_head,
        alias: None,
        currency,
        prespace: tokens[0].prespace,
    }
}
