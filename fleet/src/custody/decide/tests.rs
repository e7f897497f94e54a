use proptest::prelude::*;
use time::macros::{date, datetime};

use std::collections::BTreeSet;

use super::*;
use crate::custody::{lot_alert, published_form, PalletLot};

fn stay(gw: &str, code: &str, loaded: i64, unloaded: Option<i64>) -> Stay {
    let t = |m: i64| datetime!(2026-12-01 00:00 UTC) + time::Duration::minutes(m);
    Stay {
        kind: "sscc".into(),
        code: code.into(),
        gateway_id: gw.into(),
        zone: "z".into(),
        sscc: code.into(),
        gtin: None,
        serial: None,
        lot: None,
        expiry: None,
        loaded: t(loaded),
        unloaded: unloaded.map(t),
        source: "manifest".into(),
    }
}

fn serial(gw: &str, loaded: i64, lot: &str) -> Stay {
    Stay {
        kind: "sgtin".into(),
        code: "09506000134352/S1".into(),
        gtin: Some("09506000134352".into()),
        serial: Some("S1".into()),
        lot: Some(lot.into()),
        ..stay(gw, "09506000134352/S1", loaded, Some(loaded + 5))
    }
}

fn kinds(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.kind).collect()
}

#[test]
fn a_pallet_moved_from_one_gateway_to_another_is_no_conflict() {
    let a = stay("A", "P", 0, Some(60));
    let b = stay("B", "P", 60, None);
    assert!(!a.overlaps(&b));
    assert!(wanted_alerts(&[a, b]).is_empty());
}

#[test]
fn the_same_sscc_on_two_gateways_at_once_is_one_alert_naming_both() {
    let a = stay("A", "P", 0, None);
    let b = stay("B", "P", 30, Some(90));
    let alerts = wanted_alerts(&[b, a]);
    assert_eq!(kinds(&alerts), ["custody_overlap"]);
    let places = alerts[0].detail["places"].as_array().unwrap();
    let gws: Vec<&str> = places
        .iter()
        .map(|p| p["gateway_id"].as_str().unwrap())
        .collect();
    assert_eq!(gws, ["A", "B"]);
}

#[test]
fn two_stays_on_one_gateway_never_conflict() {
    assert!(!stay("A", "P", 0, None).overlaps(&stay("A", "P", 10, None)));
}

#[test]
fn an_empty_stay_overlaps_nothing_as_in_postgresql() {
    assert!(!stay("A", "P", 10, Some(10)).overlaps(&stay("B", "P", 0, None)));
}

#[test]
fn another_code_never_conflicts() {
    assert!(!stay("A", "P", 0, None).overlaps(&stay("B", "Q", 0, None)));
}

#[test]
fn a_serial_seen_with_another_lot_is_relabelled_against_the_first_recorded() {
    let alerts = wanted_alerts(&[serial("B", 100, "L2"), serial("A", 0, "L1")]);
    assert_eq!(kinds(&alerts), ["relabelled"]);
    assert_eq!(alerts[0].detail["first"]["lot"], "L1");
    assert_eq!(alerts[0].detail["then"]["lot"], "L2");
    assert_eq!(alerts[0].gateway_id, "B");
}

#[test]
fn a_serial_seen_again_with_its_label_is_not_relabelled() {
    assert!(wanted_alerts(&[serial("A", 0, "L1"), serial("B", 100, "L1")]).is_empty());
}

#[test]
fn another_expiry_alone_is_relabelling() {
    let mut later = serial("B", 100, "L1");
    later.expiry = Some(date!(2027 - 01 - 01));
    assert_eq!(
        kinds(&wanted_alerts(&[serial("A", 0, "L1"), later])),
        ["relabelled"]
    );
}

#[test]
fn a_lot_is_expired_only_after_its_expiry_day() {
    let e = Some(date!(2026 - 12 - 01));
    assert!(!loaded_after_expiry(datetime!(2026-12-01 23:59 UTC), e));
    assert!(loaded_after_expiry(datetime!(2026-12-02 00:00 UTC), e));
    assert!(!loaded_after_expiry(datetime!(2030-01-01 00:00 UTC), None));
}

#[test]
fn a_repeated_manifest_gives_no_second_alert() {
    let a = stay("A", "P", 0, None);
    let b = stay("B", "P", 30, None);
    assert_eq!(wanted_alerts(&[a.clone(), b.clone(), b, a]).len(), 1);
}

