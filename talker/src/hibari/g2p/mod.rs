//! hibari's G2P: English text → misaki-style phonemes, a port of the `hibari.g2p` Python package
//! (itself misaki 0.9.4 without spaCy/espeak). Spec: `docs/hibari_port.md` §2–3.
//!
//! Pipeline for one sentence: [`normalize`] (times, dates, units, abbreviations) → [`tokenize`]
//! (spaCy's English rules) → [`tagger`] (perceptron POS tags) → per word, right to left:
//! [`lexicon`] (dictionaries with POS and context rules, numbers, stems) or, for unknown words,
//! the [`oov`] network → stress resolution → one phoneme string. [`sentences`] splits text into
//! sentences and [`vocab`] maps phonemes to model ids.
//!
//! Everything follows the Python character for character, including its string semantics
//! ([`pystr`]); the tests compare against the package's own output.

pub mod data;
pub mod error;
pub mod lexicon;
pub mod normalize;
pub mod numbers;
pub mod oov;
pub mod pystr;
pub mod re;
pub mod sentences;
pub mod tagger;
pub mod token;
pub mod tokenize;
pub mod vocab;

use std::path::Path;
use std::sync::LazyLock;

pub use error::G2pError;
pub use sentences::split_sentences;
pub use vocab::{MAX_PHONEMES, Vocab, chunk_phonemes};

use lexicon::{
    CONSONANTS, CURRENCIES, Context, Lexicon, PRIMARY_STRESS, VOWELS, apply_stress, stress_weight,
};
use normalize::Normalizer;
use oov::Oov;
use pystr::{LETTER, S, W};
use re::Re;
use tagger::Tagger;
use token::{Tok, merge_tokens};
use tokenize::Tokenizer;

/// Characters kept as punctuation phonemes.
const PUNCTS: &str = ";:,.!?—…\"“”";
/// The same without the quotes.
const NON_QUOTE_PUNCTS: &str = ";:,.!?—…";
/// Subtokens that read as nothing inside a word.
const SUBTOKEN_JUNKS: &str = "',-._‘’/";
const PUNCT_TAGS: [&str; 11] = [
    ".", ",", "-LRB-", "-RRB-", "``", "\"\"", "''", ":", "$", "#", "NFP",
];

/// Phonemes for symbol pieces of unknown words (what espeak read them as).
fn symbol_phonemes(c: char) -> &'static str {
    match c {
        '/' => "slˈæʃ",
        '=' => "ˈikwᵊlz",
        '+' => "plˈʌs",
        '&' => "ænd",
        '@' => "æt",
        '%' => "pəɹsˈɛnt",
        '#' => "hˈæʃ",
        '*' => "ˈæstəɹˌɪsk",
        '~' => "tˈɪldə",
        '^' => "kˈɛɹət",
        '<' => "lˈɛs ðən",
        '>' => "ɡɹˈATəɹ ðən",
        '—' => "—",
        _ => "",
    }
}

struct Patterns {
    subtoken: Re,
    link: Re,
    fallback_piece: Re,
}

static PATTERNS: LazyLock<Result<Patterns, String>> = LazyLock::new(|| {
    let build = || -> Result<Patterns, G2pError> {
        Ok(Patterns {
            subtoken: Re::new(&format!(
                "^['‘’]+|[A-ZÀ-ÖØ-Þ](?=[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])|(?:^-)?(?:\\d?[,.]?\\d)+|[-_]+|['‘’]{{2,}}\
|{LETTER}*?(?:['‘’]{LETTER})*?[a-zß-öø-ÿ](?=[A-ZÀ-ÖØ-Þ])|{LETTER}+(?:['‘’]{LETTER})*\
|[^{W}\\-'‘’]|['‘’]+$"
            ))?,
            link: Re::new(r"\[([^\]]+)\]\(([^\)]*)\)")?,
            fallback_piece: Re::new(&format!(
                r"{LETTER}+(?:['’]{LETTER}+)*|\d+(?:[,.]\d+)*|[^{W}{S}]+"
            ))?,
        })
    };
    build().map_err(|e| e.to_string())
});

fn patterns() -> Result<&'static Patterns, G2pError> {
    PATTERNS.as_ref().map_err(|e| G2pError::BadData {
        path: "(built-in G2P patterns)".into(),
        reason: e.clone(),
    })
}

/// A word of the sentence: one token, or subtokens written without spaces between them.
enum Word {
    Single(Tok),
    Group(Vec<Tok>),
}

/// The loaded G2P: all data files and the OOV network.
pub struct G2p {
    normalizer: Normalizer,
    tokenizer: Tokenizer,
    tagger: Tagger,
    lexicon: Lexicon,
    oov: Oov,
    vocab: Vocab,
}

