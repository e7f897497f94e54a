//! Every kind of event the engine produces, checked against its JSON Schema
//! in `docs/schema/`.
//!
//! A full JSON-Schema crate would pull a large dependency tree onto a Pi
//! build for one test, so this is a small checker of the keywords those files
//! use: `type` (one or a list), `const`, `enum`, `required`, `properties`,
//! `items`, `minLength`, `maxLength`, `minimum`. An unknown keyword fails the
//! test, so a schema cannot silently use more than is checked.

use super::tests_support::*;
use super::*;

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

const KNOWN: [&str; 15] = [
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "const",
    "enum",
    "required",
    "properties",
    "items",
    "minLength",
    "maxLength",
    "minimum",
    "additionalProperties",
    "format",
];

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        errors.push(format!("{at}: schema is not an object"));
        return;
    };
    for key in s.keys() {
        if !KNOWN.contains(&key.as_str()) {
            errors.push(format!(
                "{at}: keyword `{key}` is not supported by this checker"
            ));
        }
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, v)),
            _ => false,
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            errors.push(format!("{at}: `{text}` is too short"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: `{text}` is too long"));
        }
    }
    if let (Some(n), Some(m)) = (v.as_f64(), s.get("minimum").and_then(Value::as_f64)) {
        if n < m {
            errors.push(format!("{at}: {n} is below {m}"));
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(req)) = s.get("required") {
            for k in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(k) {
                    errors.push(format!("{at}: missing `{k}`"));
                }
            }
        }
        if let Some(Value::Object(props)) = s.get("properties") {
            for (k, sub) in props {
                if let Some(x) = obj.get(k) {
                    check(sub, x, &format!("{at}.{k}"), errors);
                }
            }
        }
    }
    if let (Some(list), Some(items)) = (v.as_array(), s.get("items")) {
        for (i, x) in list.iter().enumerate() {
            check(items, x, &format!("{at}[{i}]"), errors);
        }
    }
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
        let kind = ev.kind.as_str();
        seen.insert(format!(
            "{kind}/{}",
            payload["phase"].as_str().unwrap_or("?")
        ));
        let Some((_, text)) = SCHEMAS.iter().find(|(k, _)| *k == kind) else {
            errors.push(format!("no schema for {kind}"));
            continue;
        };
        let schema: Value = serde_json::from_str(text).unwrap();
        check(&schema, &payload, kind, &mut errors);
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
fn the_checker_rejects_a_payload_missing_a_field_or_with_a_wrong_type() {
    let schema: Value = serde_json::from_str(SCHEMAS[0].1).unwrap();
    let ev = every_event()
        .into_iter()
        .find(|e| e.kind == EventKind::Excursion)
        .unwrap();
    let mut payload: Value = serde_json::from_slice(&ev.payload(1, "g")).unwrap();
    payload.as_object_mut().unwrap().remove("affected");
    payload["duration_s"] = json!("long");
    let mut errors = Vec::new();
    check(&schema, &payload, "excursion", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
}
