//! Monitoring gaps per sensor and quantity, downtime as a gap, and values
//! no sensor can report (issue 13, item 1), at their boundaries.

use super::tests_support::*;
use super::*;
use crate::event::EventKind;

fn reading(sensor: &str, q: Quantity, at: i64, v: f64) -> Reading {
    Reading::new(Arc::from(sensor), q, v, at)
}

/// The rear sensor's gap events as (phase, quantity, cause).
fn gaps(events: &[Event]) -> Vec<(String, String, String)> {
    of_kind(events, EventKind::Sensor)
        .iter()
        .filter(|p| p["sensor_id"] == "rear-1")
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["quantity"].as_str().unwrap_or("?").to_string(),
                p["cause"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

fn gap(phase: &str, q: &str, cause: &str) -> (String, String, String) {
    (phase.into(), q.into(), cause.into())
}

#[test]
fn a_silent_temperature_channel_is_a_gap_while_the_light_channel_keeps_reporting() {
    let mut e = Engine::new(&config(""), EngineState::default());
    let mut events = e.tick(0);
    events.extend(e.on_reading(&r("rear-1", 0, 5.0)));
    for m in 0..=12 {
        events.extend(e.on_reading(&reading("rear-1", Quantity::Illuminance, m * MIN, 0.0)));
        events.extend(e.tick(m * MIN));
    }
    events.extend(e.on_reading(&r("rear-1", 13 * MIN, 5.0)));
    assert_eq!(
        gaps(&events),
        [
            gap("silent", "temperature", "sensor_silent"),
            gap("back", "temperature", "sensor_silent")
        ],
        "humidity is not judged in this zone: its silence is no gap"
    );
    let silent = &of_kind(&events, EventKind::Sensor)[0];
    assert_eq!(silent["last_seen_at"], "1970-01-01T00:00:00.000Z");
}

#[test]
fn silence_of_exactly_the_limit_is_no_gap_and_a_millisecond_more_is() {
    let mut e = Engine::new(&config(""), EngineState::default());
    e.tick(0);
    e.on_reading(&r("rear-1", 0, 5.0));
    e.on_reading(&reading("rear-1", Quantity::Illuminance, 0, 0.0));
    assert!(gaps(&e.tick(10 * MIN)).is_empty());
    assert_eq!(
        gaps(&e.tick(10 * MIN + 1)),
        [
            gap("silent", "temperature", "sensor_silent"),
            gap("silent", "illuminance", "sensor_silent")
        ]
    );
}

#[test]
fn a_reading_after_a_stall_no_tick_saw_still_records_the_gap() {
    let mut e = Engine::new(&config(""), EngineState::default());
    e.tick(0);
    e.on_reading(&r("rear-1", 0, 5.0));
    let events = e.on_reading(&r("rear-1", 11 * MIN, 5.0));
    assert_eq!(
        gaps(&events),
        [
            gap("silent", "temperature", "sensor_silent"),
            gap("back", "temperature", "sensor_silent")
        ]
    );
    assert_eq!(of_kind(&events, EventKind::Sensor)[1]["gap_s"], 660);
}

#[test]
fn downtime_longer_than_the_limit_is_a_gap_of_every_judged_quantity_with_its_cause() {
    let mut e = Engine::new(&config(""), EngineState::default());
    e.tick(0);
    e.on_reading(&r("rear-1", 0, 5.0));
    e.on_reading(&reading("rear-1", Quantity::Illuminance, 0, 0.0));
    e.on_reading(&r("front-1", 0, 5.0));
    let saved: EngineState =
        serde_json::from_str(&serde_json::to_string(e.state()).unwrap()).unwrap();

    let mut quick = Engine::new(&config(""), saved.clone());
    assert!(
        quick
            .resume(9 * MIN, payload::GapCause::GatewayDown)
            .is_empty(),
        "a restart shorter than the limit is ordinary sampling"
    );

    let mut e = Engine::new(&config(""), saved);
    let opened = e.resume(25 * MIN, payload::GapCause::GatewayDown);
    assert_eq!(
        gaps(&opened),
        [
            gap("silent", "temperature", "gateway_down"),
            gap("silent", "illuminance", "gateway_down"),
        ]
    );
    assert!(gaps(&e.tick(26 * MIN)).is_empty(), "opened once");
    let back = e.on_reading(&r("rear-1", 26 * MIN, 5.0));
    assert_eq!(gaps(&back), [gap("back", "temperature", "gateway_down")]);
    assert_eq!(of_kind(&back, EventKind::Sensor)[0]["gap_s"], 26 * 60);
}

#[test]
fn a_clean_stop_is_a_gap_with_its_own_cause() {
    let mut e = Engine::new(&config(""), EngineState::default());
    e.tick(0);
    e.on_reading(&r("rear-1", 0, 5.0));
    let mut e = Engine::new(&config(""), e.state().clone());
    let opened = e.resume(60 * MIN, payload::GapCause::GatewayStopped);
    assert!(gaps(&opened).contains(&gap("silent", "temperature", "gateway_stopped")));
}

#[test]
fn the_exact_last_reading_restored_at_start_keeps_a_quick_restart_from_being_a_gap() {
    let mut e = Engine::new(&config(""), EngineState::default());
    e.tick(0);
    e.on_reading(&r("rear-1", 0, 5.0));
    e.on_reading(&reading("rear-1", Quantity::Illuminance, 0, 0.0));
    for m in 1..=9 {
        e.on_reading(&reading("rear-1", Quantity::Illuminance, m * MIN, 0.0));
    }
    e.on_reading(&r("rear-1", 9 * MIN + 59_000, 5.0));
    // As committed and read back at the next start.
    let saved: EngineState =
        serde_json::from_str(&serde_json::to_string(e.state()).unwrap()).unwrap();
    let mut e = Engine::new(&config(""), saved.clone());
    // Persisted to the minute: 9 min; 19 min 30 s is more than 10 min later.
    e.restore_seen("rear-1", Quantity::Temperature, 9 * MIN + 59_000);
    e.restore_seen("rear-1", Quantity::Illuminance, 9 * MIN);
    let opened = e.resume(19 * MIN + 30_000, payload::GapCause::GatewayDown);
    assert_eq!(
        gaps(&opened),
        [gap("silent", "illuminance", "gateway_down")],
        "temperature was seen 9 min 31 s before"
    );
    let mut unrestored = Engine::new(&config(""), saved);
    assert_eq!(
        gaps(&unrestored.resume(19 * MIN + 30_000, payload::GapCause::GatewayDown)).len(),
        2,
        "without the stored readings both look silent"
    );
}

#[test]
fn an_impossible_value_is_a_fault_raised_once_and_never_an_excursion() {
    let text = pallet("1970-01-01T00:00:00Z", None);
    let mut e = Engine::new(&config(&text), EngineState::default());
    let mut events = e.tick(0);
    events.extend(feed(&mut e, "rear-1", &[(0, 5.0)]));
    events.extend(feed(&mut e, "rear-1", &minutes(1, 9, 6553.5)));
    events.extend(e.tick(9 * MIN));
    assert!(of_kind(&events, EventKind::Excursion).is_empty());
    let faults: Vec<_> = of_kind(&events, EventKind::Sensor)
        .into_iter()
        .filter(|p| p["phase"] == "fault")
        .collect();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["value"], 6553.5);
    assert_eq!(faults[0]["physical_range"][1], 200.0);
    // Faults are not observations: the quantity falls silent on time.
    let later = e.tick(10 * MIN + 1);
    assert_eq!(
        gaps(&later),
        [
            gap("silent", "temperature", "sensor_silent"),
            gap("silent", "illuminance", "sensor_silent")
        ]
    );
    // The boundary of the range is a reading like any other.
    let at_edge = feed(&mut e, "rear-1", &[(11 * MIN, 200.0)]);
    assert!(of_kind(&at_edge, EventKind::Sensor)
        .iter()
        .all(|p| p["phase"] != "fault"));
}

#[test]
fn a_gap_remembered_per_sensor_carries_over_to_each_quantity() {
    let mut state = EngineState::default();
    state.presence.insert(
        "rear-1".into(),
        serde_json::from_str(r#"{"last_seen_ms":0,"silent_at_ms":600001}"#).unwrap(),
    );
    state.presence.insert(
        "gone/temperature".into(),
        serde_json::from_str(r#"{"last_seen_ms":0}"#).unwrap(),
    );
    let mut e = Engine::new(&config(""), state);
    assert!(!e.state().presence.contains_key("rear-1"));
    assert!(!e.state().presence.contains_key("gone/temperature"));
    let back = e.on_reading(&r("rear-1", 20 * MIN, 5.0));
    assert_eq!(gaps(&back), [gap("back", "temperature", "sensor_silent")]);
}

#[test]
fn the_start_reads_back_only_readings_that_could_shorten_a_gap() {
    let mut e = Engine::new(&config(""), EngineState::default());
    e.tick(0);
    e.on_reading(&r("rear-1", 0, 5.0));
    e.on_reading(&r("rear-1", 100 * MIN, 5.0));
    e.on_reading(&reading("rear-1", Quantity::Illuminance, 100 * MIN, 0.0));
    let e = Engine::new(&config(""), e.state().clone());
    // front-1 was last seen at 0: 100 min later any gap of it is certain.
    assert_eq!(e.oldest_seen_ms(101 * MIN), Some(100 * MIN));
    assert_eq!(
        e.oldest_seen_ms(20 * MIN),
        Some(0),
        "within the longest limit"
    );
}
