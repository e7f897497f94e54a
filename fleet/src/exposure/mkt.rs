//! A lot's MKT over its whole journey, from what each gateway says at an
//! unload (`lot_mkt` on the unload's audit event, docs/mqtt.md).
//!
//! Readings never leave a gateway, but an MKT and the time it weighs are
//! enough: with one ΔH, a leg's mean of exp(-ΔH/RT) is exp(-ΔH/(R·MKT)), so
//! holding each leg's MKT for its monitored time and taking the MKT of that
//! series is exact. That series goes through the gateway's own accumulator
//! (`coldgate::excursion::mkt`), so the fleet has no MKT formula of its own.
//!
//! A gateway's figure covers everything the lot saw on board it so far (all
//! its stays there), so per gateway and GTIN the figure with the most
//! monitored time is the one that counts. The journey's MKT is unknown,
//! never a number, when a leg is still on board, a gateway's newest figure
//! is older than its last unload of the lot (that unload said nothing: the
//! lot had no MKT there, or the stay ended without an unload command), or
//! the figures were made with different ΔH.

use std::collections::BTreeMap;

use coldgate::event::payload::Audit;
use coldgate::excursion::mkt::MktAccumulator;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::{Client, Transaction};

use super::Leg;
use crate::ingest::Item;

/// One lot's MKT on one gateway as told at an unload.
#[derive(Debug, Clone, PartialEq)]
pub struct LotMkt {
    pub gtin: String,
    pub lot: String,
    pub gateway_id: String,
    pub sscc: String,
    /// The unload's time (its audit event's `at`), as custody ends stays.
    pub at: OffsetDateTime,
    pub mkt: f64,
    pub monitored_s: i64,
    pub activation_energy_j_per_mol: f64,
}

/// The journey's MKT, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyMkt {
    /// °C; `None`: unknown.
    pub mkt: Option<f64>,
    pub monitored_s: i64,
    pub activation_energy_j_per_mol: Option<f64>,
    /// Why it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

impl JourneyMkt {
    fn unknown(why: String) -> JourneyMkt {
        JourneyMkt {
            mkt: None,
            monitored_s: 0,
            activation_energy_j_per_mol: None,
            unknown: Some(why),
        }
    }
}

/// Reads the `lot_mkt` of the accepted unloads among `items`.
pub fn observe(items: &[Item]) -> Vec<LotMkt> {
    let mut out = Vec::new();
    for item in items {
        let Item::Event(e) = item else { continue };
        if e.kind != "audit" {
            continue;
        }
        let Ok(a) = serde_json::from_value::<Audit>(e.payload.clone()) else {
            continue;
        };
        let Some(sscc) = a.details.get("sscc").and_then(|v| v.as_str()) else {
            continue;
        };
        for m in a.lot_mkt {
            out.push(LotMkt {
                gtin: m.gtin,
                lot: m.lot,
                gateway_id: e.gateway.clone(),
                sscc: sscc.to_string(),
                at: e.at,
                mkt: m.mkt,
                monitored_s: m.monitored_s,
                activation_energy_j_per_mol: m.activation_energy_j_per_mol,
            });
        }
    }
    out
}

