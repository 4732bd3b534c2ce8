//! misaki's English lexicon logic (`hibari/g2p/lexicon.py`, misaki 0.9.4 en.py, US rules):
//! gold/silver dictionaries with part-of-speech entries, function-word special cases, the
//! -s/-ed/-ing stem rules (US flapping `ɾ`, `ᵻ` vowels), number readings and stress changes.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::data::read_json;
use super::error::G2pError;
use super::numbers::{cardinal, decimal, ordinal, parse_int, year};
use super::pystr::{self, capitalize, is_alpha, is_alpha_char, lower, upper};
use super::re::Re;
use super::token::Tok;

pub const PRIMARY_STRESS: char = 'ˈ';
pub const SECONDARY_STRESS: char = 'ˌ';
pub const VOWELS: &str = "AIOQWYaiuæɑɒɔəɛɜɪʊʌᵻ";
pub const CONSONANTS: &str = "bdfhjklmnpstvwzðŋɡɹɾʃʒʤʧθ";
const US_TAUS: &str = "AIOWYiuæɑəɛɪɹʊʌ";
const DIPHTHONGS: &str = "AIOQWYʤʧ";
const ORDINALS: [&str; 4] = ["st", "nd", "rd", "th"];
/// Currency symbols the lexicon reads amounts in: (unit, hundredth).
pub const CURRENCIES: [(&str, (&str, &str)); 3] = [
    ("$", ("dollar", "cent")),
    ("£", ("pound", "pence")),
    ("€", ("euro", "cent")),
];
const SYMBOLS: [(&str, &str); 4] = [("%", "percent"), ("&", "and"), ("+", "plus"), ("@", "at")];

fn currency_units(c: &str) -> Option<(&'static str, &'static str)> {
    CURRENCIES.iter().find(|(s, _)| *s == c).map(|(_, u)| *u)
}

fn symbol_word(w: &str) -> Option<&'static str> {
    SYMBOLS.iter().find(|(s, _)| *s == w).map(|(_, v)| *v)
}

/// The future context while reading a sentence right to left.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// Does the next word start with a vowel (None: no next word / punctuation).
    pub future_vowel: Option<bool>,
    /// Is the next word "to".
    pub future_to: bool,
}

/// A dictionary value: phonemes, or phonemes per part of speech (null = spell it out).
#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Word(String),
    ByTag(HashMap<String, Option<String>>),
}

/// A misaki dictionary with `grow_dictionary` done at lookup time: a lowercase key also answers
/// its Capitalized form and vice versa, unless that form has its own entry.
struct Dict(HashMap<String, Entry>);

impl Dict {
    fn get(&self, w: &str) -> Option<&Entry> {
        if let Some(v) = self.0.get(w) {
            return Some(v);
        }
        if pystr::len(w) < 2 {
            return None;
        }
        let lw = lower(w);
        if w == lw {
            let c = capitalize(w);
            return if c != w { self.0.get(&c) } else { None };
        }
        if w == capitalize(&lw) {
            return self.0.get(&lw);
        }
        None
    }

    fn contains(&self, w: &str) -> bool {
        self.get(w).is_some()
    }
}

/// `stress_weight(ps)`: diphthongs count double.
pub fn stress_weight(ps: &str) -> usize {
    ps.chars()
        .map(|c| if DIPHTHONGS.contains(c) { 2 } else { 1 })
        .sum()
}

fn is_vowel(c: char) -> bool {
    VOWELS.contains(c)
}

/// Moves each stress mark to just before the next vowel.
fn restress(ps: &str) -> String {
    let chars: Vec<char> = ps.chars().collect();
    let mut keyed: Vec<(f64, char)> = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| (i as f64, c))
        .collect();
    for (i, &c) in chars.iter().enumerate() {
        if (c == PRIMARY_STRESS || c == SECONDARY_STRESS)
            && let Some(j) = (i..chars.len()).find(|&j| is_vowel(chars[j]))
        {
            keyed[i].0 = j as f64 - 0.5;
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, c)| c).collect()
}

