//! `coldgate probe` against a real Modbus TCP server (tokio-modbus) in the
//! test process: one unit answers, one does not. The probe prints the value
//! or the reason per sensor, fails if any sensor gave nothing, and stores
//! nothing (no database file appears).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coldgate_tests::modbus::{start_server, Units};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

/// A configuration with one Modbus TCP endpoint and a device per
/// `(sensor, unit)`: input register 0 is °C × 100, 1 is %RH × 10.
fn config(dir: &Path, addr: SocketAddr, devices: &[(&str, u8)]) -> PathBuf {
    let mut text = format!(
        r#"gateway_id = "probe-gw"
[storage]
path = "{db}"
[mqtt]
enabled = false
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0 }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[[modbus.tcp]]
host = "127.0.0.1"
port = {port}
timeout = "300ms"
retries = 0
"#,
        db = dir.join("coldgate.redb").display(),
        port = addr.port()
    );
    for (sensor, unit) in devices {
        text.push_str(&format!(
            r#"[[modbus.tcp.devices]]
sensor = "{sensor}"
unit = {unit}
registers = [
  {{ function = "input", address = 0, type = "i16", scale = 0.01, quantity = "temperature" }},
  {{ function = "input", address = 1, type = "u16", scale = 0.1, quantity = "humidity" }},
]
"#
        ));
    }
    for (sensor, _) in devices {
        text.push_str(&format!(
            "[[sensors]]\nid = \"{sensor}\"\nzone = \"rear\"\nkind = \"modbus\"\nquantities = [\"temperature\", \"humidity\"]\n"
        ));
    }
    let path = dir.join("coldgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn probe(config: &Path) -> (Output, String, String) {
    let out = Command::new(BIN)
        .args(["probe", "--wait", "2s", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, so, se)
}

#[test]
fn probe_prints_each_value_or_the_reason_and_fails_if_a_unit_is_silent() {
    let addr = start_server(Units::new([(1, vec![425, 613])]));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("answering", 1), ("silent", 9)]);
    let (out, so, se) = probe(&cfg);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    let line = |id: &str| {
        so.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{so}\n{se}"))
            .to_string()
    };
    let answering = line("answering");
    assert!(
        answering.contains("temperature 4.25 °C") && answering.contains("humidity 61.3 %"),
        "{answering}"
    );
    let silent = line("silent");
    assert!(
        silent.contains(&format!(
            "NO VALUE: modbus-tcp:{addr} unit 9: no reply within 300 ms"
        )),
        "{silent}"
    );
    assert!(
        so.contains("probe: 1 of 2 sensor(s) gave a value; nothing was stored"),
        "{so}"
    );
    assert!(
        !dir.path().join("coldgate.redb").exists(),
        "the probe must not create or open the database"
    );
}

#[test]
fn probe_succeeds_when_every_unit_answers() {
    let addr = start_server(Units::new([
        (1, vec![425, 613]),
        (2, vec![-150i16 as u16, 800]),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("front", 1), ("back", 2)]);
    let (out, so, se) = probe(&cfg);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(so.contains("temperature -1.5 °C"), "{so}");
    assert!(so.contains("probe: 2 of 2 sensor(s) gave a value"), "{so}");
}
