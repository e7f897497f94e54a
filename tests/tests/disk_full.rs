//! A full disk does not crash ingest or corrupt the database: the real
//! ingest writes a real redb file through a storage backend that, while a
//! flag is set, fails every write with ENOSPC exactly as a full file system
//! does. Ingest raises a `disk_full` event, holds the readings in memory
//! (bounded, counting what it drops), and when space returns commits them
//! and a `recovered` event; the file then opens cleanly with everything in it.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coldgate::excursion::{Engine, EngineState};
use coldgate::ingest::{Ingest, IngestChannels, IngestOptions, OUTAGE_BUFFER_READINGS};
use coldgate::store::Store;
use coldgate_sensor_drivers::{Quantity, Reading};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// redb's own file backend, with writes failing while `full` is set.
#[derive(Debug)]
struct FillableDisk {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl FillableDisk {
    fn open(path: &Path, full: Arc<AtomicBool>) -> FillableDisk {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        FillableDisk {
            file: FileBackend::new(file).unwrap(),
            full,
        }
    }

    fn check(&self) -> Result<(), io::Error> {
        if self.full.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FillableDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        // Shrinking frees space; growing needs it.
        if len > self.file.len()? {
            self.check()?;
        }
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }
    fn try_lock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(a, b)
    }
    fn try_lock_shared_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(a, b)
    }
    fn lock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(a, b)
    }
    fn lock_shared_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(a, b)
    }
    fn unlock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(a, b)
    }
    fn query_lock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(a, b)
    }
}

const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "fridge"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "fridge"
[[sensors]]
id = "t1"
zone = "rear"
kind = "sim"
[sim]
"#;

fn gateway_events(store: &Store) -> Vec<Value> {
    store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.topic == "events/gateway")
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

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_raises_the_event_holds_readings_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let full = Arc::new(AtomicBool::new(false));
    let config = coldgate::config::parse(CONFIG, "test").unwrap();
    let (store, writer) = {
        let (path2, full2) = (path.clone(), full.clone());
        Store::open_with_backend(&path, 1 << 20, move || {
            FillableDisk::open(&path2, full2.clone())
        })
        .unwrap()
    };
    let ingest = Ingest::new(
        writer,
        Engine::new(&config, EngineState::default()),
        IngestOptions {
            gateway_id: "g".into(),
            batch_interval: Duration::from_millis(20),
            batch_size: 100,
            retention: Duration::from_secs(86400 * 3650),
            max_bytes: 1 << 30,
        },
    );
    let (tx, readings) = mpsc::channel(1024);
    let (acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    let t0 = coldgate::event::now_ms();
    let mut n = 0i64;
    let mut send = |count: usize| {
        let batch: Vec<Reading> = (0..count)
            .map(|_| {
                n += 1;
                Reading::new(Arc::from("t1"), Quantity::Temperature, 5.0, t0 + n)
            })
            .collect();
        let tx = tx.clone();
        async move {
            for r in batch {
                tx.send(r).await.unwrap();
            }
        }
    };

    send(50).await;
    wait_until("the first readings committed", || {
        store.reading_count().unwrap() == 50
    })
    .await;

    // The disk fills up. Ingest keeps accepting readings, up to its bound.
    full.store(true, Ordering::SeqCst);
    let over = 25;
    send(OUTAGE_BUFFER_READINGS + over).await;
    // Nothing can be committed meanwhile, and nothing crashed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "ingest must survive a full disk");

    // Space returns: the held readings and both events are committed.
    full.store(false, Ordering::SeqCst);
    wait_until("the held readings committed", || {
        store
            .reading_count()
            .is_ok_and(|c| c == 50 + OUTAGE_BUFFER_READINGS as u64)
    })
    .await;
    wait_until("the recovered event", || gateway_events(&store).len() == 2).await;
    let events = gateway_events(&store);
    assert_eq!(events[0]["phase"], "disk_full", "{events:?}");
    assert!(
        events[0]["error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{events:?}"
    );
    assert_eq!(events[1]["phase"], "recovered");
    assert_eq!(events[1]["reason"], "disk_full");
    assert_eq!(events[1]["dropped_readings"], over);
    assert!(events[1]["failed_commits"].as_u64().unwrap() >= 1);

    // Ingest goes on normally afterwards.
    send(10).await;
    drop(tx);
    drop(acked_tx);
    let totals = task.await.unwrap().unwrap();
    assert_eq!(totals.readings, 60 + OUTAGE_BUFFER_READINGS as u64);
    drop(store);

    // The file opens cleanly with a plain open and holds everything, with
    // per-sensor sequence numbers that have no gap, and gap-free events.
    let (store, _writer) = Store::open(&path, 1 << 20).unwrap();
    assert_eq!(
        store.reading_count().unwrap(),
        60 + OUTAGE_BUFFER_READINGS as u64
    );
    let mut seqs = Vec::new();
    store
        .for_each_reading(Some("t1"), i64::MIN, i64::MAX, |r| {
            seqs.push(r.seq);
            true
        })
        .unwrap();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    let all: Vec<u64> = store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all, (1..=all.len() as u64).collect::<Vec<_>>());
}
