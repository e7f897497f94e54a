//! Ingest with the reading journal, over real redb and journal files: a
//! run killed between folds loses no reading that reached the journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coldgate_sensor_drivers::Quantity;

use super::*;
use crate::event::now_ms;
use crate::store::journal::Options;
use crate::store::Store;

const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "p"
silence = "1h"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "a"
zone = "rear"
kind = "sim"
[[sensors]]
id = "b"
zone = "rear"
kind = "sim"
[sim]
"#;

struct Files {
    _dir: tempfile::TempDir,
    db: PathBuf,
    journal: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    Files {
        // Where the daemon puts it, so that offline readers find it.
        journal: crate::store::journal::dir_beside(&db),
        db,
        _dir: dir,
    }
}

/// Ingest over `f` with the journal, folding only when forced (the first
/// commit of a run, a stop).
fn ingest(f: &Files) -> Ingest {
    let config = crate::config::parse(CONFIG, "t").unwrap();
    let (store, writer) = Store::open(&f.db, 1 << 20).unwrap();
    let state = crate::snapshot::load_engine_state(&store).unwrap();
    drop(store);
    Ingest::new(
        writer,
        Engine::new(&config, state),
        IngestOptions {
            gateway_id: "g".into(),
            batch_interval: Duration::from_millis(20),
            batch_size: 10,
            retention: Duration::from_secs(86400 * 3650),
            max_bytes: 1 << 30,
        },
    )
    .with_journal(
        &f.journal,
        Options {
            segment_size: 64 << 10,
            spares: 1,
        },
        FoldPolicy {
            every: Duration::from_secs(3600),
            readings: 1_000_000,
        },
    )
    .unwrap()
}

/// What was sent: (sensor, time, value), in order.
type Sent = Vec<(&'static str, i64, f64)>;

/// Runs `ingest`, sends `n` readings in batches of 7 with pauses (so
/// several journal syncs happen), then either stops it cleanly or kills it
/// (the task dropped where it waits: nothing more is written).
async fn run(ingest: Ingest, n: usize, start: i64, kill: bool) -> Sent {
    let (tx, readings) = mpsc::channel(64);
    let (acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    let mut sent = Vec::new();
    for i in 0..n {
        let sensor = if i % 3 == 0 { "b" } else { "a" };
        let at = start + i as i64 * 100;
        let value = 4.0 + i as f64 / 1000.0;
        tx.send(Reading::new(
            Arc::from(sensor),
            Quantity::Temperature,
            value,
            at,
        ))
        .await
        .unwrap();
        sent.push((sensor, at, value));
        if i % 7 == 6 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    // Two timer turns: the last readings are synced to the journal.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if kill {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    } else {
        drop(tx);
        drop(acked_tx);
        task.await.unwrap().unwrap();
    }
    sent
}

/// Every reading stored, per sensor in seq order: (sensor, seq, time, value).
/// (redb alone: the journal's tail is not loaded.)
fn stored(db: &Path) -> Vec<(String, u64, i64, f64)> {
    seen(&Store::open_existing(db).unwrap())
}

/// Checks that `stored` holds each of `sent` once, each sensor's seqs
/// gap-free from 1 in the order the readings were sent.
fn assert_all_once(stored: &[(String, u64, i64, f64)], sent: &Sent) {
    for sensor in ["a", "b"] {
        let want: Vec<(i64, f64)> = sent
            .iter()
            .filter(|s| s.0 == sensor)
            .map(|s| (s.1, s.2))
            .collect();
        let got: Vec<(u64, i64, f64)> = stored
            .iter()
            .filter(|s| s.0 == sensor)
            .map(|s| (s.1, s.2, s.3))
            .collect();
        let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            seqs,
            (1..=want.len() as u64).collect::<Vec<_>>(),
            "{sensor}"
        );
        let got: Vec<(i64, f64)> = got.iter().map(|g| (g.1, g.2)).collect();
        assert_eq!(got, want, "{sensor}");
    }
}

#[tokio::test]
async fn readings_journalled_before_a_kill_are_folded_by_the_next_start_each_once() {
    let f = files();
    let start = now_ms() - 60_000;
    let mut sent = run(ingest(&f), 100, start, true).await;
    let folded = stored(&f.db).len();
    assert!(
        unfolded(&f) > 0,
        "the kill left nothing in the journal alone"
    );
    // The proof that the journal carried them: redb held only the first
    // fold's readings when the run was killed.
    assert!(folded < 30, "{folded} of 100 were folded before the kill");

    sent.extend(run(ingest(&f), 10, start + 100_000, false).await);
    assert_all_once(&stored(&f.db), &sent);
}

/// Records in the journal after the folded LSN.
fn unfolded(f: &Files) -> u64 {
    use crate::store::journal::{read, real_files};
    let store = Store::open_existing(&f.db).unwrap();
    let folded = store
        .state(FOLDED)
        .unwrap()
        .map(|b| u64::from_le_bytes(b.as_slice().try_into().unwrap()))
        .unwrap();
    read(&f.journal, folded + 1, &real_files(), |_| {})
        .unwrap()
        .records
}

#[tokio::test]
async fn a_start_killed_before_its_first_fold_replays_the_same_tail_again() {
    let f = files();
    let start = now_ms() - 60_000;
    let sent = run(ingest(&f), 60, start, true).await;
    // Opened (the tail read) and dropped before running: a kill during replay.
    drop(ingest(&f));
    // And one killed after replaying, before anything reached a fold.
    let replayed = {
        let mut i = ingest(&f);
        i.replay_journal().unwrap();
        i.batch.readings.len()
    };
    assert!(replayed > 30, "only {replayed} replayed");
    run(ingest(&f), 0, start, false).await;
    assert_all_once(&stored(&f.db), &sent);
}

/// Every reading `store` gives, per sensor in seq order, as [`stored`].
fn seen(store: &Store) -> Vec<(String, u64, i64, f64)> {
    let mut out = Vec::new();
    store
        .for_each_reading(None, i64::MIN, i64::MAX, |r| {
            out.push((r.sensor.to_string(), r.seq, r.at_ms, r.value));
            true
        })
        .unwrap();
    out.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    out
}

#[tokio::test]
async fn readings_synced_to_the_journal_are_seen_before_their_fold_online_and_offline() {
    let f = files();
    let start = now_ms() - 60_000;
    let first = ingest(&f);
    // The handle the HTTP API and the dashboard read through.
    let running = first.writer.store().clone();
    let sent = run(first, 100, start, true).await;
    assert!(
        running.tail_len() > 30,
        "the tail holds {}",
        running.tail_len()
    );
    assert_all_once(&seen(&running), &sent);
    assert_eq!(running.reading_count().unwrap(), 100);
    drop(running);

    let folded = stored(&f.db).len();
    assert!(folded < 30, "{folded} of 100 were folded: nothing to prove");
    // A stopped gateway's files, read as `coldgate export` reads them.
    let offline = Store::open_existing(&f.db).unwrap();
    assert_eq!(offline.load_journal_tail().unwrap(), 100 - folded);
    assert_all_once(&seen(&offline), &sent);
    drop(offline);

    // The next start folds the same readings with the same seqs.
    run(ingest(&f), 0, start, false).await;
    assert_all_once(&stored(&f.db), &sent);
}
