//! The report over a real redb file filled by the real excursion engine.

use std::sync::Arc;

use coldgate_sensor_drivers::{Quantity, Reading};
use serde_json::Value;

use super::*;
use crate::event::{rfc3339, Event, EventKind};
use crate::excursion::Engine;
use crate::store::StoredEvent;

const MIN: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;
const SSCC: &str = "106141412345678908";
const SSCC2: &str = "106141412345678915";

fn config(pallets: &str) -> Config {
    crate::config::parse(
        &format!(
            r#"
gateway_id = "gw-1"
[[profiles]]
id = "cold"
silence = "10m"
light = {{ threshold = 10.0, hysteresis = 5.0 }}
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m", high_budget = "20m" }}]
mkt = {{ limit = 8.0 }}
[[profiles]]
id = "strict"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m" }}]
[[zones]]
id = "rear"
profile = "cold"
[[zones]]
id = "front"
profile = "strict"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
quantities = ["temperature", "illuminance"]
[[sensors]]
id = "front-1"
zone = "front"
kind = "sim"
[sim]
{pallets}
"#
        ),
        "test",
    )
    .unwrap()
}

fn pallet(sscc: &str, zone: &str, gtin: &str, lot: &str) -> String {
    format!(
        r#"
[[pallets]]
sscc = "{sscc}"
zone = "{zone}"
loaded_at = "{}"
items = [{{ gtin = "{gtin}", lot = '{lot}', expiry = "2028-12-31", serials = ["S1", "S2"] }}]
"#,
        rfc3339(T0)
    )
}

struct Trip {
    _dir: tempfile::TempDir,
    store: Store,
    config: Config,
    events: Vec<Value>,
}

/// One reading a minute for an hour per zone: 5 °C, except `hot` minutes
/// at 9 °C in the rear; a door opening in the rear at minutes 40–42.
fn trip(pallets: &str, hot_rear: std::ops::Range<i64>, hot_front: std::ops::Range<i64>) -> Trip {
    let config = config(pallets);
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let mut engine = Engine::new(&config, EngineState::default());
    let mut readings = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for m in 0..=60 {
        let at = T0 + m * MIN;
        let rear = if hot_rear.contains(&m) { 9.0 } else { 5.0 };
        let front = if hot_front.contains(&m) { 9.0 } else { 5.0 };
        let lux = if (40..42).contains(&m) { 100.0 } else { 0.0 };
        for r in [
            Reading::new(Arc::from("rear-1"), Quantity::Temperature, rear, at),
            Reading::new(Arc::from("rear-1"), Quantity::Illuminance, lux, at),
            Reading::new(Arc::from("front-1"), Quantity::Temperature, front, at),
        ] {
            events.extend(engine.on_reading(&r));
            readings.push(r);
        }
    }
    let stored: Vec<StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let seq = i as u64 + 1;
            StoredEvent {
                seq,
                at_ms: e.at_ms,
                topic: e.kind().topic(),
                payload: e.payload(seq, &config.gateway_id),
            }
        })
        .collect();
    let state = serde_json::to_vec(engine.state()).unwrap();
    writer
        .commit(
            &readings,
            &stored,
            &[],
            &[(crate::ingest::ENGINE_STATE, &state)],
            None,
        )
        .unwrap();
    let events = events
        .iter()
        .map(|e| serde_json::from_slice(&e.payload(1, "g")).unwrap())
        .collect();
    Trip {
        _dir: dir,
        store,
        config,
        events,
    }
}

fn of_kind<'a>(events: &'a [Value], schema: &str, phase: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|v| v["schema"] == schema && v["phase"] == phase)
        .collect()
}

fn sscc(s: &str) -> ReportSubject {
    ReportSubject::Sscc(s.to_string())
}

