//! The reading journal in ingest (docs/journal.md, issue 20): a routine
//! batch is made durable by one append and `fdatasync` of the journal, and
//! redb is written only by folds, which commit the whole [`Batch`] held
//! since the last one through `Writer::commit`.
//!
//! What is journalled is what the engine needs to come back to the same
//! state: readings and timer turns, in the order ingest saw them. Anything
//! else that changes the engine or must be published (an event, an audit
//! record, a command, telemetry, a set-aside entry, the first commit of a
//! run, a stop) forces a fold at once, so the publisher and every reader of
//! events keep reading redb as before, and replay never has to cross one.
//!
//! At start the records after the last fold are run through the engine
//! again before anything else; they are folded with the run's first commit.
//! A kill before that fold replays them again: nothing is committed twice.
//!
//! [`Batch`]: crate::store::Batch

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coldgate_sensor_drivers::Reading;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::store::journal::payload::{self, Journalled, PayloadError};
use crate::store::journal::{real_files, Journal, Kind, Options};
use crate::store::StoreError;

use super::{blocking, Ingest};

/// The `state` key of the last journal LSN folded into redb (u64, little
/// endian), written in the fold's own transaction. The store owns the name:
/// an offline reader of the journal needs it too.
pub const FOLDED: &str = crate::store::JOURNAL_FOLDED;

/// When a fold is due although nothing forces one.
#[derive(Debug, Clone, Copy)]
pub struct FoldPolicy {
    /// Since the last fold (monotonic): bounds what a start replays.
    pub every: Duration,
    /// Readings since the last fold.
    pub readings: usize,
}

impl Default for FoldPolicy {
    /// docs/journal.md, "The fold": 5 minutes or 30,000 readings.
    fn default() -> FoldPolicy {
        FoldPolicy {
            every: Duration::from_secs(300),
            readings: 30_000,
        }
    }
}

pub(super) struct JournalSide {
    journal: Journal,
    policy: FoldPolicy,
    /// Sensor → its index in `Readings` records. Emptied at each fold, so
    /// every record after a fold's LSN names its sensors itself and a
    /// replay from there needs nothing older.
    index: HashMap<Arc<str>, u16>,
    /// Readings accepted, not yet appended: appended before each timer
    /// turn's record, so replay sees readings and turns in their order.
    pending: Vec<Reading>,
    /// Readings appended since the last sync.
    unsynced: usize,
    /// Readings made durable by syncs since the last fold, already counted
    /// as committed: the fold counts only the rest.
    synced: usize,
    /// When the last fold committed (monotonic ms); `None` before the first.
    folded_at_ms: Option<i64>,
    /// The records after the last fold, read at open: replayed at the start
    /// of the run.
    tail: Vec<(Kind, Vec<u8>)>,
    replaying: bool,
    /// Readings of the batch (from its start) handed to the store's tail,
    /// where readers see them before the fold (`store/tail.rs`).
    published: usize,
}

fn le_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::JournalPayload(PayloadError::Short))?;
    Ok(u64::from_le_bytes(b))
}

impl Ingest {
    /// Journals routine batches in `dir` and folds them into redb by
    /// `policy`. Opening reads the records the last fold did not cover
    /// (replayed when the run starts) and begins a new segment.
    pub fn with_journal(
        mut self,
        dir: &Path,
        options: Options,
        policy: FoldPolicy,
    ) -> Result<Ingest, StoreError> {
        let folded = match self.writer.store().state(FOLDED)? {
            Some(bytes) => le_u64(&bytes)?,
            None => 0,
        };
        let mut tail = Vec::new();
        let (journal, replayed) = Journal::open(dir, options, folded + 1, real_files(), |r| {
            tail.push((r.kind, r.payload.to_vec()))
        })?;
        info!(
            folded,
            records = replayed.records,
            tail = ?replayed.tail,
            "Reading journal open."
        );
        self.journal = Some(JournalSide {
            journal,
            policy,
            index: HashMap::new(),
            pending: Vec::new(),
            unsynced: 0,
            synced: 0,
            folded_at_ms: None,
            tail,
            replaying: false,
            published: 0,
        });
        Ok(self)
    }

