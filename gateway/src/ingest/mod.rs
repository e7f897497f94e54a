//! The single writer. Readings arrive from every source through one bounded
//! channel; ingest runs them through the excursion engine and commits the
//! batch — readings, engine state, events and outbox entries — in one
//! durable transaction, every `batch_interval`, every `batch_size` readings,
//! or at once when an event was raised.
//!
//! The publisher never writes: it sends the seqs the broker acknowledged
//! here, and they leave the outbox in the next commit. Audit records (see
//! [`crate::audit`]) arrive the same way and are committed at once, chained
//! in the same transaction as the batch they join, each with its `audit`
//! event.
//!
//! Time (docs/time.md): ingest looks at the wall and monotonic clocks with
//! every reading and timer turn; when the wall clock jumps, the engine's
//! state is moved with it (durations stay monotonic), and a clock record and
//! a `gateway` event `clock_jump` mark the readings taken before it.
//!
//! A failing disk (docs/install.md, "Disk full"): a commit that fails keeps
//! its batch in memory, raises a `gateway` event (`disk_full` or
//! `storage_error`), and is retried after reopening the file, backing off
//! from one batch interval to 30 s; readings beyond [`OUTAGE_BUFFER_READINGS`] are judged but not kept,
//! and counted. The first commit that succeeds adds a `recovered` event.
//!
//! One room: the select loop and the commit it drives share the batch being built; start-up, the
//! clock watch, commands, a failing disk and outbox pressure have files of their own.

use std::sync::Arc;
use std::time::Duration;

use coldgate_sensor_drivers::Reading;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{interval, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{SyncState, SystemClock, Timeline, WallClock};
use crate::command::ManifestRequest;
use crate::event::{payload, Event};
use crate::excursion::Engine;
use crate::manifest::Pallet;
use crate::snapshot::Snapshot;
use crate::store::{Batch, StoreError, StoredEvent, Trim, Writer};
use crate::telemetry::Aggregator;

#[cfg(test)]
mod audit_tests;
mod clock_watch;
mod commands;
mod journal;
#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod load_answer_tests;
mod outage;
mod pressure;
mod resume;
#[cfg(test)]
mod tests;

pub use journal::{FoldPolicy, FOLDED};
use outage::Outage;
pub use outage::OUTAGE_BUFFER_READINGS;
pub use resume::{Lifecycle, LIFECYCLE};

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub gateway_id: String,
    pub batch_interval: Duration,
    pub batch_size: usize,
    pub retention: Duration,
    pub max_bytes: u64,
}

/// The channels ingest listens and reports on.
pub struct IngestChannels {
    pub readings: mpsc::Receiver<Reading>,
    /// Event seqs the broker acknowledged.
    pub acked: mpsc::UnboundedReceiver<u64>,
    /// The last event seq committed, for the publisher to wake on.
    pub committed: watch::Sender<u64>,
}

/// Totals of one run, for logs and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct IngestTotals {
    pub readings: u64,
    pub events: u64,
    pub commits: u64,
    pub audit: u64,
}