#[test]
fn a_pallet_through_a_short_excursion_is_within_budget_and_the_report_shows_it() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        10..22,
        0..0,
    );
    let ended = of_kind(&t.events, "coldgate.excursion/1", "ended");
    assert_eq!(ended.len(), 1, "{:?}", t.events);
    let ended = ended[0];
    let id = ended["excursion_id"].as_str().unwrap();
    let duration_ms = ended["duration_s"].as_i64().unwrap() * 1000;

    let r = build(&t.store, &t.config, &sscc(SSCC), T0 + 2 * 60 * MIN).unwrap();
    assert_eq!(r.verdict, Verdict::ExcursionWithinBudget, "{:?}", r.reasons);
    assert_eq!(r.excursions.len(), 1);
    assert_eq!(r.excursions[0].id, id);
    assert_eq!(r.excursions[0].duration_ms, duration_ms);
    assert_eq!(r.excursions[0].budget_ms, Some(20 * MIN));
    assert_eq!((r.excursions[0].min, r.excursions[0].max), (9.0, 9.0));
    assert_eq!(r.doors.len(), 1, "the rear door opened once");
    assert_eq!(r.stays.len(), 1);
    assert_eq!(
        r.stays[0].end_ms,
        T0 + 60 * MIN,
        "open stay ends at the last reading"
    );
    assert_eq!(r.lots.len(), 1);
    assert_eq!(r.lots[0].rules[0].total_ms, 12 * MIN);
    let mkt = r.mkt.unwrap();
    assert!(mkt > 5.0 && mkt < 9.0, "{mkt}");

    let html = html::render(&r);
    assert!(html.contains(&format!("data-excursion-id=\"{id}\"")));
    assert!(html.contains(&format_duration(duration_ms)));
    assert!(html.contains(&format!("data-duration-s=\"{}\"", duration_ms / 1000)));
    assert!(html.contains("data-verdict=\"Excursion within budget\""));
    assert_eq!(html.matches("Verdict: ").count(), 1);
    assert!(html.contains("class=\"cg-mark cg-mark-excursion\""));
    assert!(html.contains("class=\"cg-mark cg-mark-door\""));
    assert!(html.contains("class=\"cg-limits\""));
    assert!(
        html.contains("data-series-count=\"1\""),
        "only the rear sensor"
    );
    assert!(html.contains("gw-1"));
    assert!(html.contains("@media print"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external resources"
    );
}

#[test]
fn no_excursion_is_within_profile() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        10..13,
        0..0,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::WithinProfile, "{:?}", r.reasons);
    assert!(r.excursions.is_empty());
    assert_eq!(
        r.lots[0].rules[0].total_ms,
        3 * MIN,
        "time out of range below the delay is still counted"
    );
    assert!(render_html(&t.store, &t.config, &sscc(SSCC), T0)
        .unwrap()
        .contains("data-verdict=\"Within profile\""));
}

#[test]
fn a_budget_reached_is_exceeded() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        10..35,
        0..0,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::BudgetExceeded, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().any(|x| x.contains("budget")),
        "{:?}",
        r.reasons
    );
    let html = html::render(&r);
    assert!(html.contains("data-verdict=\"Budget exceeded\""));
    assert!(html.contains("exhausted"));
}

#[test]
fn an_excursion_under_a_rule_without_a_budget_exceeds_it() {
    let t = trip(
        &pallet(SSCC, "front", "09520123456788", "ABC123"),
        0..0,
        10..22,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.excursions.len(), 1);
    assert_eq!(r.excursions[0].budget_ms, None);
    assert_eq!(r.verdict, Verdict::BudgetExceeded, "{:?}", r.reasons);
}

#[test]
fn a_lot_report_covers_its_pallets_and_only_its_excursions() {
    let pallets = format!(
        "{}{}",
        pallet(SSCC, "rear", "09520123456788", "ABC123"),
        pallet(SSCC2, "front", "09520123456795", "XYZ9")
    );
    let t = trip(&pallets, 10..22, 0..0);
    let lot = ReportSubject::Lot {
        gtin: None,
        lot: "ABC123".into(),
    };
    let r = build(&t.store, &t.config, &lot, T0).unwrap();
    assert_eq!(r.excursions.len(), 1);
    assert_eq!(r.verdict, Verdict::ExcursionWithinBudget);
    let other = ReportSubject::Lot {
        gtin: Some("09520123456795".into()),
        lot: "XYZ9".into(),
    };
    let r = build(&t.store, &t.config, &other, T0).unwrap();
    assert!(r.excursions.is_empty(), "the front stayed cold");
    assert_eq!(r.verdict, Verdict::WithinProfile);
    assert_eq!(r.stays[0].zone, "front");
}

#[test]
fn unknown_subjects_are_not_found_naming_them() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        0..0,
        0..0,
    );
    let err = build(&t.store, &t.config, &sscc(SSCC2), T0).unwrap_err();
    assert!(matches!(err, ReportError::NotFound(_)));
    assert!(err.to_string().contains(SSCC2), "{err}");
    let lot = ReportSubject::Lot {
        gtin: None,
        lot: "NOPE".into(),
    };
    let err = build(&t.store, &t.config, &lot, T0).unwrap_err();
    assert!(err.to_string().contains("lot NOPE"), "{err}");
    let wrong_gtin = ReportSubject::Lot {
        gtin: Some("09520123456795".into()),
        lot: "ABC123".into(),
    };
    assert!(matches!(
        build(&t.store, &t.config, &wrong_gtin, T0),
        Err(ReportError::NotFound(_))
    ));
}