/// `apply_stress(ps, stress)`: remove (< -1), demote (-1, or 0/-0.5 with a primary), add
/// secondary (0/0.5/1 when unstressed), promote (≥ 1), add primary (> 1 when unstressed).
pub fn apply_stress(ps: &str, stress: Option<f64>) -> String {
    let Some(s) = stress else {
        return ps.to_string();
    };
    let has_primary = ps.contains(PRIMARY_STRESS);
    let has_secondary = ps.contains(SECONDARY_STRESS);
    let unstressed = !has_primary && !has_secondary;
    let has_vowel = ps.chars().any(is_vowel);
    if s < -1.0 {
        ps.replace([PRIMARY_STRESS, SECONDARY_STRESS], "")
    } else if s == -1.0 || ((s == 0.0 || s == -0.5) && has_primary) {
        ps.replace(SECONDARY_STRESS, "")
            .replace(PRIMARY_STRESS, &SECONDARY_STRESS.to_string())
    } else if (s == 0.0 || s == 0.5 || s == 1.0) && unstressed {
        if !has_vowel {
            return ps.to_string();
        }
        restress(&format!("{SECONDARY_STRESS}{ps}"))
    } else if s >= 1.0 && !has_primary && has_secondary {
        ps.replace(SECONDARY_STRESS, &PRIMARY_STRESS.to_string())
    } else if s > 1.0 && unstressed {
        if !has_vowel {
            return ps.to_string();
        }
        restress(&format!("{PRIMARY_STRESS}{ps}"))
    } else {
        ps.to_string()
    }
}

/// `is_digit(text)`: ASCII digits only (the reference's `^[0-9]+$`).
pub fn is_ascii_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn parent_tag(tag: Option<&str>) -> Option<&str> {
    let t = tag?;
    Some(if t.starts_with("VB") {
        "VERB"
    } else if t.starts_with("NN") {
        "NOUN"
    } else if t.starts_with("ADV") || t.starts_with("RB") {
        "ADV"
    } else if t.starts_with("ADJ") || t.starts_with("JJ") {
        "ADJ"
    } else {
        t
    })
}

fn last_char(s: &str) -> Option<char> {
    s.chars().last()
}

/// The character before the last one.
fn second_last_char(s: &str) -> Option<char> {
    s.chars().rev().nth(1)
}

/// The gold and silver dictionaries with misaki's reading rules.
pub struct Lexicon {
    golds: Dict,
    silvers: Dict,
    non_letters: Re,
}

impl Lexicon {
    pub fn load(dir: &Path) -> Result<Lexicon, G2pError> {
        Ok(Lexicon {
            golds: Dict(read_json(dir, "lexicon_us_gold.json.gz")?),
            silvers: Dict(read_json(dir, "lexicon_us_silver.json.gz")?),
            non_letters: Re::new("[^a-z]+")?,
        })
    }

    /// `get_NNP(word)`: the letters spelled out, last stress primary.
    fn get_nnp(&self, word: &str) -> Option<String> {
        let mut ps = String::new();
        for c in word.chars().filter(|&c| is_alpha_char(c)) {
            match self.golds.get(&upper(&c.to_string())) {
                Some(Entry::Word(p)) => ps.push_str(p),
                _ => return None,
            }
        }
        let ps = apply_stress(&ps, Some(0.0));
        Some(match ps.rfind(SECONDARY_STRESS) {
            Some(i) => format!(
                "{}{PRIMARY_STRESS}{}",
                &ps[..i],
                &ps[i + SECONDARY_STRESS.len_utf8()..]
            ),
            None => ps,
        })
    }

    fn gold_word(&self, w: &str) -> Option<String> {
        match self.golds.get(w) {
            Some(Entry::Word(p)) => Some(p.clone()),
            _ => None,
        }
    }

    fn gold_tagged(&self, w: &str, key: &str) -> Option<String> {
        match self.golds.get(w) {
            Some(Entry::ByTag(m)) => m.get(key).cloned().flatten(),
            _ => None,
        }
    }

