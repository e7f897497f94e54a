//! Tests of the trip report over a real redb file filled by the real excursion engine.
//!
//! One room: the cases share one trip builder and one store fixture, which are most of their length.

//! The report over a real redb file filled by the real excursion engine.

use std::sync::Arc;

use coldgate_sensor_drivers::{Quantity, Reading};
use serde_json::Value;

use super::*;
use crate::event::payload;
use crate::event::{rfc3339, Event, EventKind};
use crate::excursion::Engine;
use crate::store::{Batch, StoredEvent};

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
[[zones]]
id = "side"
profile = "cold"
[[sensors]]
id = "side-1"
zone = "side"
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
    trip_with(
        pallets,
        |m| Some(if hot_rear.contains(&m) { 9.0 } else { 5.0 }),
        |m| Some(if hot_front.contains(&m) { 9.0 } else { 5.0 }),
        Vec::new(),
    )
}

/// One reading a minute for an hour: the rear's and the front's
/// temperature at minute `m` (None: no reading), and `extra` events stored
/// after the engine's (gaps, downtime). The side zone never reports.
fn trip_with(
    pallets: &str,
    rear: impl Fn(i64) -> Option<f64>,
    front: impl Fn(i64) -> Option<f64>,
    extra: Vec<Event>,
) -> Trip {
    trip_keeping(pallets, rear, front, extra, |_| true)
}

/// As `trip_with`, storing only the events `keep` accepts.
fn trip_keeping(
    pallets: &str,
    rear: impl Fn(i64) -> Option<f64>,
    front: impl Fn(i64) -> Option<f64>,
    extra: Vec<Event>,
    keep: impl Fn(&Event) -> bool,
) -> Trip {
    let config = config(pallets);
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let mut engine = Engine::new(&config, EngineState::default());
    let mut readings = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for m in 0..=60 {
        let at = T0 + m * MIN;
        let lux = if (40..42).contains(&m) { 100.0 } else { 0.0 };
        let mut now = vec![Reading::new(
            Arc::from("rear-1"),
            Quantity::Illuminance,
            lux,
            at,
        )];
        if let Some(v) = rear(m) {
            now.push(Reading::new(
                Arc::from("rear-1"),
                Quantity::Temperature,
                v,
                at,
            ));
        }
        if let Some(v) = front(m) {
            now.push(Reading::new(
                Arc::from("front-1"),
                Quantity::Temperature,
                v,
                at,
            ));
        }
        for r in now {
            events.extend(engine.on_reading(&r));
            readings.push(r);
        }
    }
    events.extend(extra);
    events.retain(|e| keep(e));
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
        .commit(&Batch {
            readings: readings.to_vec(),
            events: stored.to_vec(),
            state: vec![(crate::snapshot::LEGACY_ENGINE_STATE.into(), state.to_vec())],
            ..Batch::default()
        })
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
    assert_eq!(
        r.verdict,
        Verdict::ExcursionWithinAllowance,
        "{:?}",
        r.reasons
    );
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
    assert!(html.contains("data-verdict=\"Excursion within allowance\""));
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
fn a_budget_reached_is_an_allowance_exceeded() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        10..35,
        0..0,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::AllowanceExceeded, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().any(|x| x.contains("allowance of 20 min")),
        "{:?}",
        r.reasons
    );
    let html = html::render(&r);
    assert!(html.contains("data-verdict=\"Allowance exceeded\""));
    assert!(html.contains("exhausted"));
}

