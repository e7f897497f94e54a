//! The single writer. Ingest hands it everything one batch produced and it
//! commits it in one durable transaction: one fsync per batch.
//!
//! One room: every table one batch touches is written in one transaction here, the only place
//! that writes the file.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coldgate_sensor_drivers::Reading;
use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::batch::{Batch, CommandAnswer, RowDelta};
use super::tables::*;
use super::{Store, StoreError};
use crate::audit::readings::{RawReading, SpanHasher};
use crate::audit::{AuditEntry, AuditRecord, Checkpoint, Head};

/// What one commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub readings: usize,
    pub events: usize,
    pub acked: usize,
    pub trimmed: u64,
    pub audit: usize,
    pub commands: usize,
    pub telemetry: usize,
    /// Telemetry dropped by this commit to keep the outbox under its cap.
    pub telemetry_dropped: u64,
    /// Events and telemetry waiting after this commit.
    pub outbox_total: u64,
}

struct Slot {
    idx: u32,
    last_seq: u64,
}

pub struct Writer {
    store: Store,
    sensors: HashMap<Arc<str>, Slot>,
    next_idx: u32,
    next_event_seq: u64,
    audit_head: Head,
    next_clock_seq: u64,
    /// Readings committed since the pages in use were last measured, and
    /// how many may come before the next measurement.
    readings_since_size_check: u64,
    size_check_due_after: u64,
    next_telemetry_id: u64,
    /// Events and telemetry waiting, at most; telemetry is dropped first.
    outbox_cap: Option<u64>,
    /// Per sensor, the last seq the last readings checkpoint covers.
    covered: BTreeMap<String, u64>,
    /// See `tables::READINGS_SPAN_FROM_KEY`; `None` in a file from an
    /// earlier build, whose first checkpoint is then a baseline.
    span_from_ms: Option<i64>,
    /// The checkpoint of the committed readings, computed for an audit
    /// event's head before the commit and reused by it.
    checkpoint_cache: Option<Checkpoint>,
    /// When (ingest's monotonic ms) a `readings_checkpoint` entry is due.
    checkpoint_due_at: Option<i64>,
}

/// How long readings may go without a checkpoint tying them into the audit
/// chain: the window in which they could be changed without trace.
pub const CHECKPOINT_EVERY_MS: i64 = 3_600_000;

/// Margin below the oldest uncovered reading's time where the next
/// checkpoint starts scanning, so that a reading a few seconds older than
/// the previous batch does not rewrite the marker.
const SPAN_FROM_SLACK_MS: i64 = 60_000;

/// A generous estimate of the pages one reading takes in the readings table
/// (key, value and B-tree overhead), used only to schedule measurements.
const PAGE_BYTES_PER_READING: u64 = 128;

impl Writer {
    pub(super) fn new(store: Store) -> Result<Writer, StoreError> {
        let txn = store.db()?.begin_read().map_err(|e| store.err(e))?;
        let names = txn.open_table(SENSORS).map_err(|e| store.err(e))?;
        let seqs = txn.open_table(SENSOR_SEQ).map_err(|e| store.err(e))?;
        let mut sensors = HashMap::new();
        let mut next_idx = 0;
        for row in names.iter().map_err(|e| store.err(e))? {
            let (name, idx) = row.map_err(|e| store.err(e))?;
            let idx = idx.value();
            let last_seq = seqs
                .get(idx)
                .map_err(|e| store.err(e))?
                .map(|v| v.value())
                .unwrap_or(0);
            next_idx = next_idx.max(idx + 1);
            sensors.insert(Arc::from(name.value()), Slot { idx, last_seq });
        }
        drop((names, seqs, txn));
        let next_event_seq = store.last_event_seq()? + 1;
        let audit_head = audit_head_to_continue(&store)?;
        let next_clock_seq = store.last_clock_seq()? + 1;
        let next_telemetry_id = store.last_telemetry_id()? + 1;
        let covered = last_checkpoint(&store)?;
        let span_from_ms = store
            .state(READINGS_SPAN_FROM_KEY)?
            .and_then(|b| b.try_into().ok().map(i64::from_be_bytes));
        Ok(Writer {
            store,
            sensors,
            next_idx,
            next_event_seq,
            audit_head,
            next_clock_seq,
            readings_since_size_check: 0,
            size_check_due_after: 0,
            next_telemetry_id,
            outbox_cap: None,
            covered,
            span_from_ms,
            checkpoint_cache: None,
            checkpoint_due_at: None,
        })
    }