    /// Readings accepted and not yet durable anywhere: what paces the
    /// routine batch and holds back the readings channel.
    pub(super) fn unsaved(&self) -> usize {
        match &self.journal {
            Some(j) => j.pending.len(),
            None => self.batch.readings.len(),
        }
    }

    /// A reading accepted into the batch goes to the journal too (not one
    /// being replayed from it).
    pub(super) fn journal_reading(&mut self, r: &Reading) {
        if let Some(j) = self.journal.as_mut().filter(|j| !j.replaying) {
            j.pending.push(r.clone());
        }
    }

    /// A timer turn at `now_ms`, journalled after the readings before it.
    /// Not while nothing waits for a fold: an idle gateway would otherwise
    /// pile up turns that no sync ever writes. Replay then starts from the
    /// folded state and the first turn journalled after a reading; the
    /// engine judges a turn by its time, not by the turns before it (to be
    /// held against the reference model, docs/journal.md).
    pub(super) fn journal_tick(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.flush_journal()?;
        if self.batch.readings.is_empty() {
            return Ok(());
        }
        if let Some(j) = self.journal.as_mut().filter(|j| !j.replaying) {
            j.journal.append(Kind::Tick, &now_ms.to_le_bytes())?;
        }
        Ok(())
    }

    /// Appends the pending readings (a `Sensor` record first for a sensor
    /// not yet named since the last fold).
    fn flush_journal(&mut self) -> Result<(), StoreError> {
        let Some(j) = self.journal.as_mut() else {
            return Ok(());
        };
        if j.pending.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(j.pending.len());
        let mut buf = Vec::new();
        for r in &j.pending {
            let sensor = match j.index.get(&r.sensor) {
                Some(i) => *i,
                None => {
                    let i = u16::try_from(j.index.len())
                        .map_err(|_| PayloadError::TooMany(j.index.len()))?;
                    buf.clear();
                    payload::encode_sensor(&mut buf, i, &r.sensor)?;
                    j.journal.append(Kind::Sensor, &buf)?;
                    j.index.insert(r.sensor.clone(), i);
                    i
                }
            };
            rows.push(Journalled {
                sensor,
                quantity: r.quantity,
                at_ms: r.at_ms,
                value: r.value,
            });
        }
        for chunk in rows.chunks(usize::from(u16::MAX)) {
            buf.clear();
            payload::encode_readings(&mut buf, chunk)?;
            j.journal.append(Kind::Readings, &buf)?;
        }
        j.unsynced += j.pending.len();
        j.pending.clear();
        Ok(())
    }

    /// Whether the batch must go to redb now rather than to the journal.
    fn fold_due(&self) -> bool {
        let Some(j) = &self.journal else {
            return true;
        };
        let b = &self.batch;
        let forced = !(b.events.is_empty()
            && b.audit.is_empty()
            && b.commands.is_empty()
            && b.telemetry.is_empty()
            && b.set_aside.is_empty())
            || self.lifecycle_due
            || self.pressure_due
            || self.stopped_cleanly;
        let every = i64::try_from(j.policy.every.as_millis()).unwrap_or(i64::MAX);
        let old = j
            .folded_at_ms
            .is_none_or(|at| self.clock.mono_ms().saturating_sub(at) >= every);
        forced || old || b.readings.len() >= j.policy.readings
    }

    /// Makes the batch durable: a fold when one is due (or there is no
    /// journal), else one journal sync.
    pub(super) fn save(&mut self, committed: &watch::Sender<u64>) {
        if self.fold_due() {
            self.commit(committed);
            return;
        }
        let result = blocking(|| self.sync_journal());
        match result {
            Ok(()) => {
                self.heartbeat.send_replace(std::time::Instant::now());
            }
            Err(error) => {
                if let Some(live) = &self.live {
                    live.commit_failed();
                }
                self.on_commit_failed(&error)
            }
        }
    }

