//! What is on board: pallets, their items and lots. GS1 parsing lives here
//! because labels are how pallets enter the manifest.
//!
//! Design: pure, no IO, times passed in. The manifest is part of the engine
//! state, so ingest commits a load with the events it caused. Nothing is
//! overwritten: an unload closes a stay, a reload opens a new one, and
//! excursions name every stay that overlapped them.

mod checks;
pub mod gs1;
mod pallet;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::payload::LotReason;

pub use checks::{
    command_warnings, describe, LoadTimeLimits, DEFAULT_LOADED_AT_MAX_AGE, DEFAULT_LOADED_AT_SKEW,
};
/// `manifest.serial_retention`'s default: as long as readings are kept
/// (`storage.retention`), and several round trips of a container. A pack
/// back on board later than that is not flagged `serial_seen_before` by this
/// gateway; that it came back after so long is for the fleet's central
/// records to see, which see every gateway.
pub const DEFAULT_SERIAL_RETENTION: Duration = Duration::from_secs(90 * 86_400);

pub use pallet::{gtin_problem, lot_key, parse_iso_date, sscc_problem, Item, Pallet};

/// A load command (from config, MQTT or HTTP), not yet validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadCommand {
    pub sscc: String,
    pub zone: String,
    #[serde(default)]
    pub profile: Option<String>,
    pub loaded_at_ms: i64,
    #[serde(default)]
    pub unloaded_at_ms: Option<i64>,
    pub items: Vec<Item>,
}

/// Why a command was refused; each names the field (`items[0].gtin`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("pallet {sscc} is not on board")]
    NotOnBoard { sscc: String },
    #[error("pallet {sscc} cannot be unloaded at {at_ms} before it was loaded at {loaded_at_ms}")]
    UnloadBeforeLoad {
        sscc: String,
        at_ms: i64,
        loaded_at_ms: i64,
    },
}

/// Something suspicious about a load: never a refusal (the goods are on the
/// truck either way), never silent (each becomes an `events/lot` event).
/// Serials seen twice hint at counterfeits or diversion; an expired lot
/// should not be travelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadWarning {
    /// The same SSCC is already on board in an open stay.
    SsccOnBoard { sscc: String },
    /// A pack with this GTIN and serial is on another pallet on board now.
    SerialOnBoard {
        gtin: String,
        serial: String,
        other_sscc: String,
    },
    /// A pack with this GTIN and serial was on board before (diversion or a
    /// cloned serial).
    SerialSeenBefore { gtin: String, serial: String },
    /// A serial seen before under another lot of the same GTIN: one of the
    /// two labels is not genuine (a counterfeit signal).
    SerialLotMismatch {
        gtin: String,
        serial: String,
        lot: String,
        earlier_lot: String,
    },
    /// A lot seen before with another expiry date: the same batch cannot
    /// expire twice (a counterfeit or relabelling signal).
    LotExpiryMismatch {
        gtin: String,
        lot: String,
        expiry: Option<String>,
        earlier_expiry: Option<String>,
    },
    /// The lot's expiry date is before the load date.
    LotExpired {
        gtin: String,
        lot: String,
        expiry: String,
    },
}

impl LoadWarning {
    /// The `reason` of the event.
    pub fn reason(&self) -> LotReason {
        match self {
            LoadWarning::SsccOnBoard { .. } => LotReason::SsccOnBoard,
            LoadWarning::SerialOnBoard { .. } => LotReason::SerialOnBoard,
            LoadWarning::SerialSeenBefore { .. } => LotReason::SerialSeenBefore,
            LoadWarning::SerialLotMismatch { .. } => LotReason::SerialLotMismatch,
            LoadWarning::LotExpiryMismatch { .. } => LotReason::LotExpiryMismatch,
            LoadWarning::LotExpired { .. } => LotReason::LotExpired,
        }
    }
}

