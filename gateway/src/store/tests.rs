//! Tests of the store over real redb files.
//!
//! One room: the cases share the reading and event builders and the reopen helpers.

use std::sync::Arc;

use coldgate_sensor_drivers::{Quantity, Reading};

use super::*;
use rand::SeedableRng;

/// A place a power cut can leave a file at, and what it holds.
type Files = Vec<(std::ffi::OsString, Vec<u8>)>;

fn reading(sensor: &str, at_ms: i64, value: f64) -> Reading {
    Reading::new(Arc::from(sensor), Quantity::Temperature, value, at_ms)
}

fn event(seq: u64, at_ms: i64) -> StoredEvent {
    StoredEvent {
        seq,
        at_ms,
        topic: "events/excursion".into(),
        payload: format!("{{\"seq\":{seq}}}").into_bytes(),
    }
}

#[test]
fn readings_get_gap_free_per_sensor_sequences_that_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let (_store, mut w) = Store::open(&path, 1 << 20).unwrap();
        let batch = [
            reading("a", 1, 1.0),
            reading("b", 1, 2.0),
            reading("a", 2, 3.0),
        ];
        w.commit(&Batch {
            readings: batch.to_vec(),
            ..Batch::default()
        })
        .unwrap();
        assert_eq!(w.last_reading_seq("a"), 2);
    }
    let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
    assert_eq!(w.last_reading_seq("a"), 2);
    w.commit(&Batch {
        readings: vec![reading("a", 3, 4.0)],
        ..Batch::default()
    })
    .unwrap();
    let mut seqs = Vec::new();
    store
        .for_each_reading(Some("a"), 0, 100, |r| {
            seqs.push((r.seq, r.value));
            true
        })
        .unwrap();
    assert_eq!(seqs, vec![(1, 1.0), (2, 3.0), (3, 4.0)]);
}