fn any_stay() -> impl Strategy<Value = Stay> {
    (
        prop::sample::select(vec!["A", "B", "C"]),
        prop::sample::select(vec!["P", "Q"]),
        0i64..6,
        prop::option::of(0i64..4),
        prop::sample::select(vec!["L1", "L2", "L3"]),
        any::<bool>(),
    )
        .prop_map(|(gw, code, loaded, len, lot, serialised)| {
            let mut s = stay(gw, code, loaded * 10, len.map(|l| loaded * 10 + l * 10));
            if serialised {
                s.kind = "sgtin".into();
                s.lot = Some(lot.into());
            }
            s
        })
}

/// What the worker does, batch by batch: stays arrive in any order and
/// chunking, each batch recomputes the alerts of the codes it touched and
/// clears the ones no longer called for.
fn incremental(batches: &[Vec<Stay>]) -> BTreeSet<String> {
    let mut known: Vec<Stay> = Vec::new();
    let mut open: BTreeSet<String> = BTreeSet::new();
    for batch in batches {
        known.extend(batch.iter().cloned());
        let codes: BTreeSet<&str> = batch.iter().map(|s| s.code.as_str()).collect();
        let of_codes: Vec<Stay> = known
            .iter()
            .filter(|s| codes.contains(s.code.as_str()))
            .cloned()
            .collect();
        let wanted: BTreeSet<String> = wanted_alerts(&of_codes)
            .into_iter()
            .map(|a| a.key)
            .collect();
        open.retain(|k| !codes.iter().any(|c| k.contains(&format!("|{c}|"))) || wanted.contains(k));
        open.extend(wanted);
    }
    open
}

proptest! {
    #[test]
    fn the_order_of_arrival_does_not_change_the_alerts(
        stays in prop::collection::vec(any_stay(), 0..12),
        seed in any::<u64>(),
        chunk in 1usize..5,
    ) {
        // One row per identity, as the table's unique key keeps it (its
        // end is computed from observations, never taken from arrival).
        let mut ids = BTreeSet::new();
        let stays: Vec<Stay> = stays
            .into_iter()
            .filter(|s| ids.insert((s.kind.clone(), s.id())))
            .collect();
        let whole: BTreeSet<String> = wanted_alerts(&stays).into_iter().map(|a| a.key).collect();
        let mut shuffled = stays.clone();
        // A deterministic shuffle from the seed (proptest shrinks the seed).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let again: BTreeSet<String> = wanted_alerts(&shuffled).into_iter().map(|a| a.key).collect();
        prop_assert_eq!(&whole, &again);
        let batches: Vec<Vec<Stay>> = shuffled.chunks(chunk).map(|c| c.to_vec()).collect();
        prop_assert_eq!(&whole, &incremental(&batches));
    }
}

/// Every alert as published (its detail and key) against
/// docs/schema/fleet_custody_alert.json, formats asserted.
#[test]
fn every_custody_alert_matches_its_published_schema() {
    let schema: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../docs/schema/fleet_custody_alert.json"
    ))
    .unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let mut relabelled = serial("B", 100, "L2");
    relabelled.expiry = Some(date!(2027 - 06 - 30));
    let mut alerts = wanted_alerts(&[
        stay("A", "P", 0, None),
        stay("B", "P", 30, Some(90)),
        serial("A", 0, "L1"),
        relabelled,
    ]);
    let lot = PalletLot {
        gateway_id: "A".into(),
        sscc: "P".into(),
        loaded: datetime!(2026-12-02 00:00 UTC),
        zone: "z".into(),
        gtin: "09506000134352".into(),
        lot: "LX".into(),
        expiry: Some(date!(2026 - 12 - 01)),
        serials: vec!["S9".into()],
    };
    alerts.push(lot_alert(&lot, "lot_expired", None));
    alerts.push(lot_alert(&lot, "recalled", Some("supplier recall".into())));
    assert_eq!(
        kinds(&alerts),
        ["custody_overlap", "relabelled", "lot_expired", "recalled"]
    );
    for a in alerts {
        let published = published_form(a.detail.clone(), &a.key);
        let errors: Vec<String> = validator
            .iter_errors(&published)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{published:#}");
    }
}