impl G2p {
    /// Loads every data file of the hibari-tts model directory once (the OOV net on the CPU).
    pub fn load(model_dir: &Path) -> Result<G2p, G2pError> {
        patterns()?;
        Ok(G2p {
            normalizer: Normalizer::load(model_dir)?,
            tokenizer: Tokenizer::load(model_dir)?,
            tagger: Tagger::load(model_dir)?,
            lexicon: Lexicon::load(model_dir)?,
            oov: Oov::load(model_dir)?,
            vocab: Vocab::load(model_dir)?,
        })
    }

    /// The model's phoneme alphabet (`vocab.json`).
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The OOV network (exposed for its own tests).
    pub fn oov(&self) -> &Oov {
        &self.oov
    }

    /// `normalize(text)`.
    pub fn normalize(&self, text: &str) -> Result<String, G2pError> {
        self.normalizer.normalize(text)
    }

    /// The misaki-style phoneme string of one sentence (hibari's `G2P(sentence)`).
    pub fn phonemize(&self, sentence: &str) -> Result<String, G2pError> {
        let text = self.normalizer.normalize(sentence)?;
        let tokens = self.phonemize_tokens(self.tokenize(&text)?)?;
        let mut out = String::new();
        for tk in &tokens {
            out.push_str(tk.phonemes.as_deref().unwrap_or(""));
            if !tk.whitespace.is_empty() {
                out.push(' ');
            }
        }
        Ok(pystr::strip(&out).to_string())
    }

    /// Tokens with tags; `[text](/phonemes/)` sets a token's phonemes directly.
    pub fn tokenize(&self, text: &str) -> Result<Vec<Tok>, G2pError> {
        let mut toks = Vec::new();
        let mut pos = 0;
        for m in patterns()?.link.captures_all(text)? {
            toks.extend(self.plain_tokens(&text[pos..m.start()])?);
            let f = m.get(2, text).unwrap_or("");
            let ps = (pystr::len(f) > 1 && f.starts_with('/') && f.ends_with('/'))
                .then(|| f[1..].trim_end_matches('/').to_string());
            let ws = text[m.end()..].chars().next().is_some_and(pystr::is_space);
            let mut tk = Tok::new(
                m.get(1, text).unwrap_or(""),
                "NN",
                if ws { " " } else { "" },
            );
            tk.phonemes = ps;
            toks.push(tk);
            pos = m.end();
        }
        toks.extend(self.plain_tokens(&text[pos..])?);
        Ok(toks)
    }

    fn plain_tokens(&self, text: &str) -> Result<Vec<Tok>, G2pError> {
        let pairs = self.tokenizer.tokenize(text)?;
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let words: Vec<String> = pairs.iter().map(|(t, _)| t.clone()).collect();
        let tags = self.tagger.tag(&words);
        Ok(pairs
            .iter()
            .zip(tags)
            .map(|((t, ws), tag)| Tok::new(t, &tag, ws))
            .collect())
    }

