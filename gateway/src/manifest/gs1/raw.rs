//! Raw element strings as scanners send them: AI digits and values run together, a GS
//! (0x1D, FNC1) after every variable-length value that is not last.
//!
//! Fixed-length values are cut by length (a stray GS after them is skipped). A
//! variable-length value runs to the next GS or to the end of the input: when a
//! keyboard-wedge scanner drops the GS, the value swallows what follows. We never guess
//! where a lot ends; but when what it swallowed reads as complete, valid elements that
//! start with a fixed-length one carrying its own check (a date, a key with a check
//! digit), the scan is refused saying a separator is missing: accepting it would store a
//! lot `ABC12317271231` and lose the (17) expiry.

use super::{check_value, lookup, Element, Gs1Error, Kind, Len, GS};

pub(super) fn split(input: &str) -> Result<Vec<Element>, Gs1Error> {
    split_checking(input, true)
}

/// `check_swallowed`: look inside each variable-length value for the
/// elements a dropped GS let it swallow. The look itself splits without it,
/// so the work stays quadratic in the input rather than exponential.
fn split_checking(input: &str, check_swallowed: bool) -> Result<Vec<Element>, Gs1Error> {
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
            Len::Var(_) => {
                let end = after.find(GS).unwrap_or(after.len());
                let found = if check_swallowed {
                    swallowed(&after[..end])
                } else {
                    None
                };
                if let Some((k, next)) = found {
                    return Err(Gs1Error::MissingSeparator {
                        ai: code.to_owned(),
                        value: after[..k].to_owned(),
                        next,
                        at: at + code.len() + after[..k].chars().count(),
                    });
                }
                end
            }
        };
        out.push(Element::new(spec, code, after[..end].to_owned()));
        rest = after[end..].strip_prefix(GS).unwrap_or(&after[end..]);
    }
    Ok(out)
}

/// Where a variable-length value holds the elements that should have followed it: the
/// byte offset and the AI found there. Only a tail that splits into valid elements, the
/// first of fixed length with a check of its own (a calendar date, a check digit), counts:
/// a lot that merely contains `21` or `10` could be a real lot, so it is left alone.
fn swallowed(value: &str) -> Option<(usize, String)> {
    value.char_indices().skip(1).map(|(k, _)| k).find_map(|k| {
        let tail = &value[k..];
        let elements = split_checking(tail, false).ok()?;
        let first = elements.first()?;
        let checked = matches!(first.spec.len, Len::Fixed(_))
            && matches!(
                first.spec.kind,
                Kind::Sscc | Kind::Gtin | Kind::ContentGtin | Kind::Key | Kind::Expiry | Kind::Date
            );
        (checked && elements.iter().all(plausible)).then(|| (k, first.ai.clone()))
    })
}

/// Valid length, character set and check digit, and for a date a month and day that can
/// exist (the century is decided later, with the date of the scan).
fn plausible(e: &Element) -> bool {
    if check_value(e.spec, &e.value).is_err() {
        return false;
    }
    if !matches!(e.spec.kind, Kind::Expiry | Kind::Date) {
        return true;
    }
    let two = |i: usize| e.value.get(i..i + 2).and_then(|d| d.parse::<u8>().ok());
    matches!((two(2), two(4)), (Some(1..=12), Some(0..=31)))
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
