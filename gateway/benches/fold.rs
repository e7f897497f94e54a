//! What one fold costs the card, part by part (issue 20, docs/journal.md
//! "Why a fold writes what it writes").
//!
//! A fold is one durable `Writer::commit` of the readings held since the
//! last one. The wear bench (`benches/ingest.rs`) measured about 240 KB for a
//! fold of 3,000 readings where the rows themselves are about 90 KB, so this
//! commits folds into a real redb file already warmed by earlier folds and
//! separates the bytes three ways:
//!
//! - what redb asked to write (`write` calls on its storage backend, counted
//!   by a wrapper around redb's own `FileBackend`): redb's part;
//! - what the kernel charged the process (`/proc/self/io` `write_bytes`):
//!   the page cache's part on top, since a write into a large folio dirties
//!   (and charges) the whole folio;
//! - the same fold with the parts of ingest's fold added one at a time (the
//!   retention and size trim, the named state rows, engine state rows).
//!
//! `cargo bench -p coldgate --bench fold` (or `cargo test --bench fold` for
//! a debug build; the bytes do not depend on the optimisation).

mod support;
use support::write_bytes;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use coldgate::store::{Batch, RowDelta, Store, Trim, Writer};
use coldgate_sensor_drivers::{Quantity, Reading};
use redb::backends::FileBackend;
use redb::StorageBackend;
use std::io::Error as BackendIoError;

const SENSORS: usize = 100;
const WARM_FOLDS: usize = 12;
const MEASURED_FOLDS: usize = 10;

#[derive(Debug, Default)]
struct Counts {
    bytes: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
}

/// redb's own file backend, counting what redb asks of it.
#[derive(Debug)]
struct Counting {
    file: FileBackend,
    counts: Arc<Counts>,
}

impl StorageBackend for Counting {
    fn len(&self) -> Result<u64, BackendIoError> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), BackendIoError> {
        self.counts.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        self.counts
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        self.file.write(offset, data)
    }
}

