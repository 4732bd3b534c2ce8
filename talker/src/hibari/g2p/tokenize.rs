//! Word tokenizer with spaCy's English rules (`hibari/g2p/tokenize.py`): special cases
//! (contractions, "Mr.", "10am") from `tokenizer_exceptions.json`, prefixes and suffixes peeled off
//! each whitespace-separated chunk, infixes (hyphens, slashes) split what is left, and adjacent
//! pieces that spell a special case joined back ("Sept" + "." → "Sept.").

use std::collections::HashMap;
use std::path::Path;

use super::data::read_json;
use super::error::G2pError;
use super::pystr::{LETTER, S, W};
use super::re::{Re, class_escape, escape};

const LO: &str = "a-zß-öø-ÿ";
const UP: &str = "A-ZÀ-ÖØ-Þ";
const Q: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉";
const PUNCT: &str = "…,:;!?¿¡()[]{}<>_#*&。？！，、；：～·";
const ICONS: &str = "™®©°§¶†‡•";
const CURRENCY: &str = r"\$|£|€|¥|฿|US\$|C\$|A\$|₽|₹|₩|₪|₺|₴|₦|₫|₱|₲|₵|₸|₼|₾|₿";
const UNITS: &str = "km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|m/s|km/h\
|kmh|mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%";
const URL_DOMAINS: &str = "com|org|net|edu|gov|io|co|uk|de|fr|info|biz|us|ca|au|tv|me|ly|ai";

/// The tokenizer: special cases plus the compiled prefix, suffix, infix and URL patterns.
pub struct Tokenizer {
    special: HashMap<String, Vec<String>>,
    prefix: Re,
    suffix: Re,
    infix: Re,
    url: Re,
    chunk: Re,
}

fn each_escaped(chars: &str) -> Vec<String> {
    chars.chars().map(|c| escape(&c.to_string())).collect()
}

impl Tokenizer {
    pub fn load(dir: &Path) -> Result<Tokenizer, G2pError> {
        Tokenizer::new(read_json(dir, "tokenizer_exceptions.json")?)
    }

