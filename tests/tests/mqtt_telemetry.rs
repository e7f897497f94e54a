//! Telemetry (per-sensor aggregates on `{prefix}/telemetry/{sensor_id}`)
//! and the outbox cap: telemetry never takes an event seq, and a full
//! outbox drops telemetry, never events, reporting the pressure once.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use coldgate::store::Store;
use coldgate_tests::{free_port, start_broker, start_gateway, Subscriber, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const ALL: &str = "coldgate/v1/test-gw/#";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_arrives_per_sensor_and_events_keep_their_gap_free_seq() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut cfg = TestConfig::new(dir.path());
    cfg.mqtt_port = Some(port);
    cfg.telemetry = Some("5m"); // simulated: twice a second
    let config = cfg.write();
    let mut sub = Subscriber::connect(port, ALL).await;
    let mut gw = start_gateway(BIN, &config, &dir.path().join("gw.log"));

    let mut telemetry: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut seqs = Vec::new();
    let mut status = None;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let Some((topic, v)) = sub.next(Duration::from_millis(200)).await else {
            continue;
        };
        if let Some(sensor) = topic.strip_prefix("coldgate/v1/test-gw/telemetry/") {
            telemetry.entry(sensor.to_string()).or_default().push(v);
        } else if topic.contains("/events/") {
            let seq = v["seq"].as_u64().expect("seq");
            if !seqs.contains(&seq) {
                seqs.push(seq);
            }
        } else if topic.ends_with("/status") {
            status = Some(v);
        }
    }
    assert!(gw.terminate(Duration::from_secs(20)).success());

    let sensors: Vec<&String> = telemetry.keys().collect();
    assert_eq!(
        sensors,
        ["rear-0", "rear-1", "rear-2", "rear-3"],
        "one topic per sensor"
    );
    for (sensor, messages) in &telemetry {
        assert!(
            messages.len() >= 3,
            "{sensor}: only {} messages",
            messages.len()
        );
        for m in messages {
            assert_eq!(m["schema"], "coldgate.telemetry/1", "{m}");
            assert_eq!(m["sensor_id"], sensor.as_str());
            assert!(m.get("seq").is_none(), "telemetry has no event seq: {m}");
            for q in ["temperature", "humidity"] {
                let s = &m["quantities"][q];
                let (min, mean, max) = (
                    s["min"].as_f64().unwrap(),
                    s["mean"].as_f64().unwrap(),
                    s["max"].as_f64().unwrap(),
                );
                assert!(min <= mean && mean <= max, "{m}");
                // Readings every 30 s simulated in a 5 min window.
                assert!((1..=10).contains(&s["count"].as_u64().unwrap()), "{m}");
            }
        }
    }
    assert!(seqs.len() >= 2, "events {seqs:?}");
    let k = seqs.len() as u64;
    assert_eq!(
        seqs,
        (1..=k).collect::<Vec<_>>(),
        "events gap-free beside telemetry"
    );
    let status = status.expect("a status");
    assert_eq!(status["telemetry_dropped"], 0, "{status}");
    assert_eq!(status["link"]["state"], "connected", "{status}");
}

/// Events and `gateway` events in the store, as JSON.
fn stored_events(store: &Store) -> Vec<serde_json::Value> {
    store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect()
}

fn pressure(events: &[serde_json::Value], phase: &str) -> usize {
    events
        .iter()
        .filter(|e| e["schema"] == "coldgate.gateway/1" && e["kind"] == "outbox_pressure")
        .filter(|e| e["phase"] == phase)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_telemetry_first_keeps_every_event_and_reports_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = TestConfig::new(dir.path());
    cfg.mqtt_port = Some(port);
    cfg.telemetry = Some("1m"); // simulated: 10 per sensor and second
    cfg.outbox_cap = 100;
    let config = cfg.write();

    // 1. No broker: telemetry piles up past the cap.
    let mut gw = start_gateway(BIN, &config, &dir.path().join("offline.log"));
    std::thread::sleep(Duration::from_secs(7));
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let (dropped, events) = {
        let store = Store::open_existing(&cfg.db()).unwrap();
        let dropped = store.telemetry_dropped().unwrap();
        let total = store.last_event_seq().unwrap();
        let (depth, _) = store.outbox_depth().unwrap();
        assert!(dropped > 0, "no telemetry was dropped");
        assert_eq!(depth, total, "every event is still waiting: none dropped");
        assert!(
            depth + store.telemetry_depth().unwrap() <= 100
                || store.telemetry_depth().unwrap() == 0,
            "telemetry kept the outbox under the cap"
        );
        let events = stored_events(&store);
        assert_eq!(
            pressure(&events, "started"),
            1,
            "reported once in the episode, not per drop"
        );
        assert_eq!(pressure(&events, "ended"), 0);
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
        (dropped, total)
    };

    // 2. The broker returns: the count is in the status, the outbox drains
    //    and the end of the episode is reported.
    let _broker = start_broker(BIN, port);
    let mut sub = Subscriber::connect(port, ALL).await;
    let mut gw = start_gateway(BIN, &config, &dir.path().join("online.log"));
    let mut seen = HashSet::new();
    let mut first = Vec::new();
    let mut ended = None;
    let mut status_dropped = 0;
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && (ended.is_none() || status_dropped == 0) {
        let Some((topic, v)) = sub.next(Duration::from_millis(200)).await else {
            continue;
        };
        if topic.ends_with("/status") {
            status_dropped = v["telemetry_dropped"].as_u64().unwrap_or(0);
        } else if topic.contains("/events/") {
            let seq = v["seq"].as_u64().unwrap();
            if seen.insert(seq) {
                first.push(seq);
            }
            if v["kind"] == "outbox_pressure" && v["phase"] == "ended" {
                ended = Some(v);
            }
        }
    }
    assert!(gw.terminate(Duration::from_secs(20)).success());
    assert!(
        status_dropped >= dropped,
        "status says {status_dropped}, {dropped} were dropped"
    );
    let ended = ended.expect("the end of the pressure episode is reported");
    assert!(ended["telemetry_dropped"].as_u64().is_some(), "{ended}");
    assert!(
        first.len() as u64 >= events,
        "all {events} offline events arrived: {first:?}"
    );
    let k = first.len() as u64;
    assert_eq!(
        first,
        (1..=k).collect::<Vec<_>>(),
        "in seq order, without gaps"
    );
}