    /// `retokenize`: subtokens, punctuation and currency marks, grouped into words.
    fn retokenize(&self, tokens: Vec<Tok>) -> Result<Vec<Word>, G2pError> {
        let pats = patterns()?;
        let mut words: Vec<Word> = Vec::new();
        let mut currency: Option<String> = None;
        let next_tags: Vec<Option<String>> = tokens
            .iter()
            .skip(1)
            .map(|t| Some(t.tag.clone()))
            .chain(std::iter::once(None))
            .collect();
        for (token, next_tag) in tokens.into_iter().zip(next_tags) {
            let mut tks: Vec<Tok> = if token.alias.is_none() && token.phonemes.is_none() {
                pats.subtoken
                    .find_strs(&token.text)?
                    .into_iter()
                    .map(|t| {
                        let mut tk = token.clone();
                        tk.text = t.to_string();
                        tk.whitespace = String::new();
                        tk.is_head = true;
                        tk.prespace = false;
                        tk
                    })
                    .collect()
            } else {
                vec![token.clone()]
            };
            // The reference would raise on a token with no subtoken at all; skip it instead.
            let Some(last) = tks.last_mut() else {
                continue;
            };
            last.whitespace = token.whitespace.clone();
            let n = tks.len();
            for j in 0..n {
                let (before, rest) = tks.split_at_mut(j);
                let (tk, after) = rest.split_at_mut(1);
                let tk = &mut tk[0];
                if tk.alias.is_some() || tk.phonemes.is_some() {
                } else if tk.tag == "$" && CURRENCIES.iter().any(|(s, _)| *s == tk.text) {
                    currency = Some(tk.text.clone());
                    tk.phonemes = Some(String::new());
                } else if tk.tag == ":" && (tk.text == "-" || tk.text == "–") {
                    tk.phonemes = Some("—".to_string());
                } else if PUNCT_TAGS.contains(&tk.tag.as_str()) && !all_ascii_letters(&tk.text) {
                    tk.phonemes = Some(match tk.tag.as_str() {
                        "-LRB-" => "(".to_string(),
                        "-RRB-" => ")".to_string(),
                        "``" => "“".to_string(),
                        "\"\"" | "''" => "”".to_string(),
                        _ => tk.text.chars().filter(|&c| PUNCTS.contains(c)).collect(),
                    });
                } else if currency.is_some() {
                    if tk.tag != "CD" {
                        currency = None;
                    } else if j + 1 == n && next_tag.as_deref() != Some("CD") {
                        tk.currency = currency.clone();
                    }
                } else if 0 < j && j + 1 < n && tk.text == "2" {
                    let prev_last = before[j - 1].text.chars().last();
                    let next_first = after[0].text.chars().next();
                    if let (Some(a), Some(b)) = (prev_last, next_first)
                        && pystr::is_alpha(&format!("{a}{b}"))
                    {
                        tk.alias = Some("to".to_string());
                    }
                }
            }
            for tk in tks {
                if tk.alias.is_some() || tk.phonemes.is_some() {
                    words.push(Word::Single(tk));
                    continue;
                }
                if let Some(Word::Group(group)) = words.last_mut()
                    && group.last().is_some_and(|g| g.whitespace.is_empty())
                {
                    let mut tk = tk;
                    tk.is_head = false;
                    group.push(tk);
                    continue;
                }
                words.push(if tk.whitespace.is_empty() {
                    Word::Group(vec![tk])
                } else {
                    Word::Single(tk)
                });
            }
        }
        Ok(words
            .into_iter()
            .map(|w| match w {
                Word::Group(mut g) if g.len() == 1 => Word::Single(g.remove(0)),
                w => w,
            })
            .collect())
    }

    /// `token_context`: what the word just read tells the word before it.
    fn token_context(ctx: Context, ps: Option<&str>, token: &Tok) -> Context {
        let mut vowel = ctx.future_vowel;
        if let Some(ps) = ps.filter(|p| !p.is_empty()) {
            let first = ps.chars().find(|&c| {
                VOWELS.contains(c) || CONSONANTS.contains(c) || NON_QUOTE_PUNCTS.contains(c)
            });
            if let Some(c) = first {
                vowel = if NON_QUOTE_PUNCTS.contains(c) {
                    None
                } else {
                    Some(VOWELS.contains(c))
                };
            }
        }
        let future_to = matches!(token.text.as_str(), "to" | "To")
            || (token.text == "TO" && matches!(token.tag.as_str(), "TO" | "IN"));
        Context {
            future_vowel: vowel,
            future_to,
        }
    }

