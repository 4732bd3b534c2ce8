//! English number words (`hibari/g2p/numbers.py`, the subset of num2words misaki uses):
//! cardinal, ordinal, year and decimal readings. The caller splits the result on non-letters.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [&str; 12] = [
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
];

/// Parses a run of (Unicode) decimal digits like Python's `int()`; None when empty, not digits,
/// or too large for the readings below (more than the "decillion" scale).
pub fn parse_int(s: &str) -> Option<u128> {
    if s.is_empty() {
        return None;
    }
    let mut n: u128 = 0;
    for c in s.chars() {
        if !super::pystr::is_decimal(c) {
            return None;
        }
        let d = super::pystr::digit_value(c)? as u128;
        n = n.checked_mul(10)?.checked_add(d)?;
    }
    Some(n)
}

fn below_1000(mut n: u128, words: &mut Vec<String>) {
    let start = words.len();
    if n >= 100 {
        words.push(ONES[(n / 100) as usize].to_string());
        words.push("hundred".to_string());
        n %= 100;
        if n > 0 {
            words.push("and".to_string());
        }
    }
    if n >= 20 {
        let mut w = TENS[(n / 10) as usize].to_string();
        if !n.is_multiple_of(10) {
            w.push('-');
            w.push_str(ONES[(n % 10) as usize]);
        }
        words.push(w);
    } else if n > 0 || words.len() == start {
        words.push(ONES[n as usize].to_string());
    }
}

fn below_1000_text(n: u128) -> String {
    let mut w = Vec::new();
    below_1000(n, &mut w);
    w.join(" ")
}

/// `num2words(n)`: "one thousand, two hundred and thirty-four". None past the decillions
/// (where the Python reference raises).
pub fn cardinal(n: u128) -> Option<String> {
    if n < 1000 {
        return Some(below_1000_text(n));
    }
    let mut groups = Vec::new();
    let mut scale = 0;
    let mut rest = n;
    while rest > 0 {
        let g = rest % 1000;
        rest /= 1000;
        if g > 0 {
            let mut text = below_1000_text(g);
            if scale > 0 {
                text.push(' ');
                text.push_str(SCALES.get(scale)?);
            }
            groups.push(text);
        }
        scale += 1;
    }
    groups.reverse();
    let last = groups.last()?.clone();
    let after_and = last.rsplit(" and ").next().unwrap_or("");
    if groups.len() > 1 && !after_and.contains(' ') && !last.contains("hundred") {
        let head = groups[..groups.len() - 1].join(", ");
        return Some(format!("{head} and {last}"));
    }
    Some(groups.join(", "))
}

/// Signed cardinal ("minus ..." for negatives).
pub fn cardinal_signed(n: i128) -> Option<String> {
    if n < 0 {
        return Some(format!("minus {}", cardinal(n.unsigned_abs())?));
    }
    cardinal(n as u128)
}

fn ord_word(w: &str) -> String {
    match w {
        "one" => "first".into(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        _ => match w.strip_suffix('y') {
            Some(stem) => format!("{stem}ieth"),
            None => format!("{w}th"),
        },
    }
}

/// `num2words(n, to="ordinal")`: "twenty-third", "one hundred and first".
pub fn ordinal(n: u128) -> Option<String> {
    let c = cardinal(n)?;
    let (head, sep, last) = match c.rfind(' ') {
        Some(i) => (&c[..i], " ", &c[i + 1..]),
        None => ("", "", c.as_str()),
    };
    let last = match last.rfind('-') {
        Some(i) => format!("{}-{}", &last[..i], ord_word(&last[i + 1..])),
        None => ord_word(last),
    };
    Some(format!("{head}{sep}{last}"))
}

/// `num2words(n, to="year")`: "nineteen oh-five", "two thousand and five", "twenty ten".
pub fn year(n: u128) -> Option<String> {
    let (high, low) = (n / 100, n % 100);
    if high == 0 || (high % 10 == 0 && low < 10) || high >= 100 {
        return cardinal(n);
    }
    let low_text = if low == 0 {
        "hundred".to_string()
    } else if low < 10 {
        format!("oh-{}", cardinal(low)?)
    } else {
        cardinal(low)?
    };
    Some(format!("{} {low_text}", cardinal(high)?))
}

/// `num2words(float(s))` for "3.14" → "three point one four" (trailing zeros dropped).
pub fn decimal(s: &str) -> Option<String> {
    let (ip, fp) = s.split_once('.').unwrap_or((s, ""));
    let fp = fp.trim_end_matches('0');
    let mut words = cardinal(if ip.is_empty() { 0 } else { parse_int(ip)? })?;
    if !fp.is_empty() {
        words.push_str(" point");
        for c in fp.chars() {
            words.push(' ');
            words.push_str(ONES[super::pystr::digit_value(c)? as usize]);
        }
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        assert_eq!(
            cardinal(1234).unwrap(),
            "one thousand, two hundred and thirty-four"
        );
        assert_eq!(cardinal(1001).unwrap(), "one thousand and one");
        assert_eq!(cardinal(2000).unwrap(), "two thousand");
        assert_eq!(cardinal(0).unwrap(), "zero");
        assert_eq!(ordinal(23).unwrap(), "twenty-third");
        assert_eq!(ordinal(101).unwrap(), "one hundred and first");
        assert_eq!(ordinal(1000).unwrap(), "one thousandth");
        assert_eq!(year(1905).unwrap(), "nineteen oh-five");
        assert_eq!(year(2005).unwrap(), "two thousand and five");
        assert_eq!(year(2010).unwrap(), "twenty ten");
        assert_eq!(year(1900).unwrap(), "nineteen hundred");
        assert_eq!(decimal("3.140").unwrap(), "three point one four");
    }
}
