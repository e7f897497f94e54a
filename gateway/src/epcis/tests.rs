//! The export against GS1's own EPCIS 2.0 JSON Schema (draft-07, formats
//! asserted), and the mapping over a real redb file filled by the real
//! excursion engine.

use std::sync::{Arc, OnceLock};

use coldgate_sensor_drivers::{Quantity, Reading};
use serde_json::Value;

use super::*;
use crate::event::payload::Direction;
use crate::event::rfc3339;
use crate::excursion::{Engine, EngineState};
use crate::store::StoredEvent;

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

// --- over a real database ---------------------------------------------------

fn config() -> Config {
    crate::config::parse(
        &format!(
            r#"
gateway_id = "gw-1"
[[profiles]]
id = "cold"
silence = "10m"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m", high_budget = "20m" }}]
[[zones]]
id = "rear"
profile = "cold"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
[sim]
[[pallets]]
sscc = "{SSCC}"
zone = "rear"
loaded_at = "{}"
items = [{{ gtin = "{GTIN}", lot = "ABC123", expiry = "2028-12-31", serials = ["S1", "S2"] }}]
"#,
            rfc3339(T0)
        ),
        "test",
    )
    .unwrap()
}

/// One reading a minute for an hour in the rear: 9 °C in minutes 10..16
/// and 10 °C in 16..22 (so min, mean and max differ), none in minutes
/// 35..50, else 5 °C. Returns the store, the config and
/// the stored ended excursion event.
fn trip(dir: &std::path::Path) -> (Store, Config, Value) {
    let config = config();
    let (store, mut writer) = Store::open(&dir.join("db.redb"), 1 << 20).unwrap();
    let mut engine = Engine::new(&config, EngineState::default());
    let mut readings = Vec::new();
    let mut events = Vec::new();
    for m in 0..=60 {
        if (35..50).contains(&m) {
            continue;
        }
        let v = match m {
            10..16 => 9.0,
            16..22 => 10.0,
            _ => 5.0,
        };
        let r = Reading::new(Arc::from("rear-1"), Quantity::Temperature, v, T0 + m * MIN);
        events.extend(engine.on_reading(&r));
        readings.push(r);
    }
    let stored: Vec<StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent {
            seq: i as u64 + 1,
            at_ms: e.at_ms,
            topic: e.kind().topic(),
            payload: e.payload(i as u64 + 1, &config.gateway_id),
        })
        .collect();
    let ended = stored
        .iter()
        .filter(|e| e.topic == "events/excursion")
        .map(|e| serde_json::from_slice::<Value>(&e.payload).unwrap())
        .find(|v| v["phase"] == "ended")
        .expect("the engine ended the excursion");
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
    (store, config, ended)
}

#[test]
fn a_pallet_in_a_real_database_exports_its_stay_excursion_and_gap_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (store, config, ended) = trip(dir.path());
    let subject = ReportSubject::Sscc(SSCC.to_string());
    let json = render_json(&store, &config, &subject, T0 + 2 * 60 * MIN).unwrap();
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_valid(&doc);
    assert_eq!(doc["sender"], "gw-1");
    assert_eq!(doc["cg:subject"], format!("pallet SSCC {SSCC}"));
    // The hole in the readings makes the record incomplete, and the
    // document says so at the top and in an ERROR_CONDITION event.
    assert_eq!(doc["cg:verdict"], "Record incomplete");
    let ev = events(&doc);
    let report_of = |exc: &str| -> Vec<&Value> {
        ev.iter()
            .filter(|e| e["sensorElementList"][0]["sensorReport"][0]["exception"] == exc)
            .map(|e| &e["sensorElementList"][0]["sensorReport"][0])
            .collect()
    };
    let gaps = report_of("ERROR_CONDITION");
    assert_eq!(gaps.len(), 1, "{json}");
    assert_eq!(gaps[0]["cg:gapCause"], "sensor_silent");
    // The engine saw the silence: from the last reading before (minute 34)
    // to the first after (50).
    assert_eq!(gaps[0]["cg:gapSeconds"], 16 * 60);
    // The excursion as the engine stored it.
    let alarms = report_of("ALARM_CONDITION");
    assert_eq!(alarms.len(), 1, "{json}");
    let a = alarms[0];
    assert_eq!(a["cg:excursionId"], ended["excursion_id"]);
    assert_eq!(a["minValue"], ended["min"]);
    assert_eq!(a["maxValue"], ended["max"]);
    assert_eq!(a["meanValue"], ended["mean"]);
    let mean = a["meanValue"].as_f64().unwrap();
    assert!(9.0 < mean && mean < 10.0, "three different figures: {a}");
    assert_eq!(a["cg:durationSeconds"], ended["duration_s"]);
    assert_eq!(a["cg:ruleId"], ended["rule"]);
    assert_eq!(a["cg:rule"], "2–8 °C, high");
    assert_eq!(a["cg:allowanceSeconds"], 20 * 60);
    let loads: Vec<&Value> = ev.iter().filter(|e| e["bizStep"] == "loading").collect();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0]["eventTime"], rfc3339(T0));
    assert_eq!(
        loads[0]["epcList"][1],
        "https://id.gs1.org/01/09520123456788/21/S1"
    );
    assert!(
        ev.iter().all(|e| e["bizStep"] != "unloading"),
        "still on board"
    );
}

#[test]
fn a_subject_not_in_the_database_is_the_reports_not_found_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, config, _) = trip(dir.path());
    let subject = ReportSubject::Sscc(SSCC2.to_string());
    let err = render_json(&store, &config, &subject, T0).unwrap_err();
    assert!(
        matches!(err, EpcisError::Report(ReportError::NotFound(_))),
        "{err}"
    );
}

// --- any journey ------------------------------------------------------------

mod any_journey {
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
}
