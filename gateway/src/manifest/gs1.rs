//! GS1 identifiers as they reach the gateway: from a label typed or scanned by a
//! technician, or from an operator's manifest message.
//!
//! Design: pure parsing and validation, no IO, no clock of its own. [`parse`] reads the
//! clock once (for the century of two-digit years); [`parse_at`] takes the date so tests
//! and replays are deterministic. Every input form (bracketed element string, raw scanner
//! output with GS separators, GS1 Digital Link URI) is first reduced to a list of
//! `(AI, value)` pairs, and ONE validator turns pairs into [`Gs1Data`]: the three forms
//! cannot disagree on what is valid.
//!
//! Sources: GS1 General Specifications (AI table §3, character set 82 §7.11, century of
//! YYMMDD dates §7.12, check digit §7.9, symbology identifiers §5) and the GS1 Digital Link
//! URI Syntax standard 1.2. See `docs/gs1.md`.
//!
//! One room: element strings, Digital Link URIs and raw scans resolve to the same GS1 keys
//! through one table of application identifiers and one check-digit rule; split, each would need
//! the other's internals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

/// ASCII Group Separator: how scanners transmit FNC1 after a variable-length field.
pub const GS: char = '\u{1d}';

/// What a label or URI identifies, validated.
///
/// `gtin` is always 14 digits (short GTINs from Digital Link are zero-padded), so the
/// manifest can compare GTINs as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gs1Data {
    /// AI (00): Serial Shipping Container Code, 18 digits, the pallet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sscc: Option<String>,
    /// AI (01): Global Trade Item Number, 14 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    /// AI (02): the GTIN of the trade items a logistic unit contains. On a
    /// pallet label beside (00) it names the pallet's item, so a standard
    /// label alone says what is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_gtin: Option<String>,
    /// AI (37): how many of those trade items the logistic unit holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// AI (10): batch or lot number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    /// AI (21): serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// AI (17): expiration date, serialised as ISO `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "iso_date")]
    pub expiry: Option<Date>,
    /// Every other supported AI seen, by AI, value as given (validated for length and
    /// character set). Kept so that nothing printed on a label is silently lost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

/// Why an input is not acceptable GS1 data. Messages name the AI and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    #[error("empty input: nothing to parse")]
    Empty,
    #[error("unknown or unsupported AI ({ai})")]
    UnknownAi { ai: String },
    #[error("AI ({ai}) appears more than once")]
    DuplicateAi { ai: String },
    #[error("at character {at}: {reason}")]
    Syntax { at: usize, reason: &'static str },
    #[error(
        "symbology identifier {id:?} does not carry GS1 data (expected ]C1, ]d2, ]Q3, ]e0, ]J1, ]E0, ]E4, or ]Q1/]d1 with a URI)"
    )]
    UnsupportedSymbology { id: String },
    #[error("AI ({ai}) {problem}")]
    Invalid { ai: String, problem: ValueProblem },
    #[error(
        "a GS separator (FNC1) is missing after the variable-length AI ({ai}) `{value}`: at character {at} it runs into AI ({next}); scan again with a scanner that sends GS, or enter the bracketed form ({ai}){value}({next})…"
    )]
    MissingSeparator {
        ai: String,
        value: String,
        next: String,
        at: usize,
    },
    #[error("bad Digital Link URI: {0}")]
    DigitalLink(DlProblem),
}

