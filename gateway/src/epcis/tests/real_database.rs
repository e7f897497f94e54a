//! The export of a pallet from a real redb file filled by the real
//! excursion engine.

use std::sync::Arc;

use coldgate_sensor_drivers::Reading;

use super::*;
use crate::excursion::{Engine, EngineState};
use crate::store::{Batch, StoredEvent};

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
        .commit(&Batch {
            readings: readings.to_vec(),
            events: stored.to_vec(),
            state: vec![(crate::snapshot::LEGACY_ENGINE_STATE.into(), state.to_vec())],
            ..Batch::default()
        })
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
