//! `coldgate audit verify` against tampering with the file a real run
//! wrote: a flipped byte in a reading, the newest entries removed with the
//! recorded head rewritten, the whole trail wiped. Each test first checks
//! that the untouched file verifies, so a failure afterwards is the
//! tampering's doing.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use coldgate_tests::{committed_readings, free_port, start_gateway, wait_until, TestConfig};
use redb::{ReadableTable, TableDefinition};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

const READINGS: TableDefinition<(i64, u32, u64), (u8, f64)> = TableDefinition::new("readings");
const SENSORS: TableDefinition<&str, u32> = TableDefinition::new("sensors");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// No excursion within a test's run.
const NO_FAILURE: &str = r#"{ zone = "rear", after = "1000h", lasts = "1m", every = "2000h" }"#;

/// Runs the gateway with the simulator until it has committed some readings,
/// then stops it: the stop's audit entry checkpoints them.
fn run_and_stop(dir: &Path) -> TestConfig {
    let mut cfg = TestConfig::new(dir);
    cfg.sensors = 2;
    cfg.failure = NO_FAILURE;
    let http_port = free_port();
    cfg.http_port = Some(http_port);
    let config = cfg.write();
    let log = dir.join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);
    wait_until(Duration::from_secs(30), "readings committed", || {
        (committed_readings(http_port) >= 20).then_some(())
    });
    assert!(gw.terminate(Duration::from_secs(20)).success());
    cfg
}

fn coldgate(args: &[&str], db: &Path) -> Output {
    Command::new(BIN)
        .args(["audit", args[0], "--db"])
        .arg(db)
        .args(&args[1..])
        .env("RUST_LOG", "off")
        .output()
        .expect("coldgate runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn show(db: &Path) -> Vec<serde_json::Value> {
    let out = coldgate(&["show"], db);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The untouched file verifies, readings included; returns the head.
fn verifies_untouched(db: &Path) -> String {
    let entries = show(db);
    let anchor = entries.last().unwrap()["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    let out = coldgate(&["verify", "--anchor", &anchor], db);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&format!("head {anchor}")), "{said}");
    assert!(said.contains("readings OK"), "{said}");
    assert!(
        !said.contains(" 0 readings match"),
        "nothing was covered: {said}"
    );
    anchor
}

#[test]
fn a_byte_flipped_in_a_stored_reading_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = run_and_stop(dir.path());
    verifies_untouched(&cfg.db());
    // The newest reading the stop's checkpoint covers, of its first sensor.
    let entries = show(&cfg.db());
    let through = entries.last().unwrap()["readings"]["through"]
        .as_object()
        .unwrap()
        .clone();
    let (sensor, seq) = through.iter().next().unwrap();
    let seq = seq.as_u64().unwrap();
    let (before, after) = {
        let db = redb::Database::open(cfg.db()).unwrap();
        let txn = db.begin_write().unwrap();
        let values = {
            let idx = txn
                .open_table(SENSORS)
                .unwrap()
                .get(sensor.as_str())
                .unwrap()
                .unwrap()
                .value();
            let mut t = txn.open_table(READINGS).unwrap();
            let (key, (code, value)) = t
                .iter()
                .unwrap()
                .map(|r| r.unwrap())
                .map(|(k, v)| (k.value(), v.value()))
                .find(|(k, _)| k.1 == idx && k.2 == seq)
                .unwrap();
            // One byte of the f64 (the exponent's low bit): 8.44 -> 16.88.
            let mut bytes = value.to_le_bytes();
            bytes[6] ^= 0x10;
            let flipped = f64::from_le_bytes(bytes);
            t.insert(key, (code, flipped)).unwrap();
            (value, flipped)
        };
        txn.commit().unwrap();
        values
    };
    assert_ne!(before, after);
    let out = coldgate(&["verify"], &cfg.db());
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readings BROKEN"), "{err}");
    assert!(
        err.contains(&format!("reading sensor {sensor} seq {seq} at ")),
        "the flipped reading is not named: {err}"
    );
    assert!(err.contains(&format!("value now {after}")), "{err}");
}

/// Removes audit entries after `keep` and rewrites the recorded head to
/// the last one kept (or removes it): a consistent, shorter trail.
fn cut_trail(db: &Path, keep: u64) {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut audit = txn.open_table(AUDIT).unwrap();
        let head: Option<Vec<u8>> = if keep == 0 {
            None
        } else {
            let v: serde_json::Value =
                serde_json::from_slice(audit.get(keep).unwrap().unwrap().value()).unwrap();
            let hash = v["hash"].as_str().unwrap();
            let mut bytes = keep.to_be_bytes().to_vec();
            bytes.extend((0..32).map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap()));
            Some(bytes)
        };
        audit.retain(|seq, _| seq <= keep).unwrap();
        let mut state = txn.open_table(STATE).unwrap();
        match head {
            Some(h) => {
                state.insert("audit_head", h.as_slice()).unwrap();
            }
            None => {
                state.remove("audit_head").unwrap();
            }
        }
    }
    txn.commit().unwrap();
}