/// redb's cache: `storage.cache_size`'s default, or `COLDGATE_FOLD_CACHE`
/// bytes (to see what a cache too small for one fold costs).
fn cache_size() -> usize {
    std::env::var("COLDGATE_FOLD_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
}

/// Writes the file's dirty pages and drops it from the page cache, as a
/// restart (or memory pressure on a Pi) does: what redb reads next comes
/// back through readahead, in folios as large as the kernel chooses.
/// (GNU dd's `nocache` with no data is `posix_fadvise(DONTNEED)` on the
/// whole file, without unsafe code here.)
fn evict(path: &Path) {
    let file = std::fs::File::open(path).expect("open to evict");
    file.sync_all().expect("sync to evict");
    let status = std::process::Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .expect("dd");
    assert!(status.success(), "dd could not evict {}", path.display());
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    /// Readings a fold holds (10 or 100 values/s for 5 minutes).
    readings: usize,
    trim: bool,
    named_state: bool,
    engine_rows: usize,
    /// Drop the file from the page cache before each fold.
    evict: bool,
}

struct Measured {
    redb_bytes: u64,
    redb_writes: u64,
    syncs: u64,
    charged: u64,
}

fn batch(v: &Variant, fold: usize, t0: &mut i64) -> Batch {
    let mut b = Batch::default();
    let per_sensor = v.readings / SENSORS;
    // Spread over the fold's five minutes, time first as they arrive.
    let step = 300_000 / per_sensor as i64;
    for i in 0..per_sensor {
        for s in 0..SENSORS {
            let at = *t0 + i as i64 * step + s as i64;
            b.readings.push(Reading::new(
                Arc::from(format!("s{s:03}").as_str()),
                Quantity::Temperature,
                5.0 + ((i + s) % 7) as f64 * 0.1,
                at,
            ));
        }
    }
    *t0 += 300_000;
    if v.trim {
        b.trim = Some(Trim {
            before_ms: *t0 - 90 * 86_400_000,
            max_bytes: Some(1 << 30),
        });
    }
    if v.named_state {
        b.state.push((
            "journal_folded".into(),
            (fold as u64 * 1_000).to_le_bytes().to_vec(),
        ));
        b.state.push(("lifecycle".into(), vec![7u8; 24]));
    }
    if v.engine_rows > 0 {
        b.rows = RowDelta {
            put: (0..v.engine_rows)
                .map(|i| {
                    // What changes between two folds in steady state: each
                    // sensor's presence row (its last-seen minute), as the
                    // engine serialises it.
                    (
                        "presence".to_string(),
                        format!("s{i:03}"),
                        format!(
                            "{{\"last_seen_ms\":{},\"silent_at_ms\":null}}",
                            *t0 - 60_000
                        )
                        .into_bytes(),
                    )
                })
                .collect(),
            ..RowDelta::default()
        };
    }
    b
}

fn run(v: Variant, dir: &Path) -> Measured {
    let path: PathBuf = dir.join(format!("fold-{}.redb", v.name));
    let _ = std::fs::remove_file(&path);
    let counts = Arc::new(Counts::default());
    let opener_counts = counts.clone();
    let opener_path = path.clone();
    let (_store, mut writer): (Store, Writer) =
        Store::open_with_backend(&path, cache_size(), move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&opener_path)
                .expect("db file");
            Counting {
                file: FileBackend::new(file).expect("backend"),
                counts: opener_counts.clone(),
            }
        })
        .expect("store");
    let mut t0 = 1_800_000_000_000i64;
    for fold in 0..WARM_FOLDS {
        writer.commit(&batch(&v, fold, &mut t0)).expect("warm fold");
    }
    let mut m = Measured {
        redb_bytes: 0,
        redb_writes: 0,
        syncs: 0,
        charged: 0,
    };
    for fold in WARM_FOLDS..WARM_FOLDS + MEASURED_FOLDS {
        let b = batch(&v, fold, &mut t0);
        if v.evict {
            evict(&path);
        }
        let (bytes, writes, syncs) = (
            counts.bytes.load(Ordering::Relaxed),
            counts.writes.load(Ordering::Relaxed),
            counts.syncs.load(Ordering::Relaxed),
        );
        let charged = write_bytes();
        writer.commit(&b).expect("fold");
        m.charged += write_bytes() - charged;
        m.redb_bytes += counts.bytes.load(Ordering::Relaxed) - bytes;
        m.redb_writes += counts.writes.load(Ordering::Relaxed) - writes;
        m.syncs += counts.syncs.load(Ordering::Relaxed) - syncs;
    }
    // The figures mean something only if each fold was one durable commit
    // and the kernel's count was read: a missing /proc/self/io would print
    // zeros that look like a saving.
    assert!(
        m.syncs >= MEASURED_FOLDS as u64,
        "at least one fsync a fold"
    );
    assert!(
        m.charged > 0 && m.redb_bytes > 0,
        "no bytes counted: is /proc/self/io readable?"
    );
    m
}

