//! The witness vouches only for what it saw (issue 13): a real `coldgate
//! run` polls a real Modbus TCP server in the test process whose registers
//! follow a script, and the test reads what the gateway stored. Silences,
//! downtime by SIGKILL, impossible values and sensors that never answer must
//! each leave their record.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use coldgate::store::Store;
use coldgate_tests::modbus::{centi, start_server, Units};
use coldgate_tests::{start_gateway, Proc};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const SSCC: &str = "106141412345678908";

/// Register 0: °C × 100 (0x8000 means "no value"); register 1: %RH × 10.
/// Temperature 2–8 °C and humidity ≤ 90 % are judged; silence after 2 s.
fn config(dir: &Path, addr: SocketAddr, units: &[(&str, u8)]) -> PathBuf {
    let loaded = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let loaded = loaded
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut text = format!(
        r#"gateway_id = "witness-gw"
[storage]
path = "{db}"
[ingest]
batch_interval = "200ms"
[mqtt]
enabled = false
[http]
listen = "127.0.0.1:0"
[[profiles]]
id = "cold"
silence = "2s"
limits = [
  {{ quantity = "temperature", low = 2.0, high = 8.0, delay = "1s" }},
  {{ quantity = "humidity", high = 90.0 }},
]
[[zones]]
id = "rear"
profile = "cold"
[[pallets]]
sscc = "{SSCC}"
zone = "rear"
loaded_at = "{loaded}"
items = [{{ gtin = "09520123456788", lot = "L1", serials = ["1"] }}]
[[modbus.tcp]]
host = "127.0.0.1"
port = {port}
timeout = "300ms"
retries = 0
"#,
        db = dir.join("coldgate.redb").display(),
        port = addr.port()
    );
    for (sensor, unit) in units {
        text.push_str(&format!(
            r#"[[modbus.tcp.devices]]
sensor = "{sensor}"
unit = {unit}
poll_interval = "200ms"
registers = [
  {{ function = "input", address = 0, type = "i16", scale = 0.01, quantity = "temperature", sentinels = [0x8000] }},
  {{ function = "input", address = 1, type = "u16", scale = 0.1, quantity = "humidity" }},
]
[[sensors]]
id = "{sensor}"
zone = "rear"
kind = "modbus"
quantities = ["temperature", "humidity"]
"#
        ));
    }
    let path = dir.join("coldgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, dir: &Path, n: usize) -> Proc {
    start_gateway(BIN, config, &dir.join(format!("gateway-{n}.log")))
}

fn stop(mut gw: Proc) {
    let status = gw.terminate(Duration::from_secs(10));
    assert!(status.success(), "the gateway stopped with {status}");
}

/// Every stored event's payload, in seq order.
fn events(dir: &Path) -> Vec<Value> {
    let store = Store::open_existing(&dir.join("coldgate.redb")).unwrap();
    store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect()
}

/// The sensor events as `sensor phase quantity cause`.
fn gaps(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["schema"] == "coldgate.sensor/1")
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["sensor_id"].as_str().unwrap(),
                e["phase"].as_str().unwrap(),
                e["quantity"].as_str().unwrap_or("?"),
                e["cause"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn excursions(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["schema"] == "coldgate.excursion/1")
        .count()
}

#[test]
fn a_silent_temperature_channel_is_a_gap_while_humidity_keeps_reporting() {
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("rear-1", 1)]);
    let gw = run(&cfg, dir.path(), 1);
    sleep(Duration::from_secs(2));
    units.set(1, 0, 0x8000);
    sleep(Duration::from_secs(4));
    units.set(1, 0, centi(5.0));
    sleep(Duration::from_secs(2));
    stop(gw);
    let all = events(dir.path());
    assert_eq!(
        gaps(&all),
        [
            "rear-1 silent temperature sensor_silent",
            "rear-1 back temperature sensor_silent"
        ],
        "{all:#?}"
    );
    let back = all.iter().find(|e| e["phase"] == "back").unwrap();
    let gap_s = back["gap_s"].as_i64().unwrap();
    assert!((3..=6).contains(&gap_s), "the gap lasted about 4 s: {back}");
}

#[test]
fn downtime_by_sigkill_is_an_unclean_stop_and_a_gap_of_every_watched_quantity() {
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("rear-1", 1)]);
    let mut gw = run(&cfg, dir.path(), 1);
    sleep(Duration::from_secs(3));
    gw.sigkill();
    sleep(Duration::from_secs(4));
    let gw = run(&cfg, dir.path(), 2);
    sleep(Duration::from_secs(3));
    stop(gw);
    let all = events(dir.path());
    let unclean: Vec<&Value> = all.iter().filter(|e| e["kind"] == "unclean_stop").collect();
    assert_eq!(unclean.len(), 1, "{all:#?}");
    let downtime = unclean[0]["downtime_s"].as_i64().unwrap();
    assert!((3..=8).contains(&downtime), "{}", unclean[0]);
    assert_eq!(
        gaps(&all),
        [
            "rear-1 silent temperature gateway_down",
            "rear-1 silent humidity gateway_down",
            "rear-1 back temperature gateway_down",
            "rear-1 back humidity gateway_down",
        ],
        "{all:#?}"
    );
}

#[test]
fn a_quick_clean_restart_leaves_no_gap() {
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("rear-1", 1)]);
    let gw = run(&cfg, dir.path(), 1);
    // Longer than the silence limit: the state persists last-seen times to
    // the minute (or the first look), so only the stored readings tell
    // that the last one was a moment before the stop.
    sleep(Duration::from_secs(5));
    stop(gw);
    let gw = run(&cfg, dir.path(), 2);
    sleep(Duration::from_secs(2));
    stop(gw);
    let all = events(dir.path());
    assert_eq!(gaps(&all), Vec::<String>::new(), "{all:#?}");
}

#[test]
fn an_impossible_temperature_is_a_sensor_fault_not_an_excursion() {
    // 0x7FFF is no sentinel here: 327.67 °C, which no probe reports.
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("rear-1", 1)]);
    let gw = run(&cfg, dir.path(), 1);
    sleep(Duration::from_secs(2));
    units.set(1, 0, 0x7FFF);
    sleep(Duration::from_millis(1500));
    units.set(1, 0, centi(5.0));
    sleep(Duration::from_secs(1));
    stop(gw);
    let all = events(dir.path());
    assert_eq!(excursions(&all), 0, "{all:#?}");
    let faults: Vec<&Value> = all.iter().filter(|e| e["phase"] == "fault").collect();
    assert_eq!(faults.len(), 1, "one event per run of faults: {all:#?}");
    assert_eq!(faults[0]["value"], 327.67);
    assert_eq!(faults[0]["quantity"], "temperature");
}

#[test]
fn a_sensor_that_never_answers_is_a_gap_from_the_start() {
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("rear-1", 1), ("rear-2", 2)]);
    let gw = run(&cfg, dir.path(), 1);
    sleep(Duration::from_secs(4));
    stop(gw);
    let all = events(dir.path());
    assert_eq!(
        gaps(&all),
        [
            "rear-2 silent temperature sensor_silent",
            "rear-2 silent humidity sensor_silent"
        ],
        "{all:#?}"
    );
}
