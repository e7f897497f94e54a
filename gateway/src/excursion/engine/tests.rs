//! Tests of the engine: readings in, events and state out.
//!
//! One room: every case builds the engine from the same configuration helpers.

use super::*;
use crate::event::EventKind;
use serde_json::{json, Value};

use super::tests_support::*;

#[test]
fn an_excursion_starts_after_the_delay_and_ends_with_the_contract_fields() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let events = feed(
        &mut e,
        "rear-1",
        &[
            (0, 5.0),
            (MIN, 9.0),
            (3 * MIN, 10.0),
            (6 * MIN, 10.5),
            (7 * MIN, 11.0),
            (8 * MIN, 6.0),
        ],
    );
    assert_eq!(events.len(), 2, "{events:?}");
    let started = payload(&events[0]);
    let ended = payload(&events[1]);
    assert_eq!(started["phase"], "started");
    assert_eq!(started["started_at"], rfc3339(MIN));
    assert_eq!(started["at"], rfc3339(7 * MIN));
    assert_eq!(started["ended_at"], Value::Null);
    assert_eq!(ended["phase"], "ended");
    assert_eq!(ended["excursion_id"], started["excursion_id"]);
    assert_eq!(ended["duration_s"], 7 * 60);
    assert_eq!(
        (ended["min"].as_f64(), ended["max"].as_f64()),
        (Some(9.0), Some(11.0))
    );
    assert!(
        ended["mkt"].as_f64().is_some_and(|m| m > 9.0 && m < 11.0),
        "{ended}"
    );
    // 1 °C for 2 min, 2 °C for 3 min, 2.5 °C for 1 min, 3 °C for 1 min.
    assert_eq!(ended["degree_minutes"], 13.5);
    for key in crate::event::EXCURSION_FIELDS {
        assert!(ended.get(*key).is_some(), "missing {key}");
    }
}

#[test]
fn quantities_without_limits_and_unknown_sensors_raise_nothing() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let h = Reading::new(Arc::from("rear-1"), Quantity::Humidity, 99.0, 0);
    let x = Reading::new(Arc::from("other"), Quantity::Temperature, 99.0, 0);
    assert!(e.on_reading(&h).is_empty());
    assert!(e.on_reading(&x).is_empty());
}

#[test]
fn who_preset_cold_alarm_needs_more_than_60_minutes_at_or_below_minus_half_a_degree() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let events = feed(&mut e, "front-1", &minutes(0, 60, -0.5));
    assert!(
        events.is_empty(),
        "60 minutes is not yet an alarm: {events:?}"
    );
    let events = feed(&mut e, "front-1", &[(61 * MIN, -0.5)]);
    let p = of_kind(&events, EventKind::Excursion);
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0]["direction"].as_str(), p[0]["limit"].as_f64()),
        (Some("low"), Some(-0.5))
    );
    assert_eq!(p[0]["started_at"], rfc3339(0));
    assert_eq!(p[0]["profile"], "who-30dtr");
}

#[test]
fn who_preset_heat_alarm_needs_more_than_10_hours_above_8() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let series: Vec<(i64, f64)> = (0..=600).map(|m| (m * MIN, 8.1)).collect();
    assert!(
        feed(&mut e, "front-1", &series).is_empty(),
        "10 h is not yet an alarm"
    );
    let p = of_kind(
        &feed(&mut e, "front-1", &[(601 * MIN, 8.1)]),
        EventKind::Excursion,
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["direction"], "high");
    assert_eq!(p[0]["exclusive"], true);
}

#[test]
fn who_preset_heat_alarm_ignores_exactly_8_degrees() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let series: Vec<(i64, f64)> = (0..=700).map(|m| (m * MIN, 8.0)).collect();
    assert!(feed(&mut e, "front-1", &series).is_empty());
}

#[test]
fn a_tick_raises_an_excursion_whose_delay_ran_out_between_readings() {
    let mut e = Engine::new(&config(""), EngineState::default());
    feed(&mut e, "rear-1", &[(0, 9.0)]);
    assert!(of_kind(&e.tick(5 * MIN), EventKind::Excursion).is_empty());
    let p = of_kind(&e.tick(5 * MIN + 1000), EventKind::Excursion);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["at"], rfc3339(5 * MIN + 1000));
    assert!(
        of_kind(&e.tick(6 * MIN), EventKind::Excursion).is_empty(),
        "raised once"
    );
}