#[test]
fn newest_entries_removed_with_the_head_rewritten_fail_verify_against_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = run_and_stop(dir.path());
    let anchor = verifies_untouched(&cfg.db());
    let n = show(&cfg.db()).len() as u64;
    assert!(n >= 3, "config_loaded, gateway_started, gateway_stopped");
    cut_trail(&cfg.db(), n - 2);

    // The file alone cannot show it, and verify says so, checking the rest:
    // the readings the removed checkpoints covered are now uncovered.
    let out = coldgate(&["verify"], &cfg.db());
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cannot be detected"), "{said}");
    assert!(
        said.contains(&format!("audit trail OK ({} entries", n - 2)),
        "{said}"
    );
    assert!(said.contains("not covered yet"), "{said}");

    let out = coldgate(&["verify", "--anchor", &anchor], &cfg.db());
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does NOT reach the anchor"), "{err}");
    assert!(
        err.contains(&format!(
            "ends at entry {} but the anchor is entry {n}",
            n - 2
        )),
        "{err}"
    );
}

#[test]
fn a_wiped_trail_fails_verify_against_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = run_and_stop(dir.path());
    let anchor = verifies_untouched(&cfg.db());
    cut_trail(&cfg.db(), 0);

    let out = coldgate(&["verify"], &cfg.db());
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cannot be detected"), "{said}");
    assert!(said.contains("the trail has none"), "{said}");

    let out = coldgate(&["verify", "--anchor", &anchor], &cfg.db());
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("whole trail was wiped"), "{err}");
}

#[test]
fn a_malformed_anchor_is_refused_naming_the_form() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.redb");
    let out = coldgate(&["verify", "--anchor", "12"], &db);
    assert!(!out.status.success());
    assert!(text(&out).contains("SEQ:HASH"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_events_and_the_status_publish_heads_the_trail_on_the_card_has() {
    let dir = tempfile::tempdir().unwrap();
    let port = coldgate_tests::free_port();
    let _broker = coldgate_tests::start_broker(BIN, port);
    let mut sub = coldgate_tests::Subscriber::connect(port, "coldgate/v1/test-gw/#").await;
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 1;
    cfg.failure = NO_FAILURE;
    cfg.mqtt_port = Some(port);
    let config = cfg.write();
    // A status every 200 ms: the one at connect may precede the first entry.
    let text_of = std::fs::read_to_string(&config).unwrap();
    assert!(text_of.contains("[mqtt]\n"));
    std::fs::write(
        &config,
        text_of.replace("[mqtt]\n", "[mqtt]\nstatus_interval = \"200ms\"\n"),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);
    let (mut heads, mut status_heads) = (Vec::new(), Vec::new());
    let collect = |heads: &mut Vec<(u64, serde_json::Value)>,
                   status_heads: &mut Vec<String>,
                   topic: String,
                   v: serde_json::Value| {
        if topic.ends_with("/events/audit") {
            heads.push((v["audit_seq"].as_u64().unwrap(), v["audit_head"].clone()));
        } else if topic.ends_with("/status") && v["audit_head"].is_string() {
            status_heads.push(v["audit_head"].as_str().unwrap().to_string());
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match sub.next(left).await {
            Some((topic, v)) => {
                collect(&mut heads, &mut status_heads, topic, v);
                if heads.len() >= 2 && !status_heads.is_empty() {
                    break;
                }
            }
            None => break,
        }
    }
    // A clean stop publishes a last status: it carries the head too.
    assert!(gw.terminate(Duration::from_secs(20)).success());
    while let Some((topic, v)) = sub.next(Duration::from_secs(2)).await {
        collect(&mut heads, &mut status_heads, topic, v);
    }
    assert!(heads.len() >= 2, "{heads:?}");
    assert!(!status_heads.is_empty(), "no status carried a head");
    let anchors: Vec<String> = show(&cfg.db())
        .iter()
        .map(|e| e["anchor"].as_str().unwrap().to_string())
        .collect();
    // Each event carries the head its entry made, announced before the
    // commit: it must be exactly what the file holds.
    for (seq, head) in &heads {
        assert_eq!(
            head.as_str(),
            Some(anchors[*seq as usize - 1].as_str()),
            "audit event {seq}"
        );
    }
    for head in &status_heads {
        assert!(
            anchors.contains(head),
            "status head {head} is not in {anchors:?}"
        );
    }
    // And each is an anchor the untouched file reaches.
    let out = coldgate(&["verify", "--anchor", &status_heads[0]], &cfg.db());
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_clean_stop_checkpoints_every_reading_still_waiting_for_the_batch_timer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 2;
    cfg.failure = NO_FAILURE;
    // Only the start's entries and the stop commit: every reading after the
    // start waits in memory until SIGTERM.
    cfg.batch_interval = "1h";
    let config = cfg.write();
    let log = dir.path().join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);
    wait_until(Duration::from_secs(20), "the start committed", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("Committed.")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let entries = show(&cfg.db());
    let stop = entries.last().unwrap();
    assert_eq!(stop["kind"], "gateway_stopped");
    assert!(
        stop["readings"]["readings"].as_u64().unwrap() > 0,
        "the test proves nothing: no reading was waiting at the stop: {stop}"
    );
    let out = coldgate(&["verify"], &cfg.db());
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("not covered"), "{said}");
}
