//! Trusted time: a wall clock that jumps forward and back during an
//! excursion leaves the excursion's delay and duration on monotonic time,
//! and the readings taken before each jump are marked in the database.
//!
//! The machine's clock cannot be changed inside `cargo test`, so the real
//! ingest (real engine, real redb file) reads time through an injected
//! [`WallClock`] whose wall time the test moves; everything else is real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coldgate::clock::{SyncState, WallClock};
use coldgate::event::parse_rfc3339;
use coldgate::excursion::{Engine, EngineState};
use coldgate::ingest::{Ingest, IngestChannels, IngestOptions};
use coldgate::store::Store;
use coldgate_sensor_drivers::{Quantity, Reading};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// Wall = T0 + monotonic + offset; the test sets both.
#[derive(Default)]
struct TestClock {
    /// (monotonic ms, wall offset ms)
    now: Mutex<(i64, i64)>,
}

impl TestClock {
    fn set(&self, mono_ms: i64, offset_ms: i64) {
        *self.now.lock().unwrap() = (mono_ms, offset_ms);
    }
    fn wall(&self) -> i64 {
        let (m, o) = *self.now.lock().unwrap();
        T0 + m + o
    }
}

impl WallClock for TestClock {
    fn wall_ms(&self) -> i64 {
        self.wall()
    }
    fn mono_ms(&self) -> i64 {
        self.now.lock().unwrap().0
    }
    fn sync(&self) -> SyncState {
        SyncState::Unsynchronised
    }
}

const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "fridge"
silence = "2h"
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

fn excursions(store: &Store) -> Vec<Value> {
    events_on(store, "events/excursion")
}

fn events_on(store: &Store, topic: &str) -> Vec<Value> {
    store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.topic == topic)
        .map(|e| {
            // As published: every stored payload follows its schema.
            let topic = format!("coldgate/v1/gw/{}", e.topic);
            if let Err(error) = coldgate_tests::schema::check_published(&topic, &e.payload) {
                panic!("{error}");
            }
            serde_json::from_slice(&e.payload).unwrap()
        })
        .collect()
}

/// Waits until ingest has committed `n` excursion events (or fails).
async fn wait_excursions(store: &Store, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let e = excursions(store);
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "expected {n} excursion events, found {:?}",
        excursions(store)
    );
}

#[tokio::test]
async fn clock_jump_forward_and_back_during_an_excursion_leaves_its_duration_right() {
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
    let (acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    let send = |value: f64| {
        let tx = tx.clone();
        let at = clock.wall();
        async move {
            tx.send(Reading::new(
                Arc::from("t1"),
                Quantity::Temperature,
                value,
                at,
            ))
            .await
            .unwrap();
            // Let ingest judge and commit it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // Out of range at T0; the delay is 15 minutes.
    send(10.0).await;
    // 5 minutes later the wall clock has jumped an hour ahead (NTP sync).
    // By the wall, the condition has held 65 minutes; it has held 5.
    clock.set(5 * MIN, HOUR);
    send(10.0).await;
    assert!(
        excursions(&store).is_empty(),
        "raised by the wall clock's jump, not by the delay: {:?}",
        excursions(&store)
    );
    // 20 minutes in: the delay is over, by monotonic time.
    clock.set(20 * MIN, HOUR);
    send(10.0).await;
    let started = wait_excursions(&store, 1).await;
    assert_eq!(started[0]["phase"], "started");
    assert_eq!(started[0]["duration_s"], 20 * 60);
    // Expressed in the clock of the moment (after the jump).
    assert_eq!(
        parse_rfc3339(started[0]["started_at"].as_str().unwrap()),
        Some(T0 + HOUR)
    );
    // 25 minutes in, the clock steps back an hour. Readings stamped earlier
    // than the last one must still be judged (they are later in real time).
    clock.set(25 * MIN, 0);
    send(10.0).await;
    // Back in range 40 minutes after it left.
    clock.set(40 * MIN, 0);
    send(5.0).await;
    let all = wait_excursions(&store, 2).await;
    let ended = &all[1];
    assert_eq!(ended["phase"], "ended");
    assert_eq!(ended["excursion_id"], started[0]["excursion_id"]);
    assert_eq!(ended["duration_s"], 40 * 60, "{ended}");
    assert_eq!(
        parse_rfc3339(ended["started_at"].as_str().unwrap()),
        Some(T0)
    );
    assert_eq!(
        parse_rfc3339(ended["ended_at"].as_str().unwrap()),
        Some(T0 + 40 * MIN)
    );

    drop(tx);
    drop(acked_tx);
    task.await.unwrap().unwrap();

    // Both jumps are in the database with the readings they affect, and
    // were published as `gateway` events.
    let jumps: Vec<Value> = store
        .clock_records()
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r["record"] == "jump")
        .collect();
    assert_eq!(jumps.len(), 2, "{jumps:?}");
    assert_eq!(jumps[0]["offset_ms"], HOUR);
    assert_eq!(jumps[1]["offset_ms"], -HOUR);
    let range = |j: &Value| {
        (
            parse_rfc3339(j["affected_from"].as_str().unwrap()).unwrap(),
            parse_rfc3339(j["affected_to"].as_str().unwrap()).unwrap(),
        )
    };
    // The clock was never synchronised: everything since the start of the
    // run, up to the jump (in the old clock), is marked.
    assert_eq!(range(&jumps[0]), (T0, T0 + 5 * MIN));
    let mut marked = 0;
    store
        .for_each_reading(None, i64::MIN, i64::MAX, |r| {
            let (a, b) = range(&jumps[0]);
            if r.at_ms >= a && r.at_ms < b {
                marked += 1;
            }
            true
        })
        .unwrap();
    assert_eq!(marked, 1, "the reading at T0 is in the first jump's range");
    // The second jump marks what was stamped since the first (new clock).
    assert_eq!(
        range(&jumps[1]),
        (T0 + 5 * MIN + HOUR, T0 + 25 * MIN + HOUR)
    );
    let states: Vec<Value> = store
        .clock_records()
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r["record"] == "state")
        .collect();
    assert_eq!(states.len(), 1, "the state is recorded when it changes");
    assert_eq!(states[0]["synchronised"], false);
    let gateway = events_on(&store, "events/gateway");
    let phases: Vec<&str> = gateway
        .iter()
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["clock_jump", "clock_jump"]);
    assert_eq!(gateway[0]["offset_ms"], HOUR);
    assert_eq!(gateway[0]["schema"], "coldgate.gateway/1");
}