#[test]
fn configured_pallets_are_named_in_affected_and_their_lot_ledger_counts_the_time() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let mut e = Engine::new(&c, EngineState::default());
    let events = feed(
        &mut e,
        "rear-1",
        &[(0, 5.0), (MIN, 9.0), (7 * MIN, 9.0), (8 * MIN, 5.0)],
    );
    let p = of_kind(&events, EventKind::Excursion);
    assert_eq!(p.len(), 2);
    let a = &p[1]["affected"][0];
    assert_eq!(a["sscc"], SSCC);
    assert_eq!(a["items"][0]["lot"], "ABC123");
    assert_eq!(a["items"][0]["serials"][0], "12345");
    let lot = e.lot_exposure("09520123456788", "ABC123").unwrap();
    assert_eq!(
        lot.out_of_range_ms("refrigerated/temperature/0/high"),
        7 * MIN
    );
    assert_eq!(lot.excursions.len(), 1);
}

#[test]
fn a_pallet_loaded_during_an_excursion_is_affected_by_its_end() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let events = feed(&mut e, "rear-1", &[(0, 9.0), (6 * MIN, 9.0)]);
    assert_eq!(
        of_kind(&events, EventKind::Excursion)[0]["affected"],
        json!([])
    );
    let cmd = LoadCommand {
        sscc: SSCC.into(),
        zone: "rear".into(),
        profile: None,
        loaded_at_ms: 7 * MIN,
        unloaded_at_ms: None,
        items: vec![crate::manifest::Item {
            gtin: "09520123456788".into(),
            lot: "L2".into(),
            expiry: None,
            serials: vec![],
        }],
    };
    assert!(e.load_pallet(cmd).unwrap().is_empty());
    let p = of_kind(
        &feed(&mut e, "rear-1", &[(8 * MIN, 5.0)]),
        EventKind::Excursion,
    );
    assert_eq!(p[0]["phase"], "ended");
    assert_eq!(p[0]["affected"][0]["items"][0]["lot"], "L2");
}

#[test]
fn an_excursion_open_at_unload_still_ends_and_names_the_unloaded_pallet() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let mut e = Engine::new(&c, EngineState::default());
    feed(&mut e, "rear-1", &[(0, 9.0), (6 * MIN, 9.0)]);
    e.unload_pallet(SSCC, 7 * MIN).unwrap();
    let p = of_kind(
        &feed(&mut e, "rear-1", &[(8 * MIN, 5.0)]),
        EventKind::Excursion,
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["affected"][0]["sscc"], SSCC);
}

#[test]
fn the_cumulative_budget_spans_separate_excursions_and_is_reported_once() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let mut e = Engine::new(&c, EngineState::default());
    // 10 minutes out, back, 9 minutes out: 19 of 20 minutes used.
    let mut events = feed(
        &mut e,
        "rear-1",
        &[(0, 9.0), (10 * MIN, 5.0), (20 * MIN, 9.0), (29 * MIN, 5.0)],
    );
    assert!(of_kind(&events, EventKind::Lot).is_empty(), "{events:?}");
    // A minute too cold is charged to the low side, not the heat budget.
    events = feed(&mut e, "rear-1", &[(40 * MIN, 1.0), (41 * MIN, 5.0)]);
    assert!(of_kind(&events, EventKind::Lot).is_empty(), "{events:?}");
    events = feed(&mut e, "rear-1", &[(50 * MIN, 9.0), (51 * MIN, 5.0)]);
    let lots = of_kind(&events, EventKind::Lot);
    assert_eq!(lots.len(), 1, "{lots:?}");
    assert_eq!(lots[0]["reason"], "budget");
    assert_eq!(lots[0]["direction"], "high");
    assert_eq!(lots[0]["rule"], "refrigerated/temperature/0");
    assert_eq!(lots[0]["out_of_range_s"], 20 * 60);
    events = feed(&mut e, "rear-1", &[(60 * MIN, 9.0), (70 * MIN, 5.0)]);
    assert!(of_kind(&events, EventKind::Lot).is_empty());
    let lot = e.lot_exposure("09520123456788", "ABC123").unwrap();
    assert_eq!(lot.out_of_range_ms("refrigerated/temperature/0/low"), MIN);
}