pub struct Ingest {
    writer: Writer,
    engine: Engine,
    opts: IngestOptions,
    /// Everything the next commit writes; cleared only after a commit
    /// succeeded, so a failed one is retried with the same batch (and
    /// whatever arrived since).
    batch: Batch,
    audit_rx: Option<mpsc::UnboundedReceiver<AuditRecord>>,
    /// When ingest last made progress (a timer turn or a commit), for the
    /// systemd watchdog: a commit stuck on a dying SD card stops it.
    heartbeat: watch::Sender<std::time::Instant>,
    newest_ms: i64,
    totals: IngestTotals,
    /// The engine state as last committed: only the rows that changed since
    /// are written, so a commit's cost does not grow with what the engine
    /// knows (`crate::snapshot`).
    snapshot: Snapshot,
    /// Operator commands (MQTT `cmd/manifest`), applied here because ingest
    /// alone writes the engine state.
    commands: Option<mpsc::Receiver<ManifestRequest>>,
    /// Last values and counters for the HTTP API (kept in memory, so a
    /// status page never scans the database).
    live: Option<crate::live::Live>,
    clock: Arc<dyn WallClock>,
    timeline: Timeline,
    /// The clock state last recorded in the store.
    recorded_sync: Option<SyncState>,
    /// Set while commits fail.
    outage: Option<Outage>,
    /// Pallet stays not yet unloaded, each with its effective profile, as
    /// last committed: the publisher's retained `manifest`.
    manifest: watch::Sender<Vec<Pallet>>,
    /// Zone → its profile, to name a pallet's effective profile.
    zone_profiles: std::collections::HashMap<String, String>,
    /// Periodic telemetry, when enabled; its messages go to the telemetry
    /// outbox, never numbered as events.
    telemetry: Option<Aggregator>,
    /// Telemetry ids the publisher has sent (QoS 0) or had acknowledged.
    telemetry_sent: Option<mpsc::UnboundedReceiver<u64>>,
    /// The outbox cap (events + telemetry), for the pressure event.
    outbox_cap: Option<u64>,
    /// Inside an outbox pressure episode: telemetry dropped in it so far.
    pressure: Option<u64>,
    /// The database's dropped-telemetry count before the open episode.
    pressure_base: u64,
    /// The episode started or ended since the last commit: its row is due.
    pressure_due: bool,
    /// `mqtt.max_payload`: events naming more pallets are stored in parts.
    max_payload: usize,
    /// Set for the last commit of a clean stop (see [`Lifecycle`]).
    stopped_cleanly: bool,
    /// The run's first commit still has to record that it runs.
    lifecycle_due: bool,
    /// Outbox entries the publisher could not send (over `max_payload`).
    set_aside_rx: Option<mpsc::UnboundedReceiver<crate::store::SetAside>>,
    /// How far a load command's `loaded_at` may be from the clock.
    load_time_limits: crate::manifest::LoadTimeLimits,
    /// The reading journal, when routine batches go there and redb is
    /// written by folds (see `journal.rs`).
    journal: Option<journal::JournalSide>,
}

/// `mqtt.max_payload`'s default, for ingest built without a configuration.
pub const DEFAULT_MAX_PAYLOAD: usize = 128 * 1024;

impl Ingest {
    pub fn new(writer: Writer, engine: Engine, opts: IngestOptions) -> Ingest {
        Ingest {
            writer,
            engine,
            opts,
            batch: Batch::default(),
            audit_rx: None,
            heartbeat: watch::channel(std::time::Instant::now()).0,
            newest_ms: i64::MIN,
            totals: IngestTotals::default(),
            snapshot: Snapshot::new(),
            commands: None,
            live: None,
            clock: Arc::new(SystemClock::new()),
            timeline: Timeline::new(),
            recorded_sync: None,
            outage: None,
            manifest: watch::channel(Vec::new()).0,
            max_payload: DEFAULT_MAX_PAYLOAD,
            stopped_cleanly: false,
            lifecycle_due: true,
            set_aside_rx: None,
            load_time_limits: crate::manifest::LoadTimeLimits::default(),
            zone_profiles: Default::default(),
            telemetry: None,
            telemetry_sent: None,
            outbox_cap: None,
            pressure: None,
            pressure_base: 0,
            pressure_due: false,
            journal: None,
        }
    }

    /// Reads time from `clock` instead of the machine's (tests make it jump).
    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> Ingest {
        self.clock = clock;
        self
    }

    /// Summarises readings into periodic telemetry (see
    /// [`crate::telemetry`]); `sent` carries the ids the publisher
    /// has sent, which leave the telemetry outbox.
    pub fn with_telemetry(
        mut self,
        aggregator: Aggregator,
        sent: mpsc::UnboundedReceiver<u64>,
    ) -> Ingest {
        self.telemetry = Some(aggregator);
        self.telemetry_sent = Some(sent);
        self
    }

    /// Caps the outbox (events + telemetry waiting): telemetry is dropped
    /// first, events never; a `gateway` event reports each pressure episode.
    pub fn with_outbox_cap(mut self, cap: u64) -> Ingest {
        self.outbox_cap = Some(cap);
        self.writer.set_outbox_cap(Some(cap));
        self
    }

    /// Names each pallet's profile by its zone's when it has none of its own.
    pub fn with_zone_profiles(
        mut self,
        zone_profiles: std::collections::HashMap<String, String>,
    ) -> Ingest {
        self.zone_profiles = zone_profiles;
        self.manifest.send_replace(self.pallets_not_unloaded());
        self
    }

    /// The pallets not yet unloaded, as committed: changes after each
    /// committed load or unload.
    pub fn manifest(&self) -> watch::Receiver<Vec<Pallet>> {
        self.manifest.send_replace(self.pallets_not_unloaded());
        self.manifest.subscribe()
    }

    /// Stores events in parts of at most `max` bytes where they can be split.
    pub fn with_max_payload(mut self, max: usize) -> Ingest {
        self.max_payload = max;
        self
    }

