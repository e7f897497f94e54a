//! The lot exposure ledger: for every lot, across all its pallets and stays,
//! the time beyond each limit per rule and direction (and the unmonitored
//! time while a condition was open), its MKT and its excursions. It is what a
//! trip report and a QP's release decision read; budgets and MKT limits are
//! judged here so each raises its `lot` event exactly once.
//!
//! Keys are `profile/quantity/index/direction`: a rule's low and high
//! allowances are separate budgets, because heat and cold (or freezing) harm
//! a product in different ways and a label's tolerance of one says nothing
//! about the other.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::budget::Accrued;
use super::mkt::{MktAccumulator, WindowedMkt};
use super::profile::MktRule;
use crate::event::payload::{Direction, LotReason};
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
    /// Time beyond the limit, by `profile/quantity/index/direction`.
    #[serde(default)]
    pub out_of_range: BTreeMap<String, Accrued>,
    /// Unmonitored time while a condition was open (a monitoring gap inside
    /// an excursion), by the same keys: unknown, never in range and never
    /// silently out of range.
    #[serde(default)]
    pub unknown: BTreeMap<String, Accrued>,
    /// What each key allowed when it was charged, so the ledger alone says
    /// whether a rule had an allowance (the config may change later).
    #[serde(default)]
    pub terms: BTreeMap<String, RuleTerms>,
    #[serde(default)]
    pub mkt: Option<LotMkt>,
    #[serde(default)]
    pub excursions: BTreeSet<String>,
    /// Limits already reported exhausted (`budget:<label>`, `mkt_stay`,
    /// `mkt_window`), so each is reported once.
    #[serde(default)]
    pub exhausted: BTreeSet<String>,
}

/// A rule direction's allowance as the ledger charged it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTerms {
    /// None: the rule allows no time beyond this limit.
    pub budget_ms: Option<i64>,
    /// Time beyond this limit is a freeze.
    #[serde(default)]
    pub freeze: bool,
}