    /// The audit chain's head once `records` are committed (with the next
    /// commit, from the committed state): what their `audit` events publish.
    pub fn audit_head_after(&mut self, records: &[AuditRecord]) -> Result<Head, StoreError> {
        Ok(self
            .chain(records)?
            .last()
            .and_then(AuditEntry::head)
            .unwrap_or(self.audit_head))
    }

    /// The entries `records` become. The first carries the checkpoint of
    /// the readings committed so far; it is the same before and during the
    /// commit, because this writer is the only one.
    fn chain(&mut self, records: &[AuditRecord]) -> Result<Vec<AuditEntry>, StoreError> {
        let mut head = self.audit_head;
        let mut out = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let checkpoint = if i == 0 {
                Some(self.checkpoint()?)
            } else {
                None
            };
            let entry = AuditEntry::chained_with(&head, record, checkpoint);
            head = entry.head().unwrap_or(head);
            out.push(entry);
        }
        Ok(out)
    }

    /// Whether a `readings_checkpoint` entry is due at `mono_ms`: an hour
    /// ([`CHECKPOINT_EVERY_MS`]) after the first ask or the last audit
    /// entry, when readings were committed since the last checkpoint.
    pub fn readings_checkpoint_due(&mut self, mono_ms: i64) -> bool {
        let due = *self
            .checkpoint_due_at
            .get_or_insert(mono_ms.saturating_add(CHECKPOINT_EVERY_MS));
        mono_ms >= due && self.uncovered()
    }

    fn uncovered(&self) -> bool {
        self.sensors
            .iter()
            .any(|(name, s)| s.last_seq > self.covered.get(&**name).copied().unwrap_or(0))
    }

    /// The checkpoint of the readings committed since the last one, read
    /// back from the file: reading does not wear the card.
    fn checkpoint(&mut self) -> Result<Checkpoint, StoreError> {
        if let Some(c) = &self.checkpoint_cache {
            return Ok(c.clone());
        }
        let s = &self.store;
        let through: BTreeMap<String, u64> = self
            .sensors
            .iter()
            .filter(|(_, slot)| slot.last_seq > 0)
            .map(|(name, slot)| (name.to_string(), slot.last_seq))
            .collect();
        let expected: u64 = through
            .iter()
            .map(|(name, t)| t.saturating_sub(self.covered.get(name).copied().unwrap_or(0)))
            .sum();
        let Some(from) = self.span_from_ms else {
            let mut c = SpanHasher::default().finish(through);
            c.baseline = true;
            self.checkpoint_cache = Some(c.clone());
            return Ok(c);
        };
        let mut hasher = SpanHasher::default();
        if expected > 0 && from != i64::MAX {
            let txn = s.db()?.begin_read().map_err(|e| s.err(e))?;
            let names = s.sensor_names(&txn)?;
            let table = txn.open_table(READINGS).map_err(|e| s.err(e))?;
            for row in table.range((from, 0u32, 0u64)..).map_err(|e| s.err(e))? {
                let (k, v) = row.map_err(|e| s.err(e))?;
                let ((at_ms, idx, seq), (code, value)) = (k.value(), v.value());
                let Some(name) = names.get(&idx) else {
                    continue;
                };
                let after = self.covered.get(&**name).copied().unwrap_or(0);
                let upto = through.get(&**name).copied().unwrap_or(0);
                if seq > after && seq <= upto {
                    hasher.add(&RawReading {
                        sensor: name,
                        at_ms,
                        seq,
                        code,
                        value,
                    });
                    if hasher.count() == expected {
                        break;
                    }
                }
            }
        }
        let c = hasher.finish(through);
        self.checkpoint_cache = Some(c.clone());
        Ok(c)
    }

    /// Reopens the file (see [`Store::reopen`]) and reloads the counters
    /// from it. Returns whether they changed: a commit reported as failed
    /// had in fact reached the disk, and the caller must not commit its
    /// batch a second time.
    pub fn reopen(&mut self) -> Result<bool, StoreError> {
        self.store.reopen()?;
        let fresh = Writer::new(self.store.clone())?;
        let same = fresh.next_event_seq == self.next_event_seq
            && fresh.audit_head == self.audit_head
            && fresh.sensors.len() == self.sensors.len()
            && fresh.sensors.iter().all(|(k, v)| {
                self.sensors
                    .get(k)
                    .is_some_and(|o| o.idx == v.idx && o.last_seq == v.last_seq)
            });
        // The cap is configuration, not read from the file: it outlives the
        // reopen. What waits for the next commit is the caller's batch.
        let outbox_cap = self.outbox_cap;
        *self = fresh;
        self.outbox_cap = outbox_cap;
        Ok(!same)
    }

    /// The seq the next audit entry will get.
    pub fn next_audit_seq(&self) -> u64 {
        self.audit_head.seq + 1
    }

    /// Keeps events plus telemetry waiting at most `cap`: each commit drops
    /// the oldest telemetry while over it. Events are never dropped, so the
    /// outbox can exceed the cap with events alone.
    pub fn set_outbox_cap(&mut self, cap: Option<u64>) {
        self.outbox_cap = cap;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The seq the next stored event will get. Events carry their seq in the
    /// payload, so ingest numbers them before committing.
    pub fn next_event_seq(&self) -> u64 {
        self.next_event_seq
    }

    /// The last sequence number committed for `sensor` (0 if none).
    pub fn last_reading_seq(&self, sensor: &str) -> u64 {
        self.sensors.get(sensor).map(|s| s.last_seq).unwrap_or(0)
    }

    /// Commits everything `batch` holds in ONE durable transaction: its
    /// readings (numbered per sensor here), its events (numbered by the
    /// caller from [`Writer::next_event_seq`], in order), the audit records
    /// (chained from the head this writer holds), and the rest. On error
    /// nothing is written and the writer's counters are unchanged, so the
    /// same batch can be committed again.
    pub fn commit(&mut self, batch: &Batch) -> Result<Committed, StoreError> {
        let Batch {
            readings,
            events,
            acked,
            state,
            rows,
            trim,
            audit,
            clock,
            commands,
            telemetry,
            telemetry_sent,
            set_aside,
        } = batch;
        let trim = *trim;
        let s = self.store.clone();
        let e = |err: redb::Error| s.err(err);
        for (i, ev) in events.iter().enumerate() {
            if ev.seq != self.next_event_seq + i as u64 {
                return Err(StoreError::EventOrder {
                    found: ev.seq,
                    expected: self.next_event_seq + i as u64,
                });
            }
        }
        let entries = self.chain(audit)?;
        let span_from_ms = self.next_span_from(readings, !entries.is_empty());
        let mut txn = s.db()?.begin_write().map_err(|x| e(x.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|x| e(x.into()))?;
        let mut touched: HashMap<Arc<str>, (u32, u64)> = HashMap::new();
        let mut next_idx = self.next_idx;
        let mut done = Committed::default();
        let mut audit_head = self.audit_head;
        {
            let mut names = txn.open_table(SENSORS).map_err(|x| e(x.into()))?;
            let mut table = txn.open_table(READINGS).map_err(|x| e(x.into()))?;
            for r in readings {
                let (idx, seq) = match touched.get_mut(&r.sensor) {
                    Some(t) => {
                        t.1 += 1;
                        *t
                    }
                    None => {
                        let (idx, last) = match self.sensors.get(&r.sensor) {
                            Some(slot) => (slot.idx, slot.last_seq),
                            None => {
                                let idx = next_idx;
                                next_idx += 1;
                                names.insert(&*r.sensor, idx).map_err(|x| e(x.into()))?;
                                (idx, 0)
                            }
                        };
                        touched.insert(r.sensor.clone(), (idx, last + 1));
                        (idx, last + 1)
                    }
                };
                table
                    .insert((r.at_ms, idx, seq), (r.quantity.code(), r.value))
                    .map_err(|x| e(x.into()))?;
            }
            done.readings = readings.len();
            let mut seqs = txn.open_table(SENSOR_SEQ).map_err(|x| e(x.into()))?;
            for (idx, seq) in touched.values() {
                seqs.insert(*idx, *seq).map_err(|x| e(x.into()))?;
            }
            let mut evs = txn.open_table(EVENTS).map_err(|x| e(x.into()))?;
            let mut outbox = txn.open_table(OUTBOX).map_err(|x| e(x.into()))?;
            for ev in events {
                evs.insert(ev.seq, (ev.at_ms, ev.topic.as_str(), ev.payload.as_slice()))
                    .map_err(|x| e(x.into()))?;
                outbox.insert(ev.seq, ()).map_err(|x| e(x.into()))?;
            }
            done.events = events.len();
            for seq in acked {
                if outbox.remove(*seq).map_err(|x| e(x.into()))?.is_some() {
                    done.acked += 1;
                }
            }
            if !set_aside.is_empty() {
                let mut aside = txn.open_table(SET_ASIDE).map_err(|x| e(x.into()))?;
                for seq in set_aside {
                    if outbox.remove(*seq).map_err(|x| e(x.into()))?.is_some() {
                        aside.insert(*seq, ()).map_err(|x| e(x.into()))?;
                    }
                }
            }
            let mut st = txn.open_table(STATE).map_err(|x| e(x.into()))?;
            for (name, bytes) in state {
                st.insert(name.as_str(), bytes.as_slice())
                    .map_err(|x| e(x.into()))?;
            }
            if !rows.is_empty() {
                for name in &rows.remove_named {
                    st.remove(name.as_str()).map_err(|x| e(x.into()))?;
                }
                store_rows(&txn, rows).map_err(e)?;
            }
            if !entries.is_empty() {
                let mut table = txn.open_table(AUDIT).map_err(|x| e(x.into()))?;
                for entry in &entries {
                    table
                        .insert(entry.seq, entry.encode().as_slice())
                        .map_err(|x| e(x.into()))?;
                    audit_head = entry.head().unwrap_or(audit_head);
                }
                st.insert(AUDIT_HEAD_KEY, audit_head.encode().as_slice())
                    .map_err(|x| e(x.into()))?;
                done.audit = entries.len();
            }
            if span_from_ms != self.span_from_ms {
                if let Some(from) = span_from_ms {
                    st.insert(READINGS_SPAN_FROM_KEY, from.to_be_bytes().as_slice())
                        .map_err(|x| e(x.into()))?;
                }
            }
            if !clock.is_empty() {
                let mut table = txn.open_table(CLOCK).map_err(|x| e(x.into()))?;
                for (i, record) in clock.iter().enumerate() {
                    table
                        .insert(self.next_clock_seq + i as u64, record.as_slice())
                        .map_err(|x| e(x.into()))?;
                }
            }
            if !commands.is_empty() {
                done.commands = store_commands(&txn, commands).map_err(e)?;
            }
            {
                let mut tel = txn.open_table(TELEMETRY).map_err(|x| e(x.into()))?;
                for (i, t) in telemetry.iter().enumerate() {
                    let id = self.next_telemetry_id + i as u64;
                    tel.insert(id, (t.at_ms, t.topic.as_str(), t.payload.as_slice()))
                        .map_err(|x| e(x.into()))?;
                }
                done.telemetry = telemetry.len();
                for id in telemetry_sent {
                    tel.remove(*id).map_err(|x| e(x.into()))?;
                }
                let events_waiting = outbox.len().map_err(|x| e(x.into()))?;
                let mut waiting = tel.len().map_err(|x| e(x.into()))?;
                if let Some(cap) = self.outbox_cap {
                    let over = (events_waiting + waiting).saturating_sub(cap).min(waiting);
                    for _ in 0..over {
                        tel.pop_first().map_err(|x| e(x.into()))?;
                    }
                    if over > 0 {
                        let before = st
                            .get(TELEMETRY_DROPPED_KEY)
                            .map_err(|x| e(x.into()))?
                            .map(|v| decode_u64(v.value()))
                            .unwrap_or(0);
                        st.insert(
                            TELEMETRY_DROPPED_KEY,
                            (before + over).to_le_bytes().as_slice(),
                        )
                        .map_err(|x| e(x.into()))?;
                    }
                    waiting -= over;
                    done.telemetry_dropped = over;
                }
                done.outbox_total = events_waiting + waiting;
            }
            if let Some(trim) = trim {
                let before = table.len().map_err(|x| e(x.into()))?;
                table
                    .retain_in(..(trim.before_ms, 0u32, 0u64), |_, _| false)
                    .map_err(|x| e(x.into()))?;
                done.trimmed = before - table.len().map_err(|x| e(x.into()))?;
            }
        }
        let mut size_check_due_after = None;
        if let Some(max) = trim.and_then(|t| t.max_bytes) {
            // redb grows its file by doubling it (below 4 GiB) and never
            // shrinks it. While one more doubling still fits under the cap
            // there is nothing to do. Past that point the data must fit the
            // file as it is: trimming keeps the pages in use between 60 % and
            // 80 % of it. Measuring walks the allocator, so it is done only
            // when the readings since the last measurement could have used
            // half the free room.
            let file_len = std::fs::metadata(s.path())
                .map(|m| m.len())
                .unwrap_or(u64::MAX);
            let since = self.readings_since_size_check + readings.len() as u64;
            if file_len.saturating_mul(2) > max && since >= self.size_check_due_after {
                let room = file_len.min(max);
                let (trimmed, in_use) =
                    trim_to_size(&txn, room / 10 * 8, room / 10 * 6).map_err(e)?;
                done.trimmed += trimmed;
                let free = room.saturating_sub(in_use);
                size_check_due_after = Some(free / 2 / PAGE_BYTES_PER_READING);
            }
        }
        txn.commit().map_err(|x| e(x.into()))?;
        // Only now, with the data durable, advance the in-memory counters.
        self.next_idx = next_idx;
        for (name, (idx, seq)) in touched {
            self.sensors.insert(name, Slot { idx, last_seq: seq });
        }
        self.next_event_seq += events.len() as u64;
        self.audit_head = audit_head;
        if let Some(c) = entries.first().and_then(|x| x.readings.as_ref()) {
            self.covered = c.through.clone();
            self.checkpoint_due_at = None;
        }
        self.span_from_ms = span_from_ms;
        self.checkpoint_cache = None;
        self.next_clock_seq += clock.len() as u64;
        match size_check_due_after {
            Some(due) => {
                self.readings_since_size_check = 0;
                self.size_check_due_after = due;
            }
            None => self.readings_since_size_check += readings.len() as u64,
        }
        self.next_telemetry_id += telemetry.len() as u64;
        Ok(done)
    }
}

impl Writer {
    /// The span marker after a commit of `readings`: restarted when the
    /// commit carries a checkpoint (its readings belong to the next span),
    /// lowered only when a reading is older than it.
    fn next_span_from(&self, readings: &[Reading], checkpoint: bool) -> Option<i64> {
        let oldest = readings
            .iter()
            .map(|r| r.at_ms.saturating_sub(SPAN_FROM_SLACK_MS))
            .min();
        match (checkpoint, self.span_from_ms, oldest) {
            (true, _, oldest) => Some(oldest.unwrap_or(i64::MAX)),
            (false, Some(from), Some(o)) if o < from => Some(o),
            (false, from, _) => from,
        }
    }
}

/// Per sensor, the last seq covered by the last readings checkpoint in the
/// trail (none for a trail without one).
fn last_checkpoint(store: &Store) -> Result<BTreeMap<String, u64>, StoreError> {
    Ok(store
        .audit_rows()?
        .iter()
        .rev()
        .find_map(|(_, bytes)| AuditEntry::decode(bytes)?.readings)
        .map(|c| c.through)
        .unwrap_or_default())
}

/// A little-endian u64 state value; 0 when malformed.
pub(crate) fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

/// Applies engine state rows, each in its part's table: emptied first if
/// asked, then put and deleted.
fn store_rows(txn: &redb::WriteTransaction, rows: &RowDelta) -> Result<(), redb::Error> {
    for (i, def) in ENGINE_TABLES.into_iter().enumerate() {
        let mine = |part: &str| engine_table(part) == i;
        let puts = rows.put.iter().filter(|r| mine(&r.0));
        let deletes = rows.delete.iter().filter(|r| mine(&r.0));
        if !rows.clear && puts.clone().next().is_none() && deletes.clone().next().is_none() {
            continue;
        }
        let mut table = txn.open_table(def)?;
        if rows.clear {
            table.retain(|_, _| false)?;
        }
        for (part, key, bytes) in puts {
            table.insert((part.as_str(), key.as_str()), bytes.as_slice())?;
        }
        for (part, key) in deletes {
            table.remove((part.as_str(), key.as_str()))?;
        }
    }
    Ok(())
}

/// Appends answered commands to the command log (a repeated id points at
/// its newest answer) and drops the oldest beyond [`COMMANDS_KEPT`].
fn store_commands(
    txn: &redb::WriteTransaction,
    commands: &[CommandAnswer],
) -> Result<usize, redb::Error> {
    let mut log = txn.open_table(COMMAND_LOG)?;
    let mut ids = txn.open_table(COMMAND_IDS)?;
    let first = log.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    for (n, c) in (first..).zip(commands) {
        log.insert(n, (c.request_id.as_str(), c.at_ms, c.answer.as_slice()))?;
        ids.insert(c.request_id.as_str(), n)?;
    }
    while log.len()? > COMMANDS_KEPT {
        let Some((n, row)) = log.pop_first()? else {
            break;
        };
        let (n, id) = (n.value(), row.value().0.to_string());
        // Only if the id's newest answer is this one.
        if ids.get(id.as_str())?.is_some_and(|v| v.value() == n) {
            ids.remove(id.as_str())?;
        }
    }
    Ok(commands.len())
}

/// Where appending resumes: the recorded head, so that if the last entries
/// were removed the next one leaves a visible gap instead of silently
/// reusing their seqs; the last stored entry for a file without a head.
fn audit_head_to_continue(store: &Store) -> Result<Head, StoreError> {
    if let Some(head) = store.audit_head()? {
        return Ok(head);
    }
    Ok(store
        .audit_rows()?
        .last()
        .and_then(|(_, bytes)| AuditEntry::decode(bytes))
        .and_then(|e| e.head())
        .unwrap_or_default())
}

/// When the pages in use exceed `high` bytes, deletes the oldest readings, a
/// tenth at a time, until they are under `low`: the gap is room for the
/// commits until the next check. Events and the outbox are never touched.
/// Returns the readings deleted and the bytes in use afterwards.
fn trim_to_size(
    txn: &redb::WriteTransaction,
    high: u64,
    low: u64,
) -> Result<(u64, u64), redb::Error> {
    let in_use = |txn: &redb::WriteTransaction| -> Result<u64, redb::Error> {
        let stats = txn.stats()?;
        Ok(stats.allocated_pages() * stats.page_size() as u64)
    };
    let mut now = in_use(txn)?;
    if now <= high {
        return Ok((0, now));
    }
    let mut trimmed = 0;
    for _ in 0..20 {
        if now <= low {
            break;
        }
        let mut table = txn.open_table(READINGS)?;
        let count = table.len()?;
        if count == 0 {
            break;
        }
        let chunk = (count / 10).max(1);
        let cut = match table.iter()?.nth(chunk as usize) {
            Some(row) => row?.0.value(),
            None => (i64::MAX, u32::MAX, u64::MAX),
        };
        table.retain_in(..cut, |_, _| false)?;
        trimmed += count - table.len()?;
        drop(table);
        now = in_use(txn)?;
    }
    Ok((trimmed, now))
}