    /// `resolve_tokens`: spaces between a word's subtokens and stress demotion.
    fn resolve_tokens(tokens: &mut [Tok]) {
        let Some(last) = tokens.last() else {
            return;
        };
        let mut text = String::new();
        for tk in &tokens[..tokens.len() - 1] {
            text.push_str(&tk.text);
            text.push_str(&tk.whitespace);
        }
        text.push_str(&last.text);
        let kinds: std::collections::HashSet<u8> = text
            .chars()
            .filter(|&c| !SUBTOKEN_JUNKS.contains(c))
            .map(|c| {
                if pystr::is_alpha_char(c) {
                    0
                } else if c.is_ascii_digit() {
                    1
                } else {
                    2
                }
            })
            .collect();
        let prespace = text.contains(' ') || text.contains('/') || kinds.len() > 1;
        let n = tokens.len();
        for (i, tk) in tokens.iter_mut().enumerate() {
            if tk.phonemes.is_none() {
                let single_punct = {
                    let mut cs = tk.text.chars();
                    matches!((cs.next(), cs.next()), (Some(c), None) if NON_QUOTE_PUNCTS.contains(c))
                };
                if i + 1 == n && single_punct {
                    tk.phonemes = Some(tk.text.clone());
                } else if tk.text.chars().all(|c| SUBTOKEN_JUNKS.contains(c)) {
                    tk.phonemes = Some(String::new());
                }
            } else if i > 0 {
                tk.prespace = prespace;
            }
        }
        if prespace {
            return;
        }
        let mut indices: Vec<(bool, usize, usize)> = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, tk)| {
                let ps = tk.phonemes.as_deref().filter(|p| !p.is_empty())?;
                Some((ps.contains(PRIMARY_STRESS), stress_weight(ps), i))
            })
            .collect();
        let demote = |tk: &mut Tok| {
            if let Some(ps) = tk.phonemes.as_deref() {
                tk.phonemes = Some(apply_stress(ps, Some(-0.5)));
            }
        };
        if indices.len() == 2 && pystr::len(&tokens[indices[0].2].text) == 1 {
            demote(&mut tokens[indices[1].2]);
            return;
        }
        let primaries = indices.iter().filter(|x| x.0).count();
        if indices.len() < 2 || primaries <= indices.len().div_ceil(2) {
            return;
        }
        indices.sort();
        let half = indices.len() / 2;
        for &(_, _, i) in &indices[..half] {
            demote(&mut tokens[i]);
        }
    }

    /// `fallback`: letters to the OOV net, digit runs to the number reader, symbols to a table.
    fn fallback(&self, tk: &Tok) -> Result<String, G2pError> {
        let mut out = Vec::new();
        for piece in patterns()?.fallback_piece.find_strs(&tk.text)? {
            let Some(first) = piece.chars().next() else {
                continue;
            };
            let ps = if pystr::is_digit_char(first) {
                self.lexicon.get_number(piece, None, false)
            } else if pystr::is_alpha_char(first) {
                self.oov.phonemize(piece)?
            } else {
                Some(piece.chars().map(symbol_phonemes).collect())
            };
            if let Some(ps) = ps.filter(|p| !p.is_empty()) {
                out.push(ps);
            }
        }
        Ok(out.join(" "))
    }

    /// `phonemize_tokens`: fills in every token's phonemes (misaki `G2P.__call__`).
    pub fn phonemize_tokens(&self, tokens: Vec<Tok>) -> Result<Vec<Tok>, G2pError> {
        let mut words = self.retokenize(tokens)?;
        let mut ctx = Context::default();
        for word in words.iter_mut().rev() {
            match word {
                Word::Single(w) => {
                    if w.phonemes.is_none() {
                        w.phonemes = self.lexicon.read(w, &ctx);
                    }
                    if w.phonemes.is_none() {
                        w.phonemes = Some(self.fallback(w)?);
                    }
                    ctx = Self::token_context(ctx, w.phonemes.as_deref(), w);
                }
                Word::Group(w) => ctx = self.phonemize_group(w, ctx)?,
            }
        }
        let mut out = Vec::with_capacity(words.len());
        for word in words {
            let mut tk = match word {
                Word::Single(tk) => tk,
                Word::Group(g) => merge_tokens(&g, Some("")),
            };
            if let Some(ps) = tk.phonemes.as_mut()
                && !ps.is_empty()
            {
                *ps = ps.replace('ɾ', "T").replace('ʔ', "t");
            }
            out.push(tk);
        }
        Ok(out)
    }

    /// One multi-subtoken word: longest readable spans from the left, right to left.
    fn phonemize_group(&self, w: &mut [Tok], mut ctx: Context) -> Result<Context, G2pError> {
        let (mut left, mut right) = (0, w.len());
        let mut should_fallback = false;
        while left < right {
            let span = &w[left..right];
            let fixed = span
                .iter()
                .any(|t| t.alias.is_some() || t.phonemes.is_some());
            let merged = (!fixed).then(|| merge_tokens(span, None));
            let ps = match &merged {
                Some(tk) => self.lexicon.read(tk, &ctx),
                None => None,
            };
            if let (Some(ps), Some(tk)) = (ps, merged) {
                ctx = Self::token_context(ctx, Some(&ps), &tk);
                w[left].phonemes = Some(ps);
                for x in &mut w[left + 1..right] {
                    x.phonemes = Some(String::new());
                }
                right = left;
                left = 0;
            } else if left + 1 < right {
                left += 1;
            } else {
                right -= 1;
                let tk = &mut w[right];
                if tk.phonemes.is_none() {
                    if tk.text.chars().all(|c| SUBTOKEN_JUNKS.contains(c)) {
                        tk.phonemes = Some(String::new());
                    } else {
                        should_fallback = true;
                        break;
                    }
                }
                left = 0;
            }
        }
        if should_fallback {
            let merged = merge_tokens(w, None);
            w[0].phonemes = Some(self.fallback(&merged)?);
            for x in &mut w[1..] {
                x.phonemes = Some(String::new());
            }
        } else {
            Self::resolve_tokens(w);
        }
        Ok(ctx)
    }
}

/// `all(97 <= ord(c.lower()) <= 122 for c in text)`.
fn all_ascii_letters(text: &str) -> bool {
    text.chars().all(|c| {
        let mut l = c.to_lowercase();
        matches!((l.next(), l.next()), (Some(x), None) if x.is_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::lexicon::is_ascii_number;
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(patterns().is_ok(), "{:?}", PATTERNS.as_ref().err());
    }

    #[test]
    fn ascii_number_rule() {
        assert!(is_ascii_number("2024"));
        assert!(!is_ascii_number("٣"));
    }
}
