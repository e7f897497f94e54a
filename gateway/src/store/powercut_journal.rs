//! Power cuts under the journal, built the way `powercut` builds them for
//! redb: every write and sync of every segment file is logged in one
//! sequence, so a cut is one instant across all of them. Each file keeps
//! what it had at its last sync before the cut plus what the loss leaves
//! of its writes after it (dropped, or torn at 512-byte sectors); the
//! directory (creations, renames) is synced by the journal before a
//! record goes into a new name, so it is taken as of the cut.
//!
//! Each image is opened with the real `Journal::open` on real files: it
//! must replay a prefix of what was appended holding every record whose
//! sync returned, exactly as appended, and then live a second life (an
//! append after the crash must read back after the prefix).
//!
//! One room: the write log, the images cut from it and their checks are one
//! harness, shared by the journal-alone and the journal-and-fold workloads.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use coldgate_sensor_drivers::{Quantity, Reading};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::journal::{real_files, Journal, Kind, Opener, Options, SegmentFile};
use super::powercut::{crash_image, image_rng, Loss, Op, LOSSES};
use super::{Batch, Store};

#[derive(Debug, Clone)]
enum Entry {
    File(usize, Op),
    /// The numbered segments after a recycle returned: files recycled
    /// before it are gone from their names.
    Live(Vec<PathBuf>),
}

#[derive(Default)]
struct Inner {
    /// Per file opened: its path and its bytes when opened.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Where in `entries` each file was opened.
    opened_at: Vec<usize>,
    entries: Vec<Entry>,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Inner>>);

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Log({} entries)", self.position())
    }
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn position(&self) -> usize {
        self.lock().entries.len()
    }
}

struct Recording {
    file: File,
    index: usize,
    log: Log,
}

impl SegmentFile for Recording {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.file.read_all()
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        SegmentFile::write_at(&mut self.file, offset, data)?;
        self.log.lock().entries.push(Entry::File(
            self.index,
            Op::Write {
                offset,
                data: data.to_vec(),
            },
        ));
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        SegmentFile::sync_data(&mut self.file)?;
        self.log
            .lock()
            .entries
            .push(Entry::File(self.index, Op::Sync));
        Ok(())
    }
}

fn recording(log: &Log) -> Opener {
    let log = log.clone();
    Box::new(move |path: &Path| {
        let bytes = std::fs::read(path)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let mut inner = log.lock();
        let index = inner.files.len();
        inner.files.push((path.to_path_buf(), bytes));
        let at = inner.entries.len();
        inner.opened_at.push(at);
        drop(inner);
        Ok(Box::new(Recording {
            file,
            index,
            log: log.clone(),
        }) as Box<dyn SegmentFile>)
    })
}

fn payload(lsn: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (lsn as usize * 131 + j) as u8).collect()
}

/// What a run checked.
#[derive(Debug, Default)]
pub struct Report {
    pub images: usize,
    pub records: u64,
    /// Images that kept some record whose sync had not returned: the cuts
    /// did land inside syncs, and not every one lost everything.
    pub unsynced_kept: usize,
    pub failures: Vec<String>,
}

/// A recorded run: the log, the payload sizes appended (LSN = index + 1),
/// per sync that returned (log position, records durable), per recycle
/// (log position when it began, the folded LSN).
struct Recorded {
    log: Log,
    sizes: Vec<usize>,
    durable: Vec<(usize, u64)>,
    folded: Vec<(usize, u64)>,
}

const OPTIONS: Options = Options {
    segment_size: 8192,
    spares: 2,
};

fn record(dir: &Path, seed: u64, batches: usize) -> io::Result<Recorded> {
    let log = Log::default();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut recorded = Recorded {
        log: log.clone(),
        sizes: Vec::new(),
        durable: Vec::new(),
        folded: Vec::new(),
    };
    let (mut journal, _) =
        Journal::open(dir, OPTIONS, 1, recording(&log), |_| {}).map_err(io::Error::other)?;
    for _ in 0..batches {
        for _ in 0..rng.random_range(1..12) {
            let size = if rng.random_ratio(1, 10) {
                rng.random_range(600..3000)
            } else {
                rng.random_range(0..200)
            };
            let lsn = journal
                .append(
                    Kind::Readings,
                    &payload(recorded.sizes.len() as u64 + 1, size),
                )
                .map_err(io::Error::other)?;
            recorded.sizes.push(size);
            debug_assert_eq!(lsn, recorded.sizes.len() as u64);
        }
        journal.sync().map_err(io::Error::other)?;
        recorded
            .durable
            .push((log.position(), recorded.sizes.len() as u64));
        if rng.random_ratio(1, 8) {
            // A fold took everything durable but the last few records.
            let folded = (recorded.sizes.len() as u64).saturating_sub(rng.random_range(0..20));
            recorded.folded.push((log.position(), folded));
            journal.recycle(folded).map_err(io::Error::other)?;
            let live = live_segments(dir)?;
            log.lock().entries.push(Entry::Live(live));
        }
    }
    Ok(recorded)
}