#[test]
fn light_opens_and_closes_the_door_with_its_duration() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let lux = |at, v| Reading::new(Arc::from("rear-1"), Quantity::Illuminance, v, at);
    assert!(e.on_reading(&lux(0, 0.0)).is_empty());
    let opened = of_kind(&e.on_reading(&lux(MIN, 200.0)), EventKind::Door);
    assert_eq!(opened[0]["phase"], "opened");
    assert!(e.on_reading(&lux(2 * MIN, 6.0)).is_empty());
    let closed = of_kind(&e.on_reading(&lux(4 * MIN, 1.0)), EventKind::Door);
    assert_eq!(closed[0]["phase"], "closed");
    assert_eq!(closed[0]["door_id"], opened[0]["door_id"]);
    assert_eq!(closed[0]["duration_s"], 180);
}

#[test]
fn a_silent_sensor_opens_a_monitoring_gap_and_its_next_reading_closes_it() {
    let mut e = Engine::new(&config(""), EngineState::default());
    feed(&mut e, "rear-1", &[(0, 5.0)]);
    assert!(of_kind(&e.tick(10 * MIN), EventKind::Sensor).is_empty());
    let silent = of_kind(&e.tick(10 * MIN + 1000), EventKind::Sensor);
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0]["phase"], "silent");
    assert_eq!(silent[0]["sensor_id"], "rear-1");
    assert!(of_kind(&e.tick(20 * MIN), EventKind::Sensor).is_empty());
    let back = of_kind(
        &feed(&mut e, "rear-1", &[(30 * MIN, 5.0)]),
        EventKind::Sensor,
    );
    assert_eq!(back[0]["phase"], "back");
    assert_eq!(back[0]["gap_s"], 30 * 60);
}

#[test]
fn a_restored_engine_continues_the_open_excursion_with_the_same_id() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let mut e = Engine::new(&c, EngineState::default());
    let started = feed(&mut e, "rear-1", &[(0, 9.0), (6 * MIN, 9.0)]);
    let saved: EngineState =
        serde_json::from_slice(&serde_json::to_vec(e.state()).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&saved).unwrap(),
        serde_json::to_value(e.state()).unwrap()
    );
    let mut again = Engine::new(&c, saved);
    let out = feed(&mut again, "rear-1", &[(7 * MIN, 5.0)]);
    assert_eq!(out.len(), 1, "no load warning or start repeated: {out:?}");
    let (ended, started) = (payload(&out[0]), payload(&started[0]));
    assert_eq!(ended["phase"], "ended");
    assert_eq!(ended["excursion_id"], started["excursion_id"]);
    assert_eq!(ended["started_at"], rfc3339(0));
}

#[test]
fn load_warnings_are_lot_events_and_never_refusals() {
    let text = format!(
        "{}{}",
        pallet("2026-01-01T00:00:00Z", None),
        pallet("2028-06-01T00:00:00Z", None)
    );
    let mut e = Engine::new(&config(&text), EngineState::default());
    let events = e.tick(0);
    let reasons: Vec<String> = of_kind(&events, EventKind::Lot)
        .iter()
        .map(|p| p["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(reasons, ["sscc_on_board", "lot_expired", "serial_on_board"]);
    assert_eq!(e.state().manifest.stays.len(), 2);
}

#[test]
fn load_commands_report_every_problem() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let cmd = LoadCommand {
        sscc: "1".into(),
        zone: "nowhere".into(),
        profile: Some("nothing".into()),
        loaded_at_ms: 0,
        unloaded_at_ms: None,
        items: vec![],
    };
    assert_eq!(e.load_pallet(cmd).unwrap_err().len(), 4);
}

#[test]
fn a_pallet_with_its_own_profile_is_judged_by_it_instead_of_the_zones() {
    let text = pallet("1970-01-01T00:00:00Z", None)
        .replace("zone = \"rear\"", "zone = \"rear\"\nprofile = \"crt\"");
    let mut e = Engine::new(&config(&text), EngineState::default());
    let p = of_kind(
        &feed(&mut e, "rear-1", &[(0, 22.0), (10 * MIN, 9.0)]),
        EventKind::Excursion,
    );
    // 9 °C is below CRT's 15 °C floor (no delay; its 20 °C storage rule
    // waits 5 minutes), and the refrigerated zone profile is not applied
    // while the pallet is there.
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["limit"], 15.0);
    assert!(p.iter().all(|p| p["profile"] == "crt"));
}

