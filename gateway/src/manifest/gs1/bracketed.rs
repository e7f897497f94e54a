//! `(01)09520123456788(10)ABC123`: the human-readable form printed under a barcode and
//! typed by people.
//!
//! `(` is in character set 82, so a lot may contain it. A `(` starts the next AI only when
//! it is followed by 2 to 4 digits and `)`; `\(` is always a literal `(` (the escape the
//! GS1 Barcode Syntax Resource uses for bracketed strings).

use super::{resolve, Element, Gs1Error};

pub(super) fn split(input: &str) -> Result<Vec<Element>, Gs1Error> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let Some((code, after)) = ai_open(rest) else {
            return Err(Gs1Error::Syntax {
                at: input[..input.len() - rest.len()].chars().count(),
                reason: "expected '(' then a 2- to 4-digit AI and ')'",
            });
        };
        let spec = resolve(code)?;
        let (value, next) = value_until_next_ai(after);
        out.push(Element::new(spec, code, value));
        rest = next;
    }
    Ok(out)
}

/// `(NN)`, `(NNN)` or `(NNNN)` at the start of `s`: the AI and what follows it.
fn ai_open(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('(')?;
    let close = inner.find(')')?;
    let code = inner.get(..close)?;
    let is_ai = (2..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit());
    is_ai.then(|| (code, inner.get(close + 1..).unwrap_or("")))
}

/// The value up to the next AI opening, unescaping `\(`.
fn value_until_next_ai(s: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        let tail = &s[i..];
        if c == '\\' && tail[1..].starts_with('(') {
            value.push('(');
            chars.next();
        } else if c == '(' && ai_open(tail).is_some() {
            return (value, tail);
        } else {
            value.push(c);
        }
    }
    (value, "")
}