#[test]
fn a_sensors_readings_in_a_time_range_are_returned_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let batch: Vec<Reading> = (0..100)
        .map(|i| reading(if i % 2 == 0 { "a" } else { "b" }, i, i as f64))
        .collect();
    w.commit(&Batch {
        readings: batch.to_vec(),
        ..Batch::default()
    })
    .unwrap();
    let mut got = Vec::new();
    store
        .for_each_reading(Some("b"), 10, 20, |r| {
            got.push(r.at_ms);
            true
        })
        .unwrap();
    assert_eq!(got, vec![11, 13, 15, 17, 19]);
    let mut none = 0;
    store
        .for_each_reading(Some("zzz"), 0, 100, |_| {
            none += 1;
            true
        })
        .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn the_outbox_is_in_order_and_only_acknowledged_entries_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    assert_eq!(w.next_event_seq(), 1);
    w.commit(&Batch {
        events: vec![event(1, 10), event(2, 20), event(3, 30)],
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        store
            .outbox_after(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(store.outbox_after(1, 1).unwrap()[0].seq, 2);
    w.commit(&Batch {
        acked: vec![2],
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        store
            .outbox_after(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(store.outbox_depth().unwrap(), (2, Some(10)));
    // Events are kept after they left the outbox.
    assert_eq!(store.events_between(0, 100).unwrap().len(), 3);
    assert_eq!(w.next_event_seq(), 4);
}

#[test]
fn events_must_be_numbered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    assert!(matches!(
        w.commit(&Batch {
            events: vec![event(2, 0)],
            ..Batch::default()
        }),
        Err(StoreError::EventOrder {
            found: 2,
            expected: 1
        })
    ));
    assert_eq!(w.next_event_seq(), 1);
}

#[test]
fn retention_trims_old_readings_but_never_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let batch: Vec<Reading> = (0..1000).map(|i| reading("a", i, 5.0)).collect();
    w.commit(&Batch {
        readings: batch.to_vec(),
        events: vec![event(1, 0)],
        ..Batch::default()
    })
    .unwrap();
    let done = w
        .commit(&Batch {
            trim: Some(Trim {
                before_ms: 600,
                max_bytes: None,
            }),
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(done.trimmed, 600);
    assert_eq!(store.reading_count().unwrap(), 400);
    assert_eq!(store.outbox_depth().unwrap().0, 1);
}

#[test]
fn the_file_never_grows_past_the_size_cap() {
    // redb doubles its file when it runs out of pages; trimming must start
    // before a doubling would pass the cap, not after.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
    let cap: u64 = 4 << 20;
    let mut largest = 0;
    for chunk in 0..60 {
        let batch: Vec<Reading> = (0..5_000)
            .map(|i| reading("a", chunk * 5_000 + i, 5.0))
            .collect();
        let trim = Trim {
            before_ms: i64::MIN,
            max_bytes: Some(cap),
        };
        w.commit(&Batch {
            readings: batch.to_vec(),
            trim: Some(trim),
            ..Batch::default()
        })
        .unwrap();
        largest = largest.max(std::fs::metadata(&path).unwrap().len());
    }
    assert!(
        largest <= cap,
        "the file reached {largest} B, over the {cap} B cap"
    );
    // Well over a cap's worth was written, and a useful share of it is kept.
    let kept = store.reading_count().unwrap();
    assert!(kept < 300_000, "nothing was trimmed");
    assert!(kept > 20_000, "only {kept} readings kept under a 4 MiB cap");
}

#[test]
fn the_size_cap_trims_oldest_readings_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    for chunk in 0..20 {
        let batch: Vec<Reading> = (0..10_000)
            .map(|i| reading("a", chunk * 10_000 + i, 5.0))
            .collect();
        w.commit(&Batch {
            readings: batch.to_vec(),
            ..Batch::default()
        })
        .unwrap();
    }
    let done = w
        .commit(&Batch {
            events: vec![event(1, 0)],
            trim: Some(Trim {
                before_ms: i64::MIN,
                max_bytes: Some(2 << 20),
            }),
            ..Batch::default()
        })
        .unwrap();
    assert!(done.trimmed > 0);
    let mut first = None;
    store
        .for_each_reading(None, i64::MIN, i64::MAX, |r| {
            first = Some(r.at_ms);
            false
        })
        .unwrap();
    let first = first.unwrap();
    assert_eq!(first as u64, done.trimmed, "the oldest were removed");
    assert_eq!(store.outbox_depth().unwrap().0, 1);
}

#[test]
fn a_newer_schema_is_refused_and_the_file_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert(tables::SCHEMA_KEY, SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, 1 << 20).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade coldgate"));
    let err = Store::open_existing(&path).err().unwrap();
    assert!(matches!(err, StoreError::NewerSchema { .. }));
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    assert_eq!(
        meta.get(tables::SCHEMA_KEY).unwrap().unwrap().value(),
        SCHEMA_VERSION + 1,
        "the schema was left as found"
    );
}

#[test]
fn a_file_held_by_another_opener_is_reported_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (_store, _w) = Store::open(&path, 1 << 20).unwrap();
    let err = Store::open_existing(&path).err().unwrap();
    assert!(matches!(err, StoreError::InUse(_)), "{err}");
    assert!(Store::open_existing(&dir.path().join("nope.redb")).is_err());
}

fn audit_record(i: i64) -> crate::audit::AuditRecord {
    crate::audit::AuditRecord {
        at_ms: i,
        kind: crate::audit::AuditKind::GatewayStarted,
        actor: "test".into(),
        details: serde_json::json!({ "i": i }),
    }
}

#[test]
fn audit_entries_are_chained_across_commits_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
        let done = w
            .commit(&Batch {
                readings: vec![reading("a", 1, 1.0)],
                audit: vec![audit_record(1), audit_record(2)],
                ..Batch::default()
            })
            .unwrap();
        assert_eq!(done.audit, 2);
        w.commit(&Batch {
            audit: vec![audit_record(3)],
            ..Batch::default()
        })
        .unwrap();
        assert_eq!(store.verify_audit().unwrap().unwrap().entries, 3);
    }
    let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
    w.commit(&Batch {
        audit: vec![audit_record(4)],
        ..Batch::default()
    })
    .unwrap();
    let v = store.verify_audit().unwrap().unwrap();
    assert_eq!(v.entries, 4);
    assert_eq!(store.audit_head().unwrap(), Some(v.head));
}