    /// `get_special_case`: None when the word is not special (or its special reading fails).
    fn special_case(
        &self,
        word: &str,
        tag: &str,
        stress: Option<f64>,
        ctx: &Context,
    ) -> Option<String> {
        let add_symbol = match word {
            "." => Some("dot"),
            "/" => Some("slash"),
            _ => None,
        };
        if let (true, Some(w)) = (tag == "ADD", add_symbol) {
            return self.lookup(w, None, Some(-0.5), Some(ctx));
        }
        if let Some(w) = symbol_word(word) {
            return self.lookup(w, None, None, Some(ctx));
        }
        let longest_part = word.split('.').map(pystr::len).max().unwrap_or(0);
        if word.trim_matches('.').contains('.')
            && is_alpha(&word.replace('.', ""))
            && longest_part < 3
        {
            return self.get_nnp(word);
        }
        match word {
            "a" | "A" => {
                return Some(if tag == "DT" { "ɐ" } else { "ˈA" }.to_string());
            }
            "am" | "Am" | "AM" => {
                if tag.starts_with("NN") {
                    return self.get_nnp(word);
                }
                if ctx.future_vowel.is_none()
                    || word != "am"
                    || stress.is_some_and(|s| s != 0.0 && s > 0.0)
                {
                    return self.gold_word("am");
                }
                return Some("ɐm".to_string());
            }
            "an" | "An" | "AN" => {
                if word == "AN" && tag.starts_with("NN") {
                    return self.get_nnp(word);
                }
                return Some("ɐn".to_string());
            }
            _ => {}
        }
        if word == "I" && tag == "PRP" {
            return Some(format!("{SECONDARY_STRESS}I"));
        }
        if matches!(word, "by" | "By" | "BY") && parent_tag(Some(tag)) == Some("ADV") {
            return Some("bˈI".to_string());
        }
        if matches!(word, "to" | "To") || (word == "TO" && matches!(tag, "TO" | "IN")) {
            return match ctx.future_vowel {
                None => self.gold_word("to"),
                Some(false) => Some("tə".to_string()),
                Some(true) => Some("tʊ".to_string()),
            };
        }
        if matches!(word, "in" | "In") || (word == "IN" && tag != "NNP") {
            let stress = if ctx.future_vowel.is_none() || tag != "IN" {
                "ˈ"
            } else {
                ""
            };
            return Some(format!("{stress}ɪn"));
        }
        if matches!(word, "the" | "The") || (word == "THE" && tag == "DT") {
            return Some(
                if ctx.future_vowel == Some(true) {
                    "ði"
                } else {
                    "ðə"
                }
                .to_string(),
            );
        }
        if tag == "IN" && matches!(lower(word).as_str(), "vs" | "vs.") {
            return self.lookup("versus", None, None, Some(ctx));
        }
        if matches!(word, "used" | "Used" | "USED") {
            if matches!(tag, "VBD" | "JJ") && ctx.future_to {
                return self.gold_tagged("used", "VBD");
            }
            return self.gold_tagged("used", "DEFAULT");
        }
        None
    }

    /// `is_known(word, tag)`.
    fn is_known(&self, word: &str) -> bool {
        if self.golds.contains(word) || symbol_word(word).is_some() || self.silvers.contains(word) {
            return true;
        }
        if !is_alpha(word) || !word.chars().all(|c| c.is_ascii_alphabetic()) {
            return false;
        }
        if pystr::len(word) == 1 {
            return true;
        }
        if word == upper(word) && self.golds.contains(&lower(word)) {
            return true;
        }
        let rest = pystr::skip(word, 1);
        rest == upper(rest)
    }