/// The ledger's key of one direction of a rule.
pub fn rule_key(label: &str, direction: Direction) -> String {
    format!("{label}/{}", direction.as_str())
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
    /// The budget's direction.
    pub direction: Option<Direction>,
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
            unknown: BTreeMap::new(),
            terms: BTreeMap::new(),
            mkt: None,
            excursions: BTreeSet::new(),
            exhausted: BTreeSet::new(),
        }
    }

    /// Total time beyond a limit under one key
    /// (`profile/quantity/index/direction`), ms.
    pub fn out_of_range_ms(&self, key: &str) -> i64 {
        self.out_of_range.get(key).map_or(0, |a| a.total_ms)
    }

    /// Unmonitored time during conditions under one key, ms.
    pub fn unknown_ms(&self, key: &str) -> i64 {
        self.unknown.get(key).map_or(0, |a| a.total_ms)
    }

    /// Whether the lot was watched (MKT weight) for less than `window_ms`.
    pub fn watched_ms(&self) -> i64 {
        self.mkt.as_ref().map_or(0, |m| m.stay.duration_ms() as i64)
    }

    /// MKT over everything the lot saw on board, °C.
    pub fn mkt_stay(&self) -> Option<f64> {
        self.mkt.as_ref().and_then(|m| m.stay.value())
    }

    fn exhaust(
        &mut self,
        flag: String,
        reason: LotReason,
        label: Option<(String, Direction)>,
        value: f64,
        limit: f64,
    ) -> Option<Exhausted> {
        self.exhausted.insert(flag).then(|| Exhausted {
            gtin: self.gtin.clone(),
            lot: self.lot.clone(),
            expiry: self.expiry.clone(),
            reason,
            direction: label.as_ref().map(|(_, d)| *d),
            label: label.map(|(l, _)| l),
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
            for accrued in lot
                .out_of_range
                .values_mut()
                .chain(lot.unknown.values_mut())
            {
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

    /// Adds time beyond the limit `[from, to)` under rule `label` in
    /// `direction`; reports its budget exhausted the first time the total
    /// reaches it. A direction without a budget is never "exhausted": it
    /// allowed nothing, which the terms record for the report to judge.
    pub fn accrue(
        &mut self,
        item: &Item,
        sscc: &str,
        label: &str,
        direction: Direction,
        (from_ms, to_ms): (i64, i64),
        terms: RuleTerms,
    ) -> Option<Exhausted> {
        let lot = self.entry(item, sscc);
        let key = rule_key(label, direction);
        if lot.terms.get(&key) != Some(&terms) {
            lot.terms.insert(key.clone(), terms);
        }
        if !lot.out_of_range.contains_key(&key) {
            lot.out_of_range.insert(key.clone(), Accrued::default());
        }
        let acc = lot.out_of_range.get_mut(&key)?;
        acc.add(from_ms, to_ms);
        let (total, budget) = (acc.total_ms, terms.budget_ms?);
        if !acc.exhausts(budget) {
            return None;
        }
        lot.exhaust(
            format!("budget:{key}"),
            LotReason::Budget,
            Some((label.to_string(), direction)),
            total as f64,
            budget as f64,
        )
    }

    /// Adds unmonitored time `[from, to)` while a condition of `label` in
    /// `direction` was open.
    pub fn accrue_unknown(
        &mut self,
        item: &Item,
        sscc: &str,
        label: &str,
        direction: Direction,
        (from_ms, to_ms): (i64, i64),
    ) {
        let lot = self.entry(item, sscc);
        lot.unknown
            .entry(rule_key(label, direction))
            .or_default()
            .add(from_ms, to_ms);
    }

    /// A stay of the lot ended: when the lot was watched for less than the
    /// window, the window limit can never be judged, so the MKT limit is
    /// judged over what it saw (its stays so far). Longer stays were judged
    /// sample by sample.
    pub fn close_stay(&mut self, item: &Item, rule: &MktRule) -> Option<Exhausted> {
        let lot = self.lots.get_mut(&item.lot_key())?;
        let m = lot.mkt.as_ref()?;
        let watched = m.stay.duration_ms() as i64;
        if rule.window_ms.is_none_or(|w| watched >= w) {
            return None;
        }
        let v = m.stay.value().filter(|v| *v > rule.limit)?;
        lot.exhaust("mkt_stay".into(), LotReason::MktStay, None, v, rule.limit)
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

    const HIGH: RuleTerms = RuleTerms {
        budget_ms: Some(2 * H),
        freeze: false,
    };

    #[test]
    fn a_budget_is_reported_once_across_pallets_and_stays() {
        let mut l = Ledger::default();
        let hi = Direction::High;
        assert_eq!(
            l.accrue(&item(), "A", "p/temperature/0", hi, (0, H), HIGH),
            None
        );
        let e = l.accrue(&item(), "B", "p/temperature/0", hi, (5 * H, 6 * H), HIGH);
        assert_eq!(e.map(|e| e.reason), Some(LotReason::Budget));
        assert_eq!(
            l.accrue(&item(), "B", "p/temperature/0", hi, (7 * H, 8 * H), HIGH),
            None
        );
        let lot = l.lot("09520123456788", "L1").unwrap();
        assert_eq!(lot.out_of_range_ms("p/temperature/0/high"), 3 * H);
        assert_eq!(lot.pallets.len(), 2);
    }

    #[test]
    fn each_direction_spends_its_own_budget() {
        let mut l = Ledger::default();
        let terms = |h| RuleTerms {
            budget_ms: Some(h * H),
            freeze: false,
        };
        let label = "p/temperature/0";
        // 1.5 h cold and 1.5 h warm against 2 h each: neither is spent,
        // although together they are more than either allowance.
        assert_eq!(
            l.accrue(
                &item(),
                "A",
                label,
                Direction::Low,
                (0, 3 * H / 2),
                terms(2)
            ),
            None
        );
        assert_eq!(
            l.accrue(
                &item(),
                "A",
                label,
                Direction::High,
                (2 * H, 7 * H / 2),
                terms(2)
            ),
            None
        );
        let e = l
            .accrue(
                &item(),
                "A",
                label,
                Direction::High,
                (4 * H, 5 * H),
                terms(2),
            )
            .unwrap();
        assert_eq!(
            (e.reason, e.direction),
            (LotReason::Budget, Some(Direction::High))
        );
        let lot = l.lot("09520123456788", "L1").unwrap();
        assert_eq!(lot.out_of_range_ms("p/temperature/0/low"), 3 * H / 2);
        assert_eq!(lot.out_of_range_ms("p/temperature/0/high"), 5 * H / 2);
        assert!(lot.exhausted.contains("budget:p/temperature/0/high"));
        assert!(!lot.exhausted.contains("budget:p/temperature/0/low"));
    }

    #[test]
    fn a_direction_without_allowance_is_recorded_as_such_and_never_exhausted() {
        let mut l = Ledger::default();
        let freeze = RuleTerms {
            budget_ms: None,
            freeze: true,
        };
        assert_eq!(
            l.accrue(
                &item(),
                "A",
                "p/temperature/1",
                Direction::Low,
                (0, 25_000),
                freeze
            ),
            None
        );
        let lot = l.lot("09520123456788", "L1").unwrap();
        assert_eq!(lot.terms["p/temperature/1/low"], freeze);
        assert_eq!(lot.out_of_range_ms("p/temperature/1/low"), 25_000);
    }

    #[test]
    fn a_stay_shorter_than_the_window_is_judged_over_the_stay_when_it_ends() {
        let rule = MktRule {
            limit: 8.0,
            window_ms: Some(24 * H),
            activation_energy: 83.144,
        };
        let mut l = Ledger::default();
        for m in 0..=120 {
            let e = l.observe_temperature(&item(), "A", &rule, m * 60_000, 12.0, None);
            assert!(e.is_empty(), "not judged while the stay runs");
        }
        let e = l.close_stay(&item(), &rule).unwrap();
        assert_eq!(e.reason, LotReason::MktStay);
        assert!((e.value - 12.0).abs() < 1e-9, "{}", e.value);
        assert_eq!(l.close_stay(&item(), &rule), None, "once");
    }

    #[test]
    fn a_short_stay_at_the_limit_is_within_it() {
        let rule = MktRule {
            limit: 8.0,
            window_ms: Some(24 * H),
            activation_energy: 83.144,
        };
        let mut l = Ledger::default();
        for m in 0..=120 {
            l.observe_temperature(&item(), "A", &rule, m * 60_000, 8.0, None);
        }
        assert_eq!(l.close_stay(&item(), &rule), None, "8.0 is not above 8.0");
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
