//! Raw element strings as scanners send them: AI digits and values run together, a GS
//! (0x1D, FNC1) after every variable-length value that is not last.
//!
//! Fixed-length values are cut by length (a stray GS after them is skipped). A
//! variable-length value runs to the next GS or to the end of the input: when a
//! keyboard-wedge scanner drops the GS, the value swallows what follows and length or
//! character-set validation reports it. We never guess where a lot ends.

use super::{lookup, Element, Gs1Error, Len, GS};

pub(super) fn split(input: &str) -> Result<Vec<Element>, Gs1Error> {
    let mut out = Vec::new();
    // A leading GS is FNC1 in first position, as some scanners transmit it.
    let mut rest = input.trim_start_matches(GS);
    while !rest.is_empty() {
        let at = input[..input.len() - rest.len()].chars().count();
        let (code, after) = read_ai(rest, at)?;
        let spec = lookup(code).ok_or_else(|| Gs1Error::UnknownAi {
            ai: code.to_owned(),
        })?;
        let end = match spec.len {
            Len::Fixed(n) => after.char_indices().nth(n).map_or(after.len(), |(i, _)| i),
            Len::Var(_) => after.find(GS).unwrap_or(after.len()),
        };
        out.push(Element::new(spec, code, after[..end].to_owned()));
        rest = after[end..].strip_prefix(GS).unwrap_or(&after[end..]);
    }
    Ok(out)
}

/// The shortest digit prefix (2 to 4 digits) that is a supported AI. GS1 AIs are
/// prefix-free, so the first match is the only one.
fn read_ai(s: &str, at: usize) -> Result<(&str, &str), Gs1Error> {
    let digits = s.bytes().take(4).take_while(u8::is_ascii_digit).count();
    if digits < 2 {
        return Err(Gs1Error::Syntax {
            at,
            reason: "expected an AI (at least two digits)",
        });
    }
    (2..=digits)
        .map(|n| s.split_at(n))
        .find(|(code, _)| lookup(code).is_some())
        .ok_or_else(|| Gs1Error::UnknownAi {
            ai: s[..digits].to_owned(),
        })
}
