//! Text normalization before tokenizing (`hibari/g2p/normalize.py`): times, dates, units,
//! abbreviations, other currencies, symbols. Plain numbers, $/£/€ amounts, percents, ordinals and
//! years are left for the lexicon. Word tables come from `normalize.json`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::data::{Ordered, read_json};
use super::error::G2pError;
use super::numbers::{cardinal, ordinal, parse_int};
use super::pystr::{self, S, W, word_boundary};
use super::re::{Re, alternation, escape};

/// `normalize.json`.
#[derive(Deserialize)]
pub struct Tables {
    pub months: Ordered<String>,
    pub titles: Ordered<String>,
    pub abbreviations: Ordered<String>,
    pub units: Ordered<Vec<String>>,
    pub symbols: Ordered<String>,
    pub currency: HashMap<String, Vec<String>>,
    pub roman_cardinal: Vec<String>,
    pub roman_ordinal: Vec<String>,
}

/// The compiled normalization rules, applied in `normalize.py`'s order.
pub struct Normalizer {
    t: Tables,
    month_names: Vec<String>,
    ws: Re,
    time: Re,
    date_us: Re,
    date_iso: Re,
    month_day: Re,
    day_month: Re,
    unit: Re,
    deg: Re,
    cents: Re,
    currency: Re,
    big_money: Re,
    title: Re,
    abbrev: Re,
    no: Re,
    hash: Re,
    roman_c: Re,
    roman_o: Re,
    phone: Re,
    range: Re,
    fraction: Re,
    plus: Re,
    space_punct: Re,
    /// (symbol, its pattern, its replacement), in table order.
    symbols: Vec<(String, Re, String)>,
}

const NUM: &str = r"\d+(?:,\d{3})*(?:\.\d+)?";
const ROMAN_NUMERAL: &str =
    r"((?=[IVXLC])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))";

fn plural<'a>(n_text: &str, words: &'a [String]) -> &'a str {
    let n = n_text.replace(',', "");
    let i = usize::from(!matches!(n.as_str(), "1" | "1.0" | "-1"));
    words.get(i).map_or("", String::as_str)
}

fn roman(s: &str) -> u128 {
    let value = |c: char| match c {
        'I' => 1,
        'V' => 5,
        'X' => 10,
        'L' => 50,
        'C' => 100,
        'D' => 500,
        'M' => 1000,
        _ => 0,
    };
    let chars: Vec<char> = s.chars().collect();
    let mut total: i64 = 0;
    for (i, &c) in chars.iter().enumerate() {
        let v = value(c);
        if i + 1 < chars.len() && value(chars[i + 1]) > v {
            total -= v;
        } else {
            total += v;
        }
    }
    total.max(0) as u128
}

impl Normalizer {
    pub fn load(dir: &Path) -> Result<Normalizer, G2pError> {
        Normalizer::new(read_json(dir, "normalize.json")?)
    }