/// The fold as blocks (docs/journal.md, "Readings as blocks"), raw redb
/// with nothing of ours around it: per sensor one block a fold, keyed time
/// first `(first ms, sensor index)` so that a fold appends at the right of
/// one tree, holding each reading as its time delta (zigzag varint) and its
/// value's 8 bytes unchanged (lossless; no value compression assumed). With
/// the per-sensor seqs and a state row written as a fold of rows writes them.
/// Returns (redb bytes, charged bytes) a fold.
fn blocks(readings: usize, dir: &Path) -> (u64, u64) {
    use redb::{Database, Durability, TableDefinition};
    const BLOCKS: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("reading_blocks");
    const SEQ: TableDefinition<u32, u64> = TableDefinition::new("sensor_seq");
    const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
    let path = dir.join(format!("blocks-{readings}.redb"));
    let _ = std::fs::remove_file(&path);
    let counts = Arc::new(Counts::default());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .expect("db file");
    let db: Database = redb::Builder::new()
        .set_cache_size(cache_size())
        .create_with_backend(Counting {
            file: FileBackend::new(file).expect("backend"),
            counts: counts.clone(),
        })
        .expect("redb");
    let per_sensor = readings / SENSORS;
    let step = 300_000 / per_sensor as i64;
    let (mut redb_bytes, mut charged) = (0, 0);
    let mut t0 = 1_800_000_000_000i64;
    for fold in 0..WARM_FOLDS + MEASURED_FOLDS {
        let (b0, c0) = (counts.bytes.load(Ordering::Relaxed), write_bytes());
        let mut txn = db.begin_write().expect("txn");
        txn.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut table = txn.open_table(BLOCKS).expect("blocks");
            let mut seqs = txn.open_table(SEQ).expect("seqs");
            let mut buf = Vec::new();
            for s in 0..SENSORS {
                buf.clear();
                let mut prev = t0;
                for i in 0..per_sensor {
                    let at = t0 + i as i64 * step + s as i64;
                    let delta = at - prev;
                    prev = at;
                    let mut z = ((delta << 1) ^ (delta >> 63)) as u64;
                    loop {
                        let byte = (z & 0x7f) as u8;
                        z >>= 7;
                        if z == 0 {
                            buf.push(byte);
                            break;
                        }
                        buf.push(byte | 0x80);
                    }
                    let value = 5.0 + ((i + s) % 7) as f64 * 0.1;
                    buf.extend_from_slice(&value.to_le_bytes());
                }
                table
                    .insert((t0 + s as i64, s as u32), buf.as_slice())
                    .expect("block");
                seqs.insert(s as u32, ((fold + 1) * per_sensor) as u64)
                    .expect("seq");
            }
            let mut st = txn.open_table(STATE).expect("state");
            st.insert("journal_folded", (fold as u64).to_le_bytes().as_slice())
                .expect("state");
        }
        txn.commit().expect("commit");
        t0 += 300_000;
        if fold >= WARM_FOLDS {
            redb_bytes += counts.bytes.load(Ordering::Relaxed) - b0;
            charged += write_bytes() - c0;
        }
    }
    let n = MEASURED_FOLDS as u64;
    (redb_bytes / n, charged / n)
}

fn main() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-fold");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let only = std::env::var("COLDGATE_FOLD_VARIANT").ok();
    let base = Variant {
        name: "rows",
        readings: 3_000,
        trim: false,
        named_state: false,
        engine_rows: 0,
        evict: false,
    };
    let variants = [
        base,
        Variant {
            name: "rows+trim",
            trim: true,
            ..base
        },
        Variant {
            name: "rows+trim+state",
            trim: true,
            named_state: true,
            ..base
        },
        Variant {
            name: "rows+trim+state+20 presence rows",
            trim: true,
            named_state: true,
            engine_rows: 20,
            ..base
        },
        Variant {
            name: "rows+trim+state+100 presence rows",
            trim: true,
            named_state: true,
            engine_rows: 100,
            ..base
        },
        Variant {
            name: "rows, evicted before each fold",
            evict: true,
            ..base
        },
        Variant {
            name: "rows 30000",
            readings: 30_000,
            ..base
        },
        Variant {
            name: "rows 30000, evicted before each fold",
            readings: 30_000,
            evict: true,
            ..base
        },
    ];
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>8} {:>12}",
        "fold of", "readings", "redb B", "writes", "syncs", "charged B"
    );
    for v in variants {
        if only.as_deref().is_some_and(|o| o != v.name) {
            continue;
        }
        let m = run(v, &dir);
        let n = MEASURED_FOLDS as u64;
        println!(
            "{:<40} {:>10} {:>10} {:>10} {:>8.1} {:>12}",
            v.name,
            v.readings,
            m.redb_bytes / n,
            m.redb_writes / n,
            m.syncs as f64 / n as f64,
            m.charged / n
        );
    }
    for readings in [3_000, 30_000] {
        if only.as_deref().is_some_and(|o| o != "blocks") {
            continue;
        }
        let (redb_bytes, charged) = blocks(readings, &dir);
        assert!(charged > 0, "no bytes counted: is /proc/self/io readable?");
        println!(
            "{:<40} {:>10} {:>10} {:>10} {:>8} {:>12}",
            "blocks (raw redb, 8 B values)", readings, redb_bytes, "", 1, charged
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
