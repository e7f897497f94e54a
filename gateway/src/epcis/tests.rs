//! The export against GS1's own EPCIS 2.0 JSON Schema (draft-07, formats
//! asserted), and the mapping over a real redb file filled by the real
//! excursion engine.

use std::sync::OnceLock;

use coldgate_sensor_drivers::Quantity;
use serde_json::Value;

use super::*;
use crate::event::payload::Direction;
use crate::event::rfc3339;

const SCHEMA: &str = include_str!("../../../docs/schema/epcis/EPCIS-JSON-Schema.json");
const GS1_EXAMPLES: [(&str, &str); 3] = [
    (
        "SensorDataExample2",
        include_str!("../../../docs/schema/epcis/SensorDataExample2.jsonld"),
    ),
    (
        "SensorDataExample9",
        include_str!("../../../docs/schema/epcis/SensorDataExample9.jsonld"),
    ),
    (
        "SensorDataExample13",
        include_str!("../../../docs/schema/epcis/SensorDataExample13.jsonld"),
    ),
];

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    })
}

/// Every error the schema finds, one line each (empty: valid).
fn schema_errors(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(doc: &Value) {
    let errors = schema_errors(doc);
    assert!(
        errors.is_empty(),
        "{errors:#?}\n{}",
        serde_json::to_string_pretty(doc).unwrap()
    );
}

const MIN: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;
const SSCC: &str = "106141412345678908";
const SSCC2: &str = "106141412345678915";
const GTIN: &str = "09520123456788";
const GTIN2: &str = "09520123456795";

fn item(gtin: &str, lot: &str, serials: &[&str]) -> Item {
    Item {
        gtin: gtin.to_string(),
        lot: lot.to_string(),
        expiry: Some("2030-12-31".to_string()),
        serials: serials.iter().map(|s| s.to_string()).collect(),
    }
}

use crate::event::payload::Item;

/// A pallet with serials moved from gateway A to B, another pallet without
/// serials beside it on A, an excursion on A, a gap on B.
fn journey() -> Journey {
    let stay = |gw: &str, zone: &str, sscc: &str, items, from, to| StayRecord {
        gateway_id: gw.to_string(),
        zone: zone.to_string(),
        sscc: sscc.to_string(),
        items,
        loaded_at_ms: from,
        unloaded_at_ms: to,
    };
    Journey {
        subject: format!("lot ABC123 of GTIN {GTIN}"),
        sender: "fleet".to_string(),
        stays: vec![
            stay(
                "gw-a",
                "rear",
                SSCC,
                vec![item(GTIN, "ABC123", &["1001", "1002"])],
                T0,
                Some(T0 + 60 * MIN),
            ),
            stay(
                "gw-a",
                "front",
                SSCC2,
                vec![item(GTIN2, "XYZ/9", &[])],
                T0,
                None,
            ),
            stay(
                "gw-b",
                "hold",
                SSCC,
                vec![item(GTIN, "ABC123", &["1001", "1002"])],
                T0 + 90 * MIN,
                None,
            ),
        ],
        excursions: vec![ExcursionRecord {
            gateway_id: "gw-a".to_string(),
            excursion_id: "01J0EXC".to_string(),
            zone: "rear".to_string(),
            sensor: "rear-1".to_string(),
            quantity: Quantity::Temperature,
            direction: Direction::High,
            limit: 8.0,
            rule_id: "cold/temperature/0".to_string(),
            rule_name: "2–8 °C, high".to_string(),
            started_ms: T0 + 10 * MIN,
            ended_ms: Some(T0 + 22 * MIN),
            until_ms: T0 + 22 * MIN,
            duration_ms: 12 * MIN,
            min: 8.5,
            max: 9.5,
            mean: Some(9.1),
            allowance_ms: Some(20 * MIN),
            freeze: false,
            ssccs: vec![SSCC.to_string()],
        }],
        gaps: vec![
            GapRecord {
                gateway_id: "gw-b".to_string(),
                kind: GapKind::SensorSilent,
                zone: Some("hold".to_string()),
                sensor: Some("hold-1".to_string()),
                quantity: Some(Quantity::Temperature),
                start_ms: T0 + 100 * MIN,
                end_ms: Some(T0 + 130 * MIN),
                until_ms: T0 + 130 * MIN,
            },
            GapRecord {
                gateway_id: "gw-a".to_string(),
                kind: GapKind::GatewayDown,
                zone: None,
                sensor: None,
                quantity: None,
                start_ms: T0 + 30 * MIN,
                end_ms: None,
                until_ms: T0 + 40 * MIN,
            },
        ],
        verdict: Some("Record incomplete".to_string()),
        reasons: vec!["gaps".to_string()],
    }
}

fn doc_json(j: &Journey) -> Value {
    serde_json::to_value(to_document(j, T0 + 200 * MIN).unwrap()).unwrap()
}

fn events(doc: &Value) -> &Vec<Value> {
    doc["epcisBody"]["eventList"].as_array().unwrap()
}

#[test]
fn gs1s_own_sensor_examples_pass_the_validator() {
    for (name, text) in GS1_EXAMPLES {
        let doc: Value = serde_json::from_str(text).unwrap();
        let errors = schema_errors(&doc);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn the_validator_rejects_gs1s_example_with_a_wrong_exception_a_bad_date_or_a_bad_uri() {
    // The first two are caught only with formats asserted; the validator
    // must see all three, or "valid" below would mean nothing.
    let base: Value = serde_json::from_str(GS1_EXAMPLES[2].1).unwrap();
    let mut bad_exception = base.clone();
    bad_exception["epcisBody"]["eventList"][0]["sensorElementList"][0]["sensorReport"][0]
        ["exception"] = "ALARM".into();
    let mut bad_date = base.clone();
    bad_date["epcisBody"]["eventList"][0]["eventTime"] = "2021-04-31T25:00:00+01:00".into();
    let mut bad_uri = base.clone();
    bad_uri["epcisBody"]["eventList"][0]["readPoint"]["id"] = "not a uri".into();
    for (what, doc) in [
        ("exception", bad_exception),
        ("date", bad_date),
        ("uri", bad_uri),
    ] {
        assert!(!schema_errors(&doc).is_empty(), "a bad {what} is rejected");
    }
}

#[test]
fn a_journey_over_two_gateways_exports_a_document_the_schema_accepts() {
    let doc = doc_json(&journey());
    assert_valid(&doc);
    assert_eq!(doc["type"], "EPCISDocument");
    assert_eq!(doc["schemaVersion"], "2.0");
    assert_eq!(doc["cg:verdict"], "Record incomplete");
    // The typed document reads back as itself.
    let back: EpcisDocument = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(serde_json::to_value(back).unwrap(), doc);
}

#[test]
fn a_document_with_a_broken_field_is_rejected() {
    let good = doc_json(&journey());
    let first_sensor = events(&good)
        .iter()
        .position(|e| e.get("sensorElementList").is_some())
        .unwrap();
    type Breakage = fn(&mut Value, usize);
    let breakages: [(&str, Breakage); 5] = [
        ("a non-CBV exception", |d, i| {
            d["epcisBody"]["eventList"][i]["sensorElementList"][0]["sensorReport"][0]["exception"] =
                "ALARM".into()
        }),
        ("the long form of the measurement type", |d, i| {
            d["epcisBody"]["eventList"][i]["sensorElementList"][0]["sensorReport"][0]["type"] =
                "https://gs1.org/voc/Temperature".into()
        }),
        ("a time that is no date-time", |d, i| {
            d["epcisBody"]["eventList"][i]["eventTime"] = "2027-02-30T10:00:00Z".into()
        }),
        ("an EPC that is no URI", |d, _| {
            d["epcisBody"]["eventList"][0]["epcList"][0] = "00 106141412345678908".into()
        }),
        ("an unknown action", |d, _| {
            d["epcisBody"]["eventList"][0]["action"] = "LOAD".into()
        }),
    ];
    for (what, brk) in breakages {
        let mut bad = good.clone();
        brk(&mut bad, first_sensor);
        assert_ne!(bad, good);
        assert!(!schema_errors(&bad).is_empty(), "{what} is rejected");
    }
}

#[test]
fn loads_and_unloads_name_the_pallet_and_its_serials_where_they_happened() {
    let doc = doc_json(&journey());
    let ev = events(&doc);
    let of_step =
        |step: &str| -> Vec<&Value> { ev.iter().filter(|e| e["bizStep"] == step).collect() };
    let loads = of_step("loading");
    let unloads = of_step("unloading");
    assert_eq!(loads.len(), 3, "three stays");
    assert_eq!(unloads.len(), 1, "one stay ended");
    let first = loads[0];
    assert_eq!(first["eventTime"], rfc3339(T0));
    assert_eq!(first["eventTimeZoneOffset"], "+00:00");
    assert_eq!(first["action"], "OBSERVE");
    let epcs: Vec<&str> = first["epcList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        epcs,
        [
            "https://id.gs1.org/00/106141412345678908",
            "https://id.gs1.org/01/09520123456788/21/1001",
            "https://id.gs1.org/01/09520123456788/21/1002",
        ]
    );
    assert_eq!(first["readPoint"]["id"], "urn:coldgate:location:gw-a:rear");
    assert_eq!(first["bizLocation"], first["readPoint"]);
    assert_eq!(
        first["cg:lots"][0],
        "https://id.gs1.org/01/09520123456788/10/ABC123"
    );
    assert!(first.get("quantityList").is_none(), "serialised: no class");
    // The pallet without serials: its lot as a class, escaped.
    let front = loads
        .iter()
        .find(|e| e["readPoint"]["id"] == "urn:coldgate:location:gw-a:front")
        .unwrap();
    assert_eq!(
        front["quantityList"][0]["epcClass"],
        "https://id.gs1.org/01/09520123456795/10/XYZ%2F9"
    );
    // The unload: same place, no bizLocation (where the goods went is
    // not known here), at the unload time.
    assert_eq!(unloads[0]["eventTime"], rfc3339(T0 + 60 * MIN));
    assert_eq!(unloads[0]["readPoint"], first["readPoint"]);
    assert!(unloads[0].get("bizLocation").is_none());
    // On gateway B.
    assert_eq!(
        loads[2]["readPoint"]["id"],
        "urn:coldgate:location:gw-b:hold"
    );
    // Time order throughout.
    let times: Vec<&str> = ev
        .iter()
        .map(|e| e["eventTime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

#[test]
fn an_excursion_is_an_alarm_with_its_values_rule_and_duration_on_the_goods_it_touched() {
    let doc = doc_json(&journey());
    let alarms: Vec<&Value> = events(&doc)
        .iter()
        .filter(|e| e["sensorElementList"][0]["sensorReport"][0]["exception"] == "ALARM_CONDITION")
        .collect();
    assert_eq!(alarms.len(), 1);
    let e = alarms[0];
    assert_eq!(e["bizStep"], "sensor_reporting");
    assert_eq!(e["readPoint"]["id"], "urn:coldgate:location:gw-a:rear");
    let el = &e["sensorElementList"][0];
    assert_eq!(el["sensorMetadata"]["startTime"], rfc3339(T0 + 10 * MIN));
    assert_eq!(el["sensorMetadata"]["endTime"], rfc3339(T0 + 22 * MIN));
    assert_eq!(
        el["sensorMetadata"]["deviceID"],
        "urn:coldgate:sensor:gw-a:rear-1"
    );
    let r = &el["sensorReport"][0];
    assert_eq!(r["type"], "Temperature");
    assert_eq!(r["uom"], "CEL");
    assert_eq!(
        (&r["minValue"], &r["maxValue"], &r["meanValue"]),
        (&Value::from(8.5), &Value::from(9.5), &Value::from(9.1))
    );
    assert_eq!(r["cg:rule"], "2–8 °C, high");
    assert_eq!(r["cg:ruleId"], "cold/temperature/0");
    assert_eq!(r["cg:durationSeconds"], 720);
    assert_eq!(r["cg:allowanceSeconds"], 1200);
    assert_eq!(r["cg:ongoing"], false);
    // Only the pallet in the rear of gateway A, not the front's, and not
    // its later stay on B.
    assert_eq!(e["epcList"][0], "https://id.gs1.org/00/106141412345678908");
    assert_eq!(e["epcList"].as_array().unwrap().len(), 3);
    assert!(e.get("quantityList").is_none());
}

#[test]
fn a_monitoring_gap_is_an_error_condition_a_reader_cannot_take_for_fine() {
    let doc = doc_json(&journey());
    let gaps: Vec<&Value> = events(&doc)
        .iter()
        .filter(|e| e["sensorElementList"][0]["sensorReport"][0]["exception"] == "ERROR_CONDITION")
        .collect();
    assert_eq!(gaps.len(), 2);
    // Gateway A down (open, as of T0+40): every zone, so the gateway is
    // the read point, and both of A's pallets are named.
    let down = gaps[0];
    assert_eq!(down["readPoint"]["id"], "urn:coldgate:location:gw-a");
    let r = &down["sensorElementList"][0]["sensorReport"][0];
    assert_eq!(r["cg:gapCause"], "gateway_down");
    assert_eq!(r["cg:gapSeconds"], 600);
    assert_eq!(r["cg:ongoing"], true);
    assert!(r.get("minValue").is_none() && r.get("value").is_none());
    assert!(
        r["stringValue"]
            .as_str()
            .unwrap()
            .contains("nothing is known"),
        "{r}"
    );
    let epcs = down["epcList"].as_array().unwrap();
    assert!(epcs.contains(&Value::from("https://id.gs1.org/00/106141412345678915")));
    assert!(epcs.contains(&Value::from("https://id.gs1.org/00/106141412345678908")));
    // B's sensor silent: its zone, its sensor, the pallet there.
    let silent = gaps[1];
    assert_eq!(silent["readPoint"]["id"], "urn:coldgate:location:gw-b:hold");
    let el = &silent["sensorElementList"][0];
    assert_eq!(
        el["sensorMetadata"]["deviceID"],
        "urn:coldgate:sensor:gw-b:hold-1"
    );
    assert_eq!(el["sensorReport"][0]["cg:gapSeconds"], 1800);
    assert_eq!(el["sensorReport"][0]["cg:gapCause"], "sensor_silent");
}

#[test]
fn the_same_journey_exported_twice_has_the_same_event_ids_and_no_two_alike() {
    let a = doc_json(&journey());
    let b = serde_json::to_value(to_document(&journey(), T0 + 999 * MIN).unwrap()).unwrap();
    let ids = |d: &Value| -> Vec<String> {
        events(d)
            .iter()
            .map(|e| e["eventID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&a), ids(&b));
    let mut unique = ids(&a);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids(&a).len());
}

#[test]
fn goods_with_a_bad_key_are_refused_rather_than_exported_wrong() {
    let mut j = journey();
    j.stays[0].sscc = "106141412345678907".to_string();
    assert!(matches!(
        to_document(&j, T0),
        Err(UriError::Sscc(s)) if s == "106141412345678907"
    ));
}

// A pallet in a real redb file filled by the real excursion engine.
mod real_database;

// Generated journeys against the schema.
mod any_journey;

/// A stored excursion event as the gateway publishes it (open when
/// `ended_at` is None).
fn excursion_event(ended_at: Option<i64>) -> crate::event::payload::Excursion {
    serde_json::from_value(serde_json::json!({
        "phase": if ended_at.is_some() { "ended" } else { "started" },
        "excursion_id": "01JX",
        "sensor_id": "rear-1",
        "zone": "rear",
        "quantity": "temperature",
        "unit": "CEL",
        "direction": "high",
        "limit": 8.0,
        "profile": "cold",
        "rule": "cold/temperature/0",
        "allowance_s": 1200,
        "started_at": rfc3339(T0 + 10 * MIN),
        "ended_at": ended_at.map(rfc3339),
        "duration_s": 540,
        "min": 8.5,
        "max": 9.5,
        "mean": 9.1,
        "affected": [{"sscc": SSCC, "zone": "rear", "items": [item(GTIN, "L1", &["1001"])]}],
    }))
    .unwrap()
}

#[test]
fn an_excursion_event_alone_gives_the_record_the_fleet_exports() {
    let ended =
        ExcursionRecord::from_event("gw-a", &excursion_event(Some(T0 + 22 * MIN)), 0).unwrap();
    assert_eq!(
        (ended.started_ms, ended.ended_ms, ended.until_ms),
        (T0 + 10 * MIN, Some(T0 + 22 * MIN), T0 + 22 * MIN)
    );
    assert_eq!((ended.min, ended.max, ended.mean), (8.5, 9.5, Some(9.1)));
    assert_eq!(
        (ended.duration_ms, ended.allowance_ms),
        (540_000, Some(1_200_000))
    );
    assert_eq!(ended.rule_name, "high 8 °C");
    assert_eq!(ended.rule_id, "cold/temperature/0");
    assert_eq!(
        (ended.zone.as_str(), ended.sensor.as_str()),
        ("rear", "rear-1")
    );
    assert_eq!(ended.ssccs, [SSCC]);
    // Open: its span ends where the event was published.
    let open = ExcursionRecord::from_event("gw-a", &excursion_event(None), T0 + 15 * MIN).unwrap();
    assert_eq!((open.ended_ms, open.until_ms), (None, T0 + 15 * MIN));
    let journey = Journey {
        excursions: vec![open],
        ..journey()
    };
    assert_valid(&doc_json(&journey));
}
