//! The command line as an installer and a technician use it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coldgate_tests::{start_gateway, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `check-config` on `path` exits 78 and names every `needle` on stderr.
fn check_config_rejects(path: &Path, needles: &[&str]) {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
}

/// The shipped template with its example sensors un-commented, as an
/// installer would (scripts/check-deb.sh does the same with sed).
fn filled_example() -> String {
    let template = std::fs::read_to_string(repo("config/coldgate.example.toml")).unwrap();
    let mut inside = false;
    let mut out = String::new();
    for line in template.lines() {
        match line {
            "# --- example sensors ---" => inside = true,
            "# --- end of example sensors ---" => inside = false,
            _ if inside => {
                let l = line.strip_prefix('#').unwrap_or(line);
                out.push_str(l.strip_prefix(' ').unwrap_or(l));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn check_config_refuses_the_shipped_template_and_accepts_it_filled_in() {
    check_config_rejects(
        &repo("config/coldgate.example.toml"),
        &["no sensors configured", "1 problem"],
    );
    let dir = tempfile::tempdir().unwrap();
    let filled = dir.path().join("coldgate.toml");
    std::fs::write(&filled, filled_example()).unwrap();
    for file in [filled, repo("config/demo.toml")] {
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
    }
}

#[test]
fn check_config_lists_every_problem_with_its_key_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = filled_example()
        .replace("zone = \"rear\"\nkind", "zone = \"middle\"\nkind")
        .replace("low = 2.0, high = 8.0", "low = 8.0, high = 2.0")
        .replace("batch_interval = \"2s\"", "batch_interval = \"0s\"");
    std::fs::write(&path, text).unwrap();
    check_config_rejects(
        &path,
        &[
            "sensors[1].zone",
            "profiles[0].limits[0].low",
            "ingest.batch_interval",
            "3 problem",
        ],
    );
}

#[test]
fn check_config_names_a_syntax_error_and_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "gateway_id = \"g\"\n[mqtt\nport = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let out = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/c.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/c.toml"));
}

#[test]
fn export_reads_a_stopped_gateways_database_and_refuses_a_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(dir.path());
    let config = cfg.write();
    let mut gw = start_gateway(BIN, &config, &dir.path().join("gw.log"));
    std::thread::sleep(Duration::from_secs(3));

    let held = Command::new(BIN)
        .args(["export", "--db"])
        .arg(cfg.db())
        .output()
        .unwrap();
    assert!(!held.status.success());
    let err = String::from_utf8_lossy(&held.stderr);
    assert!(err.contains("in use"), "{err}");

    assert!(gw.terminate(Duration::from_secs(20)).success());
    let out = Command::new(BIN)
        .args(["export", "--db"])
        .arg(cfg.db())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("sensor_id,seq,quantity,value,unit,time"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 20, "{} rows", rows.len());
    assert!(
        rows.iter().any(|r| r.starts_with("rear-0,1,temperature,")),
        "{}",
        rows[0]
    );

    let out = Command::new(BIN)
        .args(["export", "--what", "events", "--format", "jsonl", "--db"])
        .arg(cfg.db())
        .output()
        .unwrap();
    assert!(out.status.success());
    let first = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("an event")).unwrap();
    assert_eq!(first["seq"], 1);

    let out = Command::new(BIN)
        .args(["export", "--from", "yesterday", "--db"])
        .arg(cfg.db())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from"));
}

#[test]
fn export_of_an_unknown_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.redb");
    let out = Command::new(BIN)
        .args(["export", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    std::fs::write(&path, b"this is not a database at all, just text").unwrap();
    let out = Command::new(BIN)
        .args(["export", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be opened"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn decode_gs1_and_mkt_answer_or_explain() {
    let out = Command::new(BIN)
        .args(["decode", "gs1", "(00)106141412345678908"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sscc"], "106141412345678908");
    let out = Command::new(BIN)
        .args(["decode", "gs1", "(00)106141412345678903"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AI (00)"));

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "time,temperature_c\n2026-01-01T00:00:00Z,20\n2026-01-01T01:00:00Z,30\n2026-01-01T02:00:00Z,30\n").unwrap();
    let out = Command::new(BIN).arg("mkt").arg(&csv).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "26.26");
    std::fs::write(&csv, "time,temperature_c\n2026-01-01T00:00:00Z,warm\n").unwrap();
    let out = Command::new(BIN).arg("mkt").arg(&csv).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_names_modbus_mistakes_by_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wired.toml");
    let text = format!(
        "{}\n[[sensors]]\nid = \"wired-1\"\nzone = \"rear\"\nkind = \"modbus\"\n\
         [[modbus.rtu]]\ndevice = \"/dev/ttyUSB0\"\n\
         [[modbus.rtu.devices]]\nsensor = \"wired-1\"\nunit = 0\nprofile = \"no-such-profile\"\n\
         [[modbus.tcp]]\nhost = \"127.0.0.1\"\n\
         [[modbus.tcp.devices]]\nsensor = \"wired-1\"\nunit = 3\nregisters = [\n\
           {{ function = \"input\", address = 0, type = \"u32\", quantity = \"temperature\" }},\n\
           {{ function = \"input\", address = 1, type = \"i16\", quantity = \"humidity\" }},\n]\n",
        filled_example()
    );
    std::fs::write(&path, text).unwrap();
    check_config_rejects(
        &path,
        &[
            "modbus.rtu[0].devices[0].unit",
            "modbus.rtu[0].devices[0].profile",
            "modbus.tcp[0].devices[0].registers[0]",
            "modbus.tcp[0].devices[0].registers[1]",
            // a 32-bit type without word order is named
            "word",
        ],
    );
}

#[test]
fn decode_ble_prints_the_values_or_the_reason() {
    // bthome.io's example: temperature 25.00 °C, humidity 50.55 %.
    let out = Command::new(BIN)
        .args(["decode", "ble", "--service-data", "D2FC4002C40903BF13"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "bthome");
    assert_eq!(v["temperature_c"], 25.0);
    assert_eq!(v["humidity_pct"], 50.55);
    assert!(
        v.get("illuminance_lux").is_none(),
        "absent fields are left out: {v}"
    );
    let out = Command::new(BIN)
        .args(["decode", "ble", "--service-data", "D2FC40ZZ"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hex"));
}

#[test]
fn ble_scan_without_an_adapter_says_so_and_fails() {
    let out = Command::new(BIN)
        .args(["ble", "scan", "--seconds", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Bluetooth adapter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