    /// Outbox entries the publisher set aside, moved out of the outbox here
    /// (ingest is the only writer) and reported by a `gateway` event.
    /// Load commands whose `loaded_at` is further from the clock than these
    /// warn (`[manifest]`; the documented defaults otherwise).
    pub fn with_load_time_limits(mut self, limits: crate::manifest::LoadTimeLimits) -> Ingest {
        self.load_time_limits = limits;
        self
    }

    pub fn with_set_aside(mut self, rx: mpsc::UnboundedReceiver<crate::store::SetAside>) -> Ingest {
        self.set_aside_rx = Some(rx);
        self
    }

    /// Audit records to commit; ingest stays the only writer of the store.
    pub fn with_audit(mut self, rx: mpsc::UnboundedReceiver<AuditRecord>) -> Ingest {
        self.audit_rx = Some(rx);
        self
    }

    /// When ingest last made progress: a timer turn or a commit.
    pub fn heartbeat(&self) -> watch::Receiver<std::time::Instant> {
        self.heartbeat.subscribe()
    }

    /// Whether nothing waits that is worth a commit of its own: clock
    /// records ride with the next commit, and the engine state, the named
    /// state and the trim are computed afresh by each.
    fn idle(&self) -> bool {
        let b = &self.batch;
        b.readings.is_empty()
            && b.events.is_empty()
            && b.acked.is_empty()
            && b.audit.is_empty()
            && b.commands.is_empty()
            && b.telemetry.is_empty()
            && b.telemetry_sent.is_empty()
            && b.set_aside.is_empty()
    }

    /// Reports last values and counters to `live` (see `crate::live`).
    pub fn with_live(mut self, live: crate::live::Live) -> Ingest {
        self.live = Some(live);
        self
    }

    /// Takes manifest commands from `commands` (see `crate::command`).
    pub fn with_commands(mut self, commands: mpsc::Receiver<ManifestRequest>) -> Ingest {
        self.commands = Some(commands);
        self
    }

