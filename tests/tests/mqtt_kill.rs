//! Store-and-forward under power cuts: a backlog drained while the gateway
//! is SIGKILLed again and again still arrives whole (at least once, the
//! subscriber dropping duplicates by seq), and the outbox ends empty.
//!
//! The backlog is committed by the store's own writer with the payloads the
//! engine's events have, as if the gateway had been offline; the simulator
//! is quiet during the test so the outbox holds exactly the backlog.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use coldgate::event::{now_ms, payload, Event, EventKind};
use coldgate::store::{Batch, Store, StoredEvent};
use coldgate_tests::{free_port, start_broker, start_gateway, Subscriber, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const TOPICS: &str = "coldgate/v1/test-gw/events/#";

/// Commits `n` events to the outbox of a new database at `db`, 10,000 per
/// transaction (fewer fsyncs: the test is about draining, not building).
fn backlog(db: &Path, n: u64) {
    let (_store, mut writer) = Store::open(db, 4 << 20).expect("open store");
    let mut next = writer.next_event_seq();
    let at_ms = now_ms();
    let topic = EventKind::Door.topic();
    // Door openings, as the engine would raise them: every payload must
    // follow its schema (the subscriber checks each one).
    let door = payload::Door {
        phase: payload::DoorPhase::Opened,
        door_id: "01JD8Z5K8Q4V2N7M3X6T9R1B0C".into(),
        sensor_id: "rear-0".into(),
        zone: "rear".into(),
        lux: 120.0,
        max_lux: None,
        threshold_lux: 50.0,
        opened_at: coldgate::event::rfc3339(at_ms),
        closed_at: None,
        duration_s: 0,
    };
    while next <= n {
        let batch: Vec<StoredEvent> = (next..=n.min(next + 9_999))
            .map(|seq| {
                let ev = Event::new(at_ms, door.clone());
                StoredEvent {
                    seq,
                    at_ms,
                    topic: topic.clone(),
                    payload: ev.payload(seq, "test-gw"),
                }
            })
            .collect();
        writer
            .commit(&Batch {
                events: batch,
                ..Batch::default()
            })
            .expect("commit backlog");
        next = writer.next_event_seq();
    }
}

/// A gateway configuration whose simulator raises nothing during the test.
fn quiet_config(dir: &Path, port: u16) -> TestConfig {
    let mut cfg = TestConfig::new(dir);
    cfg.mqtt_port = Some(port);
    cfg.sensors = 2;
    cfg.speed = 1.0;
    cfg.failure = r#"{ zone = "rear", after = "100d", lasts = "1h" }"#;
    cfg.telemetry = None;
    // Above the backlog: a pressure event would add an event to count.
    cfg.outbox_cap = 1_000_000;
    cfg
}

/// Distinct seqs seen, each with the event_id it carried every time.
#[derive(Default)]
struct Seen {
    ids: HashMap<u64, String>,
    copies: u64,
}

impl Seen {
    fn take(&mut self, v: &serde_json::Value) {
        // Starts and stops add `audit` events; this test counts the backlog.
        if v["schema"] == "coldgate.audit/1" {
            return;
        }
        // So does every start after a kill: it reports the unclean stop.
        if v["kind"] == "unclean_stop" {
            return;
        }
        let (Some(seq), Some(id)) = (v["seq"].as_u64(), v["event_id"].as_str()) else {
            panic!("an event without seq or event_id: {v}");
        };
        self.copies += 1;
        let first = self.ids.entry(seq).or_insert_with(|| id.to_string());
        assert_eq!(first, id, "seq {seq} was resent with another event_id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drained_through_repeated_sigkills_arrives_whole_and_leaves_the_outbox_empty() {
    const EVENTS: u64 = 2_000;
    const KILLS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = quiet_config(dir.path(), port);
    let config = cfg.write();
    backlog(&cfg.db(), EVENTS);

    let _broker = start_broker(BIN, port);
    let mut sub = Subscriber::connect_unchecked(port, TOPICS).await;
    let mut seen = Seen::default();
    let mut killed_mid_drain = 0;
    for round in 0..KILLS {
        let log = dir.path().join(format!("run-{round}.log"));
        let mut gw = start_gateway(BIN, &config, &log);
        // Cut the power once this run has delivered some new events, so
        // every kill lands in the middle of the drain.
        let before = seen.ids.len();
        let want = before + 150 + round * 20;
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.ids.len() < want && Instant::now() < deadline {
            if let Some((_, v)) = sub.next(Duration::from_millis(200)).await {
                seen.take(&v);
            }
        }
        gw.sigkill();
        if seen.ids.len() > before && seen.ids.len() < EVENTS as usize {
            killed_mid_drain += 1;
        }
        let store = Store::open_existing(&cfg.db()).expect("opens after SIGKILL");
        let left = store.outbox_after(0, usize::MAX).unwrap();
        assert!(
            left.windows(2).all(|w| w[0].seq < w[1].seq),
            "round {round}: the outbox is in seq order"
        );
        // Only what the broker acknowledged may have left the outbox.
        let gone: Vec<u64> = (1..=EVENTS)
            .filter(|s| left.binary_search_by_key(s, |e| e.seq).is_err())
            .collect();
        // Drain the subscriber a moment, then every deleted seq must have arrived.
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            if let Some((_, v)) = sub.next(Duration::from_millis(100)).await {
                seen.take(&v);
            }
        }
        let lost: Vec<&u64> = gone.iter().filter(|s| !seen.ids.contains_key(s)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: deleted from the outbox but never received: {lost:?}"
        );
    }
    assert!(
        killed_mid_drain >= KILLS - 1,
        "only {killed_mid_drain} of {KILLS} kills landed mid-drain"
    );

    // The last run, undisturbed, finishes the drain.
    let log = dir.path().join("final.log");
    let mut gw = start_gateway(BIN, &config, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.ids.len() < EVENTS as usize && Instant::now() < deadline {
        if let Some((_, v)) = sub.next(Duration::from_millis(500)).await {
            seen.take(&v);
        }
    }
    // Let the last PUBACKs reach ingest and be committed, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let missing: Vec<u64> = (1..=EVENTS).filter(|s| !seen.ids.contains_key(s)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    let store = Store::open_existing(&cfg.db()).unwrap();
    // Each start and stop is an audit entry, published as an `audit` event;
    // the last stop's is committed as the process ends, so it may wait in
    // the outbox for the next start. Nothing else may be left or added.
    let left = store.outbox_after(0, usize::MAX).unwrap();
    assert!(
        left.iter().all(|e| e.topic == "events/audit"),
        "the outbox ends empty but for the stop's audit entry: {:?}",
        left.iter().map(|e| (e.seq, &e.topic)).collect::<Vec<_>>()
    );
    let all = store.events_between(i64::MIN, i64::MAX).unwrap();
    let others = all.iter().filter(|e| e.topic != "events/audit").count() as u64;
    // Each start after a kill reports the unclean stop (all but a kill that
    // came before the first run's first commit, which left no record).
    let unclean = all
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.payload).contains("\"unclean_stop\""))
        .count() as u64;
    assert!(
        (KILLS as u64 - 1..=KILLS as u64).contains(&unclean),
        "{unclean} unclean stops reported for {KILLS} kills"
    );
    assert_eq!(
        others,
        EVENTS + unclean,
        "no event but audit entries and unclean stops was added"
    );
    eprintln!(
        "{EVENTS} events, {KILLS} SIGKILLs: {} copies received ({} duplicates)",
        seen.copies,
        seen.copies - EVENTS
    );
}

/// Loss test (c): a 100,000-event backlog (weeks offline), committed by the
/// store's writer as ingest would have, drains through the real publisher
/// to the real broker: every seq arrives and the outbox ends empty. Not
/// timed (it prints its throughput: `-- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_100000_events_drains_to_an_empty_outbox() {
    const EVENTS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = quiet_config(dir.path(), port);
    let config = cfg.write();
    let t = Instant::now();
    backlog(&cfg.db(), EVENTS);
    eprintln!("backlog of {EVENTS} committed in {:?}", t.elapsed());

    let _broker = start_broker(BIN, port);
    let mut sub = Subscriber::connect_unchecked(port, TOPICS).await;
    let mut seen = Seen::default();
    let log = dir.path().join("drain.log");
    let started = Instant::now();
    let mut gw = start_gateway(BIN, &config, &log);
    let deadline = Instant::now() + Duration::from_secs(900);
    while seen.ids.len() < EVENTS as usize && Instant::now() < deadline {
        if let Some((_, v)) = sub.next(Duration::from_secs(5)).await {
            seen.take(&v);
        }
    }
    let drained = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(gw.terminate(Duration::from_secs(30)).success());
    assert_eq!(seen.ids.len() as u64, EVENTS, "every event arrived");
    let store = Store::open_existing(&cfg.db()).unwrap();
    // But for the stop's audit entry, committed as the process ends.
    let left = store.outbox_after(0, usize::MAX).unwrap();
    assert!(
        left.iter().all(|e| e.topic == "events/audit"),
        "the outbox ends empty"
    );
    eprintln!(
        "{EVENTS} events received in {drained:?} ({:.0}/s), {} duplicates; db {} bytes",
        EVENTS as f64 / drained.as_secs_f64(),
        seen.copies - EVENTS,
        std::fs::metadata(cfg.db()).map(|m| m.len()).unwrap_or(0)
    );
}
