//! The local HTTP API of a real `coldgate run` process: every endpoint, the
//! manifest commands' validation, the bearer token on a non-loopback bind,
//! and a port that cannot be bound.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use coldgate_tests::{
    free_port, http_get, http_post, start_gateway, wait_for_port, wait_until, Proc, TestConfig,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const SSCC: &str = "106141412345678908";
const GTIN: &str = "09520123456788";

struct Running {
    proc: Proc,
    base: String,
    log: PathBuf,
    db: PathBuf,
}

/// A gateway with two simulated sensors whose rear zone fails early (an
/// excursion within a second), MQTT off (events stay in the outbox).
fn start(dir: &Path) -> Running {
    let mut cfg = TestConfig::new(dir);
    cfg.sensors = 2;
    cfg.failure = r#"{ zone = "rear", after = "15m", lasts = "20m", every = "60m" }"#;
    let port = free_port();
    cfg.http_port = Some(port);
    let path = cfg.write();
    let log = dir.join("gateway.log");
    let proc = start_gateway(BIN, &path, &log);
    wait_for_port(port, Duration::from_secs(20));
    Running {
        proc,
        base: format!("http://127.0.0.1:{port}"),
        log,
        db: cfg.db(),
    }
}

fn load_body(sscc: &str, zone: &str, profile: Option<&str>, lot: &str) -> String {
    let mut v = serde_json::json!({
        "sscc": sscc, "zone": zone, "loaded_at": "2020-01-01T00:00:00Z",
        "items": [{"gtin": GTIN, "lot": lot, "expiry": "2030-12-31", "serials": ["S1"]}],
    });
    if let Some(p) = profile {
        v["profile"] = Value::from(p);
    }
    v.to_string()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[test]
fn every_endpoint_answers_from_a_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path());
    let b = gw.base.clone();
    let get = |path: &str| http_get(&format!("{b}{path}"), None);

    let h = get("/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let page = get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.body.contains("id=\"sensors\""));

    // A pallet first, so the coming excursion names it.
    let loaded = http_post(
        &format!("{b}/api/manifest/load"),
        &load_body(SSCC, "rear", None, "LOT-A"),
        None,
    );
    assert_eq!(loaded.status, 200, "{}", loaded.body);
    assert_eq!(loaded.json()["ok"], true);
    // Loaded in 2020: accepted, with the warning in the HTTP answer.
    assert_eq!(
        loaded.json()["warnings"][0]["reason"],
        "loaded_at_past",
        "{}",
        loaded.body
    );

    // Sensors: last values from memory, fresh.
    let sensors = wait_until(Duration::from_secs(20), "both sensors with values", || {
        let v = get("/api/sensors").json();
        let all = v["sensors"].as_array()?.clone();
        (all.len() == 2
            && all
                .iter()
                .all(|s| s["values"]["temperature"]["value"].is_f64()))
        .then_some(all)
    });
    for s in &sensors {
        assert_eq!(s["zone"], "rear");
        assert_eq!(s["kind"], "sim");
        assert_eq!(s["state"], "ok", "{s}");
        assert!(s["values"]["humidity"]["value"].is_f64(), "{s}");
        assert!(s["age_s"].as_i64().is_some_and(|a| a < 5), "{s}");
        assert!(s["ble"].is_null() && s["modbus"].is_null());
    }

    // The excursion, found by kind, phase, pallet and lot.
    let found = wait_until(
        Duration::from_secs(30),
        "an excursion naming the pallet",
        || {
            let v = get(&format!(
                "/api/events?kind=excursion&phase=started&sscc={SSCC}"
            ))
            .json();
            let e = v["events"].as_array()?.first()?.clone();
            Some(e)
        },
    );
    assert_eq!(found["topic"], "events/excursion");
    assert_eq!(found["payload"]["affected"][0]["sscc"], SSCC);
    let by_lot = get("/api/events?lot=LOT-A&kind=excursion").json();
    assert!(!by_lot["events"].as_array().unwrap().is_empty());
    let none = get("/api/events?lot=NO-SUCH-LOT").json();
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
    let limited = get("/api/events?limit=1").json();
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    let bad = get("/api/events?from=yesterday");
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"].as_str().unwrap().starts_with("from:"),
        "{}",
        bad.body
    );
    let unknown = get("/api/events?colour=red");
    assert_eq!(unknown.status, 400, "{}", unknown.body);

    // Status.
    let st = get("/api/status").json();
    assert_eq!(st["gateway_id"], "test-gw");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["uplink"]["enabled"], false);
    assert!(
        st["outbox"]["depth"].as_u64().unwrap() >= 1,
        "MQTT is off: {st}"
    );
    assert!(st["outbox"]["oldest_at"].is_string());
    assert!(st["storage"]["readings"].as_u64().unwrap() > 0);
    assert!(st["storage"]["file_bytes"].as_u64().unwrap() > 0);
    assert_eq!(st["sensors"]["ok"], 2);
    // The kernel's NTP state, whatever this machine's is.
    let clock = st["clock_state"].as_str().unwrap_or("missing");
    assert!(
        ["synchronised", "unsynchronised", "unknown"].contains(&clock),
        "clock_state {clock}"
    );
    assert_eq!(
        st["clock_synchronised"],
        match clock {
            "synchronised" => serde_json::json!(true),
            "unsynchronised" => serde_json::json!(false),
            _ => serde_json::Value::Null,
        }
    );

    // Readings, downsampled.
    let raw = wait_until(Duration::from_secs(20), "more than 40 readings", || {
        let v = get("/api/sensors/rear-0/readings?quantity=temperature&points=20").json();
        let s = v["series"].as_array()?.first()?.clone();
        (s["raw_count"].as_u64()? > 40).then_some(s)
    });
    assert_eq!(raw["quantity"], "temperature");
    assert_eq!(raw["unit"], "CEL");
    let pts = raw["points"].as_array().unwrap();
    assert!(!pts.is_empty() && pts.len() <= 20, "{} points", pts.len());
    assert!(pts.windows(2).all(|w| w[0][0].as_i64() <= w[1][0].as_i64()));
    let both = get("/api/sensors/rear-0/readings").json();
    assert_eq!(
        both["series"].as_array().unwrap().len(),
        2,
        "temperature and humidity"
    );
    assert_eq!(get("/api/sensors/nope/readings").status, 404);
    assert_eq!(get("/api/sensors/rear-0/readings?points=0").status, 400);
    assert_eq!(
        get("/api/sensors/rear-0/readings?from=2000&to=1000").status,
        400
    );

    // Manifest, unload, lot ledger.
    let m = get("/api/manifest").json();
    assert_eq!(m["pallets"][0]["sscc"], SSCC);
    assert_eq!(m["pallets"][0]["profile"], "refrigerated");
    let lot = get("/api/lots/LOT-A").json();
    assert_eq!(lot["lots"][0]["gtin"], GTIN);
    assert!(lot["lots"][0]["pallets"]
        .as_array()
        .unwrap()
        .contains(&Value::from(SSCC)));
    assert!(
        !lot["lots"][0]["excursions"].as_array().unwrap().is_empty(),
        "{lot}"
    );
    assert_eq!(get(&format!("/api/lots/LOT-A?gtin={GTIN}")).status, 200);
    assert_eq!(get("/api/lots/LOT-A?gtin=00000000000000").status, 404);
    assert_eq!(get("/api/lots/NO-SUCH-LOT").status, 404);
    let un = http_post(
        &format!("{b}/api/manifest/unload"),
        &format!(r#"{{"sscc":"{SSCC}"}}"#),
        None,
    );
    assert_eq!(un.status, 200, "{}", un.body);
    assert_eq!(
        get("/api/manifest").json()["pallets"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let all = get("/api/manifest?all=true").json();
    assert!(all["pallets"][0]["unloaded_at"].is_string(), "{all}");
    let again = http_post(
        &format!("{b}/api/manifest/unload"),
        &format!(r#"{{"sscc":"{SSCC}"}}"#),
        None,
    );
    assert_eq!(again.status, 422);
    assert!(again.body.contains("not on board"), "{}", again.body);

    // The pallet's trip report (docs/report.md), from the page's link.
    let report = get(&format!("/report?sscc={SSCC}"));
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(report.content_type.starts_with("text/html"));
    assert!(
        report.body.contains(SSCC) && report.body.contains("class=\"verdict"),
        "{}",
        report.body
    );
    assert!(
        !report.body.contains("Within profile"),
        "it went through an excursion"
    );
    let lot_report = get("/report?lot=LOT-A");
    assert_eq!(lot_report.status, 200, "{}", lot_report.body);
    assert_eq!(get("/report?sscc=106141412345678915").status, 404);
    assert_eq!(get("/report").status, 400);

    // The zone chart: data, limits, the excursion marked.
    let svg = get("/api/zones/rear/chart.svg?from=7d");
    assert_eq!(svg.status, 200, "{}", svg.body);
    assert_eq!(svg.content_type, "image/svg+xml");
    let count = svg
        .body
        .split("data-point-count=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("data-point-count");
    assert!(count > 0);
    assert!(svg.body.contains("cg-limits"), "limits band");
    assert!(svg.body.contains("cg-mark-excursion"), "excursion marked");
    assert_eq!(svg.body.matches("class=\"cg-series\"").count(), 2);
    assert_eq!(get("/api/zones/hold/chart.svg").status, 404);
    assert_eq!(get("/api/zones/rear/chart.svg?width=5").status, 400);

    // Metrics.
    let m = get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.content_type.starts_with("text/plain; version=0.0.4"));
    assert!(metric(&m.body, "coldgate_readings_ingested_total") > 0.0);
    assert!(metric(&m.body, "coldgate_readings_received_total") > 0.0);
    assert!(metric(&m.body, "coldgate_events_raised_total") >= 1.0);
    assert!(metric(&m.body, "coldgate_outbox_depth") >= 1.0);
    assert_eq!(metric(&m.body, "coldgate_publish_errors_total"), 0.0);
    assert_eq!(
        metric(&m.body, "coldgate_ble_advertisements_seen_total"),
        0.0
    );
    assert_eq!(
        metric(&m.body, "coldgate_ble_advertisements_rejected_total"),
        0.0
    );
    assert!(m
        .body
        .contains("# TYPE coldgate_modbus_errors_total counter"));
    assert!(m
        .body
        .contains("coldgate_sensor_value{sensor=\"rear-0\",quantity=\"temperature\"}"));
    assert_eq!(get("/api/nothing").status, 404);

    // The technician's commands are in the audit trail.
    assert!(gw.proc.terminate(Duration::from_secs(20)).success());
    let out = Command::new(BIN)
        .args(["audit", "show", "--db"])
        .arg(&gw.db)
        .output()
        .unwrap();
    let trail = String::from_utf8_lossy(&out.stdout);
    // Each command exactly once (ingest records it in the commit that
    // applies it), with who sent it: the load, the unload and the refused
    // second unload.
    let commands: Vec<(String, String, bool)> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("manifest"))
        })
        .map(|e| {
            assert_eq!(e["actor"], "http:127.0.0.1", "{e}");
            assert_eq!(e["details"]["sscc"], SSCC, "{e}");
            assert!(e["details"]["request_id"].is_string(), "{e}");
            (
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["details"]["action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["details"]["accepted"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    let expected = [("load", true), ("unload", true), ("unload", false)]
        .map(|(a, ok)| ("manifest_command".to_string(), a.to_string(), ok));
    assert_eq!(commands, expected, "{trail}");
    let _ = &gw.log;
}

#[test]
fn manifest_commands_are_refused_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let post = |body: &str| http_post(&format!("{}/api/manifest/load", gw.base), body, None);
    let errors = |a: &coldgate_tests::HttpAnswer| -> Vec<String> {
        a.json()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    };

    let bad_digit = post(&load_body("106141412345678909", "rear", None, "L1"));
    assert_eq!(bad_digit.status, 422, "{}", bad_digit.body);
    let e = errors(&bad_digit);
    assert!(
        e.len() == 1 && e[0].starts_with("sscc:") && e[0].contains("check digit"),
        "{e:?}"
    );

    let zone = post(&load_body(SSCC, "hold", None, "L1"));
    assert_eq!(zone.status, 422);
    assert_eq!(errors(&zone), vec!["zone: unknown zone `hold`".to_string()]);

    let profile = post(&load_body(SSCC, "rear", Some("deep-frozen"), "L1"));
    assert_eq!(profile.status, 422);
    assert_eq!(
        errors(&profile),
        vec!["profile: unknown profile `deep-frozen`".to_string()]
    );

    let all = post(&load_body(
        "106141412345678909",
        "hold",
        Some("deep-frozen"),
        "L1",
    ));
    assert_eq!(errors(&all).len(), 3, "{:?}", errors(&all));

    let bad_gtin = post(
        r#"{"sscc":"106141412345678908","zone":"rear","items":[{"gtin":"09520123456789","lot":"L"}]}"#,
    );
    assert_eq!(bad_gtin.status, 422);
    assert!(
        errors(&bad_gtin)[0].starts_with("items[0].gtin:"),
        "{:?}",
        errors(&bad_gtin)
    );

    let not_json = post("{sscc");
    assert_eq!(not_json.status, 400);
    assert!(errors(&not_json)[0].contains("not JSON"));
    let unknown_field =
        post(r#"{"sscc":"106141412345678908","zone":"rear","items":[],"colour":"red"}"#);
    assert_eq!(unknown_field.status, 400);
    assert!(
        errors(&unknown_field)[0].contains("colour"),
        "{:?}",
        errors(&unknown_field)
    );
    let bad_time = post(
        r#"{"sscc":"106141412345678908","zone":"rear","loaded_at":"soon","items":[{"gtin":"09520123456788","lot":"L"}]}"#,
    );
    assert_eq!(bad_time.status, 400);
    assert!(
        errors(&bad_time)[0].contains("loaded_at"),
        "{:?}",
        errors(&bad_time)
    );

    // Nothing was loaded by any of them.
    let m = http_get(&format!("{}/api/manifest", gw.base), None).json();
    assert_eq!(m["pallets"].as_array().unwrap().len(), 0, "{m}");
}

fn config_on(dir: &Path, listen: &str, token_file: Option<&Path>) -> PathBuf {
    let mut cfg = TestConfig::new(dir);
    cfg.sensors = 1;
    let path = cfg.write();
    let mut text = std::fs::read_to_string(&path).unwrap();
    let mut http = format!("[http]\nlisten = \"{listen}\"\n");
    if let Some(t) = token_file {
        http.push_str(&format!("token_file = \"{}\"\n", t.display()));
    }
    let start = text.find("[http]\n").unwrap();
    let end = start + text[start..].find("[[profiles]]").unwrap();
    text.replace_range(start..end, &http);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_non_loopback_bind_needs_a_token_and_requests_without_it_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");

    // Without a token file: refused by check-config and at start, with the key.
    let open = config_on(dir.path(), &listen, None);
    for cmd in ["check-config", "run"] {
        let out = Command::new(BIN)
            .args([cmd, "--config"])
            .arg(&open)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd}: {err}");
        assert!(
            err.contains("http.token_file") && err.contains("not a loopback address"),
            "{cmd}: {err}"
        );
    }

    // With one: 401 without it or with a wrong one, 200 with it.
    let token = "s3cret-token-0123456789";
    let token_file = dir.path().join("http.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let path = config_on(dir.path(), &listen, Some(&token_file));
    let _gw = start_gateway(BIN, &path, &dir.path().join("gateway.log"));
    wait_for_port(port, Duration::from_secs(20));
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    for p in [
        "/api/status",
        "/api/sensors",
        "/metrics",
        "/api/manifest",
        "/api/zones/rear/chart.svg",
    ] {
        let a = http_get(&url(p), None);
        assert_eq!(a.status, 401, "{p}: {}", a.body);
        assert!(a.json()["error"].as_str().unwrap().contains("Bearer"));
        assert_eq!(
            http_get(&url(p), Some("wrong-token-0123456789")).status,
            401,
            "{p}"
        );
        assert_eq!(http_get(&url(p), Some(token)).status, 200, "{p}");
    }
    let post = http_post(
        &url("/api/manifest/load"),
        &load_body(SSCC, "rear", None, "L"),
        None,
    );
    assert_eq!(post.status, 401);
    let post = http_post(
        &url("/api/manifest/load"),
        &load_body(SSCC, "rear", None, "L"),
        Some(token),
    );
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(
        http_get(&url("/healthz"), None).status,
        200,
        "healthz stays open"
    );
    assert_eq!(
        http_get(&url("/"), None).status,
        200,
        "the page holds no data"
    );
}

#[test]
fn a_port_that_cannot_be_bound_stops_the_start_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = config_on(dir.path(), &format!("127.0.0.1:{port}"), None);
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("http.listen 127.0.0.1:{port}: cannot listen")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