/// What is wrong with one AI's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("{label} is empty")]
    Empty { label: &'static str },
    #[error("{label} has {len} characters, expected {expected}")]
    WrongLength {
        label: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{label} has {len} characters, at most {max} allowed")]
    TooLong {
        label: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{label} contains '{}' where only digits are allowed", .ch.escape_debug())]
    NotDigit { label: &'static str, ch: char },
    #[error("{label} contains '{}' which is outside GS1 character set 82", .ch.escape_debug())]
    OutsideCset82 { label: &'static str, ch: char },
    #[error("{label} check digit is {found}, expected {expected}")]
    CheckDigit {
        label: &'static str,
        found: u8,
        expected: u8,
    },
    #[error("{label} {value}: {reason}")]
    Date {
        label: &'static str,
        value: String,
        reason: DateProblem,
    },
}

/// Why a YYMMDD value is not a calendar date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateProblem {
    #[error("month {0} does not exist")]
    Month(u8),
    #[error("day {day} does not exist in {month} {year}")]
    Day { day: u8, month: Month, year: i32 },
}

/// What is wrong with a GS1 Digital Link URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlProblem {
    #[error("no host after the scheme")]
    NoHost,
    #[error("no primary key: the path needs /00/{{sscc}} or /01/{{gtin}}, then AI/value pairs")]
    NoKey,
    #[error("AI ({ai}) is not a key qualifier of AI ({key}) and must not be in the path")]
    NotAQualifier { ai: String, key: &'static str },
    #[error("qualifier AI ({ai}) comes after AI ({after}), but the standard orders it before")]
    QualifierOrder { ai: String, after: String },
    #[error("AI ({ai}) is a key or key qualifier: it belongs in the path, not the query")]
    PathAiInQuery { ai: String },
    #[error("bad percent-encoding in {0:?}")]
    PercentEncoding(String),
}

/// Check digit of a GS1 key (GTIN, SSCC, GLN, ...) given without its last digit.
///
/// GS1 General Specifications §7.9: from the right, weights 3, 1, 3, 1, ...; the check
/// digit brings the sum up to a multiple of ten. `None` if the input is empty or has a
/// character that is not an ASCII digit.
pub fn check_digit(digits_without_check: &str) -> Option<u8> {
    if digits_without_check.is_empty() {
        return None;
    }
    let mut sum: u32 = 0;
    for (i, c) in digits_without_check.chars().rev().enumerate() {
        let d = c.to_digit(10)?;
        sum += if i % 2 == 0 { 3 * d } else { d };
    }
    // `sum % 10` is below 10, so the result fits in a u8.
    Some(((10 - sum % 10) % 10) as u8)
}

/// True for 18 ASCII digits with a correct GS1 check digit.
pub fn is_valid_sscc(sscc: &str) -> bool {
    sscc.len() == 18 && has_valid_check_digit(sscc)
}

/// True for a GTIN-8, -12, -13 or -14 (ASCII digits) with a correct check digit.
pub fn is_valid_gtin(gtin: &str) -> bool {
    matches!(gtin.len(), 8 | 12 | 13 | 14) && has_valid_check_digit(gtin)
}

fn has_valid_check_digit(key: &str) -> bool {
    let Some((body, last)) = key.split_at_checked(key.len().saturating_sub(1)) else {
        return false;
    };
    let found = last.chars().next().and_then(|c| c.to_digit(10));
    matches!((check_digit(body), found), (Some(e), Some(f)) if u32::from(e) == f)
}

/// Parses any supported form, using today's UTC date for the century of YYMMDD dates.
pub fn parse(input: &str) -> Result<Gs1Data, Gs1Error> {
    parse_at(input, time::OffsetDateTime::now_utc().date())
}

/// Parses any supported form; `today` decides the century of two-digit years (§7.12).
///
/// Forms, told apart by their first characters:
/// - `(01)09520123456788(10)ABC123`: bracketed element string;
/// - `http://` or `https://`: GS1 Digital Link URI (any host, any path prefix);
/// - `]C1`, `]e0`, `]d2`, `]Q3`, `]J1` then an element string; `]Q1`/`]d1` then a URI;
///   `]E0`/`]E4` then an EAN-13/UPC-A or EAN-8 (a bare GTIN);
/// - anything else: a raw element string, GS (0x1D) after variable-length fields.
pub fn parse_at(input: &str, today: Date) -> Result<Gs1Data, Gs1Error> {
    // Keyboard-wedge scanners end a scan with CR or LF; that is framing, not data.
    let input = input.trim_matches(|c| matches!(c, '\r' | '\n' | ' ' | '\t'));
    if input.is_empty() {
        return Err(Gs1Error::Empty);
    }
    let pairs = split_pairs(input)?;
    assemble(pairs, today)
}

/// One AI as written (`3103`, not the table's `3nnn`) and its still unvalidated value.
#[derive(Debug)]
struct Element {
    spec: &'static AiSpec,
    ai: String,
    value: String,
}

fn split_pairs(input: &str) -> Result<Vec<Element>, Gs1Error> {
    if let Some(rest) = input.strip_prefix(']') {
        return split_symbology(rest);
    }
    if input.starts_with('(') {
        return bracketed::split(input);
    }
    if digital_link::looks_like_uri(input) {
        return digital_link::split(input);
    }
    raw::split(input)
}

fn split_symbology(after_bracket: &str) -> Result<Vec<Element>, Gs1Error> {
    let id: String = after_bracket.chars().take(2).collect();
    let rest = after_bracket.get(id.len()..).unwrap_or("");
    match id.as_str() {
        // Positions in errors count from the start of the whole input.
        "C1" | "e0" | "d2" | "Q3" | "J1" => raw::split(rest).map_err(|e| match e {
            Gs1Error::Syntax { at, reason } => Gs1Error::Syntax { at: at + 3, reason },
            Gs1Error::MissingSeparator {
                ai,
                value,
                next,
                at,
            } => Gs1Error::MissingSeparator {
                ai,
                value,
                next,
                at: at + 3,
            },
            other => other,
        }),
        "Q1" | "d1" if digital_link::looks_like_uri(rest) => digital_link::split(rest),
        "E0" | "E4" => split_ean(rest),
        _ => Err(Gs1Error::UnsupportedSymbology {
            id: format!("]{id}"),
        }),
    }
}

/// EAN-13/UPC-A (`]E0`) and EAN-8 (`]E4`) carry a bare GTIN without AIs: a pack's retail
/// barcode scanned instead of its GS1 DataMatrix.
fn split_ean(digits: &str) -> Result<Vec<Element>, Gs1Error> {
    let spec = resolve("01")?;
    let is_short_gtin =
        digits.bytes().all(|b| b.is_ascii_digit()) && matches!(digits.len(), 8 | 13);
    let value = if is_short_gtin {
        format!("{digits:0>14}")
    } else {
        digits.to_owned()
    };
    Ok(vec![Element::new(spec, "01", value)])
}

/// Validates every pair and gathers them; rejects a repeated AI.
fn assemble(pairs: Vec<Element>, today: Date) -> Result<Gs1Data, Gs1Error> {
    if pairs.is_empty() {
        return Err(Gs1Error::Empty);
    }
    let mut data = Gs1Data::default();
    let mut seen = std::collections::BTreeSet::new();
    for Element { spec, ai, value } in pairs {
        if !seen.insert(ai.clone()) {
            return Err(Gs1Error::DuplicateAi { ai });
        }
        let invalid = |problem| Gs1Error::Invalid {
            ai: ai.clone(),
            problem,
        };
        check_value(spec, &value).map_err(invalid)?;
        match spec.kind {
            Kind::Sscc => data.sscc = Some(value),
            Kind::Gtin => data.gtin = Some(value),
            Kind::ContentGtin => data.content_gtin = Some(value),
            // At most 8 digits (checked above), so it fits; the fallback only
            // keeps this panic-free.
            Kind::Count => data.count = Some(value.parse().unwrap_or(u32::MAX)),
            Kind::Lot => data.lot = Some(value),
            Kind::Serial => data.serial = Some(value),
            Kind::Expiry => data.expiry = Some(yymmdd(spec.label, &value, today).map_err(invalid)?),
            Kind::Date => {
                yymmdd(spec.label, &value, today).map_err(invalid)?;
                data.other.insert(ai.clone(), value);
            }
            Kind::Key | Kind::Plain => {
                data.other.insert(ai.clone(), value);
            }
        }
    }
    Ok(data)
}

/// Length, character set and check digit: everything but the calendar.
fn check_value(spec: &AiSpec, value: &str) -> Result<(), ValueProblem> {
    let label = spec.label;
    let len = value.chars().count();
    if len == 0 {
        return Err(ValueProblem::Empty { label });
    }
    match spec.len {
        Len::Fixed(expected) if len != expected => {
            return Err(ValueProblem::WrongLength {
                label,
                len,
                expected,
            })
        }
        Len::Var(max) if len > max => return Err(ValueProblem::TooLong { label, len, max }),
        _ => {}
    }
    check_charset(spec, value)?;
    if matches!(
        spec.kind,
        Kind::Sscc | Kind::Gtin | Kind::ContentGtin | Kind::Key
    ) {
        check_key_digit(label, value)?;
    }
    Ok(())
}

fn check_charset(spec: &AiSpec, value: &str) -> Result<(), ValueProblem> {
    let label = spec.label;
    let bad = match spec.charset {
        Charset::Numeric => value.chars().find(|c| !c.is_ascii_digit()),
        Charset::Cset82 => value.chars().find(|&c| !is_cset82(c)),
    };
    match (bad, spec.charset) {
        (None, _) => Ok(()),
        (Some(ch), Charset::Numeric) => Err(ValueProblem::NotDigit { label, ch }),
        (Some(ch), Charset::Cset82) => Err(ValueProblem::OutsideCset82 { label, ch }),
    }
}

fn check_key_digit(label: &'static str, value: &str) -> Result<(), ValueProblem> {
    // `value` is non-empty ASCII digits here; the fallbacks only keep this panic-free.
    let (body, last) = value
        .split_at_checked(value.len().saturating_sub(1))
        .unwrap_or((value, ""));
    let found = last.bytes().next().map_or(0, |b| b.wrapping_sub(b'0'));
    match check_digit(body) {
        Some(expected) if expected != found => Err(ValueProblem::CheckDigit {
            label,
            found,
            expected,
        }),
        _ => Ok(()),
    }
}

/// GS1 AI encodable character set 82 (General Specifications §7.11): the printable ASCII
/// characters except space, `#`, `$`, `@`, `[`, `\`, `]`, `^`, `` ` ``, `{`, `|`, `}`, `~`.
pub fn is_cset82(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '"'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | '-'
                | '.'
                | '/'
                | ':'
                | ';'
                | '<'
                | '='
                | '>'
                | '?'
                | '_'
        )
}

/// A YYMMDD date (§7.12): DD = 00 means the last day of the month; the century is the
/// one that puts the year within 49 years before and 50 years after `today`'s year.
fn yymmdd(label: &'static str, value: &str, today: Date) -> Result<Date, ValueProblem> {
    let num = |i: usize| -> u8 {
        value.as_bytes().get(i..i + 2).map_or(0, |b| {
            let digit = |d: u8| d.wrapping_sub(b'0') % 10;
            digit(b[0]) * 10 + digit(b[1])
        })
    };
    let (yy, mm, dd) = (num(0), num(2), num(4));
    let fail = |reason| ValueProblem::Date {
        label,
        value: value.to_owned(),
        reason,
    };
    let month = Month::try_from(mm).map_err(|_| fail(DateProblem::Month(mm)))?;
    let year = century_window(yy, today.year());
    let last = month.length(year);
    let day = if dd == 0 { last } else { dd };
    if day > last {
        return Err(fail(DateProblem::Day { day, month, year }));
    }
    Date::from_calendar_date(year, month, day)
        .map_err(|_| fail(DateProblem::Day { day, month, year }))
}

/// GS1 General Specifications §7.12: with `diff = YY - (current year mod 100)`,
/// 51..=99 means the previous century, -99..=-50 the next one, anything else the current.
pub fn century_window(yy: u8, current_year: i32) -> i32 {
    let current_yy = current_year.rem_euclid(100);
    let century = current_year - current_yy;
    let yy = i32::from(yy);
    match yy - current_yy {
        d if d >= 51 => century - 100 + yy,
        d if d <= -50 => century + 100 + yy,
        _ => century + yy,
    }
}

// ---------------------------------------------------------------------------------------
// The AI table: only what a cold-chain gateway meets. Anything else is rejected by name
// rather than guessed at, because a wrong split of a raw scan would corrupt every field
// after it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Numeric,
    Cset82,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Len {
    Fixed(usize),
    Var(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sscc,
    Gtin,
    /// AI (02), the GTIN of the contents of a logistic unit.
    ContentGtin,
    /// AI (37), the count of those contents.
    Count,
    Lot,
    Serial,
    Expiry,
    /// Another YYMMDD date: validated, kept in `other`.
    Date,
    /// Another key with a check digit (a GLN): kept in `other`.
    Key,
    Plain,
}

#[derive(Debug)]
struct AiSpec {
    ai: &'static str,
    label: &'static str,
    charset: Charset,
    len: Len,
    kind: Kind,
}

const fn ai(
    ai: &'static str,
    label: &'static str,
    charset: Charset,
    len: Len,
    kind: Kind,
) -> AiSpec {
    AiSpec {
        ai,
        label,
        charset,
        len,
        kind,
    }
}

use Charset::{Cset82 as X, Numeric as N};
use Len::{Fixed, Var};

static AIS: &[AiSpec] = &[
    ai("00", "SSCC", N, Fixed(18), Kind::Sscc),
    ai("01", "GTIN", N, Fixed(14), Kind::Gtin),
    ai("02", "content GTIN", N, Fixed(14), Kind::ContentGtin),
    ai("10", "lot", X, Var(20), Kind::Lot),
    ai("11", "production date", N, Fixed(6), Kind::Date),
    ai("12", "due date", N, Fixed(6), Kind::Date),
    ai("13", "packaging date", N, Fixed(6), Kind::Date),
    ai("15", "best before date", N, Fixed(6), Kind::Date),
    ai("16", "sell by date", N, Fixed(6), Kind::Date),
    ai("17", "expiry", N, Fixed(6), Kind::Expiry),
    ai("20", "variant", N, Fixed(2), Kind::Plain),
    ai("21", "serial", X, Var(20), Kind::Serial),
    ai("22", "consumer product variant", X, Var(20), Kind::Plain),
    ai("235", "third-party serial", X, Var(28), Kind::Plain),
    ai("240", "additional product id", X, Var(30), Kind::Plain),
    ai("241", "customer part number", X, Var(30), Kind::Plain),
    ai("250", "secondary serial", X, Var(30), Kind::Plain),
    ai("30", "variable count", N, Var(8), Kind::Plain),
    ai("37", "count of trade items", N, Var(8), Kind::Count),
    ai("400", "order number", X, Var(30), Kind::Plain),
    ai("401", "consignment number", X, Var(30), Kind::Plain),
    ai("402", "shipment number", N, Fixed(17), Kind::Plain),
    ai("403", "routing code", X, Var(30), Kind::Plain),
    ai("410", "ship-to GLN", N, Fixed(13), Kind::Key),
    ai("411", "bill-to GLN", N, Fixed(13), Kind::Key),
    ai("412", "purchased-from GLN", N, Fixed(13), Kind::Key),
    ai("413", "ship-for GLN", N, Fixed(13), Kind::Key),
    ai("414", "location GLN", N, Fixed(13), Kind::Key),
    ai("415", "invoicing party GLN", N, Fixed(13), Kind::Key),
    ai("416", "production GLN", N, Fixed(13), Kind::Key),
    ai("420", "ship-to postal code", X, Var(20), Kind::Plain),
    ai("422", "country of origin", N, Fixed(3), Kind::Plain),
    ai("7003", "expiry date and time", N, Fixed(10), Kind::Plain),
    ai("8004", "GIAI", X, Var(30), Kind::Plain),
    ai("90", "mutually agreed information", X, Var(30), Kind::Plain),
];

/// Trade measures, AIs 3ndd: N6 with an implied decimal point (the last digit of the AI).
static MEASURE: AiSpec = ai("3nnn", "trade measure", N, Fixed(6), Kind::Plain);
/// Company internal information, AIs 91 to 99.
static INTERNAL: AiSpec = ai(
    "9n",
    "company internal information",
    X,
    Var(90),
    Kind::Plain,
);

/// The AI table entry for exactly this AI, if supported.
fn lookup(code: &str) -> Option<&'static AiSpec> {
    if let Some(spec) = AIS.iter().find(|s| s.ai == code) {
        return Some(spec);
    }
    match code.as_bytes() {
        [b'9', b'1'..=b'9'] => Some(&INTERNAL),
        [b'3', a, b, c] if c.is_ascii_digit() && is_measure_prefix(*a, *b) => Some(&MEASURE),
        _ => None,
    }
}

/// 310n–316n, 320n–329n, 330n–337n, 340n–357n, 360n–369n.
fn is_measure_prefix(a: u8, b: u8) -> bool {
    matches!(
        (a, b),
        (b'1', b'0'..=b'6')
            | (b'2', b'0'..=b'9')
            | (b'3', b'0'..=b'7')
            | (b'4', b'0'..=b'9')
            | (b'5', b'0'..=b'7')
            | (b'6', b'0'..=b'9')
    )
}

/// The table entry for `code`, or the error that names it.
fn resolve(code: &str) -> Result<&'static AiSpec, Gs1Error> {
    lookup(code).ok_or_else(|| Gs1Error::UnknownAi {
        ai: code.to_owned(),
    })
}

impl Element {
    fn new(spec: &'static AiSpec, ai: &str, value: String) -> Self {
        Element {
            spec,
            ai: ai.to_owned(),
            value,
        }
    }
}

mod bracketed;
mod digital_link;
mod iso_date;
mod raw;
#[cfg(test)]
mod tests;