#[test]
fn audit_verify_names_an_entry_altered_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let records: Vec<_> = (1..=4).map(audit_record).collect();
    w.commit(&Batch {
        audit: records.to_vec(),
        ..Batch::default()
    })
    .unwrap();
    let txn = store.db().unwrap().begin_write().unwrap();
    {
        let mut t = txn.open_table(tables::AUDIT).unwrap();
        let bytes = t.get(2).unwrap().unwrap().value().to_vec();
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("\"actor\":\"test\"", "\"actor\":\"mallory\"");
        t.insert(2, text.as_bytes()).unwrap();
    }
    txn.commit().unwrap();
    let err = store.verify_audit().unwrap().unwrap_err();
    assert_eq!(err, crate::audit::VerifyError::Altered { seq: 2 });
}

#[test]
fn after_the_last_audit_entry_is_removed_the_next_append_leaves_a_visible_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
        let records: Vec<_> = (1..=3).map(audit_record).collect();
        w.commit(&Batch {
            audit: records.to_vec(),
            ..Batch::default()
        })
        .unwrap();
        let txn = store.db().unwrap().begin_write().unwrap();
        txn.open_table(tables::AUDIT).unwrap().remove(3).unwrap();
        txn.commit().unwrap();
        assert_eq!(
            store.verify_audit().unwrap().unwrap_err(),
            crate::audit::VerifyError::Truncated {
                last: 2,
                anchored: 3
            }
        );
    }
    let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
    w.commit(&Batch {
        audit: vec![audit_record(4)],
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        store.verify_audit().unwrap().unwrap_err(),
        crate::audit::VerifyError::Missing {
            expected: 3,
            found: 4
        }
    );
}

#[test]
fn a_full_outbox_drops_the_oldest_telemetry_and_never_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
    w.set_outbox_cap(Some(10));
    let mut batch = Batch::default();
    for i in 0..8 {
        batch.push_telemetry(i, format!("telemetry/s{i}"), vec![b'x']);
    }
    batch.events = (1..=5).map(|s| event(s, 0)).collect();
    let done = w.commit(&batch).unwrap();
    assert_eq!(
        (done.telemetry, done.telemetry_dropped, done.outbox_total),
        (8, 3, 10)
    );
    let left: Vec<String> = store
        .telemetry_after(0, 100)
        .unwrap()
        .into_iter()
        .map(|t| t.topic)
        .collect();
    assert_eq!(
        left,
        [
            "telemetry/s3",
            "telemetry/s4",
            "telemetry/s5",
            "telemetry/s6",
            "telemetry/s7"
        ]
    );

    // Events alone beyond the cap: every telemetry message goes, no event.
    let events: Vec<_> = (6..=20).map(|s| event(s, 0)).collect();
    let done = w
        .commit(&Batch {
            events,
            ..Batch::default()
        })
        .unwrap();
    assert_eq!((done.telemetry_dropped, done.outbox_total), (5, 20));
    assert_eq!(store.outbox_depth().unwrap().0, 20, "no event dropped");
    assert_eq!(store.telemetry_depth().unwrap(), 0);
    assert_eq!(store.telemetry_dropped().unwrap(), 8, "counted, and kept");
    drop((store, w));
    let (store, _w) = Store::open(&path, 1 << 20).unwrap();
    assert_eq!(store.telemetry_dropped().unwrap(), 8);
}

#[test]
fn sent_telemetry_leaves_the_outbox_and_ids_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let mut batch = Batch::default();
    batch.push_telemetry(1, "telemetry/a".into(), b"1".to_vec());
    batch.push_telemetry(2, "telemetry/a".into(), b"2".to_vec());
    w.commit(&batch).unwrap();
    let ids: Vec<u64> = store
        .telemetry_after(0, 10)
        .unwrap()
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(ids, [1, 2]);
    batch.clear();
    batch.telemetry_sent.push(1);
    batch.push_telemetry(3, "telemetry/a".into(), b"3".to_vec());
    w.commit(&batch).unwrap();
    let ids: Vec<u64> = store
        .telemetry_after(0, 10)
        .unwrap()
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(ids, [2, 3]);
    assert_eq!(
        store.last_event_seq().unwrap(),
        0,
        "telemetry takes no event seq"
    );
}