#[test]
fn an_excursion_under_a_rule_without_an_allowance_requires_assessment() {
    let t = trip(
        &pallet(SSCC, "front", "09520123456788", "ABC123"),
        0..0,
        10..22,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.excursions.len(), 1);
    assert_eq!(r.excursions[0].budget_ms, None);
    assert_eq!(r.verdict, Verdict::AssessmentRequired, "{:?}", r.reasons);
    assert!(
        r.reasons[0].contains("without an allowance"),
        "{:?}",
        r.reasons
    );
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
    assert_eq!(r.verdict, Verdict::ExcursionWithinAllowance);
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
    assert_eq!(lot.verdict, Verdict::ExcursionWithinAllowance);
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

fn gap_event(
    sensor: &str,
    zone: &str,
    last_seen: i64,
    at: i64,
    phase: payload::SensorPhase,
) -> Event {
    Event::new(
        at,
        payload::SensorGap {
            phase,
            sensor_id: sensor.into(),
            zone: zone.into(),
            quantity: Some(coldgate_sensor_drivers::Quantity::Temperature),
            cause: Some(payload::GapCause::SensorSilent),
            last_seen_at: rfc3339(last_seen),
            gap_s: (at - last_seen) / 1000,
            silence_limit_s: Some(600),
            value: None,
            physical_range: None,
        },
    )
}

#[test]
fn a_silence_in_the_readings_makes_the_record_incomplete_even_without_an_excursion() {
    // The rear sends no temperature for minutes 20..40 (silence limit 10 min):
    // the engine records the gap itself, per quantity.
    let t = trip_with(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        |m| (!(20..40).contains(&m)).then_some(5.0),
        |_| Some(5.0),
        Vec::new(),
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0 + 2 * 60 * MIN).unwrap();
    assert!(r.excursions.is_empty());
    assert_eq!(r.verdict, Verdict::RecordIncomplete, "{:?}", r.reasons);
    assert_eq!(r.gaps.len(), 1, "{:?}", r.gaps);
    assert_eq!(r.gaps[0].cause, GapCause::SensorSilent);
    assert_eq!(r.gaps[0].quantity.as_deref(), Some("temperature"));
    assert_eq!(
        (r.gaps[0].start_ms, r.gaps[0].end_ms),
        (T0 + 19 * MIN, Some(T0 + 40 * MIN))
    );
    // 21 min without a reading, 10 of them vouched for: 49 of 60 min.
    let c = r.completeness.unwrap();
    assert!((c - 49.0 / 60.0).abs() < 1e-9, "{c}");
    let html = html::render(&r);
    assert!(html.contains("data-verdict=\"Record incomplete\""));
    assert!(html.contains("data-gap-count=\"1\""));
    assert!(html.contains("data-cause=\"sensor silent\" data-length-s=\"1260\""));
}

#[test]
fn a_hole_in_the_stored_readings_that_no_event_explains_is_still_a_gap() {
    // A database from before gaps were recorded per quantity: the readings
    // have the hole, the events do not say so.
    let t = trip_keeping(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        |m| (!(20..40).contains(&m)).then_some(5.0),
        |_| Some(5.0),
        Vec::new(),
        |e| e.kind() != crate::event::EventKind::Sensor,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0 + 2 * 60 * MIN).unwrap();
    assert_eq!(r.verdict, Verdict::RecordIncomplete, "{:?}", r.reasons);
    assert_eq!(r.gaps.len(), 1, "{:?}", r.gaps);
    assert_eq!(r.gaps[0].cause, GapCause::NoReadings);
    assert_eq!(
        (r.gaps[0].start_ms, r.gaps[0].end_ms),
        (T0 + 19 * MIN, Some(T0 + 40 * MIN))
    );
}

#[test]
fn a_recorded_sensor_gap_is_listed_with_its_cause_once() {
    let t = trip_with(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        |m| (!(20..40).contains(&m)).then_some(5.0),
        |_| Some(5.0),
        vec![
            gap_event(
                "rear-1",
                "rear",
                T0 + 19 * MIN,
                T0 + 29 * MIN,
                payload::SensorPhase::Silent,
            ),
            gap_event(
                "rear-1",
                "rear",
                T0 + 19 * MIN,
                T0 + 40 * MIN,
                payload::SensorPhase::Back,
            ),
        ],
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::RecordIncomplete, "{:?}", r.reasons);
    assert_eq!(
        r.gaps.len(),
        1,
        "the readings' hole is the recorded gap: {:?}",
        r.gaps
    );
    assert_eq!(r.gaps[0].cause, GapCause::SensorSilent);
    assert_eq!(r.gaps[0].sensor.as_deref(), Some("rear-1"));
    assert_eq!(r.gaps[0].length_ms(r.as_of_ms), 21 * MIN);
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("Sensor rear-1 sent no temperature")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn gateway_downtime_during_the_stay_is_a_gap_of_every_zone() {
    let down = Event::new(
        T0 + 30 * MIN,
        payload::Gateway::UncleanStop {
            phase: Default::default(),
            last_alive_at: rfc3339(T0 + 29 * MIN),
            started_at: rfc3339(T0 + 30 * MIN),
            downtime_s: 60,
        },
    );
    let t = trip_with(
        &pallet(SSCC, "front", "09520123456788", "ABC123"),
        |_| Some(5.0),
        |_| Some(5.0),
        vec![down],
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::RecordIncomplete, "{:?}", r.reasons);
    assert_eq!(r.gaps.len(), 1);
    assert_eq!(r.gaps[0].cause, GapCause::GatewayDown);
    assert_eq!(r.gaps[0].zone, None);
    assert!(html::render(&r).contains("<td>gateway down</td><td>all zones</td>"));
}

#[test]
fn downtime_outside_the_stay_does_not_touch_it() {
    let down = Event::new(
        T0 + 200 * MIN,
        payload::Gateway::UncleanStop {
            phase: Default::default(),
            last_alive_at: rfc3339(T0 + 100 * MIN),
            started_at: rfc3339(T0 + 200 * MIN),
            downtime_s: 6000,
        },
    );
    let t = trip_with(
        &pallet(SSCC, "front", "09520123456788", "ABC123"),
        |_| Some(5.0),
        |_| Some(5.0),
        vec![down],
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);
    assert_eq!(r.verdict, Verdict::WithinProfile, "{:?}", r.reasons);
    assert_eq!(r.completeness, Some(1.0));
}

#[test]
fn a_zone_that_never_reported_is_no_data_never_within_profile() {
    let t = trip(
        &pallet(SSCC, "side", "09520123456788", "ABC123"),
        0..0,
        0..0,
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0 + 60 * MIN).unwrap();
    assert!(r.excursions.is_empty());
    assert_eq!(r.verdict, Verdict::RecordIncomplete, "{:?}", r.reasons);
    assert!(
        r.reasons
            .iter()
            .any(|x| x.starts_with("No temperature reading in zone side")),
        "{:?}",
        r.reasons
    );
    assert_eq!(r.completeness, Some(0.0));
}

#[test]
fn an_open_excursion_is_ongoing_as_of_its_last_reading_and_needs_assessment() {
    let t = trip(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        45..61,
        0..0,
    );
    // Asked five hours later: the excursion lasted to its last reading.
    let r = build(&t.store, &t.config, &sscc(SSCC), T0 + 5 * 60 * MIN).unwrap();
    assert_eq!(r.excursions.len(), 1);
    let e = &r.excursions[0];
    assert_eq!(e.ended_ms, None);
    assert_eq!(e.ongoing_as_of_ms, Some(T0 + 60 * MIN));
    assert_eq!(e.duration_ms, T0 + 60 * MIN - e.started_ms);
    assert_eq!(r.verdict, Verdict::AssessmentRequired, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().any(|x| x.contains("is ongoing as of")),
        "{:?}",
        r.reasons
    );
    assert!(
        !r.reasons.iter().any(|x| x.contains("holds")),
        "{:?}",
        r.reasons
    );
    let html = html::render(&r);
    assert!(html.contains("ongoing as of "), "{html}");
    assert!(html.contains("data-ongoing=\"true\""));
}

#[test]
fn a_freeze_needs_assessment_even_within_the_allowance() {
    let t = trip_with(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        |m| Some(if (10..22).contains(&m) { -1.0 } else { 5.0 }),
        |_| Some(5.0),
        Vec::new(),
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.excursions.len(), 1);
    assert!(r.excursions[0].freeze);
    assert_eq!(r.verdict, Verdict::AssessmentRequired, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().any(|x| x.contains("reached freezing")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn an_exceeded_allowance_outranks_an_incomplete_record_and_both_are_given() {
    let t = trip_with(
        &pallet(SSCC, "rear", "09520123456788", "ABC123"),
        |m| match m {
            10..35 => Some(9.0),
            40..55 => None,
            _ => Some(5.0),
        },
        |_| Some(5.0),
        Vec::new(),
    );
    let r = build(&t.store, &t.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::AllowanceExceeded, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().any(|x| x.starts_with("Monitoring gap")),
        "{:?}",
        r.reasons
    );
}

fn lot(rules: Vec<RuleSpend>, mkt: MktFinding) -> LotFindings {
    LotFindings {
        name: "A1 (09520123456788)".into(),
        rules,
        mkt,
    }
}

fn spend(spent: i64, allowance: Option<i64>) -> RuleSpend {
    RuleSpend {
        rule: "2–8 °C".into(),
        spent_ms: spent,
        allowance_ms: allowance,
        exhausted: false,
    }
}

fn excursion(allowance: Option<i64>, freeze: bool, open: bool) -> ExcursionFinding {
    ExcursionFinding {
        id: "x1".into(),
        what: "temperature 2–8 °C, high".into(),
        allowance_ms: allowance,
        freeze,
        ongoing_as_of: open.then(|| "then".to_string()),
    }
}

fn hole() -> RecordHole {
    RecordHole {
        sentence: "Monitoring gap: a hole.".into(),
    }
}

#[test]
fn the_verdict_follows_its_precedence_and_lists_every_condition() {
    let base = Findings::default();
    assert_eq!(judge(&base).0, Verdict::WithinProfile);
    let within = Findings {
        lots: vec![lot(vec![spend(MIN, Some(10 * MIN))], MktFinding::NoLimit)],
        excursions: vec![excursion(Some(10 * MIN), false, false)],
        ..base.clone()
    };
    assert_eq!(judge(&within).0, Verdict::ExcursionWithinAllowance);
    // At the allowance exactly it is used up.
    let at_limit = Findings {
        lots: vec![lot(
            vec![spend(10 * MIN, Some(10 * MIN))],
            MktFinding::NoLimit,
        )],
        ..within.clone()
    };
    assert_eq!(judge(&at_limit).0, Verdict::AllowanceExceeded);
    let open = Findings {
        excursions: vec![excursion(Some(10 * MIN), false, true)],
        ..within.clone()
    };
    assert_eq!(judge(&open).0, Verdict::AssessmentRequired);
    let incomplete_and_open = Findings {
        gaps: vec![hole()],
        ..open.clone()
    };
    let (v, reasons) = judge(&incomplete_and_open);
    assert_eq!(v, Verdict::RecordIncomplete);
    assert!(reasons.iter().any(|r| r.contains("ongoing")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("a hole")), "{reasons:?}");
    let everything = Findings {
        lots: vec![lot(
            vec![spend(10 * MIN, Some(10 * MIN))],
            MktFinding::Exceeded {
                what: "its MKT limit over the stay".into(),
            },
        )],
        excursions: vec![excursion(None, true, true)],
        gaps: vec![hole()],
        no_data: vec![RecordHole {
            sentence: "No humidity.".into(),
        }],
    };
    let (v, reasons) = judge(&everything);
    assert_eq!(v, Verdict::AllowanceExceeded);
    for needle in [
        "allowance of 10 min 00 s is used up",
        "MKT limit over the stay",
        "a hole",
        "No humidity",
        "without an allowance",
        "reached freezing",
        "ongoing",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {reasons:?}"
        );
    }
}

#[test]
fn an_mkt_limit_not_evaluated_is_never_said_to_hold() {
    let config = crate::config::parse(
        "gateway_id = \"g\"\n[[profiles]]\nid = \"p\"\n\
         mkt = { limit = 8.0, window = \"24h\" }\n\
         [[zones]]\nid = \"z\"\nprofile = \"p\"\n\
         [[sensors]]\nid = \"s\"\nzone = \"z\"\nkind = \"sim\"\n[sim]\n",
        "t",
    )
    .unwrap();
    let p = config.profile("p");
    let mut summary = LotSummary {
        gtin: "09520123456788".into(),
        lot: "A1".into(),
        expiry: None,
        pallets: Vec::new(),
        rules: Vec::new(),
        mkt: Some(12.0),
        mkt_watched_ms: 2 * 60 * MIN,
        exhausted: Vec::new(),
    };
    let f = findings::mkt_finding(p, &summary);
    assert!(matches!(f, MktFinding::NotEvaluated { .. }), "{f:?}");
    let (v, reasons) = judge(&Findings {
        lots: vec![lot(Vec::new(), f)],
        ..Findings::default()
    });
    assert_eq!(v, Verdict::WithinProfile);
    assert!(
        reasons.iter().any(|r| r.contains("not evaluated")),
        "{reasons:?}"
    );
    assert!(!reasons
        .iter()
        .any(|r| r.contains("holds") || r.contains("within its limit")));
    // Watched for the whole window it is judged: 12 °C against 8 °C.
    summary.mkt_watched_ms = 24 * 60 * MIN;
    assert!(matches!(
        findings::mkt_finding(p, &summary),
        MktFinding::Exceeded { .. }
    ));
    summary.mkt = Some(6.0);
    assert!(matches!(
        findings::mkt_finding(p, &summary),
        MktFinding::Holds { .. }
    ));
}

#[test]
fn downtime_from_the_unload_on_is_not_during_the_stay_but_a_minute_before_is() {
    let unloaded = format!(
        r#"
[[pallets]]
sscc = "{SSCC}"
zone = "front"
loaded_at = "{}"
unloaded_at = "{}"
items = [{{ gtin = "09520123456788", lot = "ABC123" }}]
"#,
        rfc3339(T0),
        rfc3339(T0 + 30 * MIN)
    );
    let down = |from: i64| {
        Event::new(
            T0 + 40 * MIN,
            payload::Gateway::UncleanStop {
                phase: Default::default(),
                last_alive_at: rfc3339(from),
                started_at: rfc3339(T0 + 40 * MIN),
                downtime_s: (T0 + 40 * MIN - from) / 1000,
            },
        )
    };
    let after = trip_with(
        &unloaded,
        |_| Some(5.0),
        |_| Some(5.0),
        vec![down(T0 + 30 * MIN)],
    );
    let r = build(&after.store, &after.config, &sscc(SSCC), T0).unwrap();
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);
    assert_eq!(r.verdict, Verdict::WithinProfile, "{:?}", r.reasons);
    let before = trip_with(
        &unloaded,
        |_| Some(5.0),
        |_| Some(5.0),
        vec![down(T0 + 29 * MIN)],
    );
    let r = build(&before.store, &before.config, &sscc(SSCC), T0).unwrap();
    assert_eq!(r.verdict, Verdict::RecordIncomplete, "{:?}", r.reasons);
}
