//! Python `str` semantics the G2P rules depend on (`isalpha`, `isupper`, `isdigit`, `capitalize`,
//! `strip`, `unicodedata.numeric` of digits, and the `\w`/`\s` classes of Python's `re`).
//!
//! Rust's own predicates differ in the corners (`char::is_alphabetic` also accepts combining marks
//! and letter-numbers, `char::is_whitespace` misses U+001C..U+001F), and the reference decides
//! readings with these exact predicates, so they are spelled out here. Tables are Unicode 14
//! (the reference's Python 3.11).

use std::sync::LazyLock;

use fancy_regex::Regex;

/// Python `re`'s `\w` for str patterns as a character-class body: letters, numbers, underscore.
pub const W: &str = r"\p{L}\p{N}_";
/// Python's `[^\W\d_]`: a letter or a non-decimal number (`²`, `½`).
pub const LETTER: &str = r"[\p{L}\p{Nl}\p{No}]";
/// Python's `\s` (str.isspace) as a character-class body.
pub const S: &str = r"\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";

/// Python's `\b` (a boundary between `\w` and non-`\w`, per Python's `\w`).
pub fn word_boundary() -> String {
    format!("(?:(?<=[{W}])(?![{W}])|(?<![{W}])(?=[{W}]))")
}

/// First code point of each run of ten decimal digits (general category Nd, values 0..9).
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// Characters with `isdigit()` but not `isdecimal()` (superscripts, circled digits, ...):
/// (first, last, value of first); values rise by one along each range.
const OTHER_DIGITS: [(u32, u32, u32); 21] = [
    (178, 179, 2),
    (185, 185, 1),
    (4969, 4977, 1),
    (6618, 6618, 1),
    (8304, 8304, 0),
    (8308, 8313, 4),
    (8320, 8329, 0),
    (9312, 9320, 1),
    (9332, 9340, 1),
    (9352, 9360, 1),
    (9450, 9450, 0),
    (9461, 9469, 1),
    (9471, 9471, 0),
    (10102, 10110, 1),
    (10112, 10120, 1),
    (10122, 10130, 1),
    (68160, 68163, 1),
    (69216, 69224, 1),
    (69714, 69722, 1),
    (127232, 127232, 0),
    (127233, 127242, 0),
];

/// Titlecase letters (category Lt): cased, but neither upper nor lower for `isupper`/`islower`.
const TITLECASE: [u32; 31] = [
    0x1c5, 0x1c8, 0x1cb, 0x1f2, 0x1f88, 0x1f89, 0x1f8a, 0x1f8b, 0x1f8c, 0x1f8d, 0x1f8e, 0x1f8f,
    0x1f98, 0x1f99, 0x1f9a, 0x1f9b, 0x1f9c, 0x1f9d, 0x1f9e, 0x1f9f, 0x1fa8, 0x1fa9, 0x1faa, 0x1fab,
    0x1fac, 0x1fad, 0x1fae, 0x1faf, 0x1fbc, 0x1fcc, 0x1ffc,
];

static IS_LETTER: LazyLock<Regex> = LazyLock::new(|| {
    // A constant, valid pattern: construction cannot fail.
    Regex::new(r"\A\p{L}\z").expect("valid regex")
});

/// The digit value of a Python `isdigit()` character (Nd or Numeric_Type=Digit), else None.
pub fn digit_value(c: char) -> Option<u32> {
    let cp = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    if i > 0 && cp - DECIMAL_ZEROS[i - 1] < 10 {
        return Some(cp - DECIMAL_ZEROS[i - 1]);
    }
    OTHER_DIGITS
        .iter()
        .find(|&&(a, b, _)| (a..=b).contains(&cp))
        .map(|&(a, _, v)| v + cp - a)
}

/// `c.isdecimal()` (general category Nd).
pub fn is_decimal(c: char) -> bool {
    let cp = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    i > 0 && cp - DECIMAL_ZEROS[i - 1] < 10
}

/// `c.isdigit()`.
pub fn is_digit_char(c: char) -> bool {
    digit_value(c).is_some()
}

/// `c.isalpha()` (general categories Lu Ll Lt Lm Lo).
pub fn is_alpha_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    let mut buf = [0u8; 4];
    // A single-char anchored match of a delegated (look-around free) pattern cannot hit the
    // backtracking limit, so an error here is impossible; treat it as "not a letter".
    IS_LETTER.is_match(c.encode_utf8(&mut buf)).unwrap_or(false)
}