#[test]
fn command_answers_are_remembered_in_the_commit_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
        let mut batch = Batch::default();
        batch.remember_command("r1", 1, b"first".to_vec());
        assert_eq!(
            batch.command_answer("r1"),
            Some(&b"first"[..]),
            "known before the commit"
        );
        assert_eq!(
            store.command_answer("r1").unwrap(),
            None,
            "not stored before the commit"
        );
        w.commit(&batch).unwrap();
    }
    let (store, mut w) = Store::open(&path, 1 << 20).unwrap();
    assert_eq!(
        store.command_answer("r1").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    let mut batch = Batch::default();
    for i in 0..COMMANDS_KEPT {
        batch.remember_command(&format!("x{i}"), 2, b"x".to_vec());
    }
    w.commit(&batch).unwrap();
    assert_eq!(store.commands_remembered().unwrap(), COMMANDS_KEPT);
    assert_eq!(
        store.command_answer("r1").unwrap(),
        None,
        "the oldest is forgotten"
    );
    assert!(store.command_answer("x0").unwrap().is_some());
}

#[test]
fn a_creation_cut_short_leaves_no_database_and_the_next_start_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    // Cut after the temporary is written and synced, before the rename:
    // the latest point a crash can hit without the rename having happened.
    let cut = create_atomically(&path, 1 << 20, |_| Err(std::io::Error::other("power cut")));
    assert!(matches!(cut, Err(StoreError::Create { .. })), "{cut:?}");
    assert!(!path.exists(), "a half-created database is in place");
    let temp = creating_path(&path);
    assert!(temp.exists());
    // A crash in the first writes leaves a torn temporary: no header at all.
    let torn = std::fs::read(&temp).unwrap();
    std::fs::write(&temp, &torn[..100.min(torn.len())]).unwrap();
    let (store, _w) = Store::open(&path, 1 << 20).unwrap();
    drop((store, _w));
    assert!(!temp.exists(), "the torn temporary was not cleared");
    Store::open_existing(&path).expect("a complete coldgate database");
}

#[test]
fn a_new_database_appears_complete_and_an_existing_one_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let (_s, mut w) = Store::open(&path, 1 << 20).unwrap();
        w.commit(&Batch {
            readings: vec![reading("a", 1, 1.0)],
            ..Batch::default()
        })
        .unwrap();
    }
    assert!(!creating_path(&path).exists());
    Store::open_existing(&path).expect("schema in place");
    // Opening again does not recreate it: the reading is still there.
    let (s, _w) = Store::open(&path, 1 << 20).unwrap();
    assert_eq!(s.reading_count().unwrap(), 1);
    assert_eq!(
        creating_path(Path::new("/var/lib/coldgate/coldgate.redb")),
        Path::new("/var/lib/coldgate/.coldgate.redb.creating")
    );
}

