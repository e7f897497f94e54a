//! Warnings about a load command on its own, before it meets the manifest:
//! a serial twice in the same load, a load time the gateway's clock cannot
//! believe.
//!
//! Why apart from [`super::Manifest::load`]: these need the time the command
//! arrived (the manifest is a pure record of load times) and say nothing
//! about what is on board. Like every load warning they never refuse the
//! load (the goods are on the truck either way) and are never silent: each
//! is an `events/lot` warning and is in the command's answer.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::event::payload::{Lot, LotPhase, LotReason};
use crate::event::rfc3339;

use super::LoadCommand;

/// How far a `loaded_at` may be from the gateway's clock before it warns
/// (`[manifest]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadTimeLimits {
    /// Later than now by more than this: a wrong clock or a typed year.
    pub future_skew: Duration,
    /// Earlier than now by more than this: a stale or mistyped load.
    pub max_age: Duration,
}

/// `manifest.loaded_at_skew`'s default: a handheld's clock a few minutes
/// fast is normal, a load an hour ahead is not.
pub const DEFAULT_LOADED_AT_SKEW: Duration = Duration::from_secs(5 * 60);
/// `manifest.loaded_at_max_age`'s default: a load entered late from paper
/// is plausible for days, not for weeks.
pub const DEFAULT_LOADED_AT_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);