    fn sync_journal(&mut self) -> Result<(), StoreError> {
        self.flush_journal()?;
        if let Some(j) = self.journal.as_mut().filter(|j| j.unsynced > 0) {
            j.journal.sync()?;
            if let Some(live) = &self.live {
                live.committed(j.unsynced as u64, 0);
            }
            j.synced += j.unsynced;
            j.unsynced = 0;
        }
        self.publish_durable();
        Ok(())
    }

    /// Hands the batch's readings made durable since the last call to the
    /// store's tail, numbered as the fold will number them. Every reading
    /// in the batch is durable here: appended and synced, or replayed.
    pub(super) fn publish_durable(&mut self) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let fresh = self.batch.readings.get(j.published..).unwrap_or_default();
        let writer = &self.writer;
        writer
            .store()
            .publish_tail(fresh, |s| writer.last_reading_seq(s));
        j.published = self.batch.readings.len();
    }

    /// The batch's readings were found stored by a commit reported as failed
    /// (and dropped from the batch): redb holds what the tail held.
    pub(super) fn tail_stored(&mut self) {
        if let Some(j) = self.journal.as_mut() {
            j.published = 0;
            self.writer.store().clear_tail();
        }
    }

    /// Before a fold: every reading in the batch is appended, and the LSN
    /// the fold covers is returned (to be stored in its transaction).
    pub(super) fn journal_before_fold(&mut self) -> Result<Option<u64>, StoreError> {
        self.flush_journal()?;
        Ok(self
            .journal
            .as_ref()
            .map(|j| j.journal.next_lsn().saturating_sub(1)))
    }

    /// Of `readings` a commit stored, those not yet counted as durable (a
    /// journal sync counted them already).
    pub(super) fn newly_durable(&self, readings: usize) -> usize {
        match &self.journal {
            Some(j) => readings.saturating_sub(j.synced),
            None => readings,
        }
    }

    /// After a fold committed: the segments it covers are recycled.
    pub(super) fn journal_folded(&mut self, folded: u64) {
        let now = self.clock.mono_ms();
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        j.index.clear();
        j.unsynced = 0;
        j.synced = 0;
        j.published = 0;
        // The commit returned: redb holds every reading the tail held.
        self.writer.store().clear_tail();
        j.folded_at_ms = Some(now);
        if let Err(error) = j.journal.recycle(folded) {
            // Only more to replay at the next start.
            warn!(%error, "Journal segments covered by a fold could not be recycled.");
        }
    }

    /// At start, before anything else: the records after the last fold run
    /// through the engine as they did the first time; their readings and
    /// events join the batch and are folded with the first commit.
    pub(super) fn replay_journal(&mut self) -> Result<(), StoreError> {
        let tail = match self.journal.as_mut() {
            Some(j) if !j.tail.is_empty() => {
                j.replaying = true;
                std::mem::take(&mut j.tail)
            }
            _ => return Ok(()),
        };
        let mut names: HashMap<u16, Arc<str>> = HashMap::new();
        let (mut readings, mut ticks) = (0u64, 0u64);
        for (kind, bytes) in tail {
            match kind {
                Kind::Sensor => {
                    let (i, name) = payload::decode_sensor(&bytes)?;
                    names.insert(i, Arc::from(name));
                }
                Kind::Readings => {
                    for r in payload::decode_readings(&bytes)? {
                        let Some(name) = names.get(&r.sensor) else {
                            return Err(StoreError::JournalPayload(PayloadError::Short));
                        };
                        self.accept(Reading::new(name.clone(), r.quantity, r.value, r.at_ms));
                        readings += 1;
                    }
                }
                Kind::Tick => {
                    let now = i64::from_le_bytes(le_u64(&bytes)?.to_le_bytes());
                    let events = self.engine.tick(now);
                    self.push_events(events);
                    ticks += 1;
                }
                other => warn!(
                    ?other,
                    "A journal record of a kind this build does not write is skipped."
                ),
            }
        }
        if let Some(j) = self.journal.as_mut() {
            j.replaying = false;
            // Durable already (they were read back): not counted again.
            j.synced = usize::try_from(readings).unwrap_or(usize::MAX);
        }
        info!(
            readings,
            ticks, "The journal's tail was replayed through the engine."
        );
        Ok(())
    }
}
