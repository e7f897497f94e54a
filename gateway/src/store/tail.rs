//! Readings durable in the journal but not yet folded into redb (issue 20
//! item 4, docs/journal.md): with `storage.journal` on, a reading is durable
//! once its journal record is synced, and reaches the `readings` table only
//! at the next fold, minutes later. Every reader of readings goes through
//! [`Store::for_each_reading`], [`Store::reading_count`] or
//! [`Store::sensor_ids`]; they merge redb with this tail, so export, the HTTP
//! API, the dashboard and reports see a reading as soon as it is durable.
//!
//! Who fills it: in a running gateway ingest (the one writer) publishes each
//! batch's readings after its journal sync and empties the tail after each
//! fold's commit returned. An offline reader (`coldgate export`, `coldgate
//! report` on a stopped gateway's files) reads the journal itself, read-only
//! ([`Store::load_journal_tail`]).
//!
//! Each reading carries the seq the fold will give it (its sensor's last
//! folded seq plus its place among the sensor's readings since), so a reader
//! tells a reading it sees in both redb and the tail by its seq: the tail is
//! read *before* the read transaction is opened, and a tail reading whose
//! seq the transaction's `sensor_seq` already covers is dropped. A fold that
//! commits in between is then seen once: either the snapshot was taken after
//! the tail was emptied (and the transaction, opened later still, sees the
//! fold) or the snapshot holds readings the transaction may also hold (and
//! those are dropped by seq). The other order (transaction first) would miss
//! a fold committed and emptied between the two: a gap.
//!
//! Bound: the tail holds at most what one fold takes, the fold policy's
//! reading count (30,000 by default) plus one batch, since a save with that
//! many readings waiting folds instead of syncing (`ingest/journal.rs`,
//! `fold_due`); about 60 B a reading, so under 2 MB.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::sync::{Arc, PoisonError, RwLock};

use coldgate_sensor_drivers::Reading;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::journal::payload::{self, PayloadError};
use super::journal::{self, Kind, SegmentFile};
use super::tables::{READINGS, SENSORS, SENSOR_SEQ};
use super::{Store, StoreError, StoredReading};

/// The `state` key of the last journal LSN folded into redb (u64, little
/// endian), written in the fold's own transaction.
pub const JOURNAL_FOLDED: &str = "journal_folded";

/// The unfolded readings, in the order the fold will number them.
#[derive(Debug, Default)]
pub(super) struct Tail {
    readings: Vec<StoredReading>,
    /// Per sensor, the seq of its last reading here.
    last_seq: HashMap<Arc<str>, u64>,
}

pub(super) type SharedTail = Arc<RwLock<Tail>>;

/// What a read transaction says about the tail: sensor index by name, and
/// the last seq folded per sensor.
struct Folded {
    index: HashMap<Arc<str>, u32>,
    seq: HashMap<Arc<str>, u64>,
}

impl Folded {
    fn read(store: &Store, txn: &redb::ReadTransaction) -> Result<Folded, StoreError> {
        let names = txn.open_table(SENSORS).map_err(|e| store.err(e))?;
        let seqs = txn.open_table(SENSOR_SEQ).map_err(|e| store.err(e))?;
        let mut folded = Folded {
            index: HashMap::new(),
            seq: HashMap::new(),
        };
        for row in names.iter().map_err(|e| store.err(e))? {
            let (name, idx) = row.map_err(|e| store.err(e))?;
            let (name, idx): (Arc<str>, u32) = (Arc::from(name.value()), idx.value());
            let seq = seqs
                .get(idx)
                .map_err(|e| store.err(e))?
                .map(|v| v.value())
                .unwrap_or(0);
            folded.seq.insert(name.clone(), seq);
            folded.index.insert(name, idx);
        }
        Ok(folded)
    }

    fn covers(&self, r: &StoredReading) -> bool {
        self.seq.get(&r.sensor).is_some_and(|s| r.seq <= *s)
    }
}

/// The order of the `readings` table, (time, sensor index, seq); a sensor
/// not yet folded has no index and sorts after every folded one at the same
/// time, by name.
type Key = (i64, u32, Arc<str>, u64);

