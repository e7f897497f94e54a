//! The witness vouches only for what it saw (issue 13): a real `coldgate
//! run` polls a real Modbus TCP server in the test process whose registers
//! follow a script, and the test reads what the gateway stored. Silences,
//! downtime by SIGKILL, impossible values and sensors that never answer must
//! each leave their record.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use coldgate::store::Store;
use coldgate_tests::modbus::{centi, start_server, Units};
use coldgate_tests::{free_port, http_post, start_gateway, wait_until, Proc};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const SSCC: &str = "106141412345678908";

/// The profile of most tests: temperature 2–8 °C as a label says it (both
/// ends in range) and humidity below 90 % are judged; silence after 3 s.
const COLD: &str = r#"
id = "cold"
silence = "3s"
limits = [
  { quantity = "temperature", low = 2.0, high = 8.0, exclusive = true, delay = "1s" },
  { quantity = "humidity", high = 90.0 },
]
"#;

/// Register 0: °C × 100 (0x8000 means "no value"); register 1: %RH × 10.
/// One zone `rear` under `profile` (a `[[profiles]]` table's body, id
/// `cold`), the pallet `SSCC` on board since a minute before the start.
fn config(dir: &Path, addr: SocketAddr, units: &[(&str, u8)]) -> PathBuf {
    let loaded = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let loaded = loaded
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let pallet = format!(
        r#"[[pallets]]
sscc = "{SSCC}"
zone = "rear"
loaded_at = "{loaded}"
items = [{{ gtin = "09520123456788", lot = "L1", serials = ["1"] }}]
"#
    );
    write_config(dir, addr, units, COLD, 0, &pallet)
}