    pub fn new(t: Tables) -> Result<Normalizer, G2pError> {
        let b = word_boundary();
        let month_names: Vec<String> = t.months.0.iter().map(|(_, v)| v.clone()).collect();
        let mut month_words: Vec<String> = month_names.clone();
        month_words.extend(t.months.keys().map(pystr::capitalize));
        month_words.push("Sept".into());
        let months = alternation(month_words.iter().map(String::as_str));
        let units = alternation(t.units.keys());
        let titles = alternation(t.titles.keys());
        let abbrevs = alternation(t.abbreviations.keys());
        let roman_c = alternation(t.roman_cardinal.iter().map(String::as_str));
        let roman_o = alternation(t.roman_ordinal.iter().map(String::as_str));
        let mut symbols = Vec::new();
        for (sym, word) in &t.symbols.0 {
            let pat = if sym.chars().count() == 1 && "=<>~".contains(sym.as_str()) {
                format!(r"(?<=[^{S}]) ?{} ?(?=[^{S}])", escape(sym))
            } else {
                escape(sym)
            };
            let with = if word.is_empty() {
                " ".to_string()
            } else {
                format!(" {word} ")
            };
            symbols.push((sym.clone(), Re::new(&pat)?, with));
        }
        Ok(Normalizer {
            ws: Re::new(&format!("[{S}]+"))?,
            time: Re::new(&format!(
                r"{b}(\d{{1,2}}):(\d{{2}})(?::(\d{{2}}))?(?:[{S}]?([AaPp])\.?[Mm]\.?(?![A-Za-z]))?(?!\d)"
            ))?,
            date_us: Re::new(&format!(r"{b}(\d{{1,2}})/(\d{{1,2}})/(\d{{4}}|\d{{2}}){b}"))?,
            date_iso: Re::new(&format!(r"{b}(\d{{4}})-(\d{{2}})-(\d{{2}}){b}"))?,
            month_day: Re::new(&format!(
                r"{b}({months})\.? (\d{{1,2}})(?:st|nd|rd|th)?{b}(?![\d:%])(,? \d{{4}}{b})?"
            ))?,
            day_month: Re::new(&format!(r"{b}(the )?(\d{{1,2}}) (?:of )?({months}){b}\.?"))?,
            unit: Re::new(&format!(r"(?<![{W}.])(-?{NUM})[{S}]?({units})(?![{W}])"))?,
            deg: Re::new(&format!(
                r"(?<![{W}.])(-?{NUM})[{S}]?°[{S}]?([CF])?(?![{W}])"
            ))?,
            cents: Re::new(&format!(r"(?<![{W}.])({NUM})[{S}]?¢"))?,
            currency: Re::new(&format!(
                r"(?<![{W}])([¥₹₩]|Rs\.?|USD|EUR|GBP)[{S}]?({NUM})(?:[{S}]?(hundred|thousand|million|billion|trillion|[kKmMbB]{b}))?"
            ))?,
            big_money: Re::new(&format!(
                r"([$£€])({NUM})[{S}]?(hundred|thousand|million|billion|trillion|[kKmMbB]{b})"
            ))?,
            title: Re::new(&format!(r"{b}({titles})\.? (?=[A-Z])"))?,
            abbrev: Re::new(&format!(r"(?<![{W}.])({abbrevs})(?![{W}])"))?,
            no: Re::new(&format!(r"{b}(No|Nos)\. ?(?=\d)"))?,
            hash: Re::new(&format!(r"(?<![{W}&])#(?=\d)"))?,
            roman_c: Re::new(&format!(r"{b}({roman_c}) {ROMAN_NUMERAL}{b}(?![.'’][{W}])"))?,
            roman_o: Re::new(&format!(r"{b}({roman_o}) {ROMAN_NUMERAL}{b}(?![.'’][{W}])"))?,
            phone: Re::new(&format!(
                r"(?<![{W}.\-])(?:\d{{3}}-)?\d{{3}}-\d{{4}}(?![{W}.\-])"
            ))?,
            range: Re::new(&format!(
                r"(?<![{W}.\-])(\d{{1,4}})[{S}]?[-–][{S}]?(\d{{1,4}})(?![{W}.\-%])"
            ))?,
            fraction: Re::new(&format!(r"(?<![{W}./])(\d{{1,2}})/(\d{{1,2}})(?![{W}./])"))?,
            plus: Re::new(&format!(r"(?<![{W}+])\+(?=\d)"))?,
            space_punct: Re::new(r" +([,.;:!?])")?,
            symbols,
            month_names,
            t,
        })
    }

    fn month(&self, name: &str) -> Option<&str> {
        let key: String = pystr::lower(name).chars().take(3).collect();
        self.t.months.get(&key).map(String::as_str)
    }