impl Store {
    /// Adds readings made durable by a journal sync, in ingest's order;
    /// `folded_seq` gives each sensor's last folded seq (the writer's).
    pub(crate) fn publish_tail(&self, readings: &[Reading], folded_seq: impl Fn(&str) -> u64) {
        if readings.is_empty() {
            return;
        }
        let mut tail = self.tail.write().unwrap_or_else(PoisonError::into_inner);
        tail.readings.reserve(readings.len());
        for r in readings {
            let seq = match tail.last_seq.get_mut(&r.sensor) {
                Some(s) => {
                    *s += 1;
                    *s
                }
                None => {
                    let s = folded_seq(&r.sensor) + 1;
                    tail.last_seq.insert(r.sensor.clone(), s);
                    s
                }
            };
            tail.readings.push(StoredReading {
                sensor: r.sensor.clone(),
                seq,
                quantity: r.quantity,
                value: r.value,
                at_ms: r.at_ms,
            });
        }
    }

    /// After a fold's commit returned: redb holds every reading of the tail.
    pub(crate) fn clear_tail(&self) {
        let mut tail = self.tail.write().unwrap_or_else(PoisonError::into_inner);
        tail.readings = Vec::new();
        tail.last_seq.clear();
    }

    /// Readings in the tail (folded or not by now).
    #[cfg(test)]
    pub(crate) fn tail_len(&self) -> usize {
        self.tail
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .readings
            .len()
    }

