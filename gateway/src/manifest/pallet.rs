//! A pallet and its items as the manifest keeps them, and the checks every
//! way in (config `[[pallets]]`, load commands) applies to them.
//!
//! Design: identifiers are validated here once, with the GS1 rules of
//! [`super::gs1`], so the engine can compare them as plain strings.

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::Date;

use super::gs1;

/// Longest AI (10) lot and AI (21) serial (GS1 General Specifications §3.2).
const MAX_LOT_OR_SERIAL: usize = 20;

/// One trade item line on a pallet. The same type is the item of every
/// payload that lists items (manifest, load command, `affected`), so what is
/// on board and what is published cannot drift apart.
pub use crate::event::payload::Item;

impl Item {
    /// The key of this item's lot in the lot ledger.
    pub fn lot_key(&self) -> String {
        lot_key(&self.gtin, &self.lot)
    }

    /// Every problem with this item, each with the field it concerns.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(m) = gtin_problem(&self.gtin) {
            p.push(("gtin".to_string(), m));
        }
        if let Some(m) = text_problem(&self.lot, "lot") {
            p.push(("lot".to_string(), m));
        }
        if let Some(e) = &self.expiry {
            if parse_iso_date(e).is_none() {
                p.push((
                    "expiry".to_string(),
                    format!("`{e}` is not a date written YYYY-MM-DD"),
                ));
            }
        }
        for (i, s) in self.serials.iter().enumerate() {
            if let Some(m) = text_problem(s, "serial") {
                p.push((format!("serials[{i}]"), m));
            }
        }
        p
    }
}

/// `gtin/lot`: a lot is only unique together with its GTIN.
pub fn lot_key(gtin: &str, lot: &str) -> String {
    format!("{gtin}/{lot}")
}

/// One stay of a pallet on board. A pallet loaded twice has two stays: the
/// history is kept, never overwritten, because an excursion names whoever
/// was on board at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pallet {
    /// SSCC, 18 digits, check digit verified.
    pub sscc: String,
    pub zone: String,
    /// The product profile; `None` means the zone's profile.
    #[serde(default)]
    pub profile: Option<String>,
    pub loaded_at_ms: i64,
    #[serde(default)]
    pub unloaded_at_ms: Option<i64>,
    pub items: Vec<Item>,
}

impl Pallet {
    /// On board at `at_ms`: loaded at or before, not yet unloaded.
    pub fn on_board_at(&self, at_ms: i64) -> bool {
        self.loaded_at_ms <= at_ms && self.unloaded_at_ms.is_none_or(|u| at_ms < u)
    }

    /// On board at some instant of `[from_ms, to_ms]`.
    pub fn overlaps(&self, from_ms: i64, to_ms: i64) -> bool {
        self.loaded_at_ms <= to_ms && self.unloaded_at_ms.is_none_or(|u| u > from_ms)
    }

    /// `[from, to)` clipped to this stay; `None` when they do not meet.
    pub fn clip(&self, from_ms: i64, to_ms: i64) -> Option<(i64, i64)> {
        let a = from_ms.max(self.loaded_at_ms);
        let b = self.unloaded_at_ms.map_or(to_ms, |u| to_ms.min(u));
        (a < b).then_some((a, b))
    }
}

/// Why the SSCC is unusable, if it is.
pub fn sscc_problem(sscc: &str) -> Option<String> {
    if sscc.len() != 18 || !sscc.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!("`{sscc}` must be 18 digits"))
    } else if !gs1::is_valid_sscc(sscc) {
        Some(format!("`{sscc}` has a wrong check digit"))
    } else {
        None
    }
}

/// Why the GTIN is unusable, if it is.
pub fn gtin_problem(gtin: &str) -> Option<String> {
    if gtin.len() != 14 || !gtin.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!(
            "`{gtin}` must be a GTIN-14: 14 digits (pad shorter GTINs with leading zeros)"
        ))
    } else if !gs1::is_valid_gtin(gtin) {
        Some(format!("`{gtin}` has a wrong check digit"))
    } else {
        None
    }
}

/// AI (10) and AI (21) share their rules: 1 to 20 characters of set 82.
fn text_problem(value: &str, what: &str) -> Option<String> {
    let n = value.chars().count();
    if n == 0 || n > MAX_LOT_OR_SERIAL {
        Some(format!(
            "a {what} has 1 to {MAX_LOT_OR_SERIAL} characters, `{value}` has {n}"
        ))
    } else {
        value.chars().find(|&c| !gs1::is_cset82(c)).map(|c| {
            format!(
                "`{value}` contains '{}', outside GS1 character set 82",
                c.escape_debug()
            )
        })
    }
}

/// `YYYY-MM-DD` into a date.
pub fn parse_iso_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            gtin: "09520123456788".into(),
            lot: "ABC123".into(),
            expiry: Some("2027-12-31".into()),
            serials: vec!["12345".into()],
        }
    }

    #[test]
    fn a_valid_item_has_no_problems() {
        assert!(item().problems().is_empty());
        assert_eq!(sscc_problem("106141412345678908"), None);
    }

    #[test]
    fn every_item_problem_is_named_by_field() {
        let bad = Item {
            gtin: "09520123456789".into(),
            lot: "ABC 123".into(),
            expiry: Some("2027-13-01".into()),
            serials: vec!["ok".into(), "x".repeat(21)],
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["gtin", "lot", "expiry", "serials[1]"]);
    }

    #[test]
    fn sscc_needs_eighteen_digits_and_its_check_digit() {
        assert!(sscc_problem("10614141234567890").is_some());
        assert!(sscc_problem("106141412345678909").is_some_and(|m| m.contains("check digit")));
    }

    #[test]
    fn stays_are_half_open() {
        let p = Pallet {
            sscc: "106141412345678908".into(),
            zone: "rear".into(),
            profile: None,
            loaded_at_ms: 100,
            unloaded_at_ms: Some(200),
            items: vec![item()],
        };
        assert!(!p.on_board_at(99));
        assert!(p.on_board_at(100));
        assert!(!p.on_board_at(200));
        assert_eq!(p.clip(0, 1000), Some((100, 200)));
        assert_eq!(p.clip(200, 300), None);
        assert!(p.overlaps(0, 100));
        assert!(!p.overlaps(200, 300));
    }
}
