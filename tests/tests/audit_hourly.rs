//! The hourly readings checkpoint, through the real ingest (real engine,
//! real redb file) on the multi-threaded runtime the daemon uses. The hour
//! passes on an injected monotonic clock; everything else is real.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coldgate::audit::AuditEntry;
use coldgate::clock::{SyncState, WallClock};
use coldgate::excursion::{Engine, EngineState};
use coldgate::ingest::{Ingest, IngestChannels, IngestOptions};
use coldgate::store::{Store, CHECKPOINT_EVERY_MS};
use coldgate_sensor_drivers::{Quantity, Reading};
use tokio::sync::{mpsc, watch};

const T0: i64 = 1_800_000_000_000;

/// Wall = T0 + monotonic; the test moves monotonic time.
#[derive(Default)]
struct TestClock(AtomicI64);

impl WallClock for TestClock {
    fn wall_ms(&self) -> i64 {
        T0 + self.0.load(Ordering::SeqCst)
    }
    fn mono_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    fn sync(&self) -> SyncState {
        SyncState::Synchronised
    }
}

const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "fridge"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0, delay = "15m" }]
[[zones]]
id = "rear"
profile = "fridge"
[[sensors]]
id = "t1"
zone = "rear"
kind = "sim"
[sim]
"#;

fn entries(store: &Store) -> Vec<AuditEntry> {
    store
        .audit_rows()
        .unwrap()
        .iter()
        .map(|(_, b)| AuditEntry::decode(b).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_readings_without_an_audit_entry_gets_a_checkpoint_entry_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = coldgate::config::parse(CONFIG, "test").unwrap();
    let (store, writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let clock = Arc::new(TestClock::default());
    let ingest = Ingest::new(
        writer,
        Engine::new(&config, EngineState::default()),
        IngestOptions {
            gateway_id: "g".into(),
            batch_interval: Duration::from_millis(20),
            batch_size: 1,
            retention: Duration::from_secs(86400 * 3650),
            max_bytes: 1 << 30,
        },
    )
    .with_clock(clock.clone());
    let (tx, readings) = mpsc::channel(8);
    let (_acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    let send = |value: f64| {
        let tx = tx.clone();
        let at = clock.wall_ms();
        async move {
            tx.send(Reading::new(
                Arc::from("t1"),
                Quantity::Temperature,
                value,
                at,
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    for i in 0..5 {
        clock.0.store(i * 60_000, Ordering::SeqCst);
        send(5.0).await;
    }
    assert!(entries(&store).is_empty(), "not due before an hour");
    clock.0.store(CHECKPOINT_EVERY_MS + 1, Ordering::SeqCst);
    send(5.5).await;
    send(5.6).await;
    drop(tx);
    task.await.unwrap().unwrap();

    let e = entries(&store);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, "readings_checkpoint");
    let c = e[0].readings.as_ref().unwrap();
    assert!(c.readings >= 5 && c.through["t1"] >= 5, "{c:?}");
    // Its event carries the head the entry made.
    let events: Vec<serde_json::Value> = store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|ev| ev.topic == "events/audit")
        .map(|ev| serde_json::from_slice(&ev.payload).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["phase"], "readings_checkpoint");
    assert_eq!(events[0]["audit_head"], e[0].head().unwrap().to_string());
    let v = store.verify_readings(&e).unwrap().unwrap();
    assert_eq!(v.verified, c.readings);
}