/// The numbered segments in `dir`, sorted.
fn live_segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut live: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".seg") && !n.starts_with("spare-"))
        })
        .collect();
    live.sort();
    Ok(live)
}

/// The files a cut before entry `cut` leaves: name → bytes.
fn image(log: &Log, cut: usize, loss: Loss, rng: &mut SmallRng) -> Vec<(PathBuf, Vec<u8>)> {
    let inner = log.lock();
    let entries = &inner.entries[..cut];
    let live_marker = entries.iter().rposition(|e| matches!(e, Entry::Live(_)));
    let mut out = Vec::new();
    for (index, (path, base)) in inner.files.iter().enumerate() {
        let opened = inner.opened_at[index];
        if opened > cut {
            continue;
        }
        if let Some(at) = live_marker {
            if let Entry::Live(live) = &entries[at] {
                let segment = path.extension().is_some_and(|e| e == "seg");
                if segment && opened <= at && !live.contains(path) {
                    continue;
                }
            }
        }
        let ops: Vec<&Op> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::File(i, op) if *i == index => Some(op),
                _ => None,
            })
            .collect();
        let last_sync = ops.iter().rposition(|op| **op == Op::Sync);
        let (synced, window) = match last_sync {
            Some(s) => ops.split_at(s + 1),
            None => ops.split_at(0),
        };
        let mut file = crash_image(base, &[], Loss::Nothing, rng);
        let synced: Vec<Op> = synced.iter().map(|op| (*op).clone()).collect();
        file = crash_image(&file, &synced, Loss::Nothing, rng);
        let window: Vec<Op> = window.iter().map(|op| (*op).clone()).collect();
        file = crash_image(&file, &window, loss, rng);
        out.push((path.clone(), file));
    }
    out
}

fn check(
    recorded: &Recorded,
    files: Vec<(PathBuf, Vec<u8>)>,
    cut: usize,
    into: &Path,
) -> Result<bool, String> {
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    for (path, bytes) in &files {
        let name = path.file_name().ok_or("a segment without a name")?;
        std::fs::write(into.join(name), bytes).map_err(|e| e.to_string())?;
    }
    let durable = recorded
        .durable
        .iter()
        .filter(|(at, _)| *at <= cut)
        .map(|(_, n)| *n)
        .next_back()
        .unwrap_or(0);
    let from = recorded
        .folded
        .iter()
        .filter(|(at, _)| *at <= cut)
        .map(|(_, f)| f + 1)
        .next_back()
        .unwrap_or(1);
    let mut seen = Vec::new();
    let (mut journal, replayed) = Journal::open(into, OPTIONS, from, real_files(), |r| {
        seen.push((r.lsn, r.payload.to_vec()))
    })
    .map_err(|e| format!("Journal::open fails: {e}"))?;
    for (i, (lsn, bytes)) in seen.iter().enumerate() {
        let wanted = from + i as u64;
        if *lsn != wanted {
            return Err(format!("record {lsn} replayed where {wanted} was due"));
        }
        let size = recorded
            .sizes
            .get((lsn - 1) as usize)
            .ok_or_else(|| format!("record {lsn} was never appended"))?;
        if *bytes != payload(*lsn, *size) {
            return Err(format!("record {lsn} is not what was appended"));
        }
    }
    let last = replayed.next_lsn - 1;
    if last < durable {
        return Err(format!(
            "records up to {durable} were synced; replay ends at {last} ({:?})",
            replayed.tail
        ));
    }
    // A second life: what is appended after the crash reads back after
    // what survived it.
    let next = journal
        .append(Kind::Tick, b"after")
        .map_err(|e| e.to_string())?;
    journal.sync().map_err(|e| e.to_string())?;
    drop(journal);
    let mut again = Vec::new();
    Journal::open(into, OPTIONS, from, real_files(), |r| again.push(r.lsn))
        .map_err(|e| format!("the second open fails: {e}"))?;
    if again.last() != Some(&next) || again.len() != seen.len() + 1 {
        return Err(format!(
            "after a second life {} records end at {:?}, where {} ending at {next} were due",
            again.len(),
            again.last(),
            seen.len() + 1
        ));
    }
    std::fs::remove_dir_all(into).map_err(|e| e.to_string())?;
    Ok(last > durable)
}

