use std::sync::Arc;

use coldgate_sensor_drivers::Quantity;

use super::*;
use crate::event::now_ms;
use crate::excursion::EngineState;
use crate::store::Store;

const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "p"
silence = "1m"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "s"
zone = "rear"
kind = "sim"
[sim]
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2026-01-01T00:00:00Z"
items = [{ gtin = "09520123456788", lot = "L", serials = ["1"] }]
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2026-01-02T00:00:00Z"
items = [{ gtin = "09520123456788", lot = "L", serials = ["1"] }]
"#;

#[tokio::test]
async fn tick_events_and_load_warnings_are_committed_with_the_engine_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::parse(CONFIG, "t").unwrap();
    let (store, writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let engine = Engine::new(&config, EngineState::default());
    let ingest = Ingest::new(
        writer,
        engine,
        IngestOptions {
            gateway_id: "g".into(),
            batch_interval: Duration::from_millis(20),
            batch_size: 100,
            retention: Duration::from_secs(86400 * 3650),
            max_bytes: 1 << 30,
        },
    );
    let (tx, readings) = mpsc::channel(8);
    let (acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    // A reading ten minutes old: the sensor is silent at the next tick.
    let old = now_ms() - 600_000;
    tx.send(Reading::new(
        Arc::from("s"),
        Quantity::Temperature,
        5.0,
        old,
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(tx);
    drop(acked_tx);
    task.await.unwrap().unwrap();

    let events = store.events_between(i64::MIN, i64::MAX).unwrap();
    let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
    assert!(topics.contains(&"events/lot"), "{topics:?}");
    assert!(topics.contains(&"events/sensor"), "{topics:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let state = crate::snapshot::load_engine_state(&store).unwrap();
    assert_eq!(state.manifest.stays.len(), 2);
    assert!(state.presence["s/temperature"].silent_at_ms.is_some());
}

/// One run of ingest over `db` with the outbox capped at `cap`; the
/// `acks` are sent as the publisher's PUBACKs once it runs.
async fn run_capped(db: &std::path::Path, cap: u64, acks: Vec<u64>) {
    let config = crate::config::parse(CONFIG, "t").unwrap();
    let (store, writer) = Store::open(db, 1 << 20).unwrap();
    let state = crate::snapshot::load_engine_state(&store).unwrap();
    let engine = Engine::new(&config, state);
    let ingest = Ingest::new(
        writer,
        engine,
        IngestOptions {
            gateway_id: "g".into(),
            batch_interval: Duration::from_millis(20),
            batch_size: 100,
            retention: Duration::from_secs(86400 * 3650),
            max_bytes: 1 << 30,
        },
    )
    .with_outbox_cap(cap);
    let (tx, readings) = mpsc::channel(8);
    let (acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    for seq in acks {
        acked_tx.send(seq).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(tx);
    drop(acked_tx);
    task.await.unwrap().unwrap();
}

fn pressure_phases(store: &Store) -> Vec<String> {
    store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.payload).unwrap())
        .filter(|e| e["kind"] == "outbox_pressure")
        .map(|e| e["phase"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_pressure_episode_open_at_a_stop_is_ended_after_the_restart_not_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    // The load warnings alone fill an outbox of two.
    run_capped(&db, 2, Vec::new()).await;
    let waiting = {
        let store = Store::open_existing(&db).unwrap();
        assert_eq!(pressure_phases(&store), ["started"]);
        store.last_event_seq().unwrap()
    };
    // The restarted gateway has every event acknowledged at once, so its
    // first commit already finds the outbox empty.
    run_capped(&db, 2, (1..=waiting).collect()).await;
    let store = Store::open_existing(&db).unwrap();
    assert_eq!(pressure_phases(&store), ["started", "ended"]);
}
