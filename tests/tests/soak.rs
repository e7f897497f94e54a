//! Soak: many simulated days through the whole path at high speed — the
//! simulated container with daily compressor failures and door openings, a
//! pallet loaded and later unloaded over MQTT, and an uplink that is cut for
//! a quarter of every day while events keep coming.
//!
//! At the end: RSS within 10 % of its value after the first simulated day,
//! the database within its size cap, every event delivered, no error logged.
//!
//! `cargo test` runs 3 simulated days. The full run is
//! `COLDGATE_SOAK_DAYS=30 cargo test --release -p coldgate-tests --test soak -- --nocapture`
//! (docs/performance.md has its result). `COLDGATE_SOAK_SECONDS_PER_DAY` sets
//! how many real seconds one simulated day takes (default 8).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use coldgate::event::{now_ms, rfc3339};
use coldgate::store::Store;
use coldgate_tests::{free_port, rss_kib, start_broker, LinkCutter, Subscriber};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const GATEWAY: &str = "soak-gw";
/// The database's size cap; small, so that trimming is part of the soak.
const MAX_SIZE: u64 = 4 << 20;

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn config(dir: &Path, mqtt_port: u16, speed: f64) -> std::path::PathBuf {
    let text = format!(
        r#"gateway_id = "{GATEWAY}"
[storage]
path = "{db}"
max_size = "{max_size}"
[ingest]
batch_interval = "500ms"
[mqtt]
port = {mqtt_port}
reconnect_min = "200ms"
reconnect_max = "2s"
status_interval = "1s"
[[profiles]]
id = "refrigerated"
limits = [
  {{ quantity = "temperature", low = 2.0, high = 8.0, delay = "10m" }},
  {{ quantity = "humidity", high = 85.0, delay = "30m" }},
]
light = {{ threshold = 10.0, hysteresis = 5.0 }}
[[zones]]
id = "front"
profile = "refrigerated"
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "front-1"
zone = "front"
kind = "sim"
quantities = ["temperature", "humidity"]
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
quantities = ["temperature", "humidity", "illuminance"]
[[sensors]]
id = "rear-2"
zone = "rear"
kind = "sim"
[sim]
speed = {speed}
reading_interval = "60s"
door_every = "8h"
door_open_for = "5m"
failures = [{{ zone = "rear", after = "6h", lasts = "90m", every = "1d" }}]
"#,
        db = dir.join("coldgate.redb").display(),
        max_size = MAX_SIZE,
    );
    let path = dir.join("coldgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

async fn command(client: &AsyncClient, payload: Value) {
    client
        .publish(
            format!("coldgate/v1/{GATEWAY}/cmd/manifest"),
            QoS::AtLeastOnce,
            false,
            payload.to_string(),
        )
        .await
        .expect("command queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_days_with_outages_keep_memory_flat_and_deliver_every_event() {
    let days = env_f64("COLDGATE_SOAK_DAYS", 3.0);
    let seconds_per_day = env_f64("COLDGATE_SOAK_SECONDS_PER_DAY", 8.0);
    assert!(
        days >= 2.0,
        "the soak compares the first simulated day with later ones"
    );
    let speed = 86_400.0 / seconds_per_day;
    let real_day = Duration::from_secs_f64(seconds_per_day);

    let dir = tempfile::tempdir().expect("temp dir");
    let broker_port = free_port();
    let _broker = start_broker(BIN, broker_port);
    let uplink = LinkCutter::start(broker_port).await;
    let mut sub = Subscriber::connect(broker_port, &format!("coldgate/v1/{GATEWAY}/#")).await;
    let (operator, mut operator_loop) = AsyncClient::new(
        MqttOptions::new("soak-operator", "127.0.0.1", broker_port),
        16,
    );
    tokio::spawn(async move {
        loop {
            if operator_loop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let log = dir.path().join("gateway.log");
    let sim_start_ms = now_ms();
    let started = Instant::now();
    let mut gateway = start_gateway_as_the_unit_does(&config(dir.path(), uplink.port, speed), &log);
    let sim_now = |at: Instant| {
        sim_start_ms + (at.duration_since(started).as_secs_f64() * speed * 1000.0) as i64
    };

    let mut seqs = BTreeSet::new();
    let mut results = Vec::new();
    let mut last_depth = None;
    let mut event_kinds = BTreeMap::new();
    let mut rss_after_day_1 = None;
    let mut rss_peak = 0;
    let (mut loaded, mut unloaded) = (false, false);
    let sscc = "106141412345678908";
    let end = started + real_day.mul_f64(days);
    while Instant::now() < end {
        let day = started.elapsed().as_secs_f64() / seconds_per_day;
        // The uplink is down from 0.30 to 0.55 of every day.
        uplink.set_up(!(0.30..0.55).contains(&day.fract()));
        if !loaded && day > 0.1 && day.fract() < 0.3 {
            loaded = true;
            command(&operator, serde_json::json!({
                "action": "load", "command_id": "soak-load", "sscc": sscc, "zone": "rear",
                "loaded_at": rfc3339(sim_now(Instant::now())),
                "items": [{"gtin": "09520123456788", "lot": "SOAK1", "expiry": "2030-12-31", "serials": ["1", "2"]}],
            })).await;
        }
        if !unloaded && day > days - 0.8 && day.fract() < 0.3 {
            unloaded = true;
            command(
                &operator,
                serde_json::json!({
                    "action": "unload", "command_id": "soak-unload", "sscc": sscc,
                    "at": rfc3339(sim_now(Instant::now())),
                }),
            )
            .await;
        }
        if rss_after_day_1.is_none() && day >= 1.0 {
            rss_after_day_1 = rss_kib(gateway.pid());
        }
        rss_peak = rss_peak.max(rss_kib(gateway.pid()).unwrap_or(0));
        while let Some((topic, v)) = sub.next(Duration::from_millis(100)).await {
            record(
                &topic,
                v,
                &mut seqs,
                &mut results,
                &mut last_depth,
                &mut event_kinds,
            );
        }
        assert!(
            gateway.child.try_wait().expect("try_wait").is_none(),
            "the gateway died; log: {}",
            log.display()
        );
    }
    uplink.set_up(true);
    let rss_end = rss_kib(gateway.pid()).expect("rss at the end");
    // Let the last outage's backlog drain: the status says when nothing waits.
    let drained_by = Instant::now() + Duration::from_secs(60);
    loop {
        let (topic, v) = sub
            .next(Duration::from_secs(5))
            .await
            .expect("messages keep coming");
        let is_status = topic.ends_with("/status");
        record(
            &topic,
            v,
            &mut seqs,
            &mut results,
            &mut last_depth,
            &mut event_kinds,
        );
        if is_status && last_depth == Some(0) {
            break;
        }
        assert!(
            Instant::now() < drained_by,
            "the outbox did not drain within 60 s"
        );
    }
    let status = gateway.terminate(Duration::from_secs(20));
    assert!(status.success(), "gateway exit: {status}");
    while let Some((topic, v)) = sub.next(Duration::from_millis(500)).await {
        record(
            &topic,
            v,
            &mut seqs,
            &mut results,
            &mut last_depth,
            &mut event_kinds,
        );
    }

    // Every event delivered: whatever is not in the outbox reached the
    // subscriber; what is left was raised after the last drained status.
    let store = Store::open_existing(&dir.path().join("coldgate.redb")).expect("database opens");
    let last = store.last_event_seq().expect("last seq");
    let waiting: BTreeSet<u64> = store
        .outbox_after(0, usize::MAX)
        .expect("outbox")
        .into_iter()
        .map(|e| e.seq)
        .collect();
    let missing: Vec<u64> = (1..=last)
        .filter(|s| !seqs.contains(s) && !waiting.contains(s))
        .collect();
    assert!(missing.is_empty(), "events never delivered: {missing:?}");
    // A received event may still wait (its PUBACK came after the last
    // commit; it is sent again, a duplicate). One never received must be
    // among the newest, raised after the drained status.
    let newest_received = seqs.iter().next_back().copied().unwrap_or(0);
    let undelivered: Vec<u64> = waiting.difference(&seqs).copied().collect();
    assert!(
        undelivered.iter().all(|s| *s > newest_received) && undelivered.len() <= 5,
        "left undelivered in the outbox after a drained status: {undelivered:?}"
    );
    let kinds: BTreeSet<&str> = results.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(
        results.iter().all(|(_, ok)| *ok),
        "manifest commands refused: {results:?}"
    );
    assert!(
        kinds.contains("soak-load") && kinds.contains("soak-unload"),
        "command results: {results:?}"
    );

    // Memory flat, database within its cap, nothing logged as an error.
    let rss_day_1 = rss_after_day_1.expect("RSS after the first simulated day");
    let db_len = std::fs::metadata(dir.path().join("coldgate.redb"))
        .expect("db")
        .len();
    let text = std::fs::read_to_string(&log).expect("log");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
    let readings = store.reading_count().expect("count");
    // How far the simulation really got: a loaded machine may lag behind.
    let newest_event_ms = store
        .events_between(i64::MIN, i64::MAX)
        .expect("events")
        .iter()
        .map(|e| e.at_ms)
        .max()
        .unwrap_or(sim_start_ms);
    let simulated_days = (newest_event_ms - sim_start_ms) as f64 / 86_400_000.0;
    let engine_state: usize = store
        .state_rows(coldgate::snapshot::LEGACY_ENGINE_STATE)
        .expect("state")
        .rows
        .iter()
        .map(|(_, _, v)| v.len())
        .sum();
    println!(
        "soak: {days} simulated days planned, newest event at day {simulated_days:.2}, in {:.1} s; {last} events ({} delivered: {event_kinds:?}), {readings} readings kept; \
         RSS after day 1 {rss_day_1} KiB, at the end {rss_end} KiB, peak {rss_peak} KiB; database {db_len} B (cap {MAX_SIZE} B), engine state {engine_state} B",
        started.elapsed().as_secs_f64(),
        seqs.len(),
    );
    assert!(
        last >= days as u64 * 2,
        "too few events for {days} days: {last}"
    );
    for kind in ["excursion", "door"] {
        assert!(
            event_kinds.contains_key(kind),
            "no {kind} events in {days} days: {event_kinds:?}"
        );
    }
    assert!(
        rss_end * 100 <= rss_day_1 * 110,
        "RSS grew from {rss_day_1} KiB after day 1 to {rss_end} KiB"
    );
    assert!(
        db_len <= MAX_SIZE,
        "database {db_len} B exceeds its cap {MAX_SIZE} B"
    );
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
}

/// `coldgate run` with the environment `systemd/coldgate.service` sets
/// (`Environment=` lines other than the log level), so the soak measures the
/// memory behaviour production has.
fn start_gateway_as_the_unit_does(config: &Path, log: &Path) -> coldgate_tests::Proc {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/coldgate.service"
    ))
    .expect("the unit file");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,rumqttd=off")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    for line in unit.lines() {
        if let Some((key, value)) = line
            .strip_prefix("Environment=")
            .and_then(|kv| kv.split_once('='))
        {
            if key != "RUST_LOG" {
                cmd.env(key, value);
            }
        }
    }
    coldgate_tests::Proc::spawn("coldgate run", cmd)
}

/// Files one message: an event's seq, a command result, a status's depth.
fn record(
    topic: &str,
    v: Value,
    seqs: &mut BTreeSet<u64>,
    results: &mut Vec<(String, bool)>,
    last_depth: &mut Option<u64>,
    kinds: &mut BTreeMap<String, u64>,
) {
    if let Some(kind) = topic.split("/events/").nth(1) {
        *kinds.entry(kind.to_string()).or_insert(0) += 1;
        let seq = v["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("event without seq on {topic}: {v}"));
        seqs.insert(seq);
    } else if topic.ends_with("/cmd/manifest/result") {
        let id = v["command_id"].as_str().unwrap_or("").to_string();
        results.push((id, v["ok"].as_bool() == Some(true)));
    } else if topic.ends_with("/status") && v["state"] == "online" {
        *last_depth = v["outbox_depth"].as_u64();
    }
}
