//! Text → sentences (`Hibari.split_sentences` in `hibari/tts.py`): paragraphs on newlines, then
//! a split after . ! ? … (and closing quotes/brackets) followed by whitespace, except after a
//! title ("Dr. Smith"), an initial ("J. K. Rowling") or before a lowercase word.

use std::sync::LazyLock;

use super::pystr::{self, S};
use super::re::Re;

/// The keys of `normalize.json` "titles" (a test checks this list against the installed file).
pub const TITLES: [&str; 26] = [
    "Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Mt", "Ft", "Gen", "Gov", "Sen", "Rep", "Capt", "Lt",
    "Col", "Sgt", "Cmdr", "Rev", "Hon", "Pres", "Supt", "Cpl", "Maj", "Adm", "Fr", "Msgr",
];

struct Patterns {
    paragraph: Re,
    sentence_end: Re,
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    Some(Patterns {
        paragraph: Re::new(&format!("\n[{S}]*\n|\n")).ok()?,
        sentence_end: Re::new(&format!("(?<=[.!?…])[\"”’)\\]]*[{S}]+(?=[^{S}])")).ok()?,
    })
});

/// `_ends_sentence(para, end, nxt)`: `end` is the byte offset where the match starts.
fn ends_sentence(para: &str, end: usize, next: char) -> bool {
    if pystr::is_lower(&next.to_string()) {
        return false;
    }
    if !para[..end].ends_with('.') {
        return true;
    }
    let word_start = para[..end].rfind(' ').map_or(0, |i| i + 1);
    let word = &para[word_start..end - 1];
    let word = word.trim_start_matches(['(', '"', '“', '\'', '‘']);
    let is_initial = pystr::len(word) == 1 && pystr::is_upper(word);
    !(TITLES.contains(&word) || is_initial)
}

/// Splits text into sentences, each a string the model sees at once (hibari's rule exactly:
/// closing quotes/brackets after the end punctuation are dropped).
pub fn split_sentences(text: &str) -> Vec<String> {
    // Both patterns are constants; they compile (a unit test covers it).
    let Some(p) = PATTERNS.as_ref() else {
        return vec![text.to_string()];
    };
    let mut out = Vec::new();
    let paragraphs = p
        .paragraph
        .split(pystr::strip(text))
        .unwrap_or_else(|_| vec![pystr::strip(text)]);
    for para in paragraphs {
        let para = pystr::strip(para);
        let mut cut = 0;
        // A backtracking failure here would only lose split points, never text.
        for (start, end) in p.sentence_end.find_all(para).unwrap_or_default() {
            let Some(next) = para[end..].chars().next() else {
                continue;
            };
            if ends_sentence(para, start, next) {
                out.push(para[cut..start].to_string());
                cut = end;
            }
        }
        out.push(para[cut..].to_string());
    }
    out.retain(|s| !pystr::strip(s).is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(PATTERNS.is_some());
    }
}
