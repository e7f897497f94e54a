//! The gateway's memory: one redb file holding readings, events, the outbox
//! and the engine's state.
//!
//! [`Store`] is a cheap, clonable handle for reading (the publisher, the
//! diagnostics, `coldgate export`). Writing goes through [`Writer`], which
//! only ingest owns: one writer, so a batch's readings, the engine state and
//! the events they caused are committed in one transaction or not at all.
//!
//! One room: the read side, every query readers make through one `Store` handle; the writer,
//! tables, verification and the power-cut harness have files of their own.

mod batch;
mod error;
pub mod journal;
mod tables;
mod tail;
mod verify;
mod writer;

#[cfg(test)]
mod powercut;
#[cfg(test)]
mod powercut_journal;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use coldgate_sensor_drivers::Quantity;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

pub use error::StoreError;
pub use tables::COMMANDS_KEPT;
pub use tail::JOURNAL_FOLDED;

/// An outbox entry the publisher will not send: over `max_payload`. The
/// publisher reports it and ingest, the one writer, takes it out of the
/// outbox so it cannot block the entries behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub seq: u64,
    pub topic: String,
    pub bytes: usize,
}

pub use batch::{Batch, CommandAnswer, RowDelta, Telemetry, Trim};
pub use writer::{Committed, Writer, CHECKPOINT_EVERY_MS};

use tables::*;

/// The engine state as stored (see [`Store::state_rows`]).
#[derive(Debug, Default)]
pub struct StateRows {
    pub rows: Vec<(String, String, Vec<u8>)>,
    pub legacy: Option<Vec<u8>>,
}

/// The layout this build writes. Bump it with a migration when tables change.
/// 2: the engine state in rows (`ENGINE_ROWS`) instead of one blob; a file
/// of 1 is marked 2 when a writer opens it, so an earlier build, which
/// would start from an empty engine state, refuses it; the first commit
/// moves the blob into rows (`crate::snapshot`).
pub const SCHEMA_VERSION: u64 = 2;

/// A reading as stored, with its per-sensor sequence number (gap-free from 1,
/// so a missing reading shows).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub sensor: Arc<str>,
    pub seq: u64,
    pub quantity: Quantity,
    pub value: f64,
    pub at_ms: i64,
}

/// An event as stored: its topic below the prefix (`events/excursion`) and
/// the exact payload that is (re)published, so a resend is byte-identical.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub at_ms: i64,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl StoredEvent {
    /// From a row of the events (or telemetry) table.
    fn from_row(seq: u64, (at_ms, topic, payload): (i64, &str, &[u8])) -> StoredEvent {
        StoredEvent {
            seq,
            at_ms,
            topic: topic.to_string(),
            payload: payload.to_vec(),
        }
    }
}

/// Opens the database file again (after an I/O error redb refuses every
/// operation until the file is reopened, which also repairs it).
type Opener = Arc<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

#[derive(Clone)]
pub struct Store {
    /// Shared by every handle, so a reopen after a storage error (a full
    /// disk) reaches the publisher's and diagnostics' handles too. `None`
    /// between closing and a reopen that failed: every operation then fails
    /// with [`StoreError::Closed`] until a reopen succeeds.
    db: Arc<RwLock<Option<Arc<Database>>>>,
    path: Arc<PathBuf>,
    opener: Option<Opener>,
    /// Readings durable in the journal, not yet folded (see `tail.rs`):
    /// shared by every handle, like `db`.
    tail: tail::SharedTail,
}

/// Where a new database is built before it is renamed into place: beside
/// it (same file system, so the rename is atomic), named after it.
pub fn creating_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.creating"))
}

/// Creates the database at `path` if nothing is there: built with its
/// schema in [`creating_path`], synced, renamed to `path`, and the directory
/// synced. A crash at any write or sync of the creation leaves either no
/// database (a half-built temporary, removed on the next start) or a
/// complete one; never a file without its header at `path`. `before_rename`
/// runs after the temporary is synced (tests cut the creation there).
pub(crate) fn create_atomically(
    path: &Path,
    cache_size: usize,
    before_rename: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    create_atomically_on(path, cache_size, |b, temp| b.create(temp), before_rename)
}

