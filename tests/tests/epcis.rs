//! `coldgate report --format epcis` end to end: a real `coldgate run` polls
//! a real Modbus TCP server in the test process whose registers follow a
//! script (an excursion, then the sensor unplugged), a pallet is loaded and
//! unloaded through the HTTP API, the gateway stops, and the EPCIS document
//! made from its database is checked against GS1's EPCIS 2.0 JSON Schema
//! (formats asserted) and against what the database itself says.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::Duration;

use coldgate::excursion::EngineState;
use coldgate::store::Store;
use coldgate_tests::modbus::{centi, start_server, Units};
use coldgate_tests::schema::check_epcis;
use coldgate_tests::{free_port, http_post, start_gateway, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const SSCC: &str = "106141412345678908";
const GTIN: &str = "09520123456788";
const GTIN2: &str = "09520123456795";

/// Temperature 2–8 °C with an allowance of an hour above, silence after 3 s;
/// register 0 is °C × 100, register 1 %RH × 10.
fn config(dir: &Path, modbus: SocketAddr, http_port: u16) -> PathBuf {
    let text = format!(
        r#"gateway_id = "epcis-gw"
[storage]
path = "{db}"
[ingest]
batch_interval = "200ms"
[mqtt]
enabled = false
[http]
listen = "127.0.0.1:{http_port}"
[[profiles]]
id = "cold"
silence = "3s"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "1s", high_budget = "1h" }}]
[[zones]]
id = "rear"
profile = "cold"
[[modbus.tcp]]
host = "127.0.0.1"
port = {port}
timeout = "300ms"
retries = 0
[[modbus.tcp.devices]]
sensor = "rear-1"
unit = 1
poll_interval = "200ms"
registers = [
  {{ function = "input", address = 0, type = "i16", scale = 0.01, quantity = "temperature" }},
  {{ function = "input", address = 1, type = "u16", scale = 0.1, quantity = "humidity" }},
]
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "modbus"
quantities = ["temperature", "humidity"]
"#,
        db = dir.join("coldgate.redb").display(),
        port = modbus.port()
    );
    let path = dir.join("coldgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn post(http_port: u16, path: &str, body: &str) {
    let answer = http_post(
        &format!("http://127.0.0.1:{http_port}/api/manifest/{path}"),
        body,
        None,
    );
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
}

fn report(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("report")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn events(doc: &Value) -> &Vec<Value> {
    doc["epcisBody"]["eventList"].as_array().unwrap()
}

fn sensor_reports<'a>(doc: &'a Value, exception: &str) -> Vec<&'a Value> {
    events(doc)
        .iter()
        .filter_map(|e| e["sensorElementList"][0]["sensorReport"].get(0))
        .filter(|r| r["exception"] == exception)
        .collect()
}

