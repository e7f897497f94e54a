//! Power cuts for real, not simulated by killing a process: a process kill
//! leaves every write in the page cache, a power cut loses whatever was not
//! synced, and a disk may have written only some of it, in any order, a
//! 512-byte sector at a time. So the store runs on a backend that records
//! every write, length change and sync; crash images are rebuilt from that
//! log (the file as of a sync, plus some of the un-synced writes after it)
//! and each is opened with the real `Store::open`, which runs redb's repair.
//! Nothing a commit that returned `Ok` before the image's sync wrote may be
//! missing, and no commit may be visible in part.
//!
//! Shared by the unit test (a CI-sized count) and `benches/powercut.rs`
//! (thousands), which includes this file: it names the coldgate API only
//! through `crate::store` and `crate::audit`, which the bench re-exports.
//!
//! One room: the write log, the crash images built from it and the checks of each image are one
//! harness; its cases are its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coldgate_sensor_drivers::{Quantity, Reading};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::audit::{AuditKind, AuditRecord};
use crate::store::{Batch, RowDelta, Store, StoredEvent};

/// The unit a disk writes atomically at best: a torn write lands as some
/// of its sectors.
pub const SECTOR: u64 = 512;

/// The cache the images are opened with, small as on a Pi.
const CACHE: usize = 1 << 20;

/// The state blob the workload commits with every batch, as ingest does
/// with the engine's state.
const ENGINE_KEY: &str = "engine";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
    Sync,
}

/// The operations on one file, in the order the backend saw them, shared
/// between the backend (redb owns it) and the test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<LogInner>>);

#[derive(Default)]
struct LogInner {
    /// The file each backend opened, in order (a creation writes to the
    /// temporary, never to the final path).
    paths: Vec<PathBuf>,
    ops: Vec<Op>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Log({} ops)", self.position())
    }
}

impl Log {
    fn push(&self, op: Op) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ops
            .push(op);
    }

    /// Operations logged so far: where the next one will be.
    pub fn position(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ops
            .len()
    }

    pub fn syncs(&self) -> usize {
        let inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner.ops.iter().filter(|o| **o == Op::Sync).count()
    }

    pub fn ops(&self) -> Vec<Op> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ops
            .clone()
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .paths
            .clone()
    }
}

/// redb's own file backend, every change it makes logged after it succeeded.
#[derive(Debug)]
pub struct Recording {
    file: FileBackend,
    log: Log,
}

impl Recording {
    /// Opens (creating) `path` the way `redb::Builder::create` does.
    pub fn open(path: &Path, log: &Log) -> io::Result<Recording> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let file = FileBackend::new(file).map_err(io::Error::other)?;
        log.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .paths
            .push(path.to_path_buf());
        Ok(Recording {
            file,
            log: log.clone(),
        })
    }
}

impl StorageBackend for Recording {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)?;
        self.log.push(Op::SetLen(len));
        Ok(())
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()?;
        self.log.push(Op::Sync);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.file.write(offset, data)?;
        self.log.push(Op::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
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

/// What a disk may have kept of the writes after the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Nothing after the sync reached the disk.
    All,
    /// Everything did (the next sync had not returned, but the disk was done).
    Nothing,
    /// The first operations reached the disk in order, the next one torn.
    Prefix,
    /// Each operation independently reached the disk or not.
    Dropped,
    /// Each 512-byte sector of each write, and each length change,
    /// independently reached the disk or not.
    Torn,
}

pub const LOSSES: [Loss; 5] = [
    Loss::All,
    Loss::Nothing,
    Loss::Prefix,
    Loss::Dropped,
    Loss::Torn,
];

fn apply(file: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => write_at(file, *offset, data),
        Op::SetLen(len) => file.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
        Op::Sync => {}
    }
}

fn write_at(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = start + data.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[start..end].copy_from_slice(data);
}