impl Default for LoadTimeLimits {
    fn default() -> Self {
        LoadTimeLimits {
            future_skew: DEFAULT_LOADED_AT_SKEW,
            max_age: DEFAULT_LOADED_AT_MAX_AGE,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one load command raises on its own, as `events/lot` warning bodies
/// (serial duplicates in item order, then the load time).
pub fn command_warnings(cmd: &LoadCommand, now_ms: i64, limits: LoadTimeLimits) -> Vec<Lot> {
    let mut out = Vec::new();
    let base = |reason| {
        let mut lot = Lot::new(LotPhase::Warning, reason);
        lot.sscc = Some(cmd.sscc.clone());
        lot.zone = Some(cmd.zone.clone());
        lot
    };
    // gtin/serial → (lot, times seen); one warning per serial however often.
    let mut seen: BTreeMap<(&str, &str), (&str, usize)> = BTreeMap::new();
    let mut order = Vec::new();
    for item in &cmd.items {
        for serial in &item.serials {
            let e = seen
                .entry((item.gtin.as_str(), serial.as_str()))
                .or_insert((item.lot.as_str(), 0));
            e.1 += 1;
            if e.1 == 2 {
                order.push((item.gtin.as_str(), serial.as_str()));
            }
        }
    }
    for (gtin, serial) in order {
        let mut lot = base(LotReason::SerialDuplicate);
        lot.gtin = Some(gtin.to_string());
        lot.lot = seen.get(&(gtin, serial)).map(|(l, _)| l.to_string());
        lot.serial = Some(serial.to_string());
        out.push(lot);
    }
    let at = cmd.loaded_at_ms;
    let (skew, age) = (ms(limits.future_skew), ms(limits.max_age));
    let time_warning = if at.saturating_sub(now_ms) > skew {
        Some((LotReason::LoadedAtFuture, skew))
    } else if now_ms.saturating_sub(at) > age {
        Some((LotReason::LoadedAtPast, age))
    } else {
        None
    };
    if let Some((reason, limit)) = time_warning {
        let mut lot = base(reason);
        lot.loaded_at = Some(rfc3339(at));
        lot.limit_s = Some(limit / 1000);
        out.push(lot);
    }
    out
}

/// A warning as one sentence, for the command's answer.
pub fn describe(w: &Lot) -> String {
    let or = |v: &Option<String>| v.clone().unwrap_or_default();
    match w.reason {
        LotReason::SerialDuplicate => format!(
            "serial {} of GTIN {} is in this load more than once",
            or(&w.serial),
            or(&w.gtin)
        ),
        LotReason::LoadedAtFuture => format!(
            "loaded_at {} is more than {} s ahead of the gateway's clock",
            or(&w.loaded_at),
            w.limit_s.unwrap_or_default()
        ),
        LotReason::LoadedAtPast => format!(
            "loaded_at {} is more than {} s in the past",
            or(&w.loaded_at),
            w.limit_s.unwrap_or_default()
        ),
        LotReason::SsccOnBoard => format!("SSCC {} is already on board", or(&w.sscc)),
        LotReason::SerialOnBoard => format!(
            "serial {} of GTIN {} is on pallet {} on board",
            or(&w.serial),
            or(&w.gtin),
            or(&w.other_sscc)
        ),
        LotReason::SerialSeenBefore => format!(
            "serial {} of GTIN {} was on board before",
            or(&w.serial),
            or(&w.gtin)
        ),
        LotReason::SerialLotMismatch => format!(
            "serial {} of GTIN {} was seen before under lot {}, now lot {}",
            or(&w.serial),
            or(&w.gtin),
            or(&w.earlier_lot),
            or(&w.lot)
        ),
        LotReason::LotExpiryMismatch => format!(
            "lot {} of GTIN {} was seen before with expiry {}, now {}",
            or(&w.lot),
            or(&w.gtin),
            w.earlier_expiry
                .clone()
                .flatten()
                .unwrap_or_else(|| "none".into()),
            w.expiry.clone().flatten().unwrap_or_else(|| "none".into())
        ),
        LotReason::LotExpired => format!(
            "lot {} of GTIN {} expired on {}",
            or(&w.lot),
            or(&w.gtin),
            w.expiry.clone().flatten().unwrap_or_default()
        ),
        LotReason::Budget | LotReason::MktStay | LotReason::MktWindow => {
            format!("{} of lot {}", w.reason.as_str(), or(&w.lot))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Item;

    const NOW: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn item(lot: &str, serials: &[&str]) -> Item {
        Item {
            gtin: "09520123456788".into(),
            lot: lot.into(),
            expiry: None,
            serials: serials.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn load(items: Vec<Item>, loaded_at_ms: i64) -> LoadCommand {
        LoadCommand {
            sscc: "106141412345678908".into(),
            zone: "rear".into(),
            profile: None,
            loaded_at_ms,
            unloaded_at_ms: None,
            items,
        }
    }

    fn reasons(w: &[Lot]) -> Vec<LotReason> {
        w.iter().map(|l| l.reason).collect()
    }

    #[test]
    fn a_serial_twice_in_one_item_warns_once() {
        let w = command_warnings(
            &load(vec![item("A", &["S1", "S2", "S1", "S1"])], NOW),
            NOW,
            LoadTimeLimits::default(),
        );
        assert_eq!(reasons(&w), [LotReason::SerialDuplicate]);
        assert_eq!(w[0].serial.as_deref(), Some("S1"));
        assert_eq!(w[0].sscc.as_deref(), Some("106141412345678908"));
        assert!(describe(&w[0]).contains("serial S1"), "{}", describe(&w[0]));
    }

    #[test]
    fn a_serial_on_two_item_lines_of_one_pallet_warns() {
        let w = command_warnings(
            &load(vec![item("A", &["S1"]), item("B", &["S1"])], NOW),
            NOW,
            LoadTimeLimits::default(),
        );
        assert_eq!(reasons(&w), [LotReason::SerialDuplicate]);
    }

    #[test]
    fn distinct_serials_and_the_same_serial_under_another_gtin_do_not_warn() {
        let mut other = item("A", &["S1"]);
        other.gtin = "09520123456795".into();
        let w = command_warnings(
            &load(vec![item("A", &["S1", "S2"]), other], NOW),
            NOW,
            LoadTimeLimits::default(),
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn a_load_time_beyond_the_skew_ahead_warns_and_at_the_skew_does_not() {
        let limits = LoadTimeLimits::default();
        let at_skew = command_warnings(&load(vec![item("A", &[])], NOW + 5 * MIN), NOW, limits);
        assert!(at_skew.is_empty(), "{at_skew:?}");
        let ahead = command_warnings(&load(vec![item("A", &[])], NOW + 5 * MIN + 1), NOW, limits);
        assert_eq!(reasons(&ahead), [LotReason::LoadedAtFuture]);
        assert_eq!(ahead[0].limit_s, Some(300));
        assert_eq!(ahead[0].loaded_at, Some(rfc3339(NOW + 5 * MIN + 1)));
    }

    #[test]
    fn a_load_time_older_than_the_max_age_warns_and_the_limits_are_configurable() {
        let limits = LoadTimeLimits::default();
        let week = 7 * 24 * 60 * MIN;
        assert!(command_warnings(&load(vec![item("A", &[])], NOW - week), NOW, limits).is_empty());
        let old = command_warnings(&load(vec![item("A", &[])], NOW - week - 1), NOW, limits);
        assert_eq!(reasons(&old), [LotReason::LoadedAtPast]);
        let years = command_warnings(
            &load(vec![item("A", &[])], NOW - 3 * 365 * 24 * 60 * MIN),
            NOW,
            limits,
        );
        assert_eq!(reasons(&years), [LotReason::LoadedAtPast]);
        let strict = LoadTimeLimits {
            future_skew: Duration::from_secs(10),
            max_age: Duration::from_secs(60),
        };
        let w = command_warnings(&load(vec![item("A", &[])], NOW + 11_000), NOW, strict);
        assert_eq!(reasons(&w), [LotReason::LoadedAtFuture]);
        let w = command_warnings(&load(vec![item("A", &[])], NOW - 61_000), NOW, strict);
        assert_eq!(reasons(&w), [LotReason::LoadedAtPast]);
    }
}