/// Stores them; the same unload told again changes nothing.
pub async fn apply(tx: &Transaction<'_>, rows: &[LotMkt]) -> Result<(), tokio_postgres::Error> {
    for m in rows {
        tx.execute(
            "INSERT INTO lot_mkt (gtin, lot, gateway_id, sscc, at, mkt, monitored_s,
                 activation_energy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (gtin, lot, gateway_id, sscc, at) DO NOTHING",
            &[
                &m.gtin,
                &m.lot,
                &m.gateway_id,
                &m.sscc,
                &m.at,
                &m.mkt,
                &m.monitored_s,
                &m.activation_energy_j_per_mol,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Every figure told for `lot`.
pub async fn of_lot(client: &Client, lot: &str) -> Result<Vec<LotMkt>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT gtin, lot, gateway_id, sscc, at, mkt, monitored_s, activation_energy
             FROM lot_mkt WHERE lot = $1",
            &[&lot],
        )
        .await?
        .iter()
        .map(|r| LotMkt {
            gtin: r.get(0),
            lot: r.get(1),
            gateway_id: r.get(2),
            sscc: r.get(3),
            at: r.get(4),
            mkt: r.get(5),
            monitored_s: r.get(6),
            activation_energy_j_per_mol: r.get(7),
        })
        .collect())
}

/// MKT (°C) of legs `(mkt °C, monitored s)` made with one ΔH (J/mol): the
/// MKT of a series holding each leg's MKT for its time. `None` without
/// monitored time or for a ΔH or an MKT the accumulator refuses.
pub fn combine(legs: &[(f64, i64)], activation_energy_j_per_mol: f64) -> Option<f64> {
    let mut acc = MktAccumulator::new(activation_energy_j_per_mol / 1000.0).ok()?;
    let mut t_ms: i64 = 0;
    let mut last = None;
    for &(mkt, s) in legs.iter().filter(|(_, s)| *s > 0) {
        acc.push(t_ms, mkt).ok()?;
        t_ms = t_ms.checked_add(s.checked_mul(1000)?)?;
        last = Some(mkt);
    }
    // The last sample only closes the interval before it.
    acc.push(t_ms, last?).ok()?;
    acc.value()
}

/// The journey's MKT from its legs and every figure told for the lot.
pub fn journey(legs: &[Leg], told: &[LotMkt]) -> JourneyMkt {
    if legs.is_empty() {
        return JourneyMkt::unknown("no leg".into());
    }
    // Per GTIN and gateway: its last unload of the lot, and its figure
    // with the most monitored time (the latest, as it only grows).
    let mut last_unload: BTreeMap<(&str, &str), OffsetDateTime> = BTreeMap::new();
    for l in legs {
        let Some(u) = l.unloaded else {
            return JourneyMkt::unknown(format!(
                "pallet {} is still on board {}",
                l.sscc, l.gateway_id
            ));
        };
        let e = last_unload
            .entry((l.gtin.as_str(), l.gateway_id.as_str()))
            .or_insert(u);
        *e = (*e).max(u);
    }
    let mut parts = Vec::new();
    let mut ea: Option<f64> = None;
    for ((gtin, gw), unloaded) in last_unload {
        let best = told
            .iter()
            .filter(|m| m.gtin == gtin && m.gateway_id == gw)
            .max_by_key(|m| (m.monitored_s, m.at));
        let Some(m) = best.filter(|m| m.at >= unloaded) else {
            return JourneyMkt::unknown(format!("{gw} told no MKT at its last unload"));
        };
        match ea {
            Some(e) if (e - m.activation_energy_j_per_mol).abs() > 1e-6 * e.abs() => {
                return JourneyMkt::unknown(format!(
                    "legs with different activation energies ({e} and {} J/mol)",
                    m.activation_energy_j_per_mol
                ));
            }
            _ => ea = Some(m.activation_energy_j_per_mol),
        }
        parts.push((m.mkt, m.monitored_s));
    }
    let monitored_s = parts.iter().map(|(_, s)| *s).sum();
    match ea.and_then(|e| combine(&parts, e)) {
        Some(mkt) => JourneyMkt {
            mkt: Some(mkt),
            monitored_s,
            activation_energy_j_per_mol: ea,
            unknown: None,
        },
        None => JourneyMkt::unknown("no monitored time".into()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    const EA: f64 = 83_144.0;

    fn leg(gw: &str, unloaded: Option<OffsetDateTime>) -> Leg {
        Leg {
            gateway_id: gw.into(),
            zone: "rear".into(),
            sscc: "037612345000000014".into(),
            gtin: "09506000134352".into(),
            loaded: datetime!(2026-12-01 08:00 UTC),
            unloaded,
            unmonitored_s: 0,
        }
    }

    fn told(gw: &str, at: OffsetDateTime, mkt: f64, s: i64, ea: f64) -> LotMkt {
        LotMkt {
            gtin: "09506000134352".into(),
            lot: "L1".into(),
            gateway_id: gw.into(),
            sscc: "037612345000000014".into(),
            at,
            mkt,
            monitored_s: s,
            activation_energy_j_per_mol: ea,
        }
    }

    const T1: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
    const T2: OffsetDateTime = datetime!(2026-12-01 14:00 UTC);

    #[test]
    fn two_legs_at_5_degrees_make_a_journey_at_5_degrees() {
        let m = combine(&[(5.0, 7200), (5.0, 3600)], EA).unwrap();
        assert!((m - 5.0).abs() < 1e-9, "{m}");
    }

    #[test]
    fn combining_weighs_each_leg_by_its_monitored_time_as_one_series_would() {
        // Half the time at 20 °C, half at 30 °C: docs/mkt.md's 26.2599 °C.
        let m = combine(&[(20.0, 3600), (30.0, 3600)], EA).unwrap();
        assert!((m - 26.2599).abs() < 1e-3, "{m}");
        let longer_cold = combine(&[(20.0, 7200), (30.0, 3600)], EA).unwrap();
        assert!(longer_cold < m, "{longer_cold}");
    }

    #[test]
    fn the_journey_combines_each_gateway_s_newest_figure() {
        let legs = [leg("A", Some(T1)), leg("B", Some(T2))];
        let figures = [
            told("A", T1, 5.0, 7200, EA),
            told("B", T2 - time::Duration::HOUR, 4.0, 600, EA),
            told("B", T2, 5.0, 3600, EA),
        ];
        let j = journey(&legs, &figures);
        assert!((j.mkt.unwrap() - 5.0).abs() < 1e-9, "{j:?}");
        assert_eq!(j.monitored_s, 10_800);
        assert_eq!(j.activation_energy_j_per_mol, Some(EA));
    }

    #[test]
    fn a_leg_without_mkt_on_board_or_with_another_activation_energy_makes_it_unknown() {
        let a = told("A", T1, 5.0, 7200, EA);
        let unknown = |legs: &[Leg], figures: &[LotMkt]| {
            let j = journey(legs, figures);
            assert_eq!(j.mkt, None, "{j:?}");
            j.unknown.unwrap()
        };
        let b_said_nothing = unknown(
            &[leg("A", Some(T1)), leg("B", Some(T2))],
            std::slice::from_ref(&a),
        );
        assert!(b_said_nothing.contains("B told no MKT"), "{b_said_nothing}");
        let stale = unknown(
            &[leg("A", Some(T1)), leg("A", Some(T2))],
            std::slice::from_ref(&a),
        );
        assert!(stale.contains("A told no MKT"), "{stale}");
        let open = unknown(
            &[leg("A", Some(T1)), leg("B", None)],
            std::slice::from_ref(&a),
        );
        assert!(open.contains("still on board"), "{open}");
        let mixed = unknown(
            &[leg("A", Some(T1)), leg("B", Some(T2))],
            &[a, told("B", T2, 5.0, 3600, 60_000.0)],
        );
        assert!(mixed.contains("different activation energies"), "{mixed}");
        assert!(unknown(&[], &[]).contains("no leg"));
    }

    proptest! {
        #[test]
        fn combining_is_order_independent_and_lies_between_the_legs(
            legs in prop::collection::vec((-30.0f64..45.0, 1i64..400_000), 1..8),
            seed in any::<u64>(),
        ) {
            let m = combine(&legs, EA).unwrap();
            let mut shuffled = legs.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let again = combine(&shuffled, EA).unwrap();
            prop_assert!((m - again).abs() < 1e-9, "{m} {again}");
            let lo = legs.iter().map(|l| l.0).fold(f64::INFINITY, f64::min);
            let hi = legs.iter().map(|l| l.0).fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(m >= lo - 1e-9 && m <= hi + 1e-9, "{lo} <= {m} <= {hi}");
        }
    }
}