/// Applies the sectors of a write the rng picks, each with even odds.
fn apply_torn(file: &mut Vec<u8>, op: &Op, rng: &mut SmallRng) {
    let Op::Write { offset, data } = op else {
        if rng.random_bool(0.5) {
            apply(file, op);
        }
        return;
    };
    let mut at = *offset;
    let end = offset + data.len() as u64;
    while at < end {
        let next = ((at / SECTOR) + 1) * SECTOR;
        let next = next.min(end);
        if rng.random_bool(0.5) {
            let from = (at - offset) as usize;
            let to = (next - offset) as usize;
            write_at(file, at, &data[from..to]);
        }
        at = next;
    }
}

/// The file after a crash: `synced` (the file as of a sync) with what
/// `loss` leaves of `window`, the operations up to the next sync.
pub fn crash_image(synced: &[u8], window: &[Op], loss: Loss, rng: &mut SmallRng) -> Vec<u8> {
    let mut file = synced.to_vec();
    match loss {
        Loss::All => {}
        Loss::Nothing => window.iter().for_each(|op| apply(&mut file, op)),
        Loss::Prefix => {
            let kept = rng.random_range(0..=window.len());
            window[..kept].iter().for_each(|op| apply(&mut file, op));
            if let Some(op) = window.get(kept) {
                apply_torn(&mut file, op, rng);
            }
        }
        Loss::Dropped => {
            for op in window {
                if rng.random_bool(0.5) {
                    apply(&mut file, op);
                }
            }
        }
        Loss::Torn => window.iter().for_each(|op| apply_torn(&mut file, op, rng)),
    }
    file
}

/// The log cut at its syncs: `windows[k]` is what followed the k-th sync
/// (the 0th: the log's start) up to the next, what a cut after sync k may
/// have lost.
pub struct SyncPoints {
    pub windows: Vec<Vec<Op>>,
}

impl SyncPoints {
    pub fn new(ops: &[Op]) -> SyncPoints {
        let windows = ops
            .split(|op| *op == Op::Sync)
            .map(<[Op]>::to_vec)
            .collect();
        SyncPoints { windows }
    }
}

