//! The technician's commands against a real `coldgate run`: tables, `--json`,
//! manifest load/show/unload, `scan` from piped stdin, `lot`, and the one
//! line a technician gets when the daemon is not running.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use coldgate_tests::{free_port, start_gateway, wait_for_port, wait_until, TestConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn coldgate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("coldgate starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_daemon_that_is_not_running_is_one_line_and_exit_69() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["status"],
        vec!["sensors", "--json"],
        vec!["events", "--since", "1h"],
        vec!["manifest", "show"],
        vec!["lot", "L1"],
    ] {
        let mut a = args.clone();
        a.extend(["--url", &url]);
        let out = coldgate(&a, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{args:?}: {err}");
        assert_eq!(
            err,
            format!("coldgate is not running at {url} (connection refused); start it with systemctl start coldgate\n"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    // The URL also comes from the configuration's [http].
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("[http]\nlisten = \"0.0.0.0:{port}\"\n")).unwrap();
    let out = coldgate(&["status", "--config", config.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(69));
    assert!(text(&out.stderr).starts_with(&format!("coldgate is not running at {url} ")));
}

fn start(dir: &Path) -> (coldgate_tests::Proc, String) {
    let mut cfg = TestConfig::new(dir);
    cfg.sensors = 2;
    cfg.failure = r#"{ zone = "rear", after = "1m", lasts = "20m", every = "60m" }"#;
    let port = free_port();
    cfg.http_port = Some(port);
    let path = cfg.write();
    let gw = start_gateway(BIN, &path, &dir.join("gateway.log"));
    wait_for_port(port, Duration::from_secs(20));
    (gw, format!("http://127.0.0.1:{port}"))
}

#[test]
fn status_sensors_events_manifest_and_lot_print_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, url) = start(dir.path());
    let u = ["--url", url.as_str()];
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(u);
        coldgate(&a, None)
    };

    let out = run(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("test-gw") && s.contains("uplink") && s.contains("disabled"),
        "{s}"
    );
    assert!(s.contains("outbox") && s.contains("sensors"), "{s}");

    let rows = wait_until(Duration::from_secs(20), "both sensors in the table", || {
        let s = text(&run(&["sensors"]).stdout);
        let rows: Vec<String> = s
            .lines()
            .filter(|l| l.starts_with("rear-"))
            .map(str::to_string)
            .collect();
        (rows.len() == 2
            && rows
                .iter()
                .all(|r| r.contains(" ok ") && !r.contains("never")))
        .then_some(s)
    });
    assert!(rows.starts_with("SENSOR"), "{rows}");
    let json: Value = serde_json::from_slice(&run(&["sensors", "--json"]).stdout).unwrap();
    assert_eq!(json["sensors"].as_array().unwrap().len(), 2);

    let table = wait_until(
        Duration::from_secs(30),
        "an excursion in the events",
        || {
            let s = text(&run(&["events", "--since", "3650d", "--kind", "excursion"]).stdout);
            s.contains("excursion").then_some(s)
        },
    );
    assert!(table.starts_with("SEQ"), "{table}");
    assert!(table.contains("temperature high"), "{table}");
    let json: Value = serde_json::from_slice(
        &run(&["events", "--since", "3650d", "--json", "--limit", "1"]).stdout,
    )
    .unwrap();
    assert_eq!(json["events"].as_array().unwrap().len(), 1);

    // manifest load FILE / show / unload, and a refusal listing its problems.
    let pallet = dir.path().join("pallet.json");
    std::fs::write(
        &pallet,
        r#"{"sscc":"106141412345678908","zone":"rear","loaded_at":"2020-01-01T00:00:00Z",
            "items":[{"gtin":"09520123456788","lot":"CLI-LOT","expiry":"2030-12-31"}]}"#,
    )
    .unwrap();
    let out = run(&["manifest", "load", pallet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("loaded pallet 106141412345678908"));
    // Loaded in 2020: accepted, and the operator is told at once.
    assert!(
        text(&out.stderr).contains("warning (loaded_at_past): loaded_at 2020-01-01"),
        "{}",
        text(&out.stderr)
    );
    let shown = text(&run(&["manifest", "show"]).stdout);
    assert!(
        shown.contains("106141412345678908") && shown.contains("09520123456788/CLI-LOT"),
        "{shown}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"sscc":"106141412345678909","zone":"hold","items":[{"gtin":"09520123456788","lot":"X"}]}"#,
    )
    .unwrap();
    let out = run(&["manifest", "load", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("refused")
            && err.contains("sscc:")
            && err.contains("zone: unknown zone `hold`"),
        "{err}"
    );

    let lot = run(&["lot", "CLI-LOT"]);
    assert!(lot.status.success(), "{}", text(&lot.stderr));
    assert!(
        text(&lot.stdout).contains("lot CLI-LOT of GTIN 09520123456788"),
        "{}",
        text(&lot.stdout)
    );
    // --json is the documented shape (docs/http.md, "Lot ledger").
    let lot: Value = serde_json::from_slice(&run(&["lot", "CLI-LOT", "--json"]).stdout).unwrap();
    let keys: Vec<&String> = lot["lots"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "excursions",
            "exhausted",
            "expiry",
            "gtin",
            "lot",
            "mkt",
            "out_of_range",
            "pallets"
        ],
        "{lot}"
    );
    let missing = run(&["lot", "NO-SUCH"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("never been on board"));

    let out = run(&["manifest", "unload", "106141412345678908"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&run(&["manifest", "show"]).stdout).contains("no pallet on board"));
}

#[test]
fn scan_loads_pallets_from_piped_labels_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, url) = start(dir.path());
    let input = [
        "rear",                                                         // 1: a zone before any pallet
        "(00)106141412345678909",                                       // 2: bad check digit
        "(00)106141412345678908(01)09520123456788(10)SCAN-A(17)301231", // 3: pallet + item
        "(01)09520123456795(10)SCAN-B(21)S1",                           // 4: a second item
        "hold",                                                         // 5: unknown zone: refused
        "rear",                                                         // 6: loaded
        "",                                                             // 7: blank, skipped
        "\u{1d}00106141412345678915\u{1d}0109520123456788\u{1d}10SCAN-C", // 8: raw scanner output
        "front",                                                        // 9: unknown zone
        "rear",                                                         // 10: loaded
    ]
    .join("\n");
    let out = coldgate(&["scan", "--url", &url], Some(&format!("{input}\n")));
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines make the exit code 1\n{so}\n{se}"
    );
    assert!(
        so.contains("loaded pallet 106141412345678908 into zone rear"),
        "{so}\n{se}"
    );
    assert!(
        so.contains("loaded pallet 106141412345678915 into zone rear"),
        "{so}\n{se}"
    );
    assert!(
        se.contains("line 1: `rear` is not a GS1 label and no pallet waits for a zone"),
        "{se}"
    );
    assert!(
        se.contains("line 2: `(00)106141412345678909` is not a valid GS1 label"),
        "{se}"
    );
    assert!(
        se.contains("line 5: pallet 106141412345678908 refused: zone: unknown zone `hold`"),
        "{se}"
    );
    assert!(
        se.contains("line 9: pallet 106141412345678915 refused: zone: unknown zone `front`"),
        "{se}"
    );
    assert!(
        se.contains("scan: 2 pallet(s) loaded, 4 line(s) not used"),
        "{se}"
    );

    let m = coldgate(&["manifest", "show", "--json", "--url", &url], None);
    let v: Value = serde_json::from_slice(&m.stdout).unwrap();
    let pallets = v["pallets"].as_array().unwrap();
    assert_eq!(pallets.len(), 2, "{v}");
    let first = pallets
        .iter()
        .find(|p| p["sscc"] == "106141412345678908")
        .unwrap();
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{first}");
    assert_eq!(items[0]["lot"], "SCAN-A");
    assert_eq!(items[0]["expiry"], "2030-12-31");
    assert_eq!(items[1]["serials"][0], "S1");
}