#[test]
fn a_lot_number_under_two_gtins_must_be_named_with_its_gtin() {
    let pallets = format!(
        "{}{}",
        pallet(SSCC, "rear", "09520123456788", "SAME1"),
        pallet(SSCC2, "front", "09520123456795", "SAME1")
    );
    let t = trip(&pallets, 0..0, 0..0);
    let lot = ReportSubject::Lot {
        gtin: None,
        lot: "SAME1".into(),
    };
    let err = build(&t.store, &t.config, &lot, T0).unwrap_err();
    assert!(matches!(err, ReportError::AmbiguousLot { .. }), "{err}");
    assert!(err.to_string().contains("09520123456795"), "{err}");
    let lot = ReportSubject::Lot {
        gtin: Some("09520123456795".into()),
        lot: "SAME1".into(),
    };
    assert_eq!(
        build(&t.store, &t.config, &lot, T0).unwrap().stays[0].sscc,
        SSCC2
    );
}

#[test]
fn lot_numbers_from_labels_are_escaped() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "<b>&\"x"),
        0..0,
        0..0,
    );
    let html = render_html(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert!(!html.contains("<b>"), "raw markup from a label");
    assert!(html.contains("&lt;b&gt;&amp;&quot;x"));
}

#[test]
fn durations_read_plainly() {
    assert_eq!(format_duration(0), "0 s");
    assert_eq!(format_duration(12_000), "12 s");
    assert_eq!(format_duration(250_000), "4 min 10 s");
    assert_eq!(format_duration(7_530_000), "2 h 05 min 30 s");
    assert_eq!(format_duration(90_000_000), "1 d 01 h 00 min");
    assert_eq!(format_duration(-5), "0 s");
}

#[test]
fn a_database_without_engine_state_has_no_pallets() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let cfg = config("");
    assert!(matches!(
        build(&store, &cfg, &sscc(SSCC), T0),
        Err(ReportError::NotFound(_))
    ));
    let _ = EventKind::Excursion; // the kinds the report reads
}

#[test]
fn a_pallet_report_keeps_to_its_own_excursions_when_its_lot_is_on_two_pallets() {
    let pallets = format!(
        "{}{}",
        pallet(SSCC, "rear", "09520123456788", "ABC123"),
        pallet(SSCC2, "front", "09520123456788", "ABC123")
    );
    let t = trip(&pallets, 10..22, 0..0);
    let front = build(&t.store, &t.config, &sscc(SSCC2), T0).unwrap();
    assert!(front.excursions.is_empty(), "{:?}", front.excursions);
    assert_eq!(front.verdict, Verdict::WithinProfile);
    let lot = ReportSubject::Lot {
        gtin: None,
        lot: "ABC123".into(),
    };
    let lot = build(&t.store, &t.config, &lot, T0).unwrap();
    assert_eq!(lot.excursions.len(), 1);
    assert_eq!(lot.stays.len(), 2);
    assert_eq!(lot.verdict, Verdict::ExcursionWithinBudget);
}

#[test]
fn rules_are_named_as_people_say_them() {
    let rule = |toml: &str| -> String {
        let config = crate::config::parse(
            &format!(
                "gateway_id = \"g\"\n[[profiles]]\nid = \"p\"\nlimits = [{toml}]\n\
                 [[zones]]\nid = \"z\"\nprofile = \"p\"\n\
                 [[sensors]]\nid = \"s\"\nzone = \"z\"\nkind = \"sim\"\n[sim]\n"
            ),
            "t",
        )
        .unwrap();
        rule_name(&config.profile("p").unwrap().limits[0])
    };
    assert_eq!(
        rule(r#"{ quantity = "temperature", low = 2.0, high = 8.0 }"#),
        "2–8 °C"
    );
    assert_eq!(
        rule(r#"{ quantity = "temperature", low = 15.0, high = 25.5 }"#),
        "15–25.5 °C"
    );
    assert_eq!(
        rule(r#"{ quantity = "temperature", high = 8.0 }"#),
        "below 8 °C"
    );
    assert_eq!(
        rule(r#"{ quantity = "temperature", high = 8.0, exclusive = true }"#),
        "max 8 °C"
    );
    assert_eq!(
        rule(r#"{ quantity = "temperature", low = -0.5 }"#),
        "above -0.5 °C"
    );
    assert_eq!(
        rule(r#"{ quantity = "humidity", high = 85.0 }"#),
        "below 85 %"
    );
}