    /// Runs until the readings channel closes (every source has stopped),
    /// then commits what it holds and returns.
    pub async fn run(mut self, mut ch: IngestChannels) -> Result<IngestTotals, StoreError> {
        self.replay_journal()?;
        self.resume();
        // The replayed readings are durable (read back from the journal):
        // readers see them from now, before the first fold. Not before
        // `resume`, which reads the stored readings as the last run left
        // them in redb.
        self.publish_durable();
        let mut commands = self.commands.take();
        let mut tick = interval(self.opts.batch_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut acks_open = true;
        let mut audit_rx = self.audit_rx.take();
        let mut audit_open = audit_rx.is_some();
        let mut telemetry_rx = self.telemetry_sent.take();
        let mut set_aside_rx = self.set_aside_rx.take();
        loop {
            tokio::select! {
                biased;
                r = ch.readings.recv(), if self.unsaved() < self.opts.batch_size * 4 || self.outage.is_some() => {
                    let Some(r) = r else { break };
                    self.accept(r);
                    // Take what is already queued without going round the select.
                    while self.unsaved() < self.opts.batch_size {
                        match ch.readings.try_recv() {
                            Ok(r) => self.accept(r),
                            Err(_) => break,
                        }
                    }
                    let due = !self.batch.events.is_empty() || self.unsaved() >= self.opts.batch_size;
                    // While the disk fails, only the timer retries.
                    if due && self.outage.is_none() {
                        self.save(&ch.committed);
                        // A full interval from now: at high rates the size
                        // trigger alone paces commits.
                        tick.reset();
                    }
                }
                req = next_command(&mut commands), if commands.is_some() => match req {
                    Some(req) => self.apply(req, &ch.committed),
                    None => commands = None,
                },
                seq = ch.acked.recv(), if acks_open => match seq {
                    Some(seq) => self.batch.acked.push(seq),
                    None => acks_open = false,
                },
                s = next_set_aside(&mut set_aside_rx), if set_aside_rx.is_some() => match s {
                    Some(s) => self.set_aside(s),
                    None => set_aside_rx = None,
                },
                id = next_id(&mut telemetry_rx), if telemetry_rx.is_some() => match id {
                    Some(id) => self.batch.telemetry_sent.push(id),
                    None => telemetry_rx = None,
                },
                record = next_audit(&mut audit_rx), if audit_open => match record {
                    // Who changed what must not wait for the batch timer: a
                    // power cut right after a reload would lose it.
                    Some(record) => {
                        self.commit_readings_before_audit(&ch.committed);
                        self.push_audit(record);
                        // Records sent together (start: config, then
                        // gateway) share one commit.
                        if let Some(rx) = audit_rx.as_mut() {
                            while let Ok(record) = rx.try_recv() {
                                self.push_audit(record);
                            }
                        }
                        if self.outage.is_none() {
                            self.commit(&ch.committed);
                        }
                    }
                    None => audit_open = false,
                },
                _ = tick.tick() => {
                    self.heartbeat.send_replace(std::time::Instant::now());
                    self.watch_clock(true);
                    // The engine's clock for silence and delays that run
                    // out between readings: the newest of the wall clock and
                    // the readings (a simulator may run ahead of the wall).
                    let now = self.newest_ms.max(self.clock.wall_ms());
                    if let Err(error) = self.journal_tick(now) {
                        self.on_commit_failed(&error);
                    }
                    let events = self.engine.tick(now);
                    self.push_events(events);
                    if let Some(agg) = self.telemetry.as_mut() {
                        for t in agg.due(now) {
                            self.batch.push_telemetry(t.at_ms, t.topic, t.payload);
                        }
                    }
                    if self.outage.is_some() {
                        self.retry(&ch.committed);
                    } else if !self.idle() {
                        self.save(&ch.committed);
                    }
                }
            }
        }
        while let Ok(seq) = ch.acked.try_recv() {
            self.batch.acked.push(seq);
        }
        let mut last = Vec::new();
        if let Some(rx) = audit_rx.as_mut() {
            while let Ok(record) = rx.try_recv() {
                last.push(record);
            }
        }
        if !last.is_empty() {
            self.commit_readings_before_audit(&ch.committed);
        }
        for record in last {
            self.push_audit(record);
        }
        // Shutting down: a failed commit is retried a few times, then reported.
        for attempt in 0..5 {
            if self.idle() && self.outage.is_none() {
                break;
            }
            if self.outage.is_some() {
                if let Err(error) = self.writer.reopen() {
                    debug!(%error, "Database not reopened yet.");
                }
            }
            match self.try_commit(&ch.committed) {
                Ok(()) => self.end_outage(&ch.committed),
                Err(error) => {
                    if attempt == 4 {
                        error!(
                            %error,
                            pending_readings = self.batch.readings.len(),
                            "Stopping with a batch that could not be committed; it is lost."
                        );
                        return Err(error);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // The last commit says the stop was clean; without it the next
        // start reports an unclean stop.
        self.stopped_cleanly = true;
        if let Err(error) = self.try_commit(&ch.committed) {
            warn!(%error, "The clean stop could not be recorded; the next start will report an unclean stop.");
        }
        info!(
            readings = self.totals.readings,
            events = self.totals.events,
            commits = self.totals.commits,
            "Ingest stopped with everything committed."
        );
        Ok(self.totals)
    }

    fn accept(&mut self, r: Reading) {
        self.watch_clock(false);
        self.newest_ms = self.newest_ms.max(r.at_ms);
        if let Some(t) = self.telemetry.as_mut().and_then(|agg| agg.add(&r)) {
            self.batch.push_telemetry(t.at_ms, t.topic, t.payload);
        }
        if let Some(live) = &self.live {
            live.observe(&r);
        }
        let events = self.engine.on_reading(&r);
        self.push_events(events);
        match &mut self.outage {
            Some(o) if self.batch.readings.len() >= OUTAGE_BUFFER_READINGS => o.dropped += 1,
            _ => {
                self.journal_reading(&r);
                self.batch.readings.push(r)
            }
        }
    }

    /// Numbers the engine's events after those already held; they are
    /// committed with the engine state that produced them.
    /// An event too large for one message takes one seq per part.
    fn push_events(&mut self, events: Vec<crate::event::Event>) {
        let mut seq = self.writer.next_event_seq() + self.batch.events.len() as u64;
        for ev in events {
            for payload in ev.payloads(seq, &self.opts.gateway_id, self.max_payload) {
                self.batch.events.push(StoredEvent {
                    seq,
                    at_ms: ev.at_ms,
                    topic: ev.kind().topic(),
                    payload,
                });
                seq += 1;
            }
        }
    }

    /// The publisher could not send outbox entry `s.seq`: it leaves the
    /// outbox with the next commit (kept in the database) and a `gateway`
    /// event says so, so the entries behind it flow.
    fn set_aside(&mut self, s: crate::store::SetAside) {
        error!(
            seq = s.seq,
            topic = %s.topic,
            bytes = s.bytes,
            max_payload = self.max_payload,
            "An outbox entry larger than mqtt.max_payload is set aside (kept in the database, not published)."
        );
        self.batch.set_aside.push(s.seq);
        self.push_events(vec![Event::new(
            self.clock.wall_ms(),
            payload::Gateway::EntrySetAside {
                phase: Default::default(),
                set_aside_seq: s.seq,
                topic: s.topic,
                bytes: s.bytes as u64,
                max_payload: self.max_payload as u64,
            },
        )]);
    }

    fn commit(&mut self, committed: &watch::Sender<u64>) {
        // A commit blocks on fsync.
        let result = blocking(|| self.try_commit(committed));
        match result {
            Ok(()) => self.end_outage(committed),
            Err(error) => {
                if let Some(live) = &self.live {
                    live.commit_failed();
                }
                self.on_commit_failed(&error)
            }
        }
    }

    fn try_commit(&mut self, committed: &watch::Sender<u64>) -> Result<(), StoreError> {
        if self.batch.audit.is_empty() && self.writer.readings_checkpoint_due(self.clock.mono_ms())
        {
            self.push_audit(AuditRecord {
                at_ms: self.clock.wall_ms(),
                kind: AuditKind::ReadingsCheckpoint,
                actor: "coldgate".into(),
                details: json!({}),
            });
        }
        // A value that cannot be serialised fails the commit: the stored
        // state is never partial.
        let mut delta = self.snapshot.delta(self.engine.state())?;
        let newest = self.newest_ms.max(self.clock.wall_ms());
        let retention = i64::try_from(self.opts.retention.as_millis()).unwrap_or(i64::MAX);
        let trim = Trim {
            before_ms: newest.saturating_sub(retention),
            // The writer decides when measuring is due.
            max_bytes: Some(self.opts.max_bytes),
        };
        let lifecycle = self.lifecycle_due || self.stopped_cleanly;
        let alive = Lifecycle {
            alive_ms: self.clock.wall_ms(),
            clean: self.stopped_cleanly,
        }
        .encode()?;
        let pressure = self.pressure_row()?;
        // Named state, rows and trim are this attempt's: a retry replaces them.
        self.batch.state.clear();
        if lifecycle {
            self.batch.state.push((LIFECYCLE.into(), alive));
        }
        if let Some(row) = pressure {
            self.batch.state.push((pressure::PRESSURE.into(), row));
        }
        self.batch.rows = std::mem::take(&mut delta.rows);
        self.batch.trim = Some(trim);
        let folded = self.journal_before_fold()?;
        if let Some(lsn) = folded {
            self.batch
                .state
                .push((journal::FOLDED.into(), lsn.to_le_bytes().to_vec()));
        }
        let done = self.writer.commit(&self.batch)?;
        let newly_durable = self.newly_durable(done.readings);
        if let Some(lsn) = folded {
            self.journal_folded(lsn);
        }
        self.snapshot.committed(self.engine.state(), &delta);
        self.lifecycle_due = false;
        self.pressure_due = false;
        self.totals.readings += done.readings as u64;
        self.totals.events += done.events as u64;
        self.totals.audit += done.audit as u64;
        self.totals.commits += 1;
        if let Some(live) = &self.live {
            live.committed(newly_durable as u64, done.events as u64);
        }
        self.heartbeat.send_replace(std::time::Instant::now());
        debug!(
            readings = done.readings,
            events = done.events,
            acked = done.acked,
            trimmed = done.trimmed,
            readings_total = self.totals.readings,
            events_total = self.totals.events,
            "Committed."
        );
        self.batch.clear();
        // After the clearing: its event is numbered after those committed.
        self.watch_pressure(&done);
        committed.send_replace(self.writer.next_event_seq() - 1);
        Ok(())
    }
}

/// Runs `f`, which blocks on the disk; on the multi-threaded runtime the
/// worker's other tasks (sources, the publisher) move elsewhere meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The next entry set aside, or never when there is no channel.
async fn next_set_aside(
    rx: &mut Option<mpsc::UnboundedReceiver<crate::store::SetAside>>,
) -> Option<crate::store::SetAside> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next id, or never when there is no channel.
async fn next_id(rx: &mut Option<mpsc::UnboundedReceiver<u64>>) -> Option<u64> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next audit record, or never when there is no audit channel (the
/// select branch is disabled then anyway).
async fn next_audit(rx: &mut Option<mpsc::UnboundedReceiver<AuditRecord>>) -> Option<AuditRecord> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next manifest command, or never when there is no command channel.
async fn next_command(
    commands: &mut Option<mpsc::Receiver<ManifestRequest>>,
) -> Option<ManifestRequest> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