/// `c.isalnum()` ≈ Python's `\w` minus underscore: a letter or any number.
pub fn is_word_char(c: char) -> bool {
    c == '_' || is_alpha_char(c) || is_decimal(c) || is_digit_char(c) || c.is_numeric()
}

/// `c.isspace()`.
pub fn is_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ' | '\u{85}' | '\u{a0}' | '\u{1680}')
        || matches!(
            c,
            '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}'
        )
        || matches!(c, '\u{205f}' | '\u{3000}')
}

fn is_title_char(c: char) -> bool {
    TITLECASE.contains(&(c as u32))
}

/// `s.isalpha()`: non-empty and all letters.
pub fn is_alpha(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_alpha_char)
}

/// `s.isdigit()`.
pub fn is_digit(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_digit_char)
}

/// `s.isupper()`: no lowercase or titlecase char, at least one uppercase.
pub fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_title_char(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// `s.islower()`: no uppercase or titlecase char, at least one lowercase.
pub fn is_lower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_title_char(c) {
            return false;
        }
        cased |= c.is_lowercase();
    }
    cased
}

/// `s.lower()` (full case mapping, final sigma like Python).
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// `s.upper()`.
pub fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// Full titlecase mapping of one char (Python `capitalize()` titlecases the first char).
fn push_title(out: &mut String, c: char) {
    let t = match c {
        'ß' => "Ss",
        'Ǆ' | 'ǅ' | 'ǆ' => "ǅ",
        'Ǉ' | 'ǈ' | 'ǉ' => "ǈ",
        'Ǌ' | 'ǋ' | 'ǌ' => "ǋ",
        'Ǳ' | 'ǲ' | 'ǳ' => "ǲ",
        'ﬀ' => "Ff",
        'ﬁ' => "Fi",
        'ﬂ' => "Fl",
        'ﬃ' => "Ffi",
        'ﬄ' => "Ffl",
        'ﬅ' | 'ﬆ' => "St",
        _ => {
            out.extend(c.to_uppercase());
            return;
        }
    };
    out.push_str(t);
}

/// `s.capitalize()`: first char titlecased, the rest lowercased.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    let mut out = String::with_capacity(s.len());
    if let Some(c) = chars.next() {
        push_title(&mut out, c);
        out.push_str(&chars.as_str().to_lowercase());
    }
    out
}

/// `s.strip()` (Python whitespace).
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Number of code points (Python `len`).
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// `s[a:b]` in code points, with Python's clamping for out-of-range bounds (no negatives).
pub fn slice(s: &str, a: usize, b: usize) -> &str {
    let start = byte_at(s, a);
    let end = byte_at(s, b.max(a));
    &s[start..end]
}

/// `s[:-n]` in code points.
pub fn drop_last(s: &str, n: usize) -> &str {
    let l = len(s);
    slice(s, 0, l.saturating_sub(n))
}

/// `s[-n:]` in code points.
pub fn last_n(s: &str, n: usize) -> &str {
    let l = len(s);
    slice(s, l.saturating_sub(n), l)
}

/// `s[n:]` in code points.
pub fn skip(s: &str, n: usize) -> &str {
    &s[byte_at(s, n)..]
}

/// Byte offset of code point `i` (the end of the string when past it).
pub fn byte_at(s: &str, i: usize) -> usize {
    s.char_indices().nth(i).map_or(s.len(), |(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_python() {
        assert!(is_alpha("héllo"));
        assert!(!is_alpha("e\u{301}")); // combining mark: not alpha in Python
        assert!(!is_alpha("Ⅻ")); // letter number
        assert!(is_upper("USA1"));
        assert!(!is_upper("123"));
        assert!(is_lower("abc's"));
        assert_eq!(digit_value('²'), Some(2));
        assert_eq!(digit_value('٣'), Some(3));
        assert_eq!(digit_value('a'), None);
        assert_eq!(capitalize("hELLO"), "Hello");
        assert_eq!(capitalize("ßa"), "Ssa");
        assert_eq!(strip("\x1c a \u{3000}"), "a");
        assert_eq!(slice("héllo", 1, 3), "él");
        assert_eq!(drop_last("héllo", 2), "hél");
        assert_eq!(last_n("héllo", 3), "llo");
    }
}
