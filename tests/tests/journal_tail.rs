//! Issue 20 item 4: with the reading journal on, a reading is durable once
//! its journal record is synced and reaches redb only at the next fold. The
//! running gateway's HTTP API must see it before that fold, and after a
//! SIGKILL before any fold `coldgate export` must see it on the files.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use coldgate::event::rfc3339;
use coldgate::store::Store;
use coldgate_tests::{free_port, http_get, start_gateway, wait_for_port, wait_until, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

#[test]
fn a_journalled_reading_is_seen_over_http_before_its_fold_and_by_export_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.journal = true;
    // Only the run's first commit folds: no timed fold, no event, no
    // telemetry to force one.
    cfg.fold_interval = Some("1h");
    cfg.failure = "";
    cfg.telemetry = None;
    cfg.sensors = 2;
    let port = free_port();
    cfg.http_port = Some(port);
    let config = cfg.write();
    let mut gw = start_gateway(BIN, &config, &dir.path().join("run.log"));
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    wait_for_port(port, Duration::from_secs(30));

    // The raw readings of rear-0's temperature (fewer than `points`, so the
    // API hands them on as they are).
    let seen: Vec<(i64, f64)> =
        wait_until(Duration::from_secs(30), "40 readings over HTTP", || {
            let a = http_get(
                &url("/api/sensors/rear-0/readings?quantity=temperature&points=10000"),
                None,
            );
            if a.status != 200 {
                return None;
            }
            let v = a.json();
            let pts = v["series"].as_array()?.first()?["points"]
                .as_array()?
                .clone();
            (pts.len() >= 40).then(|| {
                pts.iter()
                    .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                    .collect()
            })
        });
    let counted = http_get(&url("/api/status"), None).json()["storage"]["readings"]
        .as_u64()
        .unwrap();
    gw.sigkill();

    // What redb alone holds: the first fold's readings.
    let store = Store::open_existing(&cfg.db()).unwrap();
    let mut folded = HashSet::new();
    store
        .for_each_reading(Some("rear-0"), i64::MIN, i64::MAX, |r| {
            folded.insert(r.at_ms);
            true
        })
        .unwrap();
    let in_redb = store.reading_count().unwrap();
    drop(store);
    let unfolded = seen.iter().filter(|(t, _)| !folded.contains(t)).count();
    assert!(
        unfolded > 0,
        "all {} readings seen over HTTP were folded already: the test proved nothing",
        seen.len()
    );
    assert!(
        counted > in_redb,
        "/api/status counted {counted} readings, redb holds {in_redb}"
    );

    let out = Command::new(BIN)
        .args(["export", "--format", "jsonl", "--sensor", "rear-0", "--db"])
        .arg(cfg.db())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut exported: HashMap<String, f64> = HashMap::new();
    let mut seqs = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        seqs.push(v["seq"].as_u64().unwrap());
        if v["quantity"] == "temperature" {
            let time = v["time"].as_str().unwrap().to_string();
            exported.insert(time, v["value"].as_f64().unwrap());
        }
    }
    for (t, value) in &seen {
        assert_eq!(
            exported.get(&rfc3339(*t)),
            Some(value),
            "a reading seen over HTTP at {t} is not in the export ({} exported, {} folded)",
            exported.len(),
            folded.len()
        );
    }
    // Numbered as a fold will number them: gap-free from 1, each once.
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}
