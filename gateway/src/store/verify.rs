//! Checking the stored readings against the checkpoints of the audit chain
//! (see `crate::audit::readings`): two passes over the readings table in
//! key order, the second only to name what the first found wrong.

use redb::{ReadableDatabase, ReadableTable};

use super::tables::READINGS;
use super::{Store, StoreError};
use crate::audit::readings::{RawReading, ReadingsVerifier};
use crate::audit::{AuditEntry, ReadingsError, ReadingsVerified};

impl Store {
    /// Checks every stored reading covered by a checkpoint in `entries`
    /// (the audit trail, already verified as a chain).
    pub fn verify_readings(
        &self,
        entries: &[AuditEntry],
    ) -> Result<Result<ReadingsVerified, ReadingsError>, StoreError> {
        let checkpoints = entries
            .iter()
            .filter_map(|e| Some((e.seq, e.readings.clone()?)))
            .collect();
        let mut verifier = ReadingsVerifier::new(checkpoints);
        if let Err(unnamed) = self.each_raw_reading(|r| verifier.add(r))? {
            return Ok(Err(unnamed));
        }
        let mismatch = match verifier.finish() {
            Ok(v) => return Ok(Ok(v)),
            Err(m) => m,
        };
        let mut explainer = verifier.explain(mismatch);
        if let Err(unnamed) = self.each_raw_reading(|r| explainer.add(r))? {
            return Ok(Err(unnamed));
        }
        Ok(Err(explainer.finish()))
    }

    /// Calls `f` for every reading in key order, with its sensor's name; a
    /// reading whose sensor index names no sensor ends the walk.
    fn each_raw_reading(
        &self,
        mut f: impl FnMut(&RawReading),
    ) -> Result<Result<(), ReadingsError>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let names = self.sensor_names(&txn)?;
        let table = txn.open_table(READINGS).map_err(|e| self.err(e))?;
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let ((at_ms, idx, seq), (code, value)) = (k.value(), v.value());
            let Some(sensor) = names.get(&idx) else {
                return Ok(Err(ReadingsError::Unnamed { at_ms, index: idx }));
            };
            f(&RawReading {
                sensor,
                at_ms,
                seq,
                code,
                value,
            });
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use coldgate_sensor_drivers::{Quantity, Reading};

    use super::*;
    use crate::audit::{AuditKind, AuditRecord};
    use crate::store::{Batch, Trim, Writer};

    fn reading(sensor: &str, at_ms: i64, value: f64) -> Reading {
        Reading::new(Arc::from(sensor), Quantity::Temperature, value, at_ms)
    }

    fn record(at_ms: i64) -> AuditRecord {
        AuditRecord {
            at_ms,
            kind: AuditKind::ReadingsCheckpoint,
            actor: "test".into(),
            details: serde_json::json!({}),
        }
    }

    /// Commits `batches` batches of one reading per sensor a and b, 1 s
    /// apart, with an audit entry (a checkpoint) after every `every`.
    fn commit_batches(w: &mut Writer, from: i64, batches: i64, every: i64) {
        for i in from..from + batches {
            let t = 1_800_000_000_000 + i * 1_000;
            let batch = [
                reading("a", t, 8.0 + i as f64 / 100.0),
                reading("b", t, 4.5),
            ];
            let audit = if (i + 1) % every == 0 {
                vec![record(t)]
            } else {
                vec![]
            };
            w.commit(&Batch {
                readings: batch.to_vec(),
                audit: audit.to_vec(),
                ..Batch::default()
            })
            .unwrap();
        }
    }

    fn verify(path: &Path) -> Result<ReadingsVerified, ReadingsError> {
        let store = Store::open_existing(path).unwrap();
        let entries: Vec<AuditEntry> = store
            .audit_rows()
            .unwrap()
            .iter()
            .map(|(_, b)| AuditEntry::decode(b).unwrap())
            .collect();
        store.verify_readings(&entries).unwrap()
    }

    /// Changes a stored reading of `sensor` straight in the file.
    fn edit_reading(path: &Path, sensor: &str, seq: u64, f: impl Fn(f64) -> f64) {
        use super::super::tables::{READINGS, SENSORS};
        let db = redb::Database::open(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let idx = txn
                .open_table(SENSORS)
                .unwrap()
                .get(sensor)
                .unwrap()
                .unwrap()
                .value();
            let mut t = txn.open_table(READINGS).unwrap();
            let (key, (code, value)) = t
                .iter()
                .unwrap()
                .map(|r| r.unwrap())
                .map(|(k, v)| (k.value(), v.value()))
                .find(|(k, _)| k.1 == idx && k.2 == seq)
                .unwrap();
            t.insert(key, (code, f(value))).unwrap();
        }
        txn.commit().unwrap();
    }