#[test]
fn the_epcis_export_of_a_real_gateways_database_validates_and_says_what_it_stored() {
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let modbus = start_server(units.clone());
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let cfg = config(dir.path(), modbus, http_port);
    let mut gw = start_gateway(BIN, &cfg, &dir.path().join("gw.log"));
    wait_until(Duration::from_secs(20), "the API", || {
        std::net::TcpStream::connect(("127.0.0.1", http_port))
            .ok()
            .map(|_| ())
    });
    sleep(Duration::from_millis(600));
    post(
        http_port,
        "load",
        &format!(
            r#"{{"sscc": "{SSCC}", "zone": "rear", "items": [
                {{"gtin": "{GTIN}", "lot": "ABC123", "expiry": "2030-12-31", "serials": ["1001", "A/2"]}},
                {{"gtin": "{GTIN2}", "lot": "XYZ9"}}]}}"#
        ),
    );
    // Two seconds in range, three at 9.5 °C (an excursion: delay 1 s), back
    // in range, then the sensor unplugged for six seconds (a gap: silence 3 s).
    sleep(Duration::from_secs(2));
    units.set(1, 0, centi(9.5));
    sleep(Duration::from_secs(3));
    units.set(1, 0, centi(5.0));
    sleep(Duration::from_secs(2));
    units.unplug(1);
    sleep(Duration::from_secs(6));
    units.set(1, 0, centi(5.0));
    units.set(1, 1, 500);
    sleep(Duration::from_secs(2));
    post(http_port, "unload", &format!(r#"{{"sscc": "{SSCC}"}}"#));
    sleep(Duration::from_millis(600));
    assert!(gw.terminate(Duration::from_secs(20)).success());

    // What the database says.
    let db = dir.path().join("coldgate.redb");
    let (ended, stay) = {
        let store = Store::open_existing(&db).unwrap();
        let ended: Vec<Value> = store
            .events_between(i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|e| serde_json::from_slice::<Value>(&e.payload).unwrap())
            .filter(|v| v["schema"] == "coldgate.excursion/1" && v["phase"] == "ended")
            .collect();
        assert_eq!(ended.len(), 1, "{ended:#?}");
        let state: EngineState = coldgate::snapshot::load_engine_state(&store).unwrap();
        assert_eq!(state.manifest.stays.len(), 1);
        (ended[0].clone(), state.manifest.stays[0].clone())
    };

    let out = dir.path().join("pallet.jsonld");
    let o = report(
        &cfg,
        &[
            "--sscc",
            SSCC,
            "--format",
            "epcis",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    if let Err(e) = check_epcis(&doc) {
        panic!("{e}\n{doc:#}");
    }
    assert_eq!(doc["type"], "EPCISDocument");
    assert_eq!(doc["sender"], "epcis-gw");

    // The stay: a load and an unload at the stored times, naming the pallet
    // and its serials, the lot without serials as a class.
    let of_step = |step: &str| -> Vec<&Value> {
        events(&doc)
            .iter()
            .filter(|e| e["bizStep"] == step)
            .collect()
    };
    let (loads, unloads) = (of_step("loading"), of_step("unloading"));
    assert_eq!((loads.len(), unloads.len()), (1, 1), "{doc:#}");
    assert_eq!(
        loads[0]["eventTime"],
        coldgate::event::rfc3339(stay.loaded_at_ms)
    );
    assert_eq!(
        unloads[0]["eventTime"],
        coldgate::event::rfc3339(stay.unloaded_at_ms.expect("unloaded"))
    );
    assert_eq!(
        loads[0]["epcList"],
        serde_json::json!([
            format!("https://id.gs1.org/00/{SSCC}"),
            format!("https://id.gs1.org/01/{GTIN}/21/1001"),
            format!("https://id.gs1.org/01/{GTIN}/21/A%2F2"),
        ])
    );
    assert_eq!(
        loads[0]["quantityList"][0]["epcClass"],
        format!("https://id.gs1.org/01/{GTIN2}/10/XYZ9")
    );
    assert_eq!(
        loads[0]["readPoint"]["id"],
        "urn:coldgate:location:epcis-gw:rear"
    );

    // The excursion: an alarm with the stored event's figures.
    let alarms = sensor_reports(&doc, "ALARM_CONDITION");
    assert_eq!(alarms.len(), 1, "{doc:#}");
    let a = alarms[0];
    assert_eq!(a["type"], "Temperature");
    assert_eq!(a["uom"], "CEL");
    assert_eq!(a["cg:excursionId"], ended["excursion_id"]);
    for (epcis, stored) in [
        ("minValue", "min"),
        ("maxValue", "max"),
        ("meanValue", "mean"),
        ("cg:durationSeconds", "duration_s"),
        ("cg:ruleId", "rule"),
    ] {
        assert_eq!(a[epcis], ended[stored], "{epcis}");
    }
    assert_eq!(a["maxValue"], 9.5);
    assert_eq!(a["cg:rule"], "2–8 °C, high");
    assert_eq!(a["cg:allowanceSeconds"], 3600);

    // The unplugged sensor: a gap, never "fine".
    let gaps = sensor_reports(&doc, "ERROR_CONDITION");
    let silent: Vec<&&Value> = gaps
        .iter()
        .filter(|r| r["cg:gapCause"] == "sensor_silent")
        .collect();
    assert!(!silent.is_empty(), "{doc:#}");
    let gap_s = silent[0]["cg:gapSeconds"].as_i64().unwrap();
    assert!((5..=10).contains(&gap_s), "about 6 s unplugged: {gap_s}");
    assert_eq!(doc["cg:verdict"], "Record incomplete");

    // The lot, to standard output: the same schema, the same excursion.
    let o = report(&cfg, &["--lot", "ABC123", "--format", "epcis"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lot: Value = serde_json::from_slice(&o.stdout).unwrap();
    if let Err(e) = check_epcis(&lot) {
        panic!("{e}\n{lot:#}");
    }
    assert_eq!(
        sensor_reports(&lot, "ALARM_CONDITION")[0]["cg:excursionId"],
        ended["excursion_id"]
    );
    // The lot's document names only that lot's goods.
    assert!(!lot.to_string().contains(GTIN2), "{lot:#}");

    // A subject never loaded is the report's error, nothing written.
    let missing = dir.path().join("missing.jsonld");
    let o = report(
        &cfg,
        &[
            "--sscc",
            "106141412345678915",
            "--format",
            "epcis",
            "--out",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the manifest"));
    assert!(!missing.exists());
}