    /// `_date(y, mo, d)`: "March third[, y]" or None when out of range.
    fn date(&self, y: Option<&str>, mo: u128, d: u128) -> Option<String> {
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return None;
        }
        let name = self.month_names.get(mo as usize - 1)?;
        let mut out = format!("{name} {}", ordinal(d)?);
        if let Some(y) = y.filter(|y| !y.is_empty()) {
            out.push_str(", ");
            out.push_str(y);
        }
        Some(out)
    }

    /// `normalize(text)`.
    pub fn normalize(&self, text: &str) -> Result<String, G2pError> {
        let text = self.ws.replace_all(text, " ")?;
        let text = pystr::strip(&text);
        if text.is_empty() {
            return Ok(String::new());
        }
        let text = text
            .replace('\u{a0}', " ")
            .replace('’', "'")
            .replace('‒', "-")
            .replace('―', "—");
        let text = self.time.sub(&text, |m, s| Ok(time(m, s)))?;
        let text = self.date_iso.sub(&text, |m, s| {
            let (y, mo, d) = (m.get(1, s), m.get(2, s), m.get(3, s));
            Ok(self.date(y, int(mo), int(d)))
        })?;
        let text = self.date_us.sub(&text, |m, s| {
            let (a, b) = (int(m.get(1, s)), int(m.get(2, s)));
            let y = m.get(3, s).unwrap_or("");
            let y = if y.chars().count() == 2 {
                let century = if int(Some(y)) > 30 { "19" } else { "20" };
                format!("{century}{y}")
            } else {
                y.to_string()
            };
            let (mo, d) = if a <= 12 { (a, b) } else { (b, a) };
            Ok(self.date(Some(&y), mo, d))
        })?;
        let text = self.big_money.sub(&text, |m, s| {
            let (sym, n, big) = (
                m.get(1, s).unwrap_or(""),
                m.get(2, s).unwrap_or(""),
                m.get(3, s).unwrap_or(""),
            );
            let big = scale_word(big);
            let unit = self.currency_word(sym, 1);
            Ok(Some(format!("{n} {big} {unit}")))
        })?;
        let text = self.cents.sub(&text, |m, s| {
            let n = m.get(1, s).unwrap_or("");
            let words = self.t.currency.get("¢").map_or(&[][..], Vec::as_slice);
            Ok(Some(format!("{n} {}", plural(n, words))))
        })?;
        let text = self.currency.sub(&text, |m, s| {
            let sym = m.get(1, s).unwrap_or("").trim_end_matches('.');
            let n = m.get(2, s).unwrap_or("");
            let words = self.t.currency.get(sym).map_or(&[][..], Vec::as_slice);
            Ok(Some(match m.get(3, s) {
                Some(big) if !big.is_empty() => {
                    let unit = words.get(1).map_or("", String::as_str);
                    format!("{n} {} {unit}", scale_word(big))
                }
                _ => format!("{n} {}", plural(n, words)),
            }))
        })?;
        let text = self.deg.sub(&text, |m, s| {
            let n = m.get(1, s).unwrap_or("");
            let deg = ["degree".to_string(), "degrees".to_string()];
            let mut words = format!("{n} {}", plural(n, &deg));
            match m.get(2, s) {
                Some("C") => words.push_str(" Celsius"),
                Some("F") => words.push_str(" Fahrenheit"),
                _ => {}
            }
            Ok(Some(words))
        })?;
        let text = self.unit.sub(&text, |m, s| {
            let (n, u) = (m.get(1, s).unwrap_or(""), m.get(2, s).unwrap_or(""));
            let words = self.t.units.get(u).map_or(&[][..], Vec::as_slice);
            Ok(Some(format!("{n} {}", plural(n, words))))
        })?;
        let text = self.month_day.sub(&text, |m, s| {
            let (month, day) = (m.get(1, s).unwrap_or(""), int(m.get(2, s)));
            if !(1..=31).contains(&day) {
                return Ok(None);
            }
            let (Some(name), Some(ord)) = (self.month(month), ordinal(day)) else {
                return Ok(None);
            };
            Ok(Some(format!("{name} {ord}{}", m.get(3, s).unwrap_or(""))))
        })?;
        let text = self.day_month.sub(&text, |m, s| {
            let (day, month) = (int(m.get(2, s)), m.get(3, s).unwrap_or(""));
            if !(1..=31).contains(&day) {
                return Ok(None);
            }
            let (Some(name), Some(ord)) = (self.month(month), ordinal(day)) else {
                return Ok(None);
            };
            Ok(Some(format!("the {ord} of {name}")))
        })?;
        let text = self.title.sub(&text, |m, s| {
            let t = m.get(1, s).and_then(|k| self.t.titles.get(k));
            Ok(t.map(|t| format!("{t} ")))
        })?;
        let text = self.abbrev.sub(&text, |m, s| {
            let key = m.get(1, s).unwrap_or("");
            let Some(word) = self.t.abbreviations.get(key) else {
                return Ok(None);
            };
            let dot = if m.end() == s.len() && key.ends_with('.') {
                "."
            } else {
                ""
            };
            Ok(Some(format!("{word}{dot}")))
        })?;
        let text = self.no.sub(&text, |m, s| {
            Ok(Some(if m.get(1, s) == Some("No") {
                "Number ".to_string()
            } else {
                "Numbers ".to_string()
            }))
        })?;
        let text = self.hash.replace_all(&text, "number ")?;
        let text = self.roman_c.sub(&text, |m, s| {
            let (w, r) = (m.get(1, s).unwrap_or(""), m.get(2, s).unwrap_or(""));
            Ok(Some(format!("{w} {}", roman(r))))
        })?;
        let text = self.roman_o.sub(&text, |m, s| {
            let (w, r) = (m.get(1, s).unwrap_or(""), m.get(2, s).unwrap_or(""));
            Ok(ordinal(roman(r)).map(|o| format!("{w} the {o}")))
        })?;
        let text = self.phone.sub(&text, |m, s| {
            let digits = s[m.start()..m.end()].replace('-', ", ");
            let spaced: Vec<String> = digits.chars().map(String::from).collect();
            Ok(Some(spaced.join(" ")))
        })?;
        let text = self.fraction.sub(&text, |m, s| {
            let (a, b) = (int(m.get(1, s)), int(m.get(2, s)));
            Ok(self.fraction_words(a, b))
        })?;
        let text = self.range.sub(&text, |m, s| {
            let (a, b) = (m.get(1, s).unwrap_or(""), m.get(2, s).unwrap_or(""));
            Ok(Some(format!("{a} to {b}")))
        })?;
        let mut text = self.plus.replace_all(&text, "plus ")?;
        for (sym, re, with) in &self.symbols {
            if text.contains(sym.as_str()) {
                text = re.replace_all(&text, with)?;
            }
        }
        let text = self.ws.replace_all(&text, " ")?;
        let text = self
            .space_punct
            .sub(&text, |m, s| Ok(m.get(1, s).map(str::to_string)))?;
        Ok(pystr::strip(&text).to_string())
    }

    fn currency_word(&self, sym: &str, i: usize) -> &str {
        self.t
            .currency
            .get(sym)
            .and_then(|w| w.get(i))
            .map_or("", String::as_str)
    }

    /// `_fraction(m)`.
    fn fraction_words(&self, a: u128, b: u128) -> Option<String> {
        if 0 < a && a < b && b <= 10 {
            let unit = match b {
                2 => "half",
                3 => "third",
                4 => "quarter",
                5 => "fifth",
                6 => "sixth",
                7 => "seventh",
                8 => "eighth",
                9 => "ninth",
                _ => "tenth",
            };
            if unit == "half" {
                return Some(if a == 1 {
                    "one half".to_string()
                } else {
                    format!("{a} halves")
                });
            }
            return Some(format!("{a} {unit}{}", if a == 1 { "" } else { "s" }));
        }
        if (1..=12).contains(&a) && (1..=31).contains(&b) {
            return self.date(None, a, b);
        }
        Some(format!("{a} slash {b}"))
    }
}