/// Every pallet stay, in load order, and the serial registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stays: Vec<Pallet>,
    /// `gtin/serial` → what the gateway remembers of the pack, for the
    /// `serial_seen_before` and `serial_lot_mismatch` warnings. Kept while
    /// the pack is on board and for `manifest.serial_retention` after its
    /// last stay ended ([`Manifest::forget_serials`]).
    #[serde(default)]
    pub serials: BTreeMap<String, SerialSeen>,
    /// `gtin/lot` → the expiry it was first loaded with.
    #[serde(default)]
    pub lot_expiries: BTreeMap<String, Option<String>>,
    /// The registry as builds before schema 2 kept it (every serial ever
    /// seen, and the lot each was first loaded under): read, folded into
    /// `serials` by [`Manifest::upgrade`], never written.
    #[serde(default, rename = "serials_seen", skip_serializing)]
    legacy_seen: BTreeSet<String>,
    #[serde(default, rename = "serial_lots", skip_serializing)]
    legacy_lots: BTreeMap<String, String>,
}

/// One pack in the serial registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialSeen {
    /// The lot it was first loaded under (none for a pack migrated from a
    /// registry that did not record it).
    #[serde(default)]
    pub lot: Option<String>,
    /// When its last stay ended; `None` while a stay with it is open.
    #[serde(default)]
    pub left_ms: Option<i64>,
}

impl Manifest {
    /// Validates a load and returns every problem at once. `zone_known` and
    /// `profile_known` come from the configuration.
    pub fn check(
        cmd: &LoadCommand,
        zone_known: impl Fn(&str) -> bool,
        profile_known: impl Fn(&str) -> bool,
    ) -> Vec<ManifestError> {
        let mut p = Vec::new();
        let mut bad =
            |field: String, message: String| p.push(ManifestError::Invalid { field, message });
        if let Some(m) = sscc_problem(&cmd.sscc) {
            bad("sscc".into(), m);
        }
        if !zone_known(&cmd.zone) {
            bad("zone".into(), format!("unknown zone `{}`", cmd.zone));
        }
        if let Some(profile) = &cmd.profile {
            if !profile_known(profile) {
                bad("profile".into(), format!("unknown profile `{profile}`"));
            }
        }
        if cmd.unloaded_at_ms.is_some_and(|u| u <= cmd.loaded_at_ms) {
            bad("unloaded_at".into(), "must be after loaded_at".to_string());
        }
        if cmd.items.is_empty() {
            bad("items".into(), "a pallet needs at least one item".into());
        }
        for (i, item) in cmd.items.iter().enumerate() {
            for (field, message) in item.problems() {
                bad(format!("items[{i}].{field}"), message);
            }
        }
        p
    }