    /// For a stopped gateway's files: reads the journal beside the database
    /// from the last folded LSN on, without writing to it (no new segment, no
    /// recycling, no sync), and makes its readings the tail. Returns how many.
    pub fn load_journal_tail(&self) -> Result<usize, StoreError> {
        let dir = journal::dir_beside(&self.path);
        if !dir.exists() {
            return Ok(0);
        }
        let folded = match self.state(JOURNAL_FOLDED)? {
            Some(b) => {
                let b: [u8; 8] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::JournalPayload(PayloadError::Short))?;
                u64::from_le_bytes(b)
            }
            None => 0,
        };
        let read_only: journal::Opener = Box::new(|path| {
            let file = OpenOptions::new().read(true).open(path)?;
            Ok(Box::new(file) as Box<dyn SegmentFile>)
        });
        let mut records = Vec::new();
        journal::read(&dir, folded + 1, &read_only, |r| {
            records.push((r.kind, r.payload.to_vec()))
        })?;
        let readings = readings_of(records)?;
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let base = Folded::read(self, &txn)?;
        drop(txn);
        self.clear_tail();
        self.publish_tail(&readings, |s| base.seq.get(s).copied().unwrap_or(0));
        Ok(readings.len())
    }

    /// The tail's readings of `sensor` (or all) in `[from_ms, to_ms)`.
    fn tail_between(&self, sensor: Option<&str>, from_ms: i64, to_ms: i64) -> Vec<StoredReading> {
        let tail = self.tail.read().unwrap_or_else(PoisonError::into_inner);
        tail.readings
            .iter()
            .filter(|r| sensor.is_none_or(|s| &*r.sensor == s))
            .filter(|r| r.at_ms >= from_ms && r.at_ms < to_ms)
            .cloned()
            .collect()
    }

    /// [`Store::for_each_reading`]; `between` runs after the tail is read and
    /// before the transaction is opened (where a test folds).
    pub(super) fn merged_readings(
        &self,
        sensor: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        between: impl FnOnce(),
        mut f: impl FnMut(StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        if from_ms >= to_ms {
            return Ok(());
        }
        let tail = self.tail_between(sensor, from_ms, to_ms);
        between();
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let folded = Folded::read(self, &txn)?;
        let mut tail: Vec<(Key, StoredReading)> = tail
            .into_iter()
            .filter(|r| !folded.covers(r))
            .map(|r| {
                let idx = folded.index.get(&r.sensor).copied().unwrap_or(u32::MAX);
                ((r.at_ms, idx, r.sensor.clone(), r.seq), r)
            })
            .collect();
        tail.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tail = tail.into_iter().peekable();
        let mut go_on = true;
        self.readings_in(&txn, sensor, from_ms, to_ms, |key, r| {
            while let Some((k, _)) = tail.peek() {
                if (k.0, k.1, k.3) >= key {
                    break;
                }
                if let Some((_, t)) = tail.next() {
                    if !f(t) {
                        go_on = false;
                        return false;
                    }
                }
            }
            go_on = f(r);
            go_on
        })?;
        if go_on {
            for (_, t) in tail {
                if !f(t) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Readings stored in redb and in the tail, each once.
    pub fn reading_count(&self) -> Result<u64, StoreError> {
        let tail = self.tail_between(None, i64::MIN, i64::MAX);
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let folded = Folded::read(self, &txn)?;
        let table = txn.open_table(READINGS).map_err(|e| self.err(e))?;
        let stored = table.len().map_err(|e| self.err(e))?;
        let unfolded = tail.iter().filter(|r| !folded.covers(r)).count();
        Ok(stored + unfolded as u64)
    }

    /// Sensors with readings in the tail.
    pub(super) fn tail_sensors(&self) -> Vec<Arc<str>> {
        let tail = self.tail.read().unwrap_or_else(PoisonError::into_inner);
        tail.last_seq.keys().cloned().collect()
    }
}

/// The readings of journal records (`Sensor` and `Readings`; other kinds
/// carry none), in their order.
fn readings_of(records: Vec<(Kind, Vec<u8>)>) -> Result<Vec<Reading>, StoreError> {
    let mut names: HashMap<u16, Arc<str>> = HashMap::new();
    let mut out = Vec::new();
    for (kind, bytes) in records {
        match kind {
            Kind::Sensor => {
                let (i, name) = payload::decode_sensor(&bytes)?;
                names.insert(i, Arc::from(name));
            }
            Kind::Readings => {
                for r in payload::decode_readings(&bytes)? {
                    let name = names
                        .get(&r.sensor)
                        .ok_or(StoreError::JournalPayload(PayloadError::Short))?;
                    out.push(Reading::new(name.clone(), r.quantity, r.value, r.at_ms));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(super) fn shared() -> SharedTail {
    Arc::new(RwLock::new(Tail::default()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use coldgate_sensor_drivers::Quantity;

    use super::super::{Batch, Writer};
    use super::*;

    fn reading(sensor: &str, at_ms: i64, value: f64) -> Reading {
        Reading::new(Arc::from(sensor), Quantity::Temperature, value, at_ms)
    }

    fn all(store: &Store) -> Vec<(String, u64, i64, f64)> {
        let mut out = Vec::new();
        store
            .for_each_reading(None, i64::MIN, i64::MAX, |r| {
                out.push((r.sensor.to_string(), r.seq, r.at_ms, r.value));
                true
            })
            .unwrap();
        out
    }

    fn fold(w: &mut Writer, readings: &[Reading]) {
        w.commit(&Batch {
            readings: readings.to_vec(),
            ..Batch::default()
        })
        .unwrap();
    }

    /// A store with `a` 1..=2 folded, and `a` 3, `b` 1 and `a` 4 in the tail,
    /// one of them older than the folded ones.
    fn store_with_tail() -> (tempfile::TempDir, Store, Writer, Vec<Reading>) {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        fold(&mut w, &[reading("a", 10, 1.0), reading("a", 30, 2.0)]);
        let tail = vec![
            reading("a", 20, 3.0),
            reading("b", 30, 4.0),
            reading("a", 40, 5.0),
        ];
        store.publish_tail(&tail, |s| w.last_reading_seq(s));
        (dir, store, w, tail)
    }

    #[test]
    fn readers_see_unfolded_readings_in_time_order_numbered_as_the_fold_will() {
        let (_dir, store, mut w, tail) = store_with_tail();
        let want = vec![
            ("a".to_string(), 1, 10, 1.0),
            ("a".to_string(), 3, 20, 3.0),
            ("a".to_string(), 2, 30, 2.0),
            ("b".to_string(), 1, 30, 4.0),
            ("a".to_string(), 4, 40, 5.0),
        ];
        assert_eq!(all(&store), want);
        assert_eq!(store.reading_count().unwrap(), 5);
        assert_eq!(
            store.sensor_ids().unwrap(),
            vec![Arc::<str>::from("a"), Arc::from("b")]
        );
        let mut only_b = Vec::new();
        store
            .for_each_reading(Some("b"), 0, 100, |r| {
                only_b.push(r.seq);
                true
            })
            .unwrap();
        assert_eq!(only_b, vec![1]);
        // The fold numbers them the same: the same list once folded.
        fold(&mut w, &tail);
        store.clear_tail();
        assert_eq!(all(&store), want);
        assert_eq!(store.reading_count().unwrap(), 5);
    }

    #[test]
    fn a_reading_folded_while_still_in_the_tail_is_seen_once() {
        let (_dir, store, mut w, tail) = store_with_tail();
        // The fold committed, the tail not yet emptied.
        fold(&mut w, &tail);
        assert_eq!(all(&store).len(), 5);
        assert_eq!(store.reading_count().unwrap(), 5);
    }

    #[test]
    fn a_fold_between_reading_the_tail_and_redb_leaves_no_gap_and_no_duplicate() {
        let (_dir, store, mut w, tail) = store_with_tail();
        let mut seen = Vec::new();
        store
            .merged_readings(
                None,
                i64::MIN,
                i64::MAX,
                || {
                    // A whole fold (commit, then the tail emptied) lands
                    // while the reader is between its two reads.
                    fold(&mut w, &tail);
                    store.clear_tail();
                },
                |r| {
                    seen.push((r.sensor.to_string(), r.seq));
                    true
                },
            )
            .unwrap();
        seen.sort();
        let want: Vec<(String, u64)> = [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 1)]
            .iter()
            .map(|(s, q)| (s.to_string(), *q))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_reader_that_stops_early_gets_no_more_from_the_tail() {
        let (_dir, store, _w, _tail) = store_with_tail();
        // Two in redb, three in the tail; the fourth is the tail's last.
        let mut n = 0;
        store
            .for_each_reading(None, i64::MIN, i64::MAX, |_| {
                n += 1;
                n < 4
            })
            .unwrap();
        assert_eq!(n, 4);
    }

    /// Every file under `dir` with its bytes and modification time.
    fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p.clone(), std::fs::read(&p).unwrap(), m)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn an_offline_reader_reads_the_journal_after_the_fold_without_writing_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.redb");
        let jdir = journal::dir_beside(&db);
        {
            let (_store, mut w) = Store::open(&db, 1 << 20).unwrap();
            let (mut j, _) = journal::Journal::open(
                &jdir,
                journal::Options::default(),
                1,
                journal::real_files(),
                |_| {},
            )
            .unwrap();
            let mut buf = Vec::new();
            payload::encode_sensor(&mut buf, 0, "a").unwrap();
            j.append(Kind::Sensor, &buf).unwrap();
            let rows = |at: i64, v: f64| {
                let mut buf = Vec::new();
                payload::encode_readings(
                    &mut buf,
                    &[payload::Journalled {
                        sensor: 0,
                        quantity: Quantity::Temperature,
                        at_ms: at,
                        value: v,
                    }],
                )
                .unwrap();
                buf
            };
            j.append(Kind::Readings, &rows(10, 1.0)).unwrap();
            j.append(Kind::Tick, &11i64.to_le_bytes()).unwrap();
            // Folded up to LSN 3 (the reading at 10): redb has it.
            fold(&mut w, &[reading("a", 10, 1.0)]);
            let mut done = Batch::default();
            done.state
                .push((JOURNAL_FOLDED.into(), 3u64.to_le_bytes().to_vec()));
            w.commit(&done).unwrap();
            // A fold empties the sensor index: the next record names it again.
            j.append(Kind::Sensor, &buf).unwrap();
            j.append(Kind::Readings, &rows(20, 2.0)).unwrap();
            j.sync().unwrap();
        }
        let before = snapshot(&jdir);
        let store = Store::open_existing(&db).unwrap();
        assert_eq!(all(&store), vec![("a".to_string(), 1, 10, 1.0)]);
        assert_eq!(store.load_journal_tail().unwrap(), 1);
        assert_eq!(
            all(&store),
            vec![("a".to_string(), 1, 10, 1.0), ("a".to_string(), 2, 20, 2.0)]
        );
        assert_eq!(store.reading_count().unwrap(), 2);
        // (Not assert_eq: a difference would print megabytes of zeros.)
        assert!(snapshot(&jdir) == before, "the journal was written to");
    }
}