    /// `lookup(word, tag, stress, ctx)`: dictionary reading, spelled out when missing.
    fn lookup(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<String> {
        let mut word = word.to_string();
        let mut is_nnp = false;
        if word == upper(&word) && !self.golds.contains(&word) {
            word = lower(&word);
            is_nnp = tag == Some("NNP");
        }
        let mut entry = self.golds.get(&word);
        if entry.is_none() && !is_nnp {
            entry = self.silvers.get(&word);
        }
        let ps = match entry {
            None => None,
            Some(Entry::Word(p)) => Some(p.clone()),
            Some(Entry::ByTag(m)) => {
                let key = if ctx.is_some_and(|c| c.future_vowel.is_none()) && m.contains_key("None")
                {
                    Some("None")
                } else if tag.is_none_or(|t| !m.contains_key(t)) {
                    parent_tag(tag)
                } else {
                    tag
                };
                match key.and_then(|k| m.get(k)) {
                    Some(v) => v.clone(),
                    None => m.get("DEFAULT").cloned().flatten(),
                }
            }
        };
        let needs_spelling = match &ps {
            None => true,
            Some(p) => is_nnp && !p.contains(PRIMARY_STRESS),
        };
        if needs_spelling && let Some(spelled) = self.get_nnp(&word) {
            return Some(spelled);
        }
        ps.map(|p| apply_stress(&p, stress))
    }

    /// `_s(stem)`: plural / third person / possessive ending.
    fn suffix_s(stem: Option<String>) -> Option<String> {
        let stem = stem.filter(|s| !s.is_empty())?;
        let last = last_char(&stem)?;
        Some(if "ptkfθ".contains(last) {
            format!("{stem}s")
        } else if "szʃʒʧʤ".contains(last) {
            format!("{stem}ᵻz")
        } else {
            format!("{stem}z")
        })
    }

    fn stem_s(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<String> {
        let n = pystr::len(word);
        if n < 3 || !word.ends_with('s') {
            return None;
        }
        let stem = if !word.ends_with("ss") && self.is_known(pystr::drop_last(word, 1)) {
            pystr::drop_last(word, 1).to_string()
        } else if (word.ends_with("'s")
            || (n > 4 && word.ends_with("es") && !word.ends_with("ies")))
            && self.is_known(pystr::drop_last(word, 2))
        {
            pystr::drop_last(word, 2).to_string()
        } else if n > 4
            && word.ends_with("ies")
            && self.is_known(&format!("{}y", pystr::drop_last(word, 3)))
        {
            format!("{}y", pystr::drop_last(word, 3))
        } else {
            return None;
        };
        Self::suffix_s(self.lookup(&stem, tag, stress, ctx))
    }

    /// `_ed(stem)`: past tense ending with US flapping.
    fn suffix_ed(stem: Option<String>) -> Option<String> {
        let stem = stem.filter(|s| !s.is_empty())?;
        let last = last_char(&stem)?;
        Some(if "pkfθʃsʧ".contains(last) {
            format!("{stem}t")
        } else if last == 'd' {
            format!("{stem}ᵻd")
        } else if last != 't' {
            format!("{stem}d")
        } else if pystr::len(&stem) < 2 {
            format!("{stem}ɪd")
        } else if second_last_char(&stem).is_some_and(|c| US_TAUS.contains(c)) {
            format!("{}ɾᵻd", pystr::drop_last(&stem, 1))
        } else {
            format!("{stem}ᵻd")
        })
    }

    fn stem_ed(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<String> {
        let n = pystr::len(word);
        if n < 4 || !word.ends_with('d') {
            return None;
        }
        let stem = if !word.ends_with("dd") && self.is_known(pystr::drop_last(word, 1)) {
            pystr::drop_last(word, 1)
        } else if n > 4
            && word.ends_with("ed")
            && !word.ends_with("eed")
            && self.is_known(pystr::drop_last(word, 2))
        {
            pystr::drop_last(word, 2)
        } else {
            return None;
        };
        Self::suffix_ed(self.lookup(stem, tag, stress, ctx))
    }

    /// `_ing(stem)` with US flapping.
    fn suffix_ing(stem: Option<String>) -> Option<String> {
        let stem = stem.filter(|s| !s.is_empty())?;
        if pystr::len(&stem) > 1
            && last_char(&stem) == Some('t')
            && second_last_char(&stem).is_some_and(|c| US_TAUS.contains(c))
        {
            return Some(format!("{}ɾɪŋ", pystr::drop_last(&stem, 1)));
        }
        Some(format!("{stem}ɪŋ"))
    }

    fn stem_ing(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<String> {
        let n = pystr::len(word);
        if n < 5 || !word.ends_with("ing") {
            return None;
        }
        let base = pystr::drop_last(word, 3);
        let stem = if n > 5 && self.is_known(base) {
            base.to_string()
        } else if self.is_known(&format!("{base}e")) {
            format!("{base}e")
        } else if n > 5 && doubled_before_ing(word) && self.is_known(pystr::drop_last(word, 4)) {
            pystr::drop_last(word, 4).to_string()
        } else {
            return None;
        };
        Self::suffix_ing(self.lookup(&stem, tag, stress, ctx))
    }

    /// `get_word`: special cases, case folding, dictionary, then the stem rules.
    fn get_word(
        &self,
        word: &str,
        tag: &str,
        stress: Option<f64>,
        ctx: &Context,
    ) -> Option<String> {
        if let Some(ps) = self.special_case(word, tag, stress, ctx) {
            return Some(ps);
        }
        let wl = lower(word);
        let mut word = word.to_string();
        let rest = pystr::skip(&word, 1);
        let fold = pystr::len(&word) > 1
            && is_alpha(&word.replace('\'', ""))
            && word != wl
            && (tag != "NNP" || pystr::len(&word) > 7)
            && !self.golds.contains(&word)
            && !self.silvers.contains(&word)
            && (word == upper(&word) || rest == lower(rest))
            && (self.golds.contains(&wl)
                || self.silvers.contains(&wl)
                || self.readable_by_stems(&wl, tag, stress, ctx));
        if fold {
            word = wl;
        }
        let (t, c) = (Some(tag), Some(ctx));
        if self.is_known(&word) {
            return self.lookup(&word, t, stress, c);
        }
        if let Some(base) = word.strip_suffix("s'") {
            let possessive = format!("{base}'s");
            if self.is_known(&possessive) {
                return self.lookup(&possessive, t, stress, c);
            }
        }
        if let Some(base) = word.strip_suffix('\'')
            && self.is_known(base)
        {
            return self.lookup(base, t, stress, c);
        }
        if let Some(ps) = self.stem_s(&word, t, stress, c) {
            return Some(ps);
        }
        if let Some(ps) = self.stem_ed(&word, t, stress, c) {
            return Some(ps);
        }
        self.stem_ing(&word, t, Some(stress.unwrap_or(0.5)), c)
    }

    /// Python's `any(fn(wl, ...)[0] for fn in (stem_s, stem_ed, stem_ing))` (non-empty result).
    fn readable_by_stems(&self, wl: &str, tag: &str, stress: Option<f64>, ctx: &Context) -> bool {
        let (t, c) = (Some(tag), Some(ctx));
        let ok = |p: Option<String>| p.is_some_and(|p| !p.is_empty());
        ok(self.stem_s(wl, t, stress, c))
            || ok(self.stem_ed(wl, t, stress, c))
            || ok(self.stem_ing(wl, t, stress, c))
    }

    /// Appends the reading of `num`'s words (split on non-letters, "and" dropped).
    fn extend_words(&self, words: &str, result: &mut Vec<Option<String>>) -> Option<()> {
        for w in self.non_letters.split(words).ok()? {
            if w != "and" {
                let stress = if w == "point" { Some(-2.0) } else { None };
                result.push(self.lookup(w, None, stress, None));
            }
        }
        Some(())
    }

    /// `extend_num(num)` for a digit string: its cardinal reading.
    fn extend_cardinal(&self, num: &str, result: &mut Vec<Option<String>>) -> Option<()> {
        self.extend_words(&cardinal(parse_int(num)?)?, result)
    }

    /// `get_number(word, currency, is_head)`: cardinal / ordinal / year / digit-by-digit /
    /// decimal / currency readings. None where the reference cannot read (or would raise).
    pub fn get_number(&self, word: &str, currency: Option<&str>, is_head: bool) -> Option<String> {
        let suffix_len = word
            .chars()
            .rev()
            .take_while(|&c| c.is_ascii_lowercase() || c == '\'')
            .count();
        let suffix = (suffix_len > 0).then(|| pystr::last_n(word, suffix_len));
        let mut word = pystr::drop_last(word, suffix_len);
        let is_ordinal = suffix.is_some_and(|s| ORDINALS.contains(&s));
        let mut result: Vec<Option<String>> = Vec::new();
        if let Some(rest) = word.strip_prefix('-') {
            result.push(self.lookup("minus", None, None, None));
            word = rest;
        }
        let currency_units = currency.and_then(currency_units);
        let wlen = pystr::len(word);
        if is_ascii_number(word) && is_ordinal {
            self.extend_words(&ordinal(parse_int(word)?)?, &mut result)?;
        } else if result.is_empty()
            && wlen == 4
            && currency_units.is_none()
            && is_ascii_number(word)
        {
            self.extend_words(&year(parse_int(word)?)?, &mut result)?;
        } else if !is_head && !word.contains('.') {
            let num = word.replace(',', "");
            let digits: Vec<char> = num.chars().collect();
            let first = *digits.first()?;
            if first == '0' || digits.len() > 3 {
                for d in &digits {
                    self.extend_cardinal(&d.to_string(), &mut result)?;
                }
            } else if digits.len() == 3 && !num.ends_with("00") {
                self.extend_cardinal(&digits[0].to_string(), &mut result)?;
                if digits[1] == '0' {
                    result.push(self.lookup("O", None, Some(-2.0), None));
                    self.extend_cardinal(&digits[2].to_string(), &mut result)?;
                } else {
                    self.extend_cardinal(&digits[1..].iter().collect::<String>(), &mut result)?;
                }
            } else {
                self.extend_cardinal(&num, &mut result)?;
            }
        } else if word.matches('.').count() > 1 || !is_head {
            for num in word.replace(',', "").split('.') {
                let digits: Vec<char> = num.chars().collect();
                let Some(&first) = digits.first() else {
                    continue;
                };
                if first == '0' || (digits.len() != 2 && digits[1..].iter().any(|&d| d != '0')) {
                    for d in &digits {
                        self.extend_cardinal(&d.to_string(), &mut result)?;
                    }
                } else {
                    self.extend_cardinal(num, &mut result)?;
                }
            }
        } else if let Some((unit, hundredth)) = currency_units.filter(|_| is_currency(word)) {
            let plain = word.replace(',', "");
            let mut pairs: Vec<(u128, &str)> = Vec::new();
            for (num, unit) in plain.split('.').zip([unit, hundredth]) {
                let n = if num.is_empty() { 0 } else { parse_int(num)? };
                pairs.push((n, unit));
            }
            if pairs.len() > 1 {
                if pairs[1].0 == 0 {
                    pairs.truncate(1);
                } else if pairs[0].0 == 0 {
                    pairs.remove(0);
                }
            }
            for (i, (num, unit)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    result.push(self.lookup("and", None, None, None));
                }
                self.extend_words(&cardinal(num)?, &mut result)?;
                result.push(if num != 1 && unit != "pence" {
                    self.stem_s(&format!("{unit}s"), None, None, None)
                } else {
                    self.lookup(unit, None, None, None)
                });
            }
        } else {
            let words = if is_ascii_number(word) {
                cardinal(parse_int(word)?)?
            } else if !word.contains('.') {
                let n = parse_int(&word.replace(',', ""))?;
                if is_ordinal {
                    ordinal(n)?
                } else {
                    cardinal(n)?
                }
            } else {
                let plain = word.replace(',', "");
                if let Some(frac) = plain.strip_prefix('.') {
                    let mut parts = Vec::new();
                    for d in frac.chars() {
                        parts.push(cardinal(parse_int(&d.to_string())?)?);
                    }
                    format!("point {}", parts.join(" "))
                } else {
                    decimal(&plain)?
                }
            };
            self.extend_words(&words, &mut result)?;
        }
        if result.is_empty() {
            return None;
        }
        // The reference joins the readings and would raise on a missing one.
        let parts: Option<Vec<String>> = result.into_iter().collect();
        let joined = parts?.join(" ");
        match suffix {
            Some("s" | "'s") => Self::suffix_s(Some(joined)),
            Some("ed" | "'d") => Self::suffix_ed(Some(joined)),
            Some("ing") => Self::suffix_ing(Some(joined)),
            _ => Some(joined),
        }
    }

    /// `append_currency(ps, currency)`: "... dollars" after a word read in a currency.
    fn append_currency(&self, ps: String, currency: Option<&str>) -> String {
        let Some(c) = currency.filter(|c| !c.is_empty()) else {
            return ps;
        };
        let unit =
            currency_units(c).and_then(|(u, _)| self.stem_s(&format!("{u}s"), None, None, None));
        match unit {
            Some(u) if !u.is_empty() => format!("{ps} {u}"),
            _ => ps,
        }
    }

    /// `Lexicon.__call__(tk, ctx)`: the token's phonemes, or None if the lexicon can't read it.
    pub fn read(&self, tk: &Tok, ctx: &Context) -> Option<String> {
        let word = tk
            .alias
            .as_deref()
            .unwrap_or(&tk.text)
            .replace(['‘', '’'], "'");
        let word: String = word.nfkc().collect();
        let word: String = word.chars().map(numeric_if_needed).collect();
        let stress = if word == lower(&word) {
            None
        } else if word == upper(&word) {
            Some(2.0)
        } else {
            Some(0.5)
        };
        let currency = tk.currency.as_deref();
        if let Some(ps) = self.get_word(&word, &tk.tag, stress, ctx) {
            return Some(self.append_currency(ps, currency));
        }
        if is_number(&word, tk.is_head) {
            return self.get_number(&word, currency, tk.is_head);
        }
        None
    }
}

/// `([bcdgklmnprstvxz])\1ing$|cking$`.
fn doubled_before_ing(word: &str) -> bool {
    if word.ends_with("cking") {
        return true;
    }
    let chars: Vec<char> = word.chars().collect();
    let n = chars.len();
    n >= 5
        && word.ends_with("ing")
        && chars[n - 5] == chars[n - 4]
        && "bcdgklmnprstvxz".contains(chars[n - 4])
}

/// `is_currency(word)`: at most two decimals.
fn is_currency(word: &str) -> bool {
    if !word.contains('.') {
        return true;
    }
    if word.matches('.').count() > 1 {
        return false;
    }
    let cents = word.split('.').nth(1).unwrap_or("");
    pystr::len(cents) < 3
}

/// `numeric_if_needed(c)`: Unicode digits → ASCII.
fn numeric_if_needed(c: char) -> String {
    match pystr::digit_value(c) {
        Some(v) => v.to_string(),
        None => c.to_string(),
    }
}

/// `is_number(word, is_head)`: digits with , . (and a leading - for heads), optionally followed
/// by an ending (-s, -ed, -ing, ordinal).
fn is_number(word: &str, is_head: bool) -> bool {
    if !word.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let mut w = word;
    for s in ["ing", "'d", "ed", "'s", "st", "nd", "rd", "th", "s"] {
        if let Some(base) = w.strip_suffix(s) {
            w = base;
            break;
        }
    }
    w.chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || c == ',' || c == '.' || (is_head && i == 0 && c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_rules() {
        assert_eq!(apply_stress("həlˈO", Some(-0.5)), "həlˌO");
        assert_eq!(apply_stress("ðə", Some(2.0)), "ðˈə");
        assert_eq!(apply_stress("bit", Some(0.0)), "bˌit");
        assert_eq!(apply_stress("pɔɪnt", Some(-2.0)), "pɔɪnt");
        assert_eq!(apply_stress("bˌi", Some(1.0)), "bˈi");
        assert_eq!(stress_weight("ʧA"), 4);
    }

    #[test]
    fn number_shapes() {
        assert!(is_number("1,250", true));
        assert!(is_number("3rd", true));
        assert!(is_number("-5", true));
        assert!(!is_number("-5", false));
        assert!(!is_number("abc", true));
        assert!(doubled_before_ing("running"));
        assert!(!doubled_before_ing("reading"));
    }
}