    /// Records a validated load and returns its warnings. Call
    /// [`Manifest::check`] first.
    pub fn load(&mut self, cmd: LoadCommand) -> Vec<LoadWarning> {
        let mut w = Vec::new();
        let at = cmd.loaded_at_ms;
        let on_board: Vec<&Pallet> = self.stays.iter().filter(|p| p.on_board_at(at)).collect();
        if on_board.iter().any(|p| p.sscc == cmd.sscc) {
            w.push(LoadWarning::SsccOnBoard {
                sscc: cmd.sscc.clone(),
            });
        }
        let load_date = time::OffsetDateTime::from_unix_timestamp(at.div_euclid(1000))
            .map(|t| t.date())
            .ok();
        for item in &cmd.items {
            match self.lot_expiries.get(&item.lot_key()) {
                Some(earlier) if *earlier != item.expiry => {
                    w.push(LoadWarning::LotExpiryMismatch {
                        gtin: item.gtin.clone(),
                        lot: item.lot.clone(),
                        expiry: item.expiry.clone(),
                        earlier_expiry: earlier.clone(),
                    })
                }
                _ => {}
            }
            let expiry = item.expiry.as_deref().and_then(parse_iso_date);
            if let (Some(e), Some(d)) = (expiry, load_date) {
                if e < d {
                    w.push(LoadWarning::LotExpired {
                        gtin: item.gtin.clone(),
                        lot: item.lot.clone(),
                        expiry: item.expiry.clone().unwrap_or_default(),
                    });
                }
            }
            for serial in &item.serials {
                let other = on_board.iter().find(|p| {
                    p.items
                        .iter()
                        .any(|i| i.gtin == item.gtin && i.serials.contains(serial))
                });
                let key = format!("{}/{serial}", item.gtin);
                let earlier_lot = self.serials.get(&key).and_then(|s| s.lot.as_ref());
                if let Some(earlier_lot) = earlier_lot.filter(|l| **l != item.lot) {
                    w.push(LoadWarning::SerialLotMismatch {
                        gtin: item.gtin.clone(),
                        serial: serial.clone(),
                        lot: item.lot.clone(),
                        earlier_lot: earlier_lot.clone(),
                    });
                }
                if let Some(other) = other {
                    w.push(LoadWarning::SerialOnBoard {
                        gtin: item.gtin.clone(),
                        serial: serial.clone(),
                        other_sscc: other.sscc.clone(),
                    });
                } else if self.serials.contains_key(&key) {
                    w.push(LoadWarning::SerialSeenBefore {
                        gtin: item.gtin.clone(),
                        serial: serial.clone(),
                    });
                }
            }
        }
        for item in &cmd.items {
            self.lot_expiries
                .entry(item.lot_key())
                .or_insert_with(|| item.expiry.clone());
            for serial in &item.serials {
                let key = format!("{}/{serial}", item.gtin);
                let gone = cmd.unloaded_at_ms;
                match self.serials.get_mut(&key) {
                    None => {
                        self.serials.insert(
                            key,
                            SerialSeen {
                                lot: Some(item.lot.clone()),
                                left_ms: gone,
                            },
                        );
                    }
                    // On board now unless this stay already ended; a pack
                    // on board in another open stay stays on board.
                    Some(s) => {
                        s.left_ms = match (s.left_ms, gone) {
                            (Some(e), Some(u)) => Some(e.max(u)),
                            _ => None,
                        }
                    }
                }
            }
        }
        self.stays.push(Pallet {
            sscc: cmd.sscc,
            zone: cmd.zone,
            profile: cmd.profile,
            loaded_at_ms: cmd.loaded_at_ms,
            unloaded_at_ms: cmd.unloaded_at_ms,
            items: cmd.items,
        });
        w
    }

    /// Closes the open stay of `sscc` at `at_ms`.
    pub fn unload(&mut self, sscc: &str, at_ms: i64) -> Result<(), ManifestError> {
        let stay = self
            .stays
            .iter_mut()
            .rev()
            .find(|p| p.sscc == sscc && p.unloaded_at_ms.is_none())
            .ok_or_else(|| ManifestError::NotOnBoard {
                sscc: sscc.to_string(),
            })?;
        if at_ms <= stay.loaded_at_ms {
            return Err(ManifestError::UnloadBeforeLoad {
                sscc: sscc.to_string(),
                at_ms,
                loaded_at_ms: stay.loaded_at_ms,
            });
        }
        stay.unloaded_at_ms = Some(at_ms);
        let items = stay.items.clone();
        let still_on_board: HashSet<String> = self
            .stays
            .iter()
            .filter(|p| p.unloaded_at_ms.is_none())
            .flat_map(|p| p.items.iter())
            .flat_map(|i| i.serials.iter().map(|s| format!("{}/{s}", i.gtin)))
            .collect();
        for item in &items {
            for serial in &item.serials {
                let key = format!("{}/{serial}", item.gtin);
                if still_on_board.contains(&key) {
                    continue;
                }
                if let Some(s) = self.serials.get_mut(&key) {
                    s.left_ms = Some(s.left_ms.map_or(at_ms, |e| e.max(at_ms)));
                }
            }
        }
        Ok(())
    }

    /// Forgets the packs whose last stay ended before `before_ms`
    /// (`manifest.serial_retention` ago): the registry holds what was on
    /// board recently, not every pack ever seen. Returns how many.
    pub fn forget_serials(&mut self, before_ms: i64) -> usize {
        let before = self.serials.len();
        self.serials
            .retain(|_, s| s.left_ms.is_none_or(|left| left >= before_ms));
        before - self.serials.len()
    }