/// Records `batches` synced batches (with rolls and recycles) and checks
/// `images` crash images cut across them.
pub fn run(seed: u64, images: usize, batches: usize) -> io::Result<Report> {
    let dir = tempfile::tempdir()?;
    let recorded = record(&dir.path().join("journal"), seed, batches)?;
    let syncs: Vec<usize> = {
        let inner = recorded.log.lock();
        inner
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Entry::File(_, Op::Sync)))
            .map(|(i, _)| i)
            .collect()
    };
    let mut report = Report {
        records: recorded.sizes.len() as u64,
        ..Report::default()
    };
    for image_no in 0..images {
        let mut rng = image_rng(seed, image_no);
        // Half the cuts just before a sync (its writes in flight), half
        // anywhere.
        let cut = if image_no % 2 == 0 && !syncs.is_empty() {
            syncs[rng.random_range(0..syncs.len())]
        } else {
            rng.random_range(0..=recorded.log.position())
        };
        let loss = LOSSES[(image_no / 2) % LOSSES.len()];
        let files = image(&recorded.log, cut, loss, &mut rng);
        report.images += 1;
        match check(
            &recorded,
            files,
            cut,
            &dir.path().join(format!("image-{image_no}")),
        ) {
            Ok(kept) => report.unsynced_kept += usize::from(kept),
            Err(what) => report.failures.push(format!(
                "seed {seed} image {image_no} (cut at {cut}, {loss:?}): {what}"
            )),
        }
    }
    Ok(report)
}

#[test]
fn no_power_cut_loses_a_synced_record_or_replays_one_not_appended() {
    let seed = std::env::var("COLDGATE_POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let report = run(seed, 300, 120).unwrap();
    eprintln!("{report:?}");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.images, 300);
    // The test proved something: cuts landed inside syncs and kept some of
    // their records, and the workload rolled and recycled segments.
    assert!(report.unsynced_kept > 10, "{report:?}");
    assert!(report.records > 500, "{report:?}");
}

// ---- The journal and a fold into redb, cut at one instant ----

/// Where the fold records the last LSN it holds, in the same transaction
/// as the readings (the design's `folded_lsn`).
const FOLDED: &str = "journal.folded_lsn";

/// redb's page cache for the images, small as on a Pi.
const CACHE: usize = 1 << 20;

/// redb's file backend, its changes logged in the journal's sequence.
#[derive(Debug)]
struct RedbRecording {
    file: FileBackend,
    index: usize,
    log: Log,
}

impl RedbRecording {
    fn open(path: &Path, index: usize, log: &Log) -> io::Result<RedbRecording> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let file = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(RedbRecording {
            file,
            index,
            log: log.clone(),
        })
    }

    fn push(&self, op: Op) {
        self.log.lock().entries.push(Entry::File(self.index, op));
    }
}