    pub fn new(special: HashMap<String, Vec<String>>) -> Result<Tokenizer, G2pError> {
        let punct = each_escaped(PUNCT);
        let quotes = each_escaped(Q);
        let icons = format!("[{}]", class_escape(ICONS));
        let (cpunct, cq) = (class_escape(PUNCT), class_escape(Q));

        let mut prefixes: Vec<String> = ["§", "%", "=", "—", "–", r"\+(?![0-9])", "…", "……"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        prefixes.extend(punct.iter().cloned());
        prefixes.extend([r"\.\.+".to_string(), "…".to_string()]);
        prefixes.extend(quotes.iter().cloned());
        prefixes.push(CURRENCY.to_string());
        prefixes.push(icons.clone());

        let mut suffixes: Vec<String> = vec!["…".into(), "……".into()];
        suffixes.extend(punct.iter().cloned());
        suffixes.extend([r"\.\.+".to_string(), "…".to_string()]);
        suffixes.extend(quotes.iter().cloned());
        suffixes.push(icons.clone());
        suffixes.extend(
            ["'s", "'S", "’s", "’S", "—", "–"]
                .iter()
                .map(|s| s.to_string()),
        );
        suffixes.extend([
            r"(?<=[0-9])\+".to_string(),
            r"(?<=°[FfCcKk])\.".to_string(),
            format!(r"(?<=[0-9])(?:{CURRENCY})"),
            format!(r"(?<=[0-9])(?:{UNITS})"),
            format!(r"(?<=[0-9{LO}%²\-\+{cpunct}{cq}])\."),
            format!(r"(?<=[{UP}][{UP}])\."),
        ]);

        let infixes = [
            r"\.\.+".to_string(),
            "…".to_string(),
            icons,
            r"(?<=[0-9])[+\-\*\^](?=[0-9-])".to_string(),
            format!(r"(?<=[{LO}{cq}])\.(?=[{UP}{cq}])"),
            format!(r"(?<={LETTER}),(?={LETTER})"),
            format!(r"(?<=[\p{{L}}\p{{N}}])(?:-|–|—|--|---|——|~)(?={LETTER})"),
            format!(r"(?<=[\p{{L}}\p{{N}}])[:<>=/](?={LETTER})"),
        ];
        let join = |parts: &[String], f: &dyn Fn(&str) -> String| {
            parts.iter().map(|p| f(p)).collect::<Vec<_>>().join("|")
        };
        let prefix = join(&prefixes, &|p| format!("^(?:{p})"));
        let suffix = join(&suffixes, &|p| format!("(?:{p})$"));
        let infix = join(&infixes, &|p| format!("(?:{p})"));
        let url = format!(
            r"(?i)^(?:(?:https?|ftp)://|www\.)[^{S}]+$|^[{W}.+\-]+@[{W}\-]+(?:\.[{W}\-]+)+$|^(?:[{W}\-]+\.)+(?:{URL_DOMAINS})(?:/[^{S}]*)?$"
        );
        Ok(Tokenizer {
            special,
            prefix: Re::new(&prefix)?,
            suffix: Re::new(&suffix)?,
            infix: Re::new(&infix)?,
            url: Re::new(&url)?,
            chunk: Re::new(&format!("[^{S}]+"))?,
        })
    }

    /// Splits text into (token text, whitespace after) pairs; the whitespace is " " when
    /// anything followed the token's chunk.
    pub fn tokenize(&self, text: &str) -> Result<Vec<(String, String)>, G2pError> {
        let mut out = Vec::new();
        for (start, end) in self.chunk.find_all(text)? {
            let toks = self.split(&text[start..end])?;
            let ws = if end < text.len() { " " } else { "" };
            let n = toks.len();
            for (i, t) in toks.into_iter().enumerate() {
                let w = if i + 1 == n { ws } else { "" };
                out.push((t, w.to_string()));
            }
        }
        Ok(out)
    }

    fn is_special(&self, s: &str) -> bool {
        self.special.contains_key(s)
    }

    /// One whitespace-free chunk → token texts (spaCy's prefix/suffix/infix loop).
    pub fn split(&self, chunk: &str) -> Result<Vec<String>, G2pError> {
        if let Some(t) = self.special.get(chunk) {
            return Ok(t.clone());
        }
        let mut s = chunk;
        let (mut pre, mut suf): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        let mut last = usize::MAX;
        while !s.is_empty() && s.len() != last && !self.is_special(s) {
            last = s.len();
            let pre_len = self.prefix.find(s)?.map_or(0, |(_, e)| e);
            if pre_len > 0 {
                let minus_pre = &s[pre_len..];
                if !minus_pre.is_empty() && self.is_special(minus_pre) {
                    pre.push(&s[..pre_len]);
                    s = minus_pre;
                    break;
                }
            }
            let suf_len = self.suffix.find(&s[pre_len..])?.map_or(0, |(a, e)| e - a);
            if suf_len > 0 {
                let minus_suf = &s[..s.len() - suf_len];
                if !minus_suf.is_empty() && self.is_special(minus_suf) {
                    suf.push(&s[s.len() - suf_len..]);
                    s = minus_suf;
                    break;
                }
            }
            if pre_len > 0 && suf_len > 0 && pre_len + suf_len <= s.len() {
                pre.push(&s[..pre_len]);
                suf.push(&s[s.len() - suf_len..]);
                s = &s[pre_len..s.len() - suf_len];
            } else if pre_len > 0 {
                pre.push(&s[..pre_len]);
                s = &s[pre_len..];
            } else if suf_len > 0 {
                suf.push(&s[s.len() - suf_len..]);
                s = &s[..s.len() - suf_len];
            }
        }
        let mut toks: Vec<String> = pre.iter().map(|p| p.to_string()).collect();
        if !s.is_empty() {
            if let Some(t) = self.special.get(s) {
                toks.extend(t.iter().cloned());
            } else if self.url.is_match(s)? {
                toks.push(s.to_string());
            } else {
                let mut start = 0;
                for (a, b) in self.infix.find_all(s)? {
                    if a == 0 || a == b {
                        continue;
                    }
                    if a > start {
                        toks.push(s[start..a].to_string());
                    }
                    toks.push(s[a..b].to_string());
                    start = b;
                }
                if start < s.len() {
                    toks.push(s[start..].to_string());
                }
            }
        }
        toks.extend(suf.iter().rev().map(|p| p.to_string()));
        Ok(if toks.len() > 1 {
            self.rejoin(toks)
        } else {
            toks
        })
    }

    /// spaCy's special-case pass over the split pieces: "Sept" "." → "Sept.".
    fn rejoin(&self, toks: Vec<String>) -> Vec<String> {
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        'outer: while i < toks.len() {
            for k in [3, 2] {
                if i + k <= toks.len() {
                    let joined: String = toks[i..i + k].concat();
                    if let Some(t) = self.special.get(&joined) {
                        out.extend(t.iter().cloned());
                        i += k;
                        continue 'outer;
                    }
                }
            }
            out.push(toks[i].clone());
            i += 1;
        }
        out
    }
}
