//! One lot's exposure as `GET /api/lots/{lot}`, `coldgate lot --json` and
//! `coldgate lots` print it: a documented shape (docs/http.md, "Lot
//! ledger"), not the engine's ledger, whose accumulators and counted spans
//! are its own business and change with it.

use serde::{Deserialize, Serialize};

use crate::event::rfc3339;
use crate::excursion::LotExposure;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotView {
    /// GTIN-14.
    pub gtin: String,
    pub lot: String,
    /// `YYYY-MM-DD`, when known.
    pub expiry: Option<String>,
    /// SSCCs of the pallets it has been on board with.
    pub pallets: Vec<String>,
    /// Time out of range per rule, over all its stays.
    pub out_of_range: Vec<OutOfRange>,
    /// Mean kinetic temperature, when its profile has an MKT limit.
    pub mkt: Option<MktView>,
    /// `excursion_id`s of the excursions it was exposed to.
    pub excursions: Vec<String>,
    /// Limits reported exhausted: `budget:<rule>`, `mkt_stay`, `mkt_window`.
    pub exhausted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfRange {
    /// The rule: `profile/quantity/index` of its limits.
    pub rule: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MktView {
    /// Over everything the lot saw on board, °C.
    pub stay_celsius: Option<f64>,
    /// Over the profile's sliding window, °C.
    pub window_celsius: Option<f64>,
    /// The first and last sample counted, RFC 3339.
    pub first_at: String,
    pub last_at: String,
}

impl From<&LotExposure> for LotView {
    fn from(l: &LotExposure) -> LotView {
        LotView {
            gtin: l.gtin.clone(),
            lot: l.lot.clone(),
            expiry: l.expiry.clone(),
            pallets: l.pallets.iter().cloned().collect(),
            out_of_range: l
                .out_of_range
                .iter()
                .map(|(rule, acc)| OutOfRange {
                    rule: rule.clone(),
                    seconds: acc.total_ms as f64 / 1000.0,
                })
                .collect(),
            mkt: l.mkt.as_ref().map(|m| MktView {
                stay_celsius: m.stay.value(),
                window_celsius: m.window.as_ref().and_then(|w| w.value()),
                first_at: rfc3339(m.first_ms),
                last_at: rfc3339(m.last_ms),
            }),
            excursions: l.excursions.iter().cloned().collect(),
            exhausted: l.exhausted.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_has_exactly_the_documented_keys() {
        let mut l: LotExposure = serde_json::from_value(serde_json::json!({
            "gtin": "09520123456788", "lot": "ABC123", "expiry": "2027-12-31",
            "pallets": ["106141412345678908"],
            "out_of_range": { "refrigerated/temperature/0": { "total_ms": 90500, "floor_ms": 7, "spans": [[1, 2]] } },
            "excursions": ["01J0000000000000000000000X"], "exhausted": [],
        }))
        .unwrap();
        l.mkt = None;
        let v = serde_json::to_value(LotView::from(&l)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "excursions",
                "exhausted",
                "expiry",
                "gtin",
                "lot",
                "mkt",
                "out_of_range",
                "pallets"
            ]
        );
        assert_eq!(
            v["out_of_range"],
            serde_json::json!([{ "rule": "refrigerated/temperature/0", "seconds": 90.5 }])
        );
        // What the CLI reads back is what was printed.
        let back: LotView = serde_json::from_value(v).unwrap();
        assert_eq!(back, LotView::from(&l));
    }
}