/// `int(group)` for a digits group (0 when absent; groups are `\d` runs so parsing succeeds).
fn int(s: Option<&str>) -> u128 {
    s.and_then(parse_int).unwrap_or(0)
}

/// k/m/b → thousand/million/billion (other scale words as written).
fn scale_word(big: &str) -> String {
    match pystr::lower(big).as_str() {
        "k" => "thousand".into(),
        "m" => "million".into(),
        "b" => "billion".into(),
        _ => big.to_string(),
    }
}

/// `_time(m)`: "seven thirty P.M.", "nine o'clock", "ten oh five"; None keeps invalid times.
fn time(m: &super::re::Caps, s: &str) -> Option<String> {
    let (h, mi) = (int(m.get(1, s)), int(m.get(2, s)));
    let sec = m.get(3, s).filter(|x| !x.is_empty());
    let ap = m.get(4, s).filter(|x| !x.is_empty());
    if h > 24 || mi > 59 || sec.is_some_and(|x| int(Some(x)) > 59) {
        return None;
    }
    let mut words = cardinal(h)?;
    if mi == 0 {
        if ap.is_none() && sec.is_none() {
            words.push_str(" o'clock");
        }
    } else if mi < 10 {
        words.push_str(" oh ");
        words.push_str(&cardinal(mi)?);
    } else {
        words.push(' ');
        words.push_str(&cardinal(mi)?);
    }
    if let Some(sec) = sec {
        let n = int(Some(sec));
        words.push_str(" and ");
        words.push_str(&cardinal(n)?);
        words.push_str(if n == 1 { " second" } else { " seconds" });
    }
    if let Some(ap) = ap {
        // Dotted so the lexicon spells the letters (misaki get_NNP).
        words.push(' ');
        words.push_str(&pystr::upper(ap));
        words.push_str(".M");
        if !s[m.end()..].starts_with('.') {
            words.push('.');
        }
    }
    Some(words)
}