#[test]
fn only_the_profiles_in_force_get_trackers_so_the_committed_state_stays_small() {
    let mut e = Engine::new(&config(""), EngineState::default());
    feed(&mut e, "rear-1", &[(0, 5.0), (MIN, 5.0)]);
    let keys: Vec<&String> = e.state().trackers.keys().collect();
    assert_eq!(keys, ["rear-1/temperature/refrigerated/0"]);
}

#[test]
fn an_unloaded_at_added_to_the_config_later_closes_the_stay_once() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let e = Engine::new(&c, EngineState::default());
    let c2 = config(&pallet(
        "1970-01-01T00:00:00Z",
        Some("1970-01-01T01:00:00Z"),
    ));
    let e2 = Engine::new(&c2, e.state().clone());
    assert_eq!(e2.state().manifest.stays.len(), 1);
    assert_eq!(e2.state().manifest.stays[0].unloaded_at_ms, Some(3_600_000));
}

#[test]
fn steady_in_range_readings_within_a_minute_leave_the_committed_state_unchanged() {
    // A CRT pallet: its lot's MKT is fed too.
    let text = pallet("1970-01-01T00:00:00Z", None)
        .replace("zone = \"rear\"", "zone = \"rear\"\nprofile = \"crt\"");
    let mut e = Engine::new(&config(&text), EngineState::default());
    feed(&mut e, "rear-1", &[(MIN, 22.0)]);
    e.tick(MIN);
    let before = serde_json::to_vec(e.state()).unwrap();
    for s in 1..59 {
        feed(
            &mut e,
            "rear-1",
            &[(MIN + s * 1000, 22.0 + s as f64 / 100.0)],
        );
        e.tick(MIN + s * 1000);
    }
    assert_eq!(serde_json::to_vec(e.state()).unwrap(), before);
    feed(&mut e, "rear-1", &[(2 * MIN, 22.5)]);
    let lot = e.lot_exposure("09520123456788", "ABC123").unwrap();
    assert!(
        lot.mkt_stay().is_some_and(|m| m > 21.9 && m < 22.1),
        "{lot:?}"
    );
}

#[test]
fn a_budget_runs_out_at_a_tick_even_when_the_sensor_falls_silent() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let mut e = Engine::new(&c, EngineState::default());
    feed(
        &mut e,
        "rear-1",
        &[(0, 9.0), (9 * MIN, 9.0), (15 * MIN, 9.0)],
    );
    assert!(
        of_kind(&e.tick(19 * MIN), EventKind::Lot).is_empty(),
        "19 of 20 minutes"
    );
    let lots = of_kind(&e.tick(20 * MIN), EventKind::Lot);
    assert_eq!(lots.len(), 1);
    assert_eq!(lots[0]["out_of_range_s"], 20 * 60);
    // The next reading closes an interval the ticks already charged.
    feed(&mut e, "rear-1", &[(21 * MIN, 5.0)]);
    let lot = e.lot_exposure("09520123456788", "ABC123").unwrap();
    assert_eq!(
        lot.out_of_range_ms("refrigerated/temperature/0/high"),
        21 * MIN
    );
}

#[test]
fn humidity_is_judged_like_temperature_with_its_own_unit_and_no_mkt() {
    let c = crate::config::parse(
        r#"
gateway_id = "g"
[[profiles]]
id = "dry"
limits = [{ quantity = "humidity", high = 60.0, delay = "1m" }]
[[zones]]
id = "rear"
profile = "dry"
[[sensors]]
id = "h"
zone = "rear"
kind = "sim"
quantities = ["humidity"]
[sim]
"#,
        "t",
    )
    .unwrap();
    let mut e = Engine::new(&c, EngineState::default());
    let h = |at, v| Reading::new(Arc::from("h"), Quantity::Humidity, v, at);
    let mut events = Vec::new();
    for (at, v) in [(0, 60.0), (MIN, 65.0), (MIN + 1, 70.0), (2 * MIN, 59.0)] {
        events.extend(e.on_reading(&h(at, v)));
    }
    let p = of_kind(&events, EventKind::Excursion);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0]["unit"], "P1");
    assert_eq!(p[1]["mkt"], Value::Null);
    assert_eq!(p[1]["duration_s"], 120);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn any_reading() -> impl Strategy<Value = (usize, usize, f64, i64)> {
        (
            0usize..3,
            0usize..5,
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(-1e308),
                -30.0..40.0f64
            ],
            prop_oneof![
                any::<i64>(),
                Just(i64::MIN),
                Just(i64::MAX),
                0i64..10_000_000
            ],
        )
    }

    proptest! {
        #[test]
        fn any_readings_and_ticks_never_panic(steps in prop::collection::vec((any_reading(), any::<bool>()), 0..60)) {
            let c = config(&pallet("1970-01-01T00:00:00Z", None));
            let mut e = Engine::new(&c, EngineState::default());
            for ((sensor, q, value, at), tick) in steps {
                let sensor = ["rear-1", "front-1", "nobody"][sensor];
                let r = Reading::new(Arc::from(sensor), Quantity::ALL[q], value, at);
                let _ = e.on_reading(&r);
                if tick {
                    let _ = e.tick(at);
                }
            }
            let bytes = serde_json::to_vec(e.state()).unwrap();
            let _ = Engine::new(&c, serde_json::from_slice(&bytes).unwrap());
        }
    }
}