/// A random seed each run covers more over time; a failure names it and
/// `COLDGATE_POWERCUT_SEED` replays it.
fn powercut_seed() -> u64 {
    std::env::var("COLDGATE_POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[test]
fn no_commit_that_returned_ok_is_lost_in_any_crash_image() {
    let images = std::env::var("COLDGATE_POWERCUT_IMAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let report = powercut::run(powercut_seed(), images, 24).unwrap();
    eprintln!(
        "seed {}: {} images, {} sync points, {} commits, in flight kept {} lost {}, {:?}",
        report.seed,
        report.images,
        report.sync_points,
        report.commits,
        report.in_flight_kept,
        report.in_flight_lost,
        report.elapsed
    );
    assert!(
        report.failures.is_empty(),
        "{} of {} crash images lost committed data (replay with COLDGATE_POWERCUT_SEED={}); \
         the first:\n{}",
        report.failures.len(),
        report.images,
        report.seed,
        report.failures[..report.failures.len().min(20)].join("\n")
    );
    // The test proved something only if the cuts landed inside commits
    // and both outcomes of an interrupted commit were opened.
    assert_eq!(report.images, images);
    assert!(report.sync_points > report.commits, "{report:?}");
    assert!(report.in_flight_kept > 0, "{report:?}");
    assert!(report.in_flight_lost > 0, "{report:?}");
}

#[test]
fn a_torn_write_lands_as_whole_sectors_only() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut torn = 0;
    let window = [powercut::Op::Write {
        offset: 100,
        data: vec![1; 2000],
    }];
    for _ in 0..50 {
        let file = powercut::crash_image(&[0; 4096], &window, powercut::Loss::Torn, &mut rng);
        // Sector boundaries at 512, 1024, 1536, 2048: each piece is all
        // old or all new.
        for (from, to) in [
            (100, 512),
            (512, 1024),
            (1024, 1536),
            (1536, 2048),
            (2048, 2100),
        ] {
            let piece = &file[from..to];
            assert!(
                piece.iter().all(|b| *b == piece[0]),
                "{from}..{to} torn inside"
            );
        }
        let landed = file[100..2100].iter().filter(|b| **b == 1).count();
        if landed > 0 && landed < 2000 {
            torn += 1;
        }
        assert!(file[..100].iter().chain(&file[2100..]).all(|b| *b == 0));
    }
    assert!(torn > 25, "only {torn} of 50 writes torn");
}

/// Every state a power cut can leave a creation in: the temporary as of
/// any of its syncs with any loss of the writes after it, the temporary
/// complete before the rename, the rename lost or kept before the directory
/// is synced. From each, the next start must make a valid empty database,
/// and whatever is at the final path must be a complete database already.
#[test]
fn a_power_cut_at_any_write_or_sync_of_a_creation_leaves_no_database_or_a_complete_one() {
    use powercut::{crash_image, image_rng, Log, Recording, SyncPoints, LOSSES};
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("db.redb");
    let log = Log::default();
    create_atomically_on(
        &path,
        1 << 20,
        |builder, temp| {
            let backend = Recording::open(temp, &log)
                .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
            builder.create_with_backend(backend)
        },
        |_| Ok(()),
    )
    .unwrap();
    // The recorder saw every write: replaying the log gives the file.
    let ops = log.ops();
    let complete = crash_image(&[], &ops, powercut::Loss::Nothing, &mut image_rng(0, 0));
    assert_eq!(complete, std::fs::read(&path).unwrap());
    let written = log.paths();
    assert_eq!(written.len(), 1, "{written:?}");
    let written = work.path().join(written[0].file_name().unwrap());

    let name = |p: &Path| p.file_name().unwrap().to_owned();
    let mut states: Vec<(String, Files)> =
        vec![("the temporary's name never reached the disk".into(), vec![])];
    let points = SyncPoints::new(&ops);
    let mut synced = Vec::new();
    for (k, window) in points.windows.iter().enumerate() {
        for loss in LOSSES {
            for rep in 0..4 {
                let image = k * 100 + rep;
                let file = crash_image(&synced, window, loss, &mut image_rng(k as u64, image));
                states.push((
                    format!(
                        "sync {k} of {}, {loss:?}, rep {rep}",
                        points.windows.len() - 1
                    ),
                    vec![(name(&written), file)],
                ));
            }
        }
        synced = crash_image(
            &synced,
            window,
            powercut::Loss::Nothing,
            &mut image_rng(0, 0),
        );
    }
    states.push((
        "temporary synced, rename lost".into(),
        vec![(name(&creating_path(&path)), complete.clone())],
    ));
    states.push((
        "renamed, directory not yet synced or synced".into(),
        vec![(name(&path), complete.clone())],
    ));
    assert!(
        points.windows.len() >= 3,
        "the creation synced only {} times",
        points.windows.len() - 1
    );

    for (what, files) in &states {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.redb");
        for (file, bytes) in files {
            std::fs::write(dir.path().join(file), bytes).unwrap();
        }
        if db.exists() {
            Store::open_existing(&db)
                .unwrap_or_else(|e| panic!("{what}: an incomplete file at the final path: {e}"));
        }
        let (store, _w) = Store::open(&db, 1 << 20)
            .unwrap_or_else(|e| panic!("{what}: the next start fails: {e}"));
        assert_eq!(store.reading_count().unwrap(), 0, "{what}");
        assert_eq!(store.last_event_seq().unwrap(), 0, "{what}");
        assert_eq!(store.verify_audit().unwrap().unwrap().entries, 0, "{what}");
        drop((store, _w));
        assert!(
            !creating_path(&db).exists(),
            "{what}: the temporary was left"
        );
        Store::open_existing(&db)
            .unwrap_or_else(|e| panic!("{what}: not a coldgate database: {e}"));
    }
}

fn rows(store: &Store) -> Vec<(String, String, Vec<u8>)> {
    store.state_rows("engine").unwrap().rows
}

fn put(part: &str, key: &str, value: &str) -> (String, String, Vec<u8>) {
    (part.into(), key.into(), value.as_bytes().to_vec())
}

#[test]
fn state_rows_are_put_deleted_and_cleared_with_the_commit_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    w.commit(&Batch {
        state: vec![("engine".into(), b"old blob".to_vec())],
        ..Batch::default()
    })
    .unwrap();
    let mut batch = Batch {
        rows: RowDelta {
            clear: true,
            put: vec![
                put("a", "1", "x"),
                put("serial", "g/1", "s"),
                put("a", "2", "y"),
                put("b", "1", "z"),
                put("lot", "g/l", "l"),
            ],
            delete: vec![],
            remove_named: vec!["engine".into()],
        },
        events: vec![event(5, 1)],
        ..Batch::default()
    };
    // A commit refused before it writes anything writes none of them.
    assert!(w.commit(&batch).is_err());
    assert!(rows(&store).is_empty());
    assert!(store.state("engine").unwrap().is_some());
    batch.events.clear();
    batch.readings = vec![reading("t", 1, 5.0)];
    w.commit(&batch).unwrap();
    let lot_and_serial = [put("lot", "g/l", "l"), put("serial", "g/1", "s")];
    assert_eq!(
        rows(&store),
        [
            &[put("a", "1", "x"), put("a", "2", "y"), put("b", "1", "z")][..],
            &lot_and_serial
        ]
        .concat()
    );
    assert_eq!(
        store.state("engine").unwrap(),
        None,
        "the blob went with them"
    );
    // Serials and lots apart from the rows routine commits rewrite.
    let db = store.db().unwrap();
    let txn = redb::ReadableDatabase::begin_read(&*db).unwrap();
    for (table, n) in [
        (tables::ENGINE_ROWS, 3),
        (tables::ENGINE_LOTS, 1),
        (tables::ENGINE_REGISTRY, 1),
    ] {
        let t = txn.open_table(table).unwrap();
        assert_eq!(redb::ReadableTableMetadata::len(&t).unwrap(), n);
    }
    drop((txn, db));

    w.commit(&Batch {
        rows: RowDelta {
            put: vec![put("a", "1", "x2")],
            delete: vec![("a".into(), "2".into())],
            ..RowDelta::default()
        },
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        rows(&store),
        [
            &[put("a", "1", "x2"), put("b", "1", "z")][..],
            &lot_and_serial
        ]
        .concat()
    );
    w.commit(&Batch {
        rows: RowDelta {
            clear: true,
            put: vec![put("c", "1", "w")],
            ..RowDelta::default()
        },
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(rows(&store), [put("c", "1", "w")], "all cleared, then put");
}

#[test]
fn a_file_of_schema_1_is_marked_2_when_a_writer_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    drop(Store::open(&path, 1 << 20).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for table in tables::ENGINE_TABLES {
            txn.delete_table(table).unwrap();
        }
        txn.open_table(tables::META)
            .unwrap()
            .insert(tables::SCHEMA_KEY, 1)
            .unwrap();
        txn.commit().unwrap();
    }
    // Read-only, a file of schema 1 is read as it is.
    let store = Store::open_existing(&path).unwrap();
    assert!(store.state_rows("engine").unwrap().rows.is_empty());
    drop(store);
    drop(Store::open(&path, 1 << 20).unwrap());
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    assert_eq!(meta.get(tables::SCHEMA_KEY).unwrap().unwrap().value(), 2);
}