/// [`create_atomically`], the temporary opened by `create` (given the
/// configured builder and the temporary's path): how tests record every
/// write and sync of a creation.
pub(crate) fn create_atomically_on(
    path: &Path,
    cache_size: usize,
    create: impl FnOnce(&redb::Builder, &Path) -> Result<Database, redb::DatabaseError>,
    before_rename: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    use std::io::ErrorKind::NotFound;
    let io = |source| StoreError::Create {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let temp = creating_path(path);
    match std::fs::remove_file(&temp) {
        Ok(()) => tracing::warn!(
            path = %temp.display(),
            "Removed a database whose creation was cut short; creating it again."
        ),
        Err(e) if e.kind() == NotFound => {}
        Err(e) => return Err(io(e)),
    }
    {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(cache_size);
        let db = create(&builder, &temp).map_err(|e| StoreError::open(&temp, e))?;
        Store::creating(db, &temp).init_schema()?;
    }
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    before_rename(&temp).map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    tracing::info!(path = %path.display(), "Created a new database.");
    Ok(())
}

impl Store {
    /// Opens the database, creating it (and its tables) if it does not
    /// exist — atomically, see [`create_atomically`].
    pub fn open(path: &Path, cache_size: usize) -> Result<(Store, Writer), StoreError> {
        create_atomically(path, cache_size, |_| Ok(()))?;
        let file = path.to_path_buf();
        Store::open_with(
            path,
            Arc::new(move || {
                redb::Builder::new()
                    .set_cache_size(cache_size)
                    .create(&file)
            }),
        )
    }

    /// [`Store::open`] on a storage backend `make` builds, once per (re)open:
    /// how tests put a disk that fails writes under the database.
    pub fn open_with_backend<B, F>(
        path: &Path,
        cache_size: usize,
        make: F,
    ) -> Result<(Store, Writer), StoreError>
    where
        B: redb::StorageBackend,
        F: Fn() -> B + Send + Sync + 'static,
    {
        Store::open_with(
            path,
            Arc::new(move || {
                redb::Builder::new()
                    .set_cache_size(cache_size)
                    .create_with_backend(make())
            }),
        )
    }

    fn open_with(path: &Path, opener: Opener) -> Result<(Store, Writer), StoreError> {
        let db = opener().map_err(|e| StoreError::open(path, e))?;
        let store = Store {
            db: Arc::new(RwLock::new(Some(Arc::new(db)))),
            path: Arc::new(path.to_path_buf()),
            opener: Some(opener),
            tail: tail::shared(),
        };
        store.init_schema()?;
        let writer = Writer::new(store.clone())?;
        Ok((store, writer))
    }

    /// The store of a file being created: schema only, never reopened.
    fn creating(db: Database, path: &Path) -> Store {
        Store {
            db: Arc::new(RwLock::new(Some(Arc::new(db)))),
            path: Arc::new(path.to_path_buf()),
            opener: None,
            tail: tail::shared(),
        }
    }

    /// Opens an existing database for reading only — a technician's copy of a
    /// gateway's card. It is never created and its schema is never changed.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        // `Path::exists` says false for a file behind a directory we may not
        // enter; opening it as redb will (read and write) tells the cases apart.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::Missing(path.to_path_buf()),
                _ => StoreError::Unreadable {
                    path: path.to_path_buf(),
                    source: crate::access::explain(path, crate::access::Access::ReadWrite, e),
                },
            });
        }
        let db = redb::Builder::new()
            .set_cache_size(16 << 20)
            .open(path)
            .map_err(|e| StoreError::open(path, e))?;
        let store = Store {
            db: Arc::new(RwLock::new(Some(Arc::new(db)))),
            path: Arc::new(path.to_path_buf()),
            opener: None,
            tail: tail::shared(),
        };
        store.check_schema()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_schema(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let found = meta
                .get(SCHEMA_KEY)
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                        .map_err(|e| self.err(e))?;
                    // A new file has no reading outside a checkpoint; a file
                    // without the marker was written by an earlier build.
                    txn.open_table(STATE)
                        .map_err(|e| self.err(e))?
                        .insert(READINGS_SPAN_FROM_KEY, i64::MAX.to_be_bytes().as_slice())
                        .map_err(|e| self.err(e))?;
                }
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema {
                        path: self.path.to_path_buf(),
                        found: v,
                        known: SCHEMA_VERSION,
                    })
                }
                Some(v) if v < SCHEMA_VERSION => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                        .map_err(|e| self.err(e))?;
                }
                Some(_) => {}
            }
            for table in ENGINE_TABLES {
                txn.open_table(table).map_err(|e| self.err(e))?;
            }
            txn.open_table(SENSORS).map_err(|e| self.err(e))?;
            txn.open_table(SENSOR_SEQ).map_err(|e| self.err(e))?;
            txn.open_table(READINGS).map_err(|e| self.err(e))?;
            txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            txn.open_table(OUTBOX).map_err(|e| self.err(e))?;
            txn.open_table(STATE).map_err(|e| self.err(e))?;
            txn.open_table(AUDIT).map_err(|e| self.err(e))?;
            txn.open_table(CLOCK).map_err(|e| self.err(e))?;
            txn.open_table(COMMAND_LOG).map_err(|e| self.err(e))?;
            txn.open_table(COMMAND_IDS).map_err(|e| self.err(e))?;
            txn.open_table(TELEMETRY).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(StoreError::NotColdgate(self.path.to_path_buf()))
            }
            Err(e) => return Err(self.err(e)),
        };
        match meta.get(SCHEMA_KEY).map_err(|e| self.err(e))? {
            None => Err(StoreError::NotColdgate(self.path.to_path_buf())),
            Some(v) if v.value() > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: self.path.to_path_buf(),
                found: v.value(),
                known: SCHEMA_VERSION,
            }),
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Closed(self.path.to_path_buf()))
    }

    /// Closes and reopens the file: after a failed write redb answers every
    /// operation with "previous I/O error" until then. Reopening runs redb's
    /// repair, which rolls back to the last durable commit. `InUse` while
    /// another handle is in the middle of a read: try again later.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let Some(opener) = &self.opener else {
            return Ok(());
        };
        let mut guard = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_some_and(|db| Arc::strong_count(db) > 1) {
            return Err(StoreError::InUse(self.path.to_path_buf()));
        }
        // Our handle must be dropped (releasing the file) before the new one
        // opens; if the open fails, the store stays closed until the next try.
        drop(guard.take());
        let db = opener().map_err(|e| StoreError::open(&self.path, e))?;
        *guard = Some(Arc::new(db));
        Ok(())
    }

    pub(crate) fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.to_path_buf(),
            source: Box::new(e.into()),
        }
    }

    /// Every sensor id that has readings stored, sorted: what a filter by
    /// sensor can name.
    pub fn sensor_ids(&self) -> Result<Vec<Arc<str>>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let mut ids: Vec<Arc<str>> = self.sensor_names(&txn)?.into_values().collect();
        ids.extend(self.tail_sensors());
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Sensor index → id, as stored.
    fn sensor_names(
        &self,
        txn: &redb::ReadTransaction,
    ) -> Result<HashMap<u32, Arc<str>>, StoreError> {
        let table = txn.open_table(SENSORS).map_err(|e| self.err(e))?;
        let mut names = HashMap::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            names.insert(v.value(), Arc::from(k.value()));
        }
        Ok(names)
    }

    /// Calls `f` for each reading in `[from_ms, to_ms)`, oldest first,
    /// optionally of one sensor only. Stops early when `f` returns `false`.
    /// Readings journalled and not yet folded are included (`tail.rs`).
    pub fn for_each_reading(
        &self,
        sensor: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        f: impl FnMut(StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        self.merged_readings(sensor, from_ms, to_ms, || {}, f)
    }

    /// The `readings` table's rows in `[from_ms, to_ms)` in key order, with
    /// their keys (time, sensor index, seq). Stops when `f` returns `false`.
    fn readings_in(
        &self,
        txn: &redb::ReadTransaction,
        sensor: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        mut f: impl FnMut((i64, u32, u64), StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        let names = self.sensor_names(txn)?;
        let wanted = match sensor {
            Some(s) => match names.iter().find(|(_, n)| &***n == s) {
                Some((idx, _)) => Some(*idx),
                None => return Ok(()),
            },
            None => None,
        };
        if from_ms >= to_ms {
            return Ok(());
        }
        let table = txn.open_table(READINGS).map_err(|e| self.err(e))?;
        let range = table
            .range((from_ms, 0u32, 0u64)..(to_ms, 0u32, 0u64))
            .map_err(|e| self.err(e))?;
        for row in range {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (at_ms, idx, seq) = k.value();
            if wanted.is_some_and(|w| w != idx) {
                continue;
            }
            let (code, value) = v.value();
            let (Some(sensor), Some(quantity)) = (names.get(&idx), Quantity::from_code(code))
            else {
                continue;
            };
            let go_on = f(
                (at_ms, idx, seq),
                StoredReading {
                    sensor: sensor.clone(),
                    seq,
                    quantity,
                    value,
                    at_ms,
                },
            );
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// Un-acknowledged events after `after_seq`, in order, at most `limit`.
    pub fn outbox_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let outbox = txn.open_table(OUTBOX).map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in outbox
            .range((after_seq.saturating_add(1))..)
            .map_err(|e| self.err(e))?
        {
            if out.len() >= limit {
                break;
            }
            let (seq, _) = row.map_err(|e| self.err(e))?;
            let seq = seq.value();
            if let Some(ev) = events.get(seq).map_err(|e| self.err(e))? {
                out.push(StoredEvent::from_row(seq, ev.value()));
            }
        }
        Ok(out)
    }

    /// Events waiting for a PUBACK, and the time of the oldest.
    pub fn outbox_depth(&self) -> Result<(u64, Option<i64>), StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let outbox = txn.open_table(OUTBOX).map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let depth = outbox.len().map_err(|e| self.err(e))?;
        let oldest = match outbox.first().map_err(|e| self.err(e))? {
            Some((seq, _)) => events
                .get(seq.value())
                .map_err(|e| self.err(e))?
                .map(|v| v.value().0),
            None => None,
        };
        Ok((depth, oldest))
    }

    /// The newest time in the readings and events tables that is not after
    /// `now_ms` (a simulator's or a wrong clock's future times do not count):
    /// the last sign of life a run left without writing one of its own.
    pub fn last_activity_ms(&self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let readings = txn.open_table(READINGS).map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut newest = None;
        for row in readings
            .range(..(now_ms.saturating_add(1), 0, 0))
            .map_err(|e| self.err(e))?
            .rev()
            .take(1)
        {
            let (k, _) = row.map_err(|e| self.err(e))?;
            newest = Some(k.value().0);
        }
        if let Some(row) = events.last().map_err(|e| self.err(e))? {
            let at = row.1.value().0;
            if at <= now_ms {
                newest = newest.max(Some(at));
            }
        }
        Ok(newest)
    }

    /// Events with `from_seq <= seq <= to_seq`, in seq order (for a replay).
    pub fn events_by_seq(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in events.range(from_seq..=to_seq).map_err(|e| self.err(e))? {
            let (seq, v) = row.map_err(|e| self.err(e))?;
            out.push(StoredEvent::from_row(seq.value(), v.value()));
        }
        Ok(out)
    }

    /// Events in `[from_ms, to_ms)` by time, oldest first.
    pub fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in events.iter().map_err(|e| self.err(e))? {
            let (seq, v) = row.map_err(|e| self.err(e))?;
            let ev = v.value();
            if ev.0 >= from_ms && ev.0 < to_ms {
                out.push(StoredEvent::from_row(seq.value(), ev));
            }
        }
        Ok(out)
    }

    /// A named state blob (the engine's), as last committed.
    pub fn state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(STATE).map_err(|e| self.err(e))?;
        let v = table.get(name).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// The engine state's rows, (part, key, JSON) in (part, key) order, and the
    /// named blob `legacy` (the whole state, as schema 1 stored it), read in
    /// one transaction so they belong to the same commit.
    pub fn state_rows(&self, legacy: &str) -> Result<StateRows, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let named = txn.open_table(STATE).map_err(|e| self.err(e))?;
        let legacy = named
            .get(legacy)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec());
        let mut rows = Vec::new();
        for table in ENGINE_TABLES {
            match txn.open_table(table) {
                Ok(table) => {
                    for row in table.iter().map_err(|e| self.err(e))? {
                        let (k, v) = row.map_err(|e| self.err(e))?;
                        let (part, key) = k.value();
                        rows.push((part.to_string(), key.to_string(), v.value().to_vec()));
                    }
                }
                // A file of schema 1 opened read-only.
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(StateRows { rows, legacy })
    }

    /// The audit entries as stored, in seq order: (seq, JSON bytes). A file
    /// written before the audit trail existed has none.
    pub fn audit_rows(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (seq, bytes) = row.map_err(|e| self.err(e))?;
            out.push((seq.value(), bytes.value().to_vec()));
        }
        Ok(out)
    }

    /// The audit chain's recorded head, if any entry was ever written. An
    /// undecodable head counts as absent, which verification reports.
    pub fn audit_head(&self) -> Result<Option<crate::audit::Head>, StoreError> {
        Ok(self
            .state(AUDIT_HEAD_KEY)?
            .and_then(|b| crate::audit::Head::decode(&b)))
    }

    /// Checks the audit chain against its recorded head.
    pub fn verify_audit(
        &self,
    ) -> Result<Result<crate::audit::Verified, crate::audit::VerifyError>, StoreError> {
        Ok(crate::audit::verify(self.audit_rows()?, self.audit_head()?))
    }

    /// The stored answer to an operator command with this request id, if it
    /// was answered and is still remembered (see [`COMMANDS_KEPT`]). A file
    /// written before commands were remembered has none.
    pub fn command_answer(&self, request_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let ids = match txn.open_table(COMMAND_IDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some(n) = ids.get(request_id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let log = txn.open_table(COMMAND_LOG).map_err(|e| self.err(e))?;
        let row = log.get(n.value()).map_err(|e| self.err(e))?;
        Ok(row.map(|r| r.value().2.to_vec()))
    }

    /// How many answered request ids are remembered.
    pub fn commands_remembered(&self) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        match txn.open_table(COMMAND_IDS) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Telemetry waiting after `after_id`, oldest first, at most `limit`
    /// (`seq` is the telemetry id, not an event seq).
    pub fn telemetry_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(TELEMETRY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table
            .range(after_id.saturating_add(1)..)
            .map_err(|e| self.err(e))?
            .take(limit)
        {
            let (id, v) = row.map_err(|e| self.err(e))?;
            out.push(StoredEvent::from_row(id.value(), v.value()));
        }
        Ok(out)
    }

    /// The clock records (docs/time.md) in the order written: (record
    /// number, JSON). A file written before they existed has none.
    pub fn clock_records(&self) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(CLOCK) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            if let Ok(json) = serde_json::from_slice(v.value()) {
                out.push((k.value(), json));
            }
        }
        Ok(out)
    }

    /// The number of the last clock record (0 before the first).
    fn last_clock_seq(&self) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(CLOCK) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(self.err(e)),
        };
        let last = table.last().map_err(|e| self.err(e))?;
        Ok(last.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// The most recent clock jump recorded, for the status message.
    pub fn last_clock_jump(&self) -> Result<Option<serde_json::Value>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(CLOCK) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        for row in table.iter().map_err(|e| self.err(e))?.rev() {
            let (_, v) = row.map_err(|e| self.err(e))?;
            let json: serde_json::Value = serde_json::from_slice(v.value()).unwrap_or_default();
            if json["record"] == "jump" {
                return Ok(Some(json));
            }
        }
        Ok(None)
    }

    /// Telemetry messages waiting to be sent.
    pub fn telemetry_depth(&self) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        match txn.open_table(TELEMETRY) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The last telemetry id handed out (0 before the first).
    pub fn last_telemetry_id(&self) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        match txn.open_table(TELEMETRY) {
            Ok(t) => Ok(t
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value())
                .unwrap_or(0)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Events taken out of the outbox unsent (over `mqtt.max_payload`).
    pub fn set_aside_count(&self) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        match txn.open_table(SET_ASIDE) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Telemetry messages dropped from the full outbox since the database
    /// was created.
    pub fn telemetry_dropped(&self) -> Result<u64, StoreError> {
        Ok(self
            .state(TELEMETRY_DROPPED_KEY)?
            .map(|b| writer::decode_u64(&b))
            .unwrap_or(0))
    }

    /// The last event sequence number handed out (0 before the first).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let last = events.last().map_err(|e| self.err(e))?;
        Ok(last.map(|(k, _)| k.value()).unwrap_or(0))
    }
}