fn write_config(
    dir: &Path,
    addr: SocketAddr,
    units: &[(&str, u8)],
    profile: &str,
    http_port: u16,
    extra: &str,
) -> PathBuf {
    let mut text = format!(
        r#"gateway_id = "witness-gw"
[storage]
path = "{db}"
[ingest]
batch_interval = "200ms"
[mqtt]
enabled = false
[http]
listen = "127.0.0.1:{http_port}"
[[profiles]]
{profile}
[[zones]]
id = "rear"
profile = "cold"
{extra}
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

/// One scenario at a time: each judges silences of a few seconds, which a
/// dozen gateways starting together on two cores could cause themselves.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
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

/// A scripted Modbus server (unit 1: 5 °C, 50 %) and a gateway's
/// configuration polling it for `devices`, with the pallet on board.
struct Rig {
    units: Units,
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Rig {
    fn new(devices: &[(&str, u8)]) -> Rig {
        let units = Units::new([(1, vec![centi(5.0), 500])]);
        let addr = start_server(units.clone());
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), addr, devices);
        Rig { units, dir, cfg }
    }

    fn run(&self, n: usize) -> Proc {
        run(&self.cfg, self.dir.path(), n)
    }

    fn events(&self) -> Vec<Value> {
        events(self.dir.path())
    }
}

#[test]
fn a_silent_temperature_channel_is_a_gap_while_humidity_keeps_reporting() {
    let _serial = serial();
    let rig = Rig::new(&[("rear-1", 1)]);
    let gw = rig.run(1);
    sleep(Duration::from_secs(2));
    rig.units.set(1, 0, 0x8000);
    sleep(Duration::from_secs(6));
    rig.units.set(1, 0, centi(5.0));
    sleep(Duration::from_secs(2));
    stop(gw);
    let all = rig.events();
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
    assert!((5..=9).contains(&gap_s), "the gap lasted about 6 s: {back}");
}

#[test]
fn downtime_by_sigkill_is_an_unclean_stop_and_a_gap_of_every_watched_quantity() {
    let _serial = serial();
    let rig = Rig::new(&[("rear-1", 1)]);
    let mut gw = rig.run(1);
    sleep(Duration::from_secs(3));
    gw.sigkill();
    sleep(Duration::from_secs(6));
    let gw = rig.run(2);
    sleep(Duration::from_secs(3));
    stop(gw);
    let all = rig.events();
    let unclean: Vec<&Value> = all.iter().filter(|e| e["kind"] == "unclean_stop").collect();
    assert_eq!(unclean.len(), 1, "{all:#?}");
    let downtime = unclean[0]["downtime_s"].as_i64().unwrap();
    assert!((5..=12).contains(&downtime), "{}", unclean[0]);
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
    let _serial = serial();
    let rig = Rig::new(&[("rear-1", 1)]);
    let gw = rig.run(1);
    // Longer than the silence limit: the state persists last-seen times to
    // the minute (or the first look), so only the stored readings tell
    // that the last one was a moment before the stop.
    sleep(Duration::from_secs(5));
    stop(gw);
    let gw = rig.run(2);
    sleep(Duration::from_secs(2));
    stop(gw);
    let all = rig.events();
    assert_eq!(gaps(&all), Vec::<String>::new(), "{all:#?}");
}

#[test]
fn an_impossible_temperature_is_a_sensor_fault_not_an_excursion() {
    let _serial = serial();
    // 0x7FFF is no sentinel here: 327.67 °C, which no probe reports.
    let rig = Rig::new(&[("rear-1", 1)]);
    let gw = rig.run(1);
    sleep(Duration::from_secs(2));
    rig.units.set(1, 0, 0x7FFF);
    sleep(Duration::from_millis(1500));
    rig.units.set(1, 0, centi(5.0));
    sleep(Duration::from_secs(1));
    stop(gw);
    let all = rig.events();
    assert_eq!(excursions(&all), 0, "{all:#?}");
    let faults: Vec<&Value> = all.iter().filter(|e| e["phase"] == "fault").collect();
    assert_eq!(faults.len(), 1, "one event per run of faults: {all:#?}");
    assert_eq!(faults[0]["value"], 327.67);
    assert_eq!(faults[0]["quantity"], "temperature");
}

#[test]
fn a_sensor_that_never_answers_is_a_gap_from_the_start() {
    let _serial = serial();
    let rig = Rig::new(&[("rear-1", 1), ("rear-2", 2)]);
    let gw = rig.run(1);
    sleep(Duration::from_secs(6));
    stop(gw);
    let all = rig.events();
    assert_eq!(
        gaps(&all),
        [
            "rear-2 silent temperature sensor_silent",
            "rear-2 silent humidity sensor_silent"
        ],
        "{all:#?}"
    );
}

// ---- The trip report's verdict (issue 13, items 5 and 7) ----
//
// The pallet is loaded through the API once the gateway runs, so its stay
// starts under observation; the report is made by `coldgate report` from
// the database after the gateway stopped.

/// A gateway on a free HTTP port under `profile`, the pallet loaded now.
struct Trip {
    dir: tempfile::TempDir,
    config: PathBuf,
    http_port: u16,
}

impl Trip {
    fn new(addr: SocketAddr, units: &[(&str, u8)], profile: &str) -> Trip {
        let dir = tempfile::tempdir().unwrap();
        let http_port = free_port();
        let config = write_config(dir.path(), addr, units, profile, http_port, "");
        Trip {
            dir,
            config,
            http_port,
        }
    }

    fn start(&self, n: usize) -> Proc {
        let gw = run(&self.config, self.dir.path(), n);
        wait_until(Duration::from_secs(20), "the API", || {
            std::net::TcpStream::connect(("127.0.0.1", self.http_port))
                .ok()
                .map(|_| ())
        });
        gw
    }

    fn load(&self) {
        let body = format!(
            r#"{{"sscc": "{SSCC}", "zone": "rear", "items": [{{"gtin": "09520123456788", "lot": "L1", "serials": ["1"]}}]}}"#
        );
        let answer = http_post(
            &format!("http://127.0.0.1:{}/api/manifest/load", self.http_port),
            &body,
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    fn unload(&self) {
        let answer = http_post(
            &format!("http://127.0.0.1:{}/api/manifest/unload", self.http_port),
            &format!(r#"{{"sscc": "{SSCC}"}}"#),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    /// The verdict and the whole HTML of the pallet's trip report.
    fn report(&self) -> (String, String) {
        let out = Command::new(BIN)
            .args(["report", "--sscc", SSCC, "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let html = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{html}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict = html
            .split("data-verdict=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no verdict in the report:\n{html}"))
            .to_string();
        (verdict, html)
    }
}

/// Polls every 200 ms; `script` sets the registers over time.
fn trip(profile: &str, script: impl FnOnce(&Units)) -> (String, String, Trip) {
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units.clone());
    let trip = Trip::new(addr, &[("rear-1", 1)], profile);
    let gw = trip.start(1);
    sleep(Duration::from_millis(600));
    trip.load();
    script(&units);
    stop(gw);
    let (verdict, html) = trip.report();
    (verdict, html, trip)
}

#[test]
fn a_pallet_whose_zone_sent_no_reading_is_record_incomplete() {
    let _serial = serial();
    let units = Units::default();
    let addr = start_server(units);
    let trip = Trip::new(addr, &[("rear-1", 1)], COLD);
    let gw = trip.start(1);
    trip.load();
    sleep(Duration::from_secs(6));
    stop(gw);
    let (verdict, html) = trip.report();
    assert_eq!(verdict, "Record incomplete", "{html}");
}

#[test]
fn a_gap_in_one_channel_during_the_stay_is_record_incomplete() {
    let _serial = serial();
    let (verdict, html, _) = trip(COLD, |u| {
        sleep(Duration::from_secs(1));
        u.set(1, 0, 0x8000);
        sleep(Duration::from_secs(6));
        u.set(1, 0, centi(5.0));
        sleep(Duration::from_secs(1));
    });
    assert_eq!(verdict, "Record incomplete", "{html}");
}

#[test]
fn downtime_by_sigkill_during_the_stay_is_record_incomplete() {
    let _serial = serial();
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units);
    let trip = Trip::new(addr, &[("rear-1", 1)], COLD);
    let mut gw = trip.start(1);
    trip.load();
    sleep(Duration::from_secs(2));
    gw.sigkill();
    sleep(Duration::from_secs(6));
    let gw = trip.start(2);
    sleep(Duration::from_secs(2));
    stop(gw);
    let (verdict, html) = trip.report();
    assert_eq!(verdict, "Record incomplete", "{html}");
}

#[test]
fn a_complete_record_in_range_is_within_profile() {
    let _serial = serial();
    let (verdict, html, _) = trip(COLD, |_| sleep(Duration::from_secs(3)));
    assert_eq!(verdict, "Within profile", "{html}");
}

#[test]
fn exactly_the_limit_is_in_range_no_excursion_within_profile() {
    let _serial = serial();
    let (verdict, html, trip) = trip(COLD, |u| {
        u.set(1, 0, centi(8.0));
        sleep(Duration::from_secs(3));
        u.set(1, 0, centi(2.0));
        sleep(Duration::from_secs(2));
    });
    assert_eq!(excursions(&events(trip.dir.path())), 0);
    assert_eq!(verdict, "Within profile", "{html}");
}

#[test]
fn an_excursion_open_at_report_time_needs_assessment_and_is_ongoing_as_of_its_last_reading() {
    let _serial = serial();
    let (verdict, html, _) = trip(COLD, |u| {
        sleep(Duration::from_secs(1));
        u.set(1, 0, centi(9.5));
        sleep(Duration::from_secs(3));
    });
    assert_eq!(verdict, "Assessment required", "{html}");
    assert!(html.contains("ongoing as of"), "{html}");
}

#[test]
fn a_short_stay_with_a_high_mkt_is_judged_over_the_stay() {
    let _serial = serial();
    // In range throughout (2–25 °C), but an MKT of 12 °C against 8 °C: a
    // stay far shorter than the 24 h window is still judged.
    let profile = r#"
id = "cold"
silence = "5s"
limits = [{ quantity = "temperature", low = 2.0, high = 25.0, delay = "1s" }]
mkt = { limit = 8.0, window = "24h" }
"#;
    let units = Units::new([(1, vec![centi(5.0), 500])]);
    let addr = start_server(units.clone());
    let trip = Trip::new(addr, &[("rear-1", 1)], profile);
    let gw = trip.start(1);
    sleep(Duration::from_millis(600));
    trip.load();
    units.set(1, 0, centi(12.0));
    sleep(Duration::from_secs(4));
    // The stay's MKT is judged when it ends.
    trip.unload();
    sleep(Duration::from_millis(600));
    stop(gw);
    let (verdict, html) = trip.report();
    assert_eq!(verdict, "Allowance exceeded", "{html}");
    assert!(html.contains("MKT"), "{html}");
}

#[test]
fn time_inside_the_hysteresis_band_is_no_exposure() {
    let _serial = serial();
    // 9.5 °C for 2 s, then 7.6 °C (in range, inside the 1 °C band) for
    // 4 s: 2 s beyond the limit against an allowance of 3 s. Counting the
    // band would make it 6 s, "Allowance exceeded".
    let profile = r#"
id = "cold"
silence = "5s"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0, exclusive = true, hysteresis = 1.0, low_budget = "1h", high_budget = "3s" }]
"#;
    let (verdict, html, trip) = trip(profile, |u| {
        u.set(1, 0, centi(9.5));
        sleep(Duration::from_secs(2));
        u.set(1, 0, centi(7.6));
        sleep(Duration::from_secs(4));
        u.set(1, 0, centi(5.0));
        sleep(Duration::from_secs(1));
    });
    assert_eq!(verdict, "Excursion within allowance", "{html}");
    let all = events(trip.dir.path());
    let ended = all
        .iter()
        .find(|e| e["schema"] == "coldgate.excursion/1" && e["phase"] == "ended")
        .unwrap_or_else(|| panic!("no ended excursion: {all:#?}"));
    let beyond = ended["duration_s"].as_i64().unwrap();
    assert!((1..=3).contains(&beyond), "{ended}");
    assert!(
        ended["back_in_range_at"].as_str().unwrap() < ended["ended_at"].as_str().unwrap(),
        "{ended}"
    );
}

#[test]
fn a_freeze_needs_assessment() {
    let _serial = serial();
    let profile = r#"
id = "cold"
silence = "5s"
limits = [
  { quantity = "temperature", low = 2.0, high = 8.0, exclusive = true, delay = "1s", low_budget = "1h", high_budget = "1h" },
  { quantity = "temperature", low = 0.0, freeze = true },
]
"#;
    let (verdict, html, _) = trip(profile, |u| {
        u.set(1, 0, centi(-2.0));
        sleep(Duration::from_secs(2));
        u.set(1, 0, centi(5.0));
        sleep(Duration::from_secs(1));
    });
    assert_eq!(verdict, "Assessment required", "{html}");
    assert!(html.contains("reached freezing"), "{html}");
}
