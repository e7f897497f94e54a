//! Any journey, generated, exports a document GS1's schema accepts.

use proptest::prelude::*;
use proptest::sample::select;

use super::*;

/// GS1 character set 82, the alphabet of lots and serials.
const CSET82: &str = "[!\"%&'()*+,\\-./0-9:;<=>?A-Z_a-z]{1,20}";
/// Ids with characters a URI must escape.
const IDS: [&str; 4] = ["gw-a", "gw b", "z/1:x", "Kühl"];

fn time() -> impl Strategy<Value = i64> {
    T0..T0 + 30 * 24 * 60 * MIN
}

fn stay() -> impl Strategy<Value = StayRecord> {
    (
        select(IDS.to_vec()),
        select(IDS.to_vec()),
        select(vec![SSCC, SSCC2, "106141412345678922"]),
        prop::collection::vec(
            (
                select(vec![GTIN, GTIN2, "4006381333931", "96385074"]),
                CSET82,
                prop::collection::vec(CSET82, 0..4),
            ),
            0..3,
        ),
        time(),
        prop::option::of(0..10 * 24 * 60 * MIN),
    )
        .prop_map(|(gw, zone, sscc, items, from, len)| StayRecord {
            gateway_id: gw.to_string(),
            zone: zone.to_string(),
            sscc: sscc.to_string(),
            items: items
                .into_iter()
                .map(|(g, lot, serials)| Item {
                    gtin: g.to_string(),
                    lot,
                    expiry: None,
                    serials,
                })
                .collect(),
            loaded_at_ms: from,
            unloaded_at_ms: len.map(|l| from + l),
        })
}

fn excursion() -> impl Strategy<Value = ExcursionRecord> {
    (
        (
            select(IDS.to_vec()),
            select(IDS.to_vec()),
            select(IDS.to_vec()),
        ),
        select(Quantity::ALL.to_vec()),
        any::<bool>(),
        (time(), 0..48 * 60 * MIN, any::<bool>()),
        (-60.0..60.0f64, 0.0..20.0f64, prop::option::of(0.0..1.0f64)),
        prop::option::of(0..i64::from(u32::MAX)),
        prop::collection::vec(select(vec![SSCC, SSCC2]), 0..3),
    )
        .prop_map(
            |(
                (gw, zone, sensor),
                q,
                high,
                (from, len, open),
                (min, span, mean),
                allowance,
                ssccs,
            )| {
                ExcursionRecord {
                    gateway_id: gw.to_string(),
                    excursion_id: format!("x{from}"),
                    zone: zone.to_string(),
                    sensor: sensor.to_string(),
                    quantity: q,
                    direction: if high {
                        Direction::High
                    } else {
                        Direction::Low
                    },
                    limit: 8.0,
                    rule_id: String::new(),
                    rule_name: "2–8 °C, high".to_string(),
                    started_ms: from,
                    ended_ms: (!open).then_some(from + len),
                    until_ms: from + len,
                    duration_ms: len,
                    min,
                    max: min + span,
                    mean: mean.map(|f| min + f * span),
                    allowance_ms: allowance,
                    freeze: !high && min <= 0.0,
                    ssccs: ssccs.into_iter().map(str::to_string).collect(),
                }
            },
        )
}

fn gap() -> impl Strategy<Value = GapRecord> {
    (
        select(IDS.to_vec()),
        select(vec![
            GapKind::SensorSilent,
            GapKind::GatewayDown,
            GapKind::GatewayStopped,
            GapKind::NoReadings,
        ]),
        prop::option::of(select(IDS.to_vec())),
        prop::option::of(select(IDS.to_vec())),
        prop::option::of(select(Quantity::ALL.to_vec())),
        (time(), 0..48 * 60 * MIN, any::<bool>()),
    )
        .prop_map(
            |(gw, kind, zone, sensor, quantity, (from, len, open))| GapRecord {
                gateway_id: gw.to_string(),
                kind,
                zone: zone.map(str::to_string),
                sensor: sensor.map(str::to_string),
                quantity,
                start_ms: from,
                end_ms: (!open).then_some(from + len),
                until_ms: from + len,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_journey_exports_a_document_the_schema_accepts(
        stays in prop::collection::vec(stay(), 0..4),
        excursions in prop::collection::vec(excursion(), 0..3),
        gaps in prop::collection::vec(gap(), 0..3),
        verdict in prop::option::of(select(vec!["Within profile", "Record incomplete"])),
    ) {
        let j = Journey {
            subject: "pallet SSCC 106141412345678908".to_string(),
            sender: "gw-a".to_string(),
            stays,
            excursions,
            gaps,
            verdict: verdict.map(str::to_string),
            reasons: Vec::new(),
        };
        let doc = serde_json::to_value(to_document(&j, T0).unwrap()).unwrap();
        let errors = schema_errors(&doc);
        prop_assert!(errors.is_empty(), "{:#?}\n{:#}", errors, doc);
        // One event per load, unload, excursion and gap: nothing dropped.
        let expected = j.stays.len()
            + j.stays.iter().filter(|s| s.unloaded_at_ms.is_some()).count()
            + j.excursions.len()
            + j.gaps.len();
        prop_assert_eq!(events(&doc).len(), expected);
    }
}