    #[test]
    fn a_flipped_byte_in_a_stored_reading_is_named_by_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
            commit_batches(&mut w, 0, 30, 10);
        }
        // Each checkpoint covers what was committed before its entry; the
        // batch committed with the last one is not covered yet.
        let v = verify(&path).unwrap();
        assert_eq!((v.verified, v.spans, v.uncovered), (58, 3, 2), "{v:?}");
        // 8.17 °C read back as 16.34 °C: one bit of one byte of the f64.
        edit_reading(&path, "a", 18, |v| {
            f64::from_bits(v.to_bits() ^ (0x10 << 48))
        });
        let err = verify(&path).unwrap_err();
        match &err {
            ReadingsError::Altered { reading, .. } => {
                assert_eq!((reading.sensor.as_str(), reading.seq), ("a", 18));
                assert_eq!(reading.value, 16.34);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_audit_head_announced_before_a_commit_is_the_one_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        commit_batches(&mut w, 0, 5, 100);
        let records = [record(1), record(2)];
        let announced = w.audit_head_after(&records).unwrap();
        assert_eq!(announced.seq, 2);
        // The batch committed with them does not change what they cover.
        w.commit(&Batch {
            readings: vec![reading("a", 1, 1.0)],
            audit: records.to_vec(),
            ..Batch::default()
        })
        .unwrap();
        assert_eq!(store.audit_head().unwrap(), Some(announced));
        let entries: Vec<AuditEntry> = store
            .audit_rows()
            .unwrap()
            .iter()
            .map(|(_, b)| AuditEntry::decode(b).unwrap())
            .collect();
        let c = entries[0].readings.as_ref().unwrap();
        assert_eq!((c.readings, c.through["a"]), (10, 5));
        assert!(entries[1].readings.is_none());
    }

    #[test]
    fn trimmed_readings_leave_the_newer_checkpoints_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
            commit_batches(&mut w, 0, 30, 10);
            // Retention reaches into the first span.
            let trim = Trim {
                before_ms: 1_800_000_000_000 + 5_000,
                max_bytes: None,
            };
            w.commit(&Batch {
                trim: Some(trim),
                ..Batch::default()
            })
            .unwrap();
        }
        let v = verify(&path).unwrap();
        assert_eq!((v.trimmed_spans, v.unverifiable), (1, 8), "{v:?}");
        assert_eq!((v.verified, v.spans), (40, 2));
        assert_eq!(v.from_ms, Some(1_800_000_000_000 + 9_000));
    }

    #[test]
    fn readings_after_the_last_checkpoint_are_covered_by_the_next_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
            commit_batches(&mut w, 0, 15, 10);
        }
        assert_eq!(verify(&path).unwrap().uncovered, 12);
        {
            // A restart: the scan marker and the covered seqs come from the file.
            let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
            w.commit(&Batch {
                audit: vec![record(0)],
                ..Batch::default()
            })
            .unwrap();
        }
        let v = verify(&path).unwrap();
        assert_eq!((v.verified, v.spans, v.uncovered), (30, 2, 0), "{v:?}");
    }

    #[test]
    fn a_checkpoint_is_due_an_hour_after_the_last_and_only_with_new_readings() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        let hour = crate::store::CHECKPOINT_EVERY_MS;
        assert!(!w.readings_checkpoint_due(0));
        commit_batches(&mut w, 0, 3, 100);
        assert!(!w.readings_checkpoint_due(hour - 1));
        assert!(w.readings_checkpoint_due(hour));
        w.commit(&Batch {
            audit: vec![record(0)],
            ..Batch::default()
        })
        .unwrap();
        // Covered, and nothing new: not due however long it waits.
        assert!(!w.readings_checkpoint_due(hour));
        assert!(!w.readings_checkpoint_due(5 * hour));
        commit_batches(&mut w, 3, 1, 100);
        assert!(!w.readings_checkpoint_due(hour + hour - 1));
        assert!(w.readings_checkpoint_due(2 * hour));
    }

    #[test]
    fn a_file_from_an_earlier_build_starts_with_a_baseline_instead_of_hashing_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
            commit_batches(&mut w, 0, 20, 1000);
        }
        {
            // Earlier builds wrote no scan marker.
            use super::super::tables::{READINGS_SPAN_FROM_KEY, STATE};
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(STATE)
                .unwrap()
                .remove(READINGS_SPAN_FROM_KEY)
                .unwrap();
            txn.commit().unwrap();
        }
        {
            let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
            w.commit(&Batch {
                audit: vec![record(0)],
                ..Batch::default()
            })
            .unwrap();
            commit_batches(&mut w, 20, 10, 1000);
            w.commit(&Batch {
                audit: vec![record(1)],
                ..Batch::default()
            })
            .unwrap();
        }
        let store = Store::open_existing(&path).unwrap();
        let first = AuditEntry::decode(&store.audit_rows().unwrap()[0].1).unwrap();
        let c = first.readings.unwrap();
        assert!(
            c.baseline && c.readings == 0 && c.through["a"] == 20,
            "{c:?}"
        );
        drop(store);
        let v = verify(&path).unwrap();
        assert_eq!(
            (v.before_checkpoints, v.verified, v.uncovered),
            (40, 20, 0),
            "{v:?}"
        );
    }
}
