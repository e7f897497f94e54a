//! GS1 Digital Link URIs (URI Syntax standard 1.2): `https://{any host}/{any prefix}/01/
//! {gtin}/22/{cpv}/10/{lot}/21/{serial}?17=271231`.
//!
//! The primary key and its qualifiers are path segments, qualifiers in the order the
//! standard gives (for a GTIN: 22, then 10, then 21 or 235; an SSCC has none); data
//! attributes such as expiry are query parameters. Values are percent-decoded; GTIN-8, -12
//! and -13 are left-padded with zeros to 14 digits. Query parameters that are not AIs
//! (`linkType`, tracking tags) are ignored.

use super::{resolve, DlProblem, Element, Gs1Error};

/// Primary keys this gateway resolves: SSCC and GTIN.
const KEYS: [&str; 2] = ["00", "01"];

pub(super) fn looks_like_uri(s: &str) -> bool {
    let head = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    head.starts_with("http://") || head.starts_with("https://")
}

pub(super) fn split(uri: &str) -> Result<Vec<Element>, Gs1Error> {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let host_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    if host_end == 0 {
        return Err(Gs1Error::DigitalLink(DlProblem::NoHost));
    }
    let rest = &after_scheme[host_end..];
    let rest = rest.split('#').next().unwrap_or("");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    let key_at = find_key(&segments).ok_or(Gs1Error::DigitalLink(DlProblem::NoKey))?;
    let mut out = path_elements(&segments[key_at..])?;
    let key = out.first().map_or("", |e| e.spec.ai);
    for element in query_elements(query, key)? {
        out.push(element);
    }
    Ok(out)
}

/// Where the primary key starts; what comes before it is the host's own path prefix.
///
/// Preferred: the first key AI followed only by `qualifier/value` pairs of that key (in any
/// order: the order is checked later, to say what is wrong). Failing that, the first key AI
/// followed by an even run of `AI/value` pairs, so that the error names the wrong AI.
fn find_key(segments: &[&str]) -> Option<usize> {
    let structured = |i: &usize, strict: bool| {
        let tail = &segments[*i..];
        KEYS.contains(&tail[0])
            && tail.len() % 2 == 0
            && tail.chunks(2).skip(1).all(|pair| {
                is_ai_code(pair[0]) && (!strict || qualifier_rank(tail[0], pair[0]).is_some())
            })
    };
    (0..segments.len())
        .find(|i| structured(i, true))
        .or_else(|| (0..segments.len()).find(|i| structured(i, false)))
}

fn is_ai_code(s: &str) -> bool {
    (2..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Position of `ai` among `key`'s qualifiers; 21 and 235 share a place (one or the other).
fn qualifier_rank(key: &str, ai: &str) -> Option<u8> {
    match (key, ai) {
        ("01", "22") => Some(0),
        ("01", "10") => Some(1),
        ("01", "21" | "235") => Some(2),
        _ => None,
    }
}

fn path_elements(pairs: &[&str]) -> Result<Vec<Element>, Gs1Error> {
    let mut out = Vec::new();
    let mut last: Option<(u8, &str)> = None;
    for (i, pair) in pairs.chunks(2).enumerate() {
        let (code, raw_value) = (pair[0], pair.get(1).copied().unwrap_or(""));
        let spec = resolve(code)?;
        let mut value = percent_decode(raw_value)?;
        if i == 0 {
            if code == "01" {
                value = pad_gtin(value);
            }
        } else {
            let key = out.first().map_or("", |e: &Element| e.spec.ai);
            let rank = qualifier_rank(key, code).ok_or_else(|| {
                Gs1Error::DigitalLink(DlProblem::NotAQualifier {
                    ai: code.to_owned(),
                    key: if key == "00" { "00" } else { "01" },
                })
            })?;
            if let Some((prev_rank, prev)) = last {
                if rank <= prev_rank {
                    return Err(Gs1Error::DigitalLink(DlProblem::QualifierOrder {
                        ai: code.to_owned(),
                        after: prev.to_owned(),
                    }));
                }
            }
            last = Some((rank, code));
        }
        out.push(Element::new(spec, code, value));
    }
    Ok(out)
}

fn query_elements(query: &str, key: &str) -> Result<Vec<Element>, Gs1Error> {
    let mut out = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (code, raw_value) = param.split_once('=').unwrap_or((param, ""));
        if !is_ai_code(code) {
            continue;
        }
        if KEYS.contains(&code) || qualifier_rank(key, code).is_some() {
            return Err(Gs1Error::DigitalLink(DlProblem::PathAiInQuery {
                ai: code.to_owned(),
            }));
        }
        let spec = resolve(code)?;
        out.push(Element::new(spec, code, percent_decode(raw_value)?));
    }
    Ok(out)
}

/// GTIN-8, -12 and -13 become GTIN-14 by leading zeros (their check digit is unchanged,
/// since weights count from the right). Anything else is left for validation to report.
fn pad_gtin(value: String) -> String {
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    if digits && matches!(value.len(), 8 | 12 | 13) {
        format!("{value:0>14}")
    } else {
        value
    }
}

/// RFC 3986 percent-decoding; the result must be UTF-8 (set 82 is then checked).
fn percent_decode(s: &str) -> Result<String, Gs1Error> {
    let bad = || Gs1Error::DigitalLink(DlProblem::PercentEncoding(s.to_owned()));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}
