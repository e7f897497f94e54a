//! Every kind of event the engine produces, checked against its JSON Schema
//! in `docs/schema/` by a maintained validator (the `jsonschema` crate, a
//! dev-dependency only: Draft 2020-12, formats asserted), as a subscriber's
//! own validator would check it. The end-to-end tests check every payload a
//! real gateway publishes the same way (`coldgate_tests::schema`).

use super::tests_support::*;
use super::*;
use crate::event::EventKind;
use serde_json::{json, Value};

const SCHEMAS: [(&str, &str); 4] = [
    (
        "excursion",
        include_str!("../../../../docs/schema/excursion.json"),
    ),
    ("door", include_str!("../../../../docs/schema/door.json")),
    (
        "sensor",
        include_str!("../../../../docs/schema/sensor.json"),
    ),
    ("lot", include_str!("../../../../docs/schema/lot.json")),
];

/// Every error of `payload` against the schema `text`, with where.
fn check(text: &str, payload: &Value, errors: &mut Vec<String>) {
    let schema: Value = serde_json::from_str(text).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    errors.extend(
        validator
            .iter_errors(payload)
            .map(|e| format!("{e} at {}", e.instance_path())),
    );
}

/// Events of every kind and phase, from one scripted trip.
fn every_event() -> Vec<Event> {
    let text = format!(
        "{}{}",
        pallet("1970-01-01T00:00:00Z", None),
        pallet("2028-06-01T00:00:00Z", None)
    );
    let mut e = Engine::new(&config(&text), EngineState::default());
    let mut events = e.tick(0);
    events.extend(feed(
        &mut e,
        "rear-1",
        &[(0, 9.0), (6 * MIN, 9.0), (12 * MIN, 9.0), (21 * MIN, 5.0)],
    ));
    let lux = |at, v| Reading::new(Arc::from("rear-1"), Quantity::Illuminance, v, at);
    events.extend(e.on_reading(&lux(22 * MIN, 100.0)));
    events.extend(e.on_reading(&lux(23 * MIN, 0.0)));
    events.extend(e.tick(40 * MIN));
    events.extend(feed(&mut e, "rear-1", &[(50 * MIN, 5.0)]));
    events
}

#[test]
fn every_event_kind_and_phase_matches_its_schema() {
    let events = every_event();
    let mut seen = std::collections::BTreeSet::new();
    let mut errors = Vec::new();
    for ev in &events {
        let payload: Value = serde_json::from_slice(&ev.payload(7, "g")).unwrap();
        let kind = ev.kind().as_str();
        seen.insert(format!(
            "{kind}/{}",
            payload["phase"].as_str().unwrap_or("?")
        ));
        let Some((_, text)) = SCHEMAS.iter().find(|(k, _)| *k == kind) else {
            errors.push(format!("no schema for {kind}"));
            continue;
        };
        check(text, &payload, &mut errors);
    }
    assert!(errors.is_empty(), "{errors:#?}");
    let want = [
        "door/closed",
        "door/opened",
        "excursion/ended",
        "excursion/started",
        "lot/exhausted",
        "lot/warning",
        "sensor/back",
        "sensor/silent",
    ];
    assert_eq!(seen.iter().map(String::as_str).collect::<Vec<_>>(), want);
}

#[test]
fn the_validator_rejects_a_missing_field_a_wrong_type_and_a_bad_time() {
    let ev = every_event()
        .into_iter()
        .find(|e| e.kind() == EventKind::Excursion)
        .unwrap();
    let mut payload: Value = serde_json::from_slice(&ev.payload(1, "g")).unwrap();
    payload.as_object_mut().unwrap().remove("affected");
    payload["duration_s"] = json!("long");
    payload["started_at"] = json!("yesterday");
    let mut errors = Vec::new();
    check(SCHEMAS[0].1, &payload, &mut errors);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("affected")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("date-time")), "{errors:?}");
}