mod load_commands {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_load_or_unload_never_panics_and_the_state_round_trips(
            sscc in prop_oneof![Just(SSCC.to_string()), "\\PC{0,20}"],
            gtin in prop_oneof![Just("09520123456788".to_string()), "[0-9]{0,15}"],
            lot in "\\PC{0,22}",
            serials in prop::collection::vec("\\PC{0,22}", 0..3),
            at in any::<i64>(),
            unload_at in any::<i64>(),
        ) {
            let mut e = Engine::new(&config(""), EngineState::default());
            let cmd = LoadCommand {
                sscc: sscc.clone(),
                zone: "rear".into(),
                profile: None,
                loaded_at_ms: at,
                unloaded_at_ms: None,
                items: vec![crate::manifest::Item { gtin, lot, expiry: None, serials }],
            };
            if e.load_pallet(cmd).is_ok() {
                prop_assert!(crate::manifest::sscc_problem(&sscc).is_none());
            }
            let _ = e.unload_pallet(&sscc, unload_at);
            let _ = e.tick(at);
            let bytes = serde_json::to_vec(e.state()).unwrap();
            let back: EngineState = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(back.manifest, e.state().manifest.clone());
        }
    }
}

#[test]
fn an_exhausted_budget_is_not_reported_again_after_a_restart() {
    let c = config(&pallet("1970-01-01T00:00:00Z", None));
    let mut e = Engine::new(&c, EngineState::default());
    let events = feed(
        &mut e,
        "rear-1",
        &[(0, 9.0), (9 * MIN, 9.0), (18 * MIN, 9.0), (21 * MIN, 5.0)],
    );
    assert_eq!(of_kind(&events, EventKind::Lot).len(), 1);
    let saved: EngineState =
        serde_json::from_slice(&serde_json::to_vec(e.state()).unwrap()).unwrap();
    let mut again = Engine::new(&c, saved);
    let events = feed(
        &mut again,
        "rear-1",
        &[(30 * MIN, 9.0), (39 * MIN, 9.0), (40 * MIN, 5.0)],
    );
    assert!(of_kind(&events, EventKind::Lot).is_empty(), "{events:?}");
    let lot = again.lot_exposure("09520123456788", "ABC123").unwrap();
    assert_eq!(
        lot.out_of_range_ms("refrigerated/temperature/0/high"),
        31 * MIN,
        "the total goes on"
    );
}

#[test]
fn a_tick_forgets_the_serials_of_pallets_gone_longer_than_the_configured_retention() {
    let text = format!(
        "[manifest]\nserial_retention = \"1d\"\n{}",
        pallet("1970-01-01T00:00:00Z", Some("1970-01-01T01:00:00Z"))
    );
    let mut e = Engine::new(&config(&text), EngineState::default());
    let key = "09520123456788/12345";
    let unloaded = 60 * MIN;
    e.tick(unloaded + 24 * 60 * MIN);
    assert!(e.state().manifest.serials.contains_key(key), "a day: kept");
    e.tick(unloaded + 24 * 60 * MIN + 1);
    assert!(!e.state().manifest.serials.contains_key(key));
    assert_eq!(e.state().manifest.stays.len(), 1, "the stay is kept");
}