/// The rng of one image: reproducible from the run's seed and the image's
/// number alone.
pub fn image_rng(seed: u64, image: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ (image as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Everything the workload committed, as it must read back: a model kept
/// beside the store, not read from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// (sensor, per-sensor seq) → (time ms, value).
    readings: BTreeMap<(String, u64), (i64, f64)>,
    /// Event seq → (time ms, payload).
    events: BTreeMap<u64, (i64, Vec<u8>)>,
    outbox: BTreeSet<u64>,
    engine: Option<Vec<u8>>,
    /// Engine state rows: (part, key) → value.
    rows: BTreeMap<(String, String), Vec<u8>>,
    /// Audit seq → (time ms, actor).
    audit: BTreeMap<u64, (i64, String)>,
}

/// One durable commit of the workload.
#[derive(Debug, Clone)]
pub struct CommitMark {
    /// Log length when the commit began: its writes come after.
    pub began_at_op: usize,
    /// Syncs done when it returned `Ok`: it is durable from that sync on.
    pub durable_at_sync: usize,
}

/// A recorded run: the file before it, the log, and per commit the model
/// after it (`models[0]`: before the first).
pub struct Recorded {
    pub base: Vec<u8>,
    pub ops: Vec<Op>,
    pub commits: Vec<CommitMark>,
    pub models: Vec<Model>,
}

/// The sensors of the workload: enough for interleaved per-sensor seqs.
const SENSORS: [&str; 3] = ["t1", "t2", "door"];

/// Runs the real write path over a recording backend the way ingest does:
/// readings in batches, events with their outbox entries, acks that delete
/// outbox entries, a named state blob, engine state rows (put, deleted, now
/// and then all rewritten, as on a start) and audit entries, each batch in
/// one durable commit. Batch sizes come from `seed`, some large enough to
/// grow the file.
pub fn record_workload(dir: &Path, seed: u64, commits: usize) -> io::Result<Recorded> {
    let path = dir.join("workload.redb");
    // Created by the real code, then reopened under the recorder: the log
    // starts from a file as a gateway finds it on a restart.
    drop(Store::open(&path, CACHE).map_err(io::Error::other)?);
    let base = std::fs::read(&path)?;
    let log = Log::default();
    let maker_log = log.clone();
    let maker_path = path.clone();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut models = vec![model.clone()];
    let mut marks = Vec::new();
    {
        let (_store, mut writer) = Store::open_with_backend(&path, CACHE, move || {
            Recording::open(&maker_path, &maker_log).unwrap_or_else(|e| {
                panic!(
                    "the recording backend cannot open {}: {e}",
                    maker_path.display()
                )
            })
        })
        .map_err(io::Error::other)?;
        let mut clock_ms: i64 = 1_700_000_000_000;
        let mut next_seq: BTreeMap<String, u64> = BTreeMap::new();
        for n in 0..commits {
            let size = if rng.random_ratio(1, 6) {
                rng.random_range(300..1200)
            } else {
                rng.random_range(1..60)
            };
            let mut readings = Vec::with_capacity(size);
            for _ in 0..size {
                let sensor = SENSORS[rng.random_range(0..SENSORS.len())];
                clock_ms += rng.random_range(1..50);
                let value = f64::from(rng.random_range(-400i32..400)) / 10.0;
                readings.push(Reading::new(
                    Arc::from(sensor),
                    Quantity::Temperature,
                    value,
                    clock_ms,
                ));
            }
            let mut events = Vec::new();
            for i in 0..rng.random_range(0..3u64) {
                let seq = writer.next_event_seq() + i;
                let filler = "x".repeat(rng.random_range(0..400));
                events.push(StoredEvent {
                    seq,
                    at_ms: clock_ms,
                    topic: "events/excursion".into(),
                    payload: format!("{{\"seq\":{seq},\"commit\":{n},\"f\":\"{filler}\"}}")
                        .into_bytes(),
                });
            }
            let acked: Vec<u64> = model
                .outbox
                .iter()
                .copied()
                .filter(|_| rng.random_ratio(1, 2))
                .collect();
            let engine = format!("engine state after commit {n} ")
                .repeat(rng.random_range(1..40))
                .into_bytes();
            let audit: Vec<AuditRecord> = (0..rng.random_range(0..2))
                .map(|i| AuditRecord {
                    at_ms: clock_ms,
                    kind: AuditKind::GatewayStarted,
                    actor: format!("powercut {n}/{i}"),
                    details: serde_json::json!({ "commit": n }),
                })
                .collect();
            let mut rows = RowDelta {
                clear: n % 20 == 7,
                ..RowDelta::default()
            };
            for _ in 0..rng.random_range(0..6) {
                let key = format!("k{:02}", rng.random_range(0..30));
                let value = format!("row {key} after commit {n} ")
                    .repeat(rng.random_range(1..20))
                    .into_bytes();
                rows.put.push(("part".into(), key, value));
            }
            for (part, key) in model.rows.keys() {
                if rng.random_ratio(1, 8) && !rows.put.iter().any(|p| p.1 == *key) {
                    rows.delete.push((part.clone(), key.clone()));
                }
            }
            let batch = Batch {
                readings,
                events,
                acked,
                state: vec![(ENGINE_KEY.into(), engine.clone())],
                rows: rows.clone(),
                audit,
                ..Batch::default()
            };
            let began_at_op = log.position();
            let next_audit = writer.next_audit_seq();
            writer.commit(&batch).map_err(io::Error::other)?;
            marks.push(CommitMark {
                began_at_op,
                durable_at_sync: log.syncs(),
            });
            for r in &batch.readings {
                let seq = next_seq.entry(r.sensor.to_string()).or_insert(0);
                *seq += 1;
                model
                    .readings
                    .insert((r.sensor.to_string(), *seq), (r.at_ms, r.value));
            }
            for ev in &batch.events {
                model.events.insert(ev.seq, (ev.at_ms, ev.payload.clone()));
                model.outbox.insert(ev.seq);
            }
            for seq in &batch.acked {
                model.outbox.remove(seq);
            }
            model.engine = Some(engine);
            if rows.clear {
                model.rows.clear();
            }
            for (part, key, value) in rows.put {
                model.rows.insert((part, key), value);
            }
            for k in rows.delete {
                model.rows.remove(&k);
            }
            for (i, record) in batch.audit.iter().enumerate() {
                model
                    .audit
                    .insert(next_audit + i as u64, (record.at_ms, record.actor.clone()));
            }
            models.push(model.clone());
        }
    }
    Ok(Recorded {
        base,
        ops: log.ops(),
        commits: marks,
        models,
    })
}

/// Reads back what an opened store holds, in the model's terms, checking
/// on the way what must hold of any state: per-sensor seqs gap-free from
/// 1, every outbox entry an event, the audit chain verifying.
pub fn read_back(store: &Store) -> Result<Model, String> {
    let mut model = Model::default();
    let mut failed = None;
    store
        .for_each_reading(None, i64::MIN, i64::MAX, |r| {
            if model
                .readings
                .insert((r.sensor.to_string(), r.seq), (r.at_ms, r.value))
                .is_some()
            {
                failed = Some(format!("reading {} #{} stored twice", r.sensor, r.seq));
            }
            true
        })
        .map_err(|e| format!("reading the readings: {e}"))?;
    if let Some(f) = failed {
        return Err(f);
    }
    let mut per_sensor: BTreeMap<&str, u64> = BTreeMap::new();
    for (sensor, seq) in model.readings.keys() {
        let last = per_sensor.entry(sensor).or_insert(0);
        if *seq != *last + 1 {
            return Err(format!("sensor {sensor}: seq {seq} follows {last}"));
        }
        *last = *seq;
    }
    for ev in store
        .events_between(i64::MIN, i64::MAX)
        .map_err(|e| format!("reading the events: {e}"))?
    {
        model.events.insert(ev.seq, (ev.at_ms, ev.payload));
    }
    for ev in store
        .outbox_after(0, usize::MAX)
        .map_err(|e| format!("reading the outbox: {e}"))?
    {
        model.outbox.insert(ev.seq);
    }
    let (depth, _) = store
        .outbox_depth()
        .map_err(|e| format!("reading the outbox depth: {e}"))?;
    if depth != model.outbox.len() as u64 {
        return Err(format!(
            "{depth} outbox entries, {} of them with their event",
            model.outbox.len()
        ));
    }
    let stored = store
        .state_rows(ENGINE_KEY)
        .map_err(|e| format!("reading the engine state: {e}"))?;
    model.engine = stored.legacy;
    for (part, key, value) in stored.rows {
        model.rows.insert((part, key), value);
    }
    let verified = store
        .verify_audit()
        .map_err(|e| format!("reading the audit trail: {e}"))?
        .map_err(|e| format!("the audit chain does not verify: {e}"))?;
    for (seq, bytes) in store
        .audit_rows()
        .map_err(|e| format!("reading the audit trail: {e}"))?
    {
        let entry = crate::audit::AuditEntry::decode(&bytes)
            .ok_or_else(|| format!("audit entry {seq} undecodable"))?;
        model.audit.insert(seq, (entry.at_ms, entry.actor));
    }
    if verified.entries != model.audit.len() as u64 {
        return Err(format!(
            "{} audit entries verified of {}",
            verified.entries,
            model.audit.len()
        ));
    }
    Ok(model)
}

/// The first difference between two models, for a failure message.
fn difference(found: &Model, wanted: &Model) -> String {
    let missing = wanted
        .readings
        .keys()
        .filter(|k| !found.readings.contains_key(*k))
        .count();
    let extra = found
        .readings
        .keys()
        .filter(|k| !wanted.readings.contains_key(*k))
        .count();
    let mut parts = Vec::new();
    if missing + extra > 0 || found.readings != wanted.readings {
        parts.push(format!("readings: {missing} missing, {extra} extra"));
    }
    if found.events != wanted.events {
        parts.push(format!(
            "events {:?} where {:?}",
            found.events.keys().collect::<Vec<_>>(),
            wanted.events.keys().collect::<Vec<_>>()
        ));
    }
    if found.outbox != wanted.outbox {
        parts.push(format!(
            "outbox {:?} where {:?}",
            found.outbox, wanted.outbox
        ));
    }
    if found.engine != wanted.engine {
        parts.push("engine state differs".into());
    }
    if found.rows != wanted.rows {
        parts.push(format!(
            "engine rows {:?} where {:?}",
            found.rows.keys().collect::<Vec<_>>(),
            wanted.rows.keys().collect::<Vec<_>>()
        ));
    }
    if found.audit != wanted.audit {
        parts.push(format!(
            "audit {:?} where {:?}",
            found.audit.keys().collect::<Vec<_>>(),
            wanted.audit.keys().collect::<Vec<_>>()
        ));
    }
    parts.join("; ")
}

/// Opens one crash image with the real code and returns which commit's
/// state it holds: the last one durable at its sync, or a later one that
/// had begun writing; never anything else.
fn check_image(
    dir: &Path,
    image: &[u8],
    allowed: std::ops::RangeInclusive<usize>,
    models: &[Model],
) -> Result<usize, String> {
    let path = dir.join("image.redb");
    std::fs::write(&path, image).map_err(|e| format!("writing the image: {e}"))?;
    let found = {
        let (store, _writer) =
            Store::open(&path, CACHE).map_err(|e| format!("Store::open fails: {e}"))?;
        read_back(&store)?
    };
    std::fs::remove_file(&path).map_err(|e| format!("removing the image: {e}"))?;
    if let Some(j) = allowed.clone().find(|j| models[*j] == found) {
        return Ok(j);
    }
    let durable = *allowed.start();
    let near = models
        .iter()
        .position(|m| *m == found)
        .map(|j| format!("it holds the state after commit {j}"))
        .unwrap_or_else(|| "it holds no commit's state in full".into());
    Err(format!(
        "commits 1..={durable} were durable and at most {} may be there: {near}; \
         against commit {durable}: {}",
        allowed.end(),
        difference(&found, &models[durable])
    ))
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub images: usize,
    pub sync_points: usize,
    pub commits: usize,
    /// Images holding a commit that was still in flight at the cut: the
    /// cuts did land inside commits, with both outcomes seen below.
    pub in_flight_kept: usize,
    /// Images where a commit in flight at the cut was rolled back.
    pub in_flight_lost: usize,
    pub elapsed: Duration,
    pub failures: Vec<String>,
}

/// Records the workload (`commits` batches) and checks `images` crash
/// images of it, spread over every sync point and every kind of loss.
pub fn run(seed: u64, images: usize, commits: usize) -> io::Result<Report> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let recorded = record_workload(dir.path(), seed, commits)?;
    let points = SyncPoints::new(&recorded.ops);
    let mut report = Report {
        seed,
        sync_points: points.windows.len(),
        commits: recorded.commits.len(),
        ..Report::default()
    };
    // Op index where each window ends (the next sync), to know which
    // commits had begun writing before the cut.
    let mut window_end = Vec::with_capacity(points.windows.len());
    let mut at = 0;
    for w in &points.windows {
        at += w.len();
        window_end.push(at);
        at += 1;
    }
    let mut synced = recorded.base.clone();
    for (k, window) in points.windows.iter().enumerate() {
        let durable = recorded
            .commits
            .iter()
            .filter(|c| c.durable_at_sync <= k)
            .count();
        let begun = recorded
            .commits
            .iter()
            .filter(|c| c.began_at_op < window_end[k])
            .count();
        for image in (k..images).step_by(points.windows.len()) {
            let loss = LOSSES[(image + image / points.windows.len()) % LOSSES.len()];
            let mut rng = image_rng(seed, image);
            let file = crash_image(&synced, window, loss, &mut rng);
            report.images += 1;
            match check_image(
                dir.path(),
                &file,
                durable..=begun.max(durable),
                &recorded.models,
            ) {
                Ok(j) if j > durable => report.in_flight_kept += 1,
                Ok(_) if begun > durable => report.in_flight_lost += 1,
                Ok(_) => {}
                Err(what) => report.failures.push(format!(
                    "seed {seed} image {image} (sync point {k} of {}, {loss:?}, {} B): {what}",
                    points.windows.len() - 1,
                    file.len()
                )),
            }
        }
        window.iter().for_each(|op| apply(&mut synced, op));
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