    /// Folds the registry of a state written before schema 2 into
    /// `serials`, each pack's departure taken from the stays (a pack no
    /// stay names is taken as gone long ago).
    pub fn upgrade(&mut self) {
        if self.legacy_seen.is_empty() && self.legacy_lots.is_empty() {
            return;
        }
        let mut left: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for stay in &self.stays {
            for item in &stay.items {
                for serial in &item.serials {
                    let e = left
                        .entry(format!("{}/{serial}", item.gtin))
                        .or_insert(Some(i64::MIN));
                    *e = match (*e, stay.unloaded_at_ms) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
            }
        }
        let lots = std::mem::take(&mut self.legacy_lots);
        let seen = std::mem::take(&mut self.legacy_seen);
        for key in seen.into_iter().chain(lots.keys().cloned()) {
            let record = SerialSeen {
                lot: lots.get(&key).cloned(),
                left_ms: left.get(&key).copied().unwrap_or(Some(i64::MIN)),
            };
            self.serials.entry(key).or_insert(record);
        }
    }

    /// Whether a stay with this SSCC and load time is already recorded (a
    /// config pallet seen again after a restart).
    pub fn has_stay(&self, sscc: &str, loaded_at_ms: i64) -> bool {
        self.stays
            .iter()
            .any(|p| p.sscc == sscc && p.loaded_at_ms == loaded_at_ms)
    }

    /// Stays in `zone` on board at `at_ms`.
    pub fn on_board<'a>(&'a self, zone: &'a str, at_ms: i64) -> impl Iterator<Item = &'a Pallet> {
        self.stays
            .iter()
            .filter(move |p| p.zone == zone && p.on_board_at(at_ms))
    }

    /// Stays in `zone` on board at some instant of `[from_ms, to_ms]`.
    pub fn overlapping<'a>(
        &'a self,
        zone: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = &'a Pallet> {
        self.stays
            .iter()
            .filter(move |p| p.zone == zone && p.overlaps(from_ms, to_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSCC: &str = "106141412345678908";

    fn cmd(at: i64, serials: &[&str]) -> LoadCommand {
        LoadCommand {
            sscc: SSCC.into(),
            zone: "rear".into(),
            profile: None,
            loaded_at_ms: at,
            unloaded_at_ms: None,
            items: vec![Item {
                gtin: "09520123456788".into(),
                lot: "ABC123".into(),
                expiry: Some("2027-12-31".into()),
                serials: serials.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn check_returns_every_problem_with_its_field() {
        let mut c = cmd(0, &["a b"]);
        c.sscc = "123".into();
        c.zone = "nowhere".into();
        c.items[0].gtin = "1".into();
        let errors = Manifest::check(&c, |z| z == "rear", |_| true);
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                ManifestError::Invalid { field, .. } => field.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(
            fields,
            ["sscc", "zone", "items[0].gtin", "items[0].serials[0]"]
        );
    }

    #[test]
    fn a_second_load_of_the_same_sscc_and_serial_warns_but_is_recorded() {
        let mut m = Manifest::default();
        assert!(m.load(cmd(0, &["1"])).is_empty());
        let w = m.load(cmd(10, &["1"]));
        assert_eq!(
            w.iter().map(|w| w.reason().as_str()).collect::<Vec<_>>(),
            ["sscc_on_board", "serial_on_board"]
        );
        assert_eq!(m.stays.len(), 2);
    }

    #[test]
    fn a_serial_seen_in_an_earlier_stay_warns() {
        let mut m = Manifest::default();
        m.load(cmd(0, &["1"]));
        m.unload(SSCC, 100).unwrap();
        let w = m.load(cmd(200, &["1"]));
        assert_eq!(
            w.iter().map(|w| w.reason().as_str()).collect::<Vec<_>>(),
            ["serial_seen_before"]
        );
        assert_eq!(m.stays[0].unloaded_at_ms, Some(100), "history is kept");
    }

    #[test]
    fn a_serial_under_another_lot_and_a_lot_with_another_expiry_are_counterfeit_signals() {
        let mut m = Manifest::default();
        m.load(cmd(0, &["1"]));
        m.unload(SSCC, 100).unwrap();
        let mut c = cmd(200, &["1"]);
        c.items[0].lot = "XYZ".into();
        let w = m.load(c);
        assert_eq!(
            w.iter().map(|w| w.reason().as_str()).collect::<Vec<_>>(),
            ["serial_lot_mismatch", "serial_seen_before"]
        );
        let mut c = cmd(300, &[]);
        c.sscc = "106141412345678915".into();
        c.items[0].expiry = Some("2029-01-31".into());
        let w = m.load(c);
        assert_eq!(
            w.iter().map(|w| w.reason().as_str()).collect::<Vec<_>>(),
            ["lot_expiry_mismatch"]
        );
    }

    #[test]
    fn an_expired_lot_warns() {
        let mut m = Manifest::default();
        let mut c = cmd(1_830_384_000_000, &[]); // 2028-01-01
        c.items[0].expiry = Some("2027-12-31".into());
        let w = m.load(c);
        assert_eq!(
            w.iter().map(|w| w.reason().as_str()).collect::<Vec<_>>(),
            ["lot_expired"]
        );
    }

    #[test]
    fn unload_needs_an_open_stay_after_its_load() {
        let mut m = Manifest::default();
        assert!(matches!(
            m.unload(SSCC, 5),
            Err(ManifestError::NotOnBoard { .. })
        ));
        m.load(cmd(10, &[]));
        assert!(matches!(
            m.unload(SSCC, 10),
            Err(ManifestError::UnloadBeforeLoad { .. })
        ));
        m.unload(SSCC, 11).unwrap();
        assert_eq!(m.on_board("rear", 11).count(), 0);
        assert_eq!(m.overlapping("rear", 0, 10).count(), 1);
    }

    fn reasons(w: &[LoadWarning]) -> Vec<&'static str> {
        w.iter().map(|w| w.reason().as_str()).collect()
    }

    #[test]
    fn a_pack_is_forgotten_once_gone_longer_than_the_retention_and_never_while_on_board() {
        let mut m = Manifest::default();
        m.load(cmd(0, &["1", "2"]));
        assert_eq!(m.forget_serials(i64::MAX), 0, "on board: always kept");
        m.unload(SSCC, 100).unwrap();
        assert_eq!(
            m.forget_serials(100),
            0,
            "gone exactly at the horizon: kept"
        );
        assert_eq!(reasons(&m.load(cmd(200, &["1"]))), ["serial_seen_before"]);
        m.unload(SSCC, 300).unwrap();
        assert_eq!(m.forget_serials(101), 1, "2 left at 100, 1 at 300");
        assert!(m.serials.contains_key("09520123456788/1"));
        assert_eq!(m.forget_serials(301), 1);
        assert!(
            reasons(&m.load(cmd(400, &["1", "2"]))).is_empty(),
            "forgotten: not seen before"
        );
        assert_eq!(m.stays.len(), 3, "the stays are kept");
    }

    #[test]
    fn a_pack_still_on_board_on_another_pallet_is_kept_when_one_is_unloaded() {
        let mut m = Manifest::default();
        m.load(cmd(0, &["1"]));
        let mut other = cmd(10, &["1"]);
        other.sscc = "106141412345678915".into();
        assert_eq!(reasons(&m.load(other)), ["serial_on_board"]);
        m.unload(SSCC, 100).unwrap();
        assert_eq!(m.forget_serials(i64::MAX), 0);
        m.unload("106141412345678915", 200).unwrap();
        assert_eq!(m.serials["09520123456788/1"].left_ms, Some(200));
    }

    #[test]
    fn a_stay_loaded_with_its_unload_time_counts_from_that_time() {
        let mut m = Manifest::default();
        let mut c = cmd(0, &["1"]);
        c.unloaded_at_ms = Some(50);
        m.load(c);
        assert_eq!(m.forget_serials(50), 0);
        assert_eq!(m.forget_serials(51), 1);
    }
}
