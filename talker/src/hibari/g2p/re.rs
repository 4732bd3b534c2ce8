//! A thin wrapper over `fancy_regex` with the handful of Python `re` operations the rules use
//! (`finditer`, `search`, `sub` with a function, `split`), all in byte offsets.
//!
//! The patterns need look-around (and Python's `\w`/`\s`/`\b` are written out with
//! [`super::pystr`]'s classes), so `fancy_regex`; its backtracking semantics (leftmost-first
//! alternation, lazy quantifiers) are Python's.

use fancy_regex::Regex;

use super::error::G2pError;

/// One match's groups as byte ranges into the searched text (group 0 = whole match).
pub struct Caps {
    groups: Vec<Option<(usize, usize)>>,
}

impl Caps {
    pub fn start(&self) -> usize {
        self.groups[0].map_or(0, |g| g.0)
    }

    pub fn end(&self) -> usize {
        self.groups[0].map_or(0, |g| g.1)
    }

    /// Group `i`'s text, None when the group did not take part in the match.
    pub fn get<'t>(&self, i: usize, text: &'t str) -> Option<&'t str> {
        self.groups
            .get(i)
            .copied()
            .flatten()
            .map(|(a, b)| &text[a..b])
    }
}

/// A compiled rule pattern.
pub struct Re(Regex);

impl Re {
    /// Compiles a pattern (the rules' patterns are constants or built from escaped table words).
    pub fn new(pattern: &str) -> Result<Re, G2pError> {
        Ok(Re(Regex::new(pattern)?))
    }

    /// `re.finditer`: all non-overlapping matches as byte ranges.
    pub fn find_all(&self, text: &str) -> Result<Vec<(usize, usize)>, G2pError> {
        let mut out = Vec::new();
        for m in self.0.find_iter(text) {
            let m = m?;
            out.push((m.start(), m.end()));
        }
        Ok(out)
    }

    /// `re.findall` for a pattern without groups: the matched texts.
    pub fn find_strs<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, G2pError> {
        Ok(self
            .find_all(text)?
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect())
    }

    /// `re.search`: the first match.
    pub fn find(&self, text: &str) -> Result<Option<(usize, usize)>, G2pError> {
        Ok(self.0.find(text)?.map(|m| (m.start(), m.end())))
    }

    pub fn is_match(&self, text: &str) -> Result<bool, G2pError> {
        Ok(self.0.is_match(text)?)
    }

    /// All matches with their groups.
    pub fn captures_all(&self, text: &str) -> Result<Vec<Caps>, G2pError> {
        let mut out = Vec::new();
        for c in self.0.captures_iter(text) {
            let c = c?;
            let groups = (0..c.len())
                .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                .collect();
            out.push(Caps { groups });
        }
        Ok(out)
    }

    /// `re.sub(pattern, f, text)`: `f(caps, text)` gives each replacement (None keeps the match).
    pub fn sub(
        &self,
        text: &str,
        mut f: impl FnMut(&Caps, &str) -> Result<Option<String>, G2pError>,
    ) -> Result<String, G2pError> {
        let caps = self.captures_all(text)?;
        if caps.is_empty() {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut last = 0;
        for c in &caps {
            out.push_str(&text[last..c.start()]);
            match f(c, text)? {
                Some(r) => out.push_str(&r),
                None => out.push_str(&text[c.start()..c.end()]),
            }
            last = c.end();
        }
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// `re.sub(pattern, literal, text)`.
    pub fn replace_all(&self, text: &str, with: &str) -> Result<String, G2pError> {
        self.sub(text, |_, _| Ok(Some(with.to_string())))
    }

    /// `re.split` for a pattern without groups.
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, G2pError> {
        let mut out = Vec::new();
        let mut last = 0;
        for (a, b) in self.find_all(text)? {
            out.push(&text[last..a]);
            last = b;
        }
        out.push(&text[last..]);
        Ok(out)
    }
}

/// Escapes a literal for use in a pattern outside a character class (Python `re.escape`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes characters for use inside a `[...]` class.
pub fn class_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if r"\[]^-&~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Python's `_alt(words)`: an alternation of escaped words, longest first (stable).
pub fn alternation<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut words: Vec<&str> = words.into_iter().collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    words.into_iter().map(escape).collect::<Vec<_>>().join("|")
}
