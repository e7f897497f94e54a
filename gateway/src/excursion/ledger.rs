//! The lot exposure ledger: for every lot, across all its pallets and stays,
//! the time out of range per limit rule, its MKT and its excursions. It is
//! what a trip report and a QP's release decision read; budgets and MKT
//! limits are judged here so each raises its `lot` event exactly once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::budget::Accrued;
use super::mkt::{MktAccumulator, WindowedMkt};
use super::profile::MktRule;
use crate::event::payload::LotReason;
use crate::manifest::Item;

/// Buckets per MKT window: bounds the state a lot adds to every commit
/// (a 24 h window sums 15-minute buckets, 30 days 7.5-hour ones).
const WINDOW_BUCKETS: i64 = 96;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// By `gtin/lot`.
    pub lots: BTreeMap<String, LotExposure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotExposure {
    pub gtin: String,
    pub lot: String,
    #[serde(default)]
    pub expiry: Option<String>,
    /// SSCCs it has been on board with.
    #[serde(default)]
    pub pallets: BTreeSet<String>,
    /// By rule label `profile/quantity/index`.
    #[serde(default)]
    pub out_of_range: BTreeMap<String, Accrued>,
    #[serde(default)]
    pub mkt: Option<LotMkt>,
    #[serde(default)]
    pub excursions: BTreeSet<String>,
    /// Limits already reported exhausted (`budget:<label>`, `mkt_stay`,
    /// `mkt_window`), so each is reported once.
    #[serde(default)]
    pub exhausted: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotMkt {
    pub stay: MktAccumulator,
    #[serde(default)]
    pub window: Option<WindowedMkt>,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A limit the ledger found exhausted, for the engine to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    pub gtin: String,
    pub lot: String,
    pub expiry: Option<String>,
    /// `Budget`, `MktStay` or `MktWindow`.
    pub reason: LotReason,
    pub label: Option<String>,
    /// Total time out of range (ms) or MKT (°C).
    pub value: f64,
    /// Budget (ms) or MKT limit (°C).
    pub limit: f64,
    /// Every SSCC the lot has been on board with.
    pub pallets: Vec<String>,
}

impl LotExposure {
    fn new(item: &Item) -> LotExposure {
        LotExposure {
            gtin: item.gtin.clone(),
            lot: item.lot.clone(),
            expiry: item.expiry.clone(),
            pallets: BTreeSet::new(),
            out_of_range: BTreeMap::new(),
            mkt: None,
            excursions: BTreeSet::new(),
            exhausted: BTreeSet::new(),
        }
    }

    /// Total out-of-range time under one rule, ms.
    pub fn out_of_range_ms(&self, label: &str) -> i64 {
        self.out_of_range.get(label).map_or(0, |a| a.total_ms)
    }

    /// MKT over everything the lot saw on board, °C.
    pub fn mkt_stay(&self) -> Option<f64> {
        self.mkt.as_ref().and_then(|m| m.stay.value())
    }

    fn exhaust(
        &mut self,
        flag: String,
        reason: LotReason,
        label: Option<String>,
        value: f64,
        limit: f64,
    ) -> Option<Exhausted> {
        self.exhausted.insert(flag).then(|| Exhausted {
            gtin: self.gtin.clone(),
            lot: self.lot.clone(),
            expiry: self.expiry.clone(),
            reason,
            label,
            value,
            limit,
            pallets: self.pallets.iter().cloned().collect(),
        })
    }
}

impl Ledger {
    /// Moves the times the ledger remembers by `delta_ms` (the wall clock
    /// jumped): out-of-range spans, and the MKTs' latest samples. A rolling
    /// MKT window's past buckets stay where they were (docs/time.md).
    pub fn shift_times(&mut self, delta_ms: i64) {
        for lot in self.lots.values_mut() {
            for accrued in lot.out_of_range.values_mut() {
                accrued.shift_times(delta_ms);
            }
            if let Some(m) = &mut lot.mkt {
                m.first_ms = m.first_ms.saturating_add(delta_ms);
                m.last_ms = m.last_ms.saturating_add(delta_ms);
                m.stay.shift_times(delta_ms);
                if let Some(w) = &mut m.window {
                    w.shift_times(delta_ms);
                }
            }
        }
    }

    fn entry(&mut self, item: &Item, sscc: &str) -> &mut LotExposure {
        let lot = self
            .lots
            .entry(item.lot_key())
            .or_insert_with(|| LotExposure::new(item));
        if !lot.pallets.contains(sscc) {
            lot.pallets.insert(sscc.to_string());
        }
        lot
    }

    /// Records that the lot is on board with `sscc`.
    pub fn register(&mut self, item: &Item, sscc: &str) {
        self.entry(item, sscc);
    }

    /// Adds out-of-range time `[from, to)` under rule `label`; reports the
    /// budget exhausted the first time the total reaches it.
    pub fn accrue(
        &mut self,
        item: &Item,
        sscc: &str,
        label: &str,
        from_ms: i64,
        to_ms: i64,
        budget_ms: Option<i64>,
    ) -> Option<Exhausted> {
        let lot = self.entry(item, sscc);
        if !lot.out_of_range.contains_key(label) {
            lot.out_of_range
                .insert(label.to_string(), Accrued::default());
        }
        let acc = lot.out_of_range.get_mut(label)?;
        acc.add(from_ms, to_ms);
        let (total, budget) = (acc.total_ms, budget_ms?);
        if !acc.exhausts(budget) {
            return None;
        }
        lot.exhaust(
            format!("budget:{label}"),
            LotReason::Budget,
            Some(label.to_string()),
            total as f64,
            budget as f64,
        )
    }

    /// Feeds a temperature seen by the lot; judges the MKT limits once the
    /// lot has been watched for the window (or at once without a window).
    pub fn observe_temperature(
        &mut self,
        item: &Item,
        sscc: &str,
        rule: &MktRule,
        at_ms: i64,
        celsius: f64,
        hold_ms: Option<i64>,
    ) -> Vec<Exhausted> {
        let lot = self.entry(item, sscc);
        if lot.mkt.is_none() {
            let Ok(stay) = MktAccumulator::new(rule.activation_energy) else {
                return Vec::new();
            };
            let window = rule.window_ms.and_then(|w| {
                WindowedMkt::new(rule.activation_energy, w, (w / WINDOW_BUCKETS).max(60_000)).ok()
            });
            lot.mkt = Some(LotMkt {
                stay,
                window,
                first_ms: at_ms,
                // Nothing pushed yet.
                last_ms: i64::MIN,
            });
        }
        let Some(m) = lot.mkt.as_mut() else {
            return Vec::new();
        };
        // Two sensors may report the same instant: the second is skipped.
        // One sample a minute (the first): MKT is about hours and days, and
        // the committed state then changes once a minute, not per reading.
        if at_ms.div_euclid(60_000) == m.last_ms.div_euclid(60_000) {
            return Vec::new();
        }
        // Time off board or in a monitoring gap is unknown: no weight.
        if m.stay.push_held(at_ms, celsius, hold_ms).is_err() {
            return Vec::new();
        }
        if let Some(w) = &mut m.window {
            let _ = w.push_held(at_ms, celsius, hold_ms);
        }
        m.last_ms = at_ms;
        let watched = m.stay.duration_ms() as i64;
        let judged = rule.window_ms.is_none_or(|w| watched >= w);
        let stay = m.stay.value();
        let window = m.window.as_ref().and_then(WindowedMkt::value);
        let mut out = Vec::new();
        if !judged {
            return out;
        }
        if let Some(v) = stay.filter(|v| *v > rule.limit) {
            out.extend(lot.exhaust("mkt_stay".into(), LotReason::MktStay, None, v, rule.limit));
        }
        if let Some(v) = window.filter(|v| *v > rule.limit) {
            out.extend(lot.exhaust(
                "mkt_window".into(),
                LotReason::MktWindow,
                None,
                v,
                rule.limit,
            ));
        }
        out
    }

    /// Records an excursion the lot was exposed to.
    pub fn note_excursion(&mut self, item: &Item, sscc: &str, excursion_id: &str) {
        let lot = self.entry(item, sscc);
        if !lot.excursions.contains(excursion_id) {
            lot.excursions.insert(excursion_id.to_string());
        }
    }

    /// The exposure of one lot, for diagnostics and the trip report.
    pub fn lot(&self, gtin: &str, lot: &str) -> Option<&LotExposure> {
        self.lots.get(&crate::manifest::lot_key(gtin, lot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn item() -> Item {
        Item {
            gtin: "09520123456788".into(),
            lot: "L1".into(),
            expiry: None,
            serials: vec![],
        }
    }

    #[test]
    fn a_budget_is_reported_once_across_pallets_and_stays() {
        let mut l = Ledger::default();
        assert_eq!(
            l.accrue(&item(), "A", "p/temperature/0", 0, H, Some(2 * H)),
            None
        );
        let e = l.accrue(&item(), "B", "p/temperature/0", 5 * H, 6 * H, Some(2 * H));
        assert_eq!(e.map(|e| e.reason), Some(LotReason::Budget));
        assert_eq!(
            l.accrue(&item(), "B", "p/temperature/0", 7 * H, 8 * H, Some(2 * H)),
            None
        );
        let lot = l.lot("09520123456788", "L1").unwrap();
        assert_eq!(lot.out_of_range_ms("p/temperature/0"), 3 * H);
        assert_eq!(lot.pallets.len(), 2);
    }

    #[test]
    fn the_mkt_window_limit_waits_for_a_full_window() {
        let rule = MktRule {
            limit: 8.0,
            window_ms: Some(24 * H),
            activation_energy: 83.144,
        };
        let mut l = Ledger::default();
        let mut events = Vec::new();
        for h in 0..=24 {
            events.push((
                h,
                l.observe_temperature(&item(), "A", &rule, h * H, 9.0, None),
            ));
        }
        let first = events.iter().find(|(_, e)| !e.is_empty()).unwrap();
        assert_eq!(first.0, 24);
        let reasons: Vec<LotReason> = first.1.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, [LotReason::MktStay, LotReason::MktWindow]);
        assert!(l
            .observe_temperature(&item(), "A", &rule, 25 * H, 9.0, None)
            .is_empty());
    }
}