/// The standard pallet label (00) SSCC (02) content GTIN (37) count (10)
/// lot (17) expiry, in the three forms a scanner may send, loads pallets;
/// re-scanning one into another zone moves it: the open stay ends, a new
/// one starts, and the audit trail holds both commands.
#[test]
fn scan_reads_pallet_labels_in_all_three_forms_and_moves_a_pallet_between_zones() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 1;
    let port = free_port();
    cfg.http_port = Some(port);
    let path = cfg.write();
    let mut toml = std::fs::read_to_string(&path).unwrap();
    toml.push_str("[[zones]]\nid = \"front\"\nprofile = \"refrigerated\"\n");
    std::fs::write(&path, toml).unwrap();
    let mut gw = start_gateway(BIN, &path, &dir.path().join("gateway.log"));
    wait_for_port(port, Duration::from_secs(20));
    let url = format!("http://127.0.0.1:{port}");

    let input = [
        "(00)106141412345678908(02)09520123456788(37)40(10)PAL-A(17)271231", // 1: bracketed
        "rear",                                                              // 2: loaded
        "]C1001061414123456789150209520123456788\u{1d}3712\u{1d}10PAL-B\u{1d}17271231", // 3: raw with GS
        "rear",                                                                         // 4: loaded
        "https://id.example.com/00/106141412345678922?02=09520123456788&37=7&10=PAL-C&17=271231", // 5: Digital Link
        "rear",                   // 6: loaded
        "(00)106141412345678908", // 7: on board in rear
        "front",                  // 8: moved
        "00106141412345678908",   // 9: raw, the same pallet again
        "front",                  // 10: already there: nothing sent
        "(00)106141412345678915", // 11
        "hold",                   // 12: unknown zone: refused, stays in rear
    ]
    .join("\n");
    let out = coldgate(&["scan", "--url", &url], Some(&format!("{input}\n")));
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    for sscc in [
        "106141412345678908",
        "106141412345678915",
        "106141412345678922",
    ] {
        assert!(
            so.contains(&format!("loaded pallet {sscc} into zone rear")),
            "{sscc}\n{so}\n{se}"
        );
    }
    assert!(
        so.contains("moved pallet 106141412345678908 from zone rear to zone front"),
        "{so}\n{se}"
    );
    assert!(
        se.contains("line 10: pallet 106141412345678908 is already on board in zone front"),
        "{se}"
    );
    assert!(
        se.contains("line 12: pallet 106141412345678915 refused: zone: unknown zone `hold`"),
        "{se}"
    );
    assert!(
        se.contains("scan: 4 pallet(s) loaded, 2 line(s) not used"),
        "{se}"
    );
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");

    let m = coldgate(
        &["manifest", "show", "--all", "--json", "--url", &url],
        None,
    );
    let v: Value = serde_json::from_slice(&m.stdout).unwrap();
    let stays = v["pallets"].as_array().unwrap();
    let of = |sscc: &str| -> Vec<&Value> { stays.iter().filter(|p| p["sscc"] == sscc).collect() };
    let moved = of("106141412345678908");
    assert_eq!(moved.len(), 2, "one stay ended, one started: {v}");
    assert_eq!(moved[0]["zone"], "rear");
    assert!(moved[0]["unloaded_at"].is_string(), "{v}");
    assert_eq!(moved[1]["zone"], "front");
    assert!(moved[1]["unloaded_at"].is_null(), "{v}");
    assert_eq!(
        moved[1]["items"], moved[0]["items"],
        "the pallet moves with its items"
    );
    assert_eq!(moved[0]["items"][0]["gtin"], "09520123456788");
    assert_eq!(moved[0]["items"][0]["lot"], "PAL-A");
    assert_eq!(moved[0]["items"][0]["expiry"], "2027-12-31");
    let kept = of("106141412345678915");
    assert_eq!(
        kept.len(),
        1,
        "a refused move leaves the pallet where it is: {v}"
    );
    assert_eq!(kept[0]["zone"], "rear");
    assert!(kept[0]["unloaded_at"].is_null());
    assert_eq!(kept[0]["items"][0]["lot"], "PAL-B");
    let dl = of("106141412345678922");
    assert_eq!(dl.len(), 1, "{v}");
    assert_eq!(dl[0]["items"][0]["lot"], "PAL-C");

    gw.terminate(Duration::from_secs(20));
    let audit = coldgate(&["audit", "show", "--db", cfg.db().to_str().unwrap()], None);
    let trail = text(&audit.stdout);
    let commands: Vec<Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "manifest_command" && e.to_string().contains("106141412345678908"))
        .collect();
    let actions: Vec<String> = commands
        .iter()
        .map(|e| {
            let s = e.to_string();
            if s.contains("unload") {
                "unload"
            } else {
                "load"
            }
            .to_string()
        })
        .collect();
    assert_eq!(actions, ["load", "unload", "load"], "{trail}");
}