impl StorageBackend for RedbRecording {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)?;
        self.push(Op::SetLen(len));
        Ok(())
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()?;
        self.push(Op::Sync);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.file.write(offset, data)?;
        self.push(Op::Write {
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

/// The reading a journal record of LSN `lsn` stands for.
fn reading_of(lsn: u64) -> Reading {
    Reading::new(
        Arc::from("t1"),
        Quantity::Temperature,
        lsn as f64,
        1_700_000_000_000 + lsn as i64,
    )
}

/// A fold: where in the log it began and returned, and the LSN it folded.
#[derive(Debug, Clone, Copy)]
struct Fold {
    began: usize,
    returned: usize,
    folded: u64,
}

struct FoldRecorded {
    journal: Recorded,
    folds: Vec<Fold>,
}

/// Readings journalled in synced batches and now and then folded into
/// redb (readings and the folded LSN in one durable commit), the segments
/// below recycled after it returned: the order docs/journal.md gives.
fn record_folds(dir: &Path, seed: u64, batches: usize) -> io::Result<FoldRecorded> {
    let db = dir.join("gateway.redb");
    drop(Store::open(&db, CACHE).map_err(io::Error::other)?);
    let log = Log::default();
    let index = {
        let mut inner = log.lock();
        inner.files.push((db.clone(), std::fs::read(&db)?));
        let at = inner.entries.len();
        inner.opened_at.push(at);
        inner.files.len() - 1
    };
    let (maker_log, maker_db) = (log.clone(), db.clone());
    let (_store, mut writer) = Store::open_with_backend(&db, CACHE, move || {
        RedbRecording::open(&maker_db, index, &maker_log)
            .unwrap_or_else(|e| panic!("the recording backend cannot open the database: {e}"))
    })
    .map_err(io::Error::other)?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut recorded = FoldRecorded {
        journal: Recorded {
            log: log.clone(),
            sizes: Vec::new(),
            durable: Vec::new(),
            folded: Vec::new(),
        },
        folds: Vec::new(),
    };
    let journal_dir = dir.join("journal");
    let (mut journal, _) = Journal::open(&journal_dir, OPTIONS, 1, recording(&log), |_| {})
        .map_err(io::Error::other)?;
    let mut folded = 0u64;
    for _ in 0..batches {
        let sizes = &mut recorded.journal.sizes;
        for _ in 0..rng.random_range(1..40) {
            let size = rng.random_range(0..120);
            journal
                .append(Kind::Readings, &payload(sizes.len() as u64 + 1, size))
                .map_err(io::Error::other)?;
            sizes.push(size);
        }
        journal.sync().map_err(io::Error::other)?;
        let count = sizes.len() as u64;
        recorded.journal.durable.push((log.position(), count));
        if rng.random_ratio(1, 4) {
            let began = log.position();
            let readings: Vec<Reading> = (folded + 1..=count).map(reading_of).collect();
            writer
                .commit(&Batch {
                    readings: readings.clone(),
                    state: vec![(FOLDED.into(), count.to_le_bytes().to_vec())],
                    ..Batch::default()
                })
                .map_err(io::Error::other)?;
            recorded.folds.push(Fold {
                began,
                returned: log.position(),
                folded: count,
            });
            recorded.journal.folded.push((log.position(), count));
            folded = count;
            journal.recycle(folded).map_err(io::Error::other)?;
            let live = live_segments(&journal_dir)?;
            log.lock().entries.push(Entry::Live(live));
        }
    }
    Ok(recorded)
}

/// Opens an image of the database and the journal together: redb holds
/// the readings up to its folded LSN, exactly, and the journal the rest
/// from there, with every reading journalled by a sync that returned;
/// the folded LSN is that of the last fold that returned or of one in
/// flight. Returns whether a fold in flight was kept.
fn check_fold(
    recorded: &FoldRecorded,
    files: Vec<(PathBuf, Vec<u8>)>,
    cut: usize,
    into: &Path,
) -> Result<bool, String> {
    let journal_dir = into.join("journal");
    std::fs::create_dir_all(&journal_dir).map_err(|e| e.to_string())?;
    let db = into.join("gateway.redb");
    for (path, bytes) in &files {
        let name = path.file_name().ok_or("a file without a name")?;
        let to = if name == "gateway.redb" {
            db.clone()
        } else {
            journal_dir.join(name)
        };
        std::fs::write(to, bytes).map_err(|e| e.to_string())?;
    }
    let (folded, readings) = {
        let (store, _writer) =
            Store::open(&db, CACHE).map_err(|e| format!("Store::open fails: {e}"))?;
        let folded = match store.state(FOLDED).map_err(|e| e.to_string())? {
            None => 0,
            Some(bytes) => u64::from_le_bytes(
                bytes
                    .try_into()
                    .map_err(|_| "a folded LSN of the wrong length")?,
            ),
        };
        let mut readings = Vec::new();
        store
            .for_each_reading(None, i64::MIN, i64::MAX, |r| {
                readings.push((r.seq, r.value));
                true
            })
            .map_err(|e| e.to_string())?;
        (folded, readings)
    };
    let returned = recorded
        .folds
        .iter()
        .filter(|f| f.returned <= cut)
        .map(|f| f.folded)
        .next_back()
        .unwrap_or(0);
    let in_flight = recorded
        .folds
        .iter()
        .find(|f| f.began < cut && cut < f.returned)
        .map(|f| f.folded);
    if folded != returned && Some(folded) != in_flight {
        return Err(format!(
            "redb has folded to {folded}; the last fold that returned reached {returned}, \
             the one in flight {in_flight:?}"
        ));
    }
    let wanted: Vec<(u64, f64)> = (1..=folded).map(|l| (l, l as f64)).collect();
    if readings != wanted {
        return Err(format!(
            "redb holds {} readings, not those up to its folded LSN {folded}",
            readings.len()
        ));
    }
    let durable = recorded
        .journal
        .durable
        .iter()
        .filter(|(at, _)| *at <= cut)
        .map(|(_, n)| *n)
        .next_back()
        .unwrap_or(0);
    let mut seen = Vec::new();
    let (_, replayed) = Journal::open(&journal_dir, OPTIONS, folded + 1, real_files(), |r| {
        seen.push((r.lsn, r.payload.to_vec()))
    })
    .map_err(|e| format!("Journal::open from {} fails: {e}", folded + 1))?;
    for (lsn, bytes) in &seen {
        let size = recorded
            .journal
            .sizes
            .get((lsn - 1) as usize)
            .ok_or_else(|| format!("record {lsn} was never appended"))?;
        if *bytes != payload(*lsn, *size) {
            return Err(format!("record {lsn} is not what was appended"));
        }
    }
    let last = replayed.next_lsn - 1;
    if last < durable {
        return Err(format!(
            "readings up to {durable} were synced; redb has {folded}, the journal ends at {last}"
        ));
    }
    std::fs::remove_dir_all(into).map_err(|e| e.to_string())?;
    Ok(in_flight == Some(folded) && folded != returned)
}

#[derive(Debug, Default)]
pub struct FoldReport {
    pub images: usize,
    pub folds: usize,
    /// Images cut inside a fold: kept, and rolled back.
    pub fold_kept: usize,
    pub fold_lost: usize,
    pub failures: Vec<String>,
}

/// Records the journal-and-fold workload and checks `images` crash images,
/// half of them cut inside a fold.
pub fn run_folds(seed: u64, images: usize, batches: usize) -> io::Result<FoldReport> {
    let dir = tempfile::tempdir()?;
    let recorded = record_folds(dir.path(), seed, batches)?;
    let mut report = FoldReport {
        folds: recorded.folds.len(),
        ..FoldReport::default()
    };
    let end = recorded.journal.log.position();
    for image_no in 0..images {
        let mut rng = image_rng(seed, image_no);
        let cut = match recorded
            .folds
            .get(rng.random_range(0..recorded.folds.len().max(1)))
        {
            // Half of a fold's cuts just before its last sync, all its
            // writes issued: the only place a fold in flight can survive,
            // and both outcomes must be seen.
            Some(f) if image_no % 2 == 0 => {
                if rng.random_ratio(1, 2) {
                    f.returned - 1
                } else {
                    rng.random_range(f.began..=f.returned)
                }
            }
            _ => rng.random_range(0..=end),
        };
        let loss = LOSSES[(image_no / 2) % LOSSES.len()];
        let files = image(&recorded.journal.log, cut, loss, &mut rng);
        report.images += 1;
        let in_fold = recorded
            .folds
            .iter()
            .any(|f| f.began < cut && cut < f.returned);
        match check_fold(
            &recorded,
            files,
            cut,
            &dir.path().join(format!("image-{image_no}")),
        ) {
            Ok(true) => report.fold_kept += 1,
            Ok(false) if in_fold => report.fold_lost += 1,
            Ok(false) => {}
            Err(what) => report.failures.push(format!(
                "seed {seed} image {image_no} (cut at {cut}, {loss:?}): {what}"
            )),
        }
    }
    Ok(report)
}

#[test]
fn a_power_cut_during_a_fold_leaves_every_reading_in_redb_or_in_the_journal() {
    let seed = std::env::var("COLDGATE_POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let report = run_folds(seed, 300, 80).unwrap();
    eprintln!("{report:?}");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    // Cuts landed inside folds, and both outcomes were seen.
    assert!(report.folds > 10, "{report:?}");
    assert!(report.fold_kept > 5 && report.fold_lost > 5, "{report:?}");
}
