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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use coldgate_sensor_drivers::{Backoff, Quantity, Reading};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{interval, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{Jump, SyncState, SystemClock, Timeline, WallClock};
use crate::command::{Answer, ManifestCommand, ManifestRequest};
use crate::event::{now_ms, payload, rfc3339, Event};
use crate::excursion::Engine;
use crate::manifest::Pallet;
use crate::snapshot::Snapshot;
use crate::store::{StoreError, StoredEvent, Trim, Writer};
use crate::telemetry::Aggregator;

/// While commits fail, at most this many readings are held in memory
/// (about 4 MB); later ones are still judged by the engine but not stored,
/// and counted in the `recovered` event.
pub const OUTAGE_BUFFER_READINGS: usize = 100_000;

/// The `state` key of the gateway's proof of life: when it last committed,
/// and whether it stopped cleanly (see [`Lifecycle`]).
pub const LIFECYCLE: &str = "lifecycle";

/// Written twice a run, never per commit (the state table is not otherwise
/// written in steady state, and a page per commit would wear the card): by
/// the first commit, `clean: false`; by the last commit of a clean stop,
/// `clean: true`. At the next start a record without `clean` means the
/// gateway died (power cut, SIGKILL, crash); its last sign of life is the
/// newest of `alive_ms` and the newest reading or event stored, and the
/// time since then was not observed: a `gateway` event `unclean_stop` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lifecycle {
    /// The wall clock at the commit (ms since the epoch).
    pub alive_ms: i64,
    /// Set only by the final commit of a clean stop.
    pub clean: bool,
}

impl Lifecycle {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        StoreError::encode("proof of life", self)
    }

    pub fn decode(bytes: &[u8]) -> Option<Lifecycle> {
        serde_json::from_slice(bytes).ok()
    }
}

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
    readings: Vec<Reading>,
    events: Vec<StoredEvent>,
    acked: Vec<u64>,
    audit: Vec<AuditRecord>,
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
}

/// `mqtt.max_payload`'s default, for ingest built without a configuration.
pub const DEFAULT_MAX_PAYLOAD: usize = 128 * 1024;

/// A run of failed commits.
#[derive(Debug, Clone)]
struct Outage {
    since_ms: i64,
    disk_full: bool,
    failures: u64,
    dropped: u64,
    /// Monotonic ms before which no retry is made: reopening a database
    /// after an I/O error makes redb check it, which costs, so retries back
    /// off from one batch interval to [`OUTAGE_RETRY_MAX`].
    retry_at_ms: i64,
    retry: Backoff,
}

/// The longest wait between two retries of a failing disk.
const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(30);

impl Ingest {
    pub fn new(writer: Writer, engine: Engine, opts: IngestOptions) -> Ingest {
        Ingest {
            writer,
            engine,
            opts,
            readings: Vec::new(),
            events: Vec::new(),
            acked: Vec::new(),
            audit: Vec::new(),
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
        }
    }

    /// Reads time from `clock` instead of the machine's (tests make it jump).
    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> Ingest {
        self.clock = clock;
        self
    }

    /// Looks at the clocks; on a jump moves the engine with it and marks
    /// the readings taken before it. `sync` is asked of the clock on timer
    /// turns only (a system call), and reused for readings.
    fn watch_clock(&mut self, ask_sync: bool) {
        let sync = match (ask_sync, self.timeline.sync()) {
            (false, Some(known)) => known,
            _ => self.clock.sync(),
        };
        let (wall, mono) = (self.clock.wall_ms(), self.clock.mono_ms());
        if let Some(jump) = self.timeline.observe(wall, mono, sync) {
            self.on_jump(jump);
        }
        if self.recorded_sync != Some(sync) {
            match sync {
                SyncState::Synchronised => info!("The system clock is synchronised."),
                _ => warn!(
                    clock = sync.as_str(),
                    "The system clock is not known to be synchronised: reading times may be off until it is."
                ),
            }
            let record =
                json!({ "record": "state", "at": rfc3339(wall), "synchronised": sync.as_option() });
            self.writer
                .stage_clock_record(serde_json::to_vec(&record).unwrap_or_default());
            self.recorded_sync = Some(sync);
        }
    }

    fn on_jump(&mut self, jump: Jump) {
        warn!(
            offset_ms = jump.offset_ms,
            affected_from = %rfc3339(jump.affected_from_ms),
            affected_to = %rfc3339(jump.affected_to_ms),
            "The system clock jumped: readings taken before it are marked; excursion durations follow monotonic time."
        );
        self.engine.shift_times(jump.offset_ms);
        if self.newest_ms != i64::MIN {
            self.newest_ms = self.newest_ms.saturating_add(jump.offset_ms);
        }
        let body = payload::Gateway::ClockJump {
            phase: Default::default(),
            offset_ms: jump.offset_ms,
            affected_from: rfc3339(jump.affected_from_ms),
            affected_to: rfc3339(jump.affected_to_ms),
            synchronised: jump.sync.as_option(),
        };
        // The clock table keeps the same fields, marked as a jump record.
        let mut record = serde_json::to_value(&body).unwrap_or_default();
        record["record"] = json!("jump");
        record["at"] = json!(rfc3339(jump.at_ms));
        self.writer
            .stage_clock_record(serde_json::to_vec(&record).unwrap_or_default());
        self.push_events(vec![Event::new(jump.at_ms, body)]);
    }

    /// Whether commits are failing (the disk is full or broken).
    pub fn in_outage(&self) -> bool {
        self.outage.is_some()
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

    fn pallets_not_unloaded(&self) -> Vec<Pallet> {
        self.engine
            .state()
            .manifest
            .stays
            .iter()
            .filter(|p| p.unloaded_at_ms.is_none_or(|u| u > now_ms()))
            .map(|p| {
                let mut p = p.clone();
                if p.profile.is_none() {
                    p.profile = self.zone_profiles.get(&p.zone).cloned();
                }
                p
            })
            .collect()
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

    fn idle(&self) -> bool {
        self.readings.is_empty()
            && self.events.is_empty()
            && self.acked.is_empty()
            && self.audit.is_empty()
            && !self.writer.has_staged()
    }

    /// Reports last values and counters to `live` (see `diag::live`).
    pub fn with_live(mut self, live: crate::live::Live) -> Ingest {
        self.live = Some(live);
        self
    }

    /// Takes manifest commands from `commands` (see `crate::command`).
    pub fn with_commands(mut self, commands: mpsc::Receiver<ManifestRequest>) -> Ingest {
        self.commands = Some(commands);
        self
    }

    /// Applies one command and answers after the commit that stores it, so
    /// an `ok` survives a power cut. The answer is stored in the same
    /// commit; a request id answered before is not applied again but
    /// answered with its first answer, marked duplicate.
    fn apply(&mut self, req: ManifestRequest, committed: &watch::Sender<u64>) {
        let id = req.request_id;
        let gw = self.opts.gateway_id.clone();
        match self.writer.command_answer(&id) {
            Ok(Some(stored)) => {
                info!(request_id = %id, "A repeated manifest command is answered with its first answer and not applied again.");
                let _ = req.reply.send(Answer::repeat(&stored));
                return;
            }
            Ok(None) => {}
            Err(error) => {
                warn!(request_id = %id, %error, "Cannot tell whether a manifest command was applied before; it is refused.");
                let why = format!("cannot check whether this request_id was applied before ({error}); send it again");
                let _ = req.reply.send(Answer::new(&gw, Some(&id), &Err(vec![why])));
                return;
            }
        }
        let (action, sscc) = match &req.command {
            ManifestCommand::Load(cmd) => ("load", cmd.sscc.clone()),
            ManifestCommand::Unload { sscc, .. } => ("unload", sscc.clone()),
        };
        let outcome: Result<Vec<Event>, Vec<String>> = match req.command {
            ManifestCommand::Load(cmd) => {
                // What the command raises on its own (a serial twice in it,
                // a load time the clock cannot believe), only if it loads.
                let now = self.clock.wall_ms();
                let own: Vec<Event> =
                    crate::manifest::command_warnings(&cmd, now, self.load_time_limits)
                        .into_iter()
                        .map(|lot| Event::new(now, lot))
                        .collect();
                self.engine
                    .load_pallet(cmd)
                    .map(|mut events| {
                        events.extend(own);
                        events
                    })
                    .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
            }
            ManifestCommand::Unload { sscc, at_ms } => self
                .engine
                .unload_pallet(&sscc, at_ms)
                .map_err(|e| vec![e.to_string()]),
        };
        // Every command received is in the audit trail, refused ones too,
        // once, in the commit that applies it, whichever way it came.
        self.push_audit(AuditRecord {
            at_ms: self.clock.wall_ms(),
            kind: AuditKind::ManifestCommand,
            actor: req.actor,
            details: json!({
                "request_id": id,
                "action": action,
                "sscc": sscc,
                "accepted": outcome.is_ok(),
                "problems": outcome.as_ref().err(),
            }),
        });
        let answer = match outcome {
            Ok(events) => {
                let warnings = crate::command::warnings_of(&events);
                self.push_events(events);
                let answer = Answer::new(&gw, Some(&id), &Ok(warnings));
                self.writer
                    .remember_command(&id, now_ms(), answer.payload.clone());
                match self.try_commit(committed) {
                    Ok(()) => {
                        self.manifest.send_replace(self.pallets_not_unloaded());
                        answer
                    }
                    Err(error) => {
                        warn!(%error, "A manifest command was applied but its commit failed; it is retried with the next batch.");
                        let why = format!("applied but not yet stored ({error}); it will be stored with the next commit");
                        Answer::new(&gw, Some(&id), &Err(vec![why]))
                    }
                }
            }
            Err(errors) => {
                let answer = Answer::new(&gw, Some(&id), &Err(errors));
                self.writer
                    .remember_command(&id, now_ms(), answer.payload.clone());
                // While the disk fails, only the timer retries.
                if self.outage.is_none() {
                    self.commit(committed);
                }
                answer
            }
        };
        let _ = req.reply.send(answer);
    }

    /// Runs until the readings channel closes (every source has stopped),
    /// then commits what it holds and returns.
    pub async fn run(mut self, mut ch: IngestChannels) -> Result<IngestTotals, StoreError> {
        self.resume();
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
                r = ch.readings.recv(), if self.readings.len() < self.opts.batch_size * 4 || self.outage.is_some() => {
                    let Some(r) = r else { break };
                    self.accept(r);
                    // Take what is already queued without going round the select.
                    while self.readings.len() < self.opts.batch_size {
                        match ch.readings.try_recv() {
                            Ok(r) => self.accept(r),
                            Err(_) => break,
                        }
                    }
                    let due = !self.events.is_empty() || self.readings.len() >= self.opts.batch_size;
                    // While the disk fails, only the timer retries.
                    if due && self.outage.is_none() {
                        self.commit(&ch.committed);
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
                    Some(seq) => self.acked.push(seq),
                    None => acks_open = false,
                },
                s = next_set_aside(&mut set_aside_rx), if set_aside_rx.is_some() => match s {
                    Some(s) => self.set_aside(s),
                    None => set_aside_rx = None,
                },
                id = next_id(&mut telemetry_rx), if telemetry_rx.is_some() => match id {
                    Some(id) => self.writer.telemetry_sent(id),
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
                    let events = self.engine.tick(now);
                    self.push_events(events);
                    if let Some(agg) = self.telemetry.as_mut() {
                        for t in agg.due(now) {
                            self.writer.stage_telemetry(t.at_ms, t.topic, t.payload);
                        }
                    }
                    if self.outage.is_some() {
                        self.retry(&ch.committed);
                    } else if !self.idle() {
                        self.commit(&ch.committed);
                    }
                }
            }
        }
        while let Ok(seq) = ch.acked.try_recv() {
            self.acked.push(seq);
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
                            pending_readings = self.readings.len(),
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
            self.writer.stage_telemetry(t.at_ms, t.topic, t.payload);
        }
        if let Some(live) = &self.live {
            live.observe(&r);
        }
        let events = self.engine.on_reading(&r);
        self.push_events(events);
        match &mut self.outage {
            Some(o) if self.readings.len() >= OUTAGE_BUFFER_READINGS => o.dropped += 1,
            _ => self.readings.push(r),
        }
    }

    /// Commits the readings waiting, so that the audit entry about to be
    /// queued checkpoints them too: a clean stop's entry then covers every
    /// reading, and so does the head its event publishes. One commit more
    /// per start, stop or reload.
    fn commit_readings_before_audit(&mut self, committed: &watch::Sender<u64>) {
        if !self.readings.is_empty() && self.audit.is_empty() && self.outage.is_none() {
            self.commit(committed);
        }
    }

    /// Queues an audit record and its `audit` event (and, for a rejected
    /// configuration, a `gateway` event), committed together.
    fn push_audit(&mut self, mut record: AuditRecord) {
        // A refused command echoes what it was sent: stored and published
        // cut down, so no input can make an entry too large to send.
        record.details = crate::event::parts::bounded(&record.details);
        record.actor = crate::event::parts::bounded_str(&record.actor);
        let audit_seq = self.writer.next_audit_seq() + self.audit.len() as u64;
        // The head once this entry is in (SEQ:HASH): a subscriber keeping
        // the last one holds an anchor `audit verify --anchor` checks.
        let mut pending = self.audit.clone();
        pending.push(record.clone());
        let head = blocking(|| self.writer.audit_head_after(&pending));
        let mut events = vec![Event::new(
            record.at_ms,
            payload::Audit {
                phase: record.kind,
                audit_seq,
                actor: record.actor.clone(),
                details: record.details.clone(),
                audit_head: head.ok().map(|h| h.to_string()),
            },
        )];
        if record.kind == AuditKind::ConfigRejected {
            let text = |key: &str| record.details[key].as_str().unwrap_or_default().to_string();
            let problems = record.details["problems"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .map(|p| p.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            events.push(Event::new(
                record.at_ms,
                payload::Gateway::ConfigRejected {
                    phase: Default::default(),
                    actor: record.actor.clone(),
                    path: text("path"),
                    problems,
                },
            ));
        }
        self.push_events(events);
        self.audit.push(record);
    }

    /// During an outage, on each timer turn: reopen the file (redb needs it
    /// after an I/O error) and try the held batch again.
    fn retry(&mut self, committed: &watch::Sender<u64>) {
        let now = self.clock.mono_ms();
        match &mut self.outage {
            Some(o) if now < o.retry_at_ms => return,
            Some(o) => {
                let wait = i64::try_from(o.retry.next_delay().as_millis()).unwrap_or(i64::MAX);
                o.retry_at_ms = now.saturating_add(wait);
            }
            None => {}
        }
        // Reopening makes redb check the file: block this worker only.
        match blocking(|| self.writer.reopen()) {
            Ok(false) => {}
            Ok(true) => {
                // The commit reported failed had reached the disk: what it
                // held is stored; drop it rather than store it twice.
                warn!(
                    readings = self.readings.len(),
                    "A commit reported as failed was found stored after reopening; its batch is not committed again."
                );
                self.readings.clear();
                self.events.clear();
                self.acked.clear();
                self.audit.clear();
            }
            Err(error) => {
                debug!(%error, "Database not reopened yet; retrying at the next turn.");
                return;
            }
        }
        self.commit(committed);
    }

    /// After the first successful commit of an outage: the `recovered` event.
    fn end_outage(&mut self, committed: &watch::Sender<u64>) {
        let Some(o) = self.outage.take() else {
            return;
        };
        let now = self.clock.wall_ms();
        info!(
            failures = o.failures,
            dropped_readings = o.dropped,
            "Storage recovered; the readings held in memory are committed."
        );
        let recovery = payload::StorageRecovery {
            reason: if o.disk_full {
                payload::StorageReason::DiskFull
            } else {
                payload::StorageReason::StorageError
            },
            since: rfc3339(o.since_ms),
            outage_s: now.saturating_sub(o.since_ms) / 1000,
            failed_commits: o.failures,
            dropped_readings: o.dropped,
        };
        self.push_events(vec![Event::new(
            now,
            payload::Gateway::Storage {
                phase: payload::StoragePhase::Recovered,
                failure: None,
                recovery: Some(recovery),
            },
        )]);
        if let Err(error) = self.try_commit(committed) {
            warn!(%error, "The recovered event is kept for the next commit.");
        }
    }

    /// A commit failed: the first failure of a run raises the event.
    fn on_commit_failed(&mut self, error: &StoreError) {
        if let Some(o) = &mut self.outage {
            o.failures += 1;
            debug!(%error, failures = o.failures, "Commit failed again.");
            return;
        }
        let disk_full = error.is_disk_full();
        let now = self.clock.wall_ms();
        error!(
            %error,
            disk_full,
            pending = self.readings.len(),
            "Commit failed; readings are held in memory and the commit is retried every batch interval."
        );
        let failure = payload::StorageFailure {
            error: error.to_string(),
            held_readings: self.readings.len() as u64,
            buffer_limit: OUTAGE_BUFFER_READINGS as u64,
        };
        self.push_events(vec![Event::new(
            now,
            payload::Gateway::Storage {
                phase: if disk_full {
                    payload::StoragePhase::DiskFull
                } else {
                    payload::StoragePhase::StorageError
                },
                failure: Some(failure),
                recovery: None,
            },
        )]);
        let first = self.opts.batch_interval.max(Duration::from_millis(1));
        let mut retry = Backoff::new(first, OUTAGE_RETRY_MAX);
        let wait = i64::try_from(retry.next_delay().as_millis()).unwrap_or(i64::MAX);
        self.outage = Some(Outage {
            since_ms: now,
            disk_full,
            failures: 1,
            dropped: 0,
            retry_at_ms: self.clock.mono_ms().saturating_add(wait),
            retry,
        });
    }

    /// Numbers the engine's events after those already held; they are
    /// committed with the engine state that produced them.
    /// An event too large for one message takes one seq per part.
    fn push_events(&mut self, events: Vec<crate::event::Event>) {
        let mut seq = self.writer.next_event_seq() + self.events.len() as u64;
        for ev in events {
            for payload in ev.payloads(seq, &self.opts.gateway_id, self.max_payload) {
                self.events.push(StoredEvent {
                    seq,
                    at_ms: ev.at_ms,
                    topic: ev.kind().topic(),
                    payload,
                });
                seq += 1;
            }
        }
    }

    /// At start: the time since the last run is a monitoring gap nobody
    /// saw. A proof of life without its clean-stop mark means the gateway
    /// died (a `gateway` event `unclean_stop` says so); either way every
    /// judged quantity not seen for longer than its silence limit gets a
    /// gap whose cause is the downtime (`Engine::resume`).
    fn resume(&mut self) {
        let last = match self.writer.store().state(LIFECYCLE) {
            Ok(Some(bytes)) => Lifecycle::decode(&bytes),
            Ok(None) => None,
            Err(error) => {
                warn!(%error, "Cannot read the last run's proof of life; an unclean stop cannot be told.");
                None
            }
        };
        // A first start has no last run: nothing was expected before it.
        let Some(last) = last else {
            return;
        };
        let now = self.clock.wall_ms();
        self.restore_last_seen(now);
        if last.clean {
            let events = self.engine.resume(now, payload::GapCause::GatewayStopped);
            self.push_events(events);
            return;
        }
        let activity = match self.writer.store().last_activity_ms(now) {
            Ok(a) => a,
            Err(error) => {
                warn!(%error, "Cannot read the newest reading; the downtime is counted from the last run's start.");
                None
            }
        };
        let last = Lifecycle {
            alive_ms: activity.map_or(last.alive_ms, |a| a.max(last.alive_ms)),
            ..last
        };
        let downtime_s = now.saturating_sub(last.alive_ms).max(0) / 1000;
        warn!(
            last_alive_at = %rfc3339(last.alive_ms),
            downtime_s,
            "The last run did not stop cleanly (power cut, kill or crash): nothing was observed since its last commit."
        );
        let mut events = vec![Event::new(
            now,
            payload::Gateway::UncleanStop {
                phase: Default::default(),
                last_alive_at: rfc3339(last.alive_ms),
                started_at: rfc3339(now),
                downtime_s,
            },
        )];
        events.extend(self.engine.resume(now, payload::GapCause::GatewayDown));
        self.push_events(events);
    }

    /// The engine's last-seen times are persisted to the minute; the stored
    /// readings of that last minute give the exact ones, so a quick restart
    /// is not mistaken for a gap.
    fn restore_last_seen(&mut self, now: i64) {
        let Some(from) = self.engine.oldest_seen_ms(now) else {
            return;
        };
        let mut seen: HashMap<(Arc<str>, Quantity), i64> = HashMap::new();
        let scan = self
            .writer
            .store()
            .for_each_reading(None, from, now.saturating_add(1), |r| {
                seen.insert((r.sensor, r.quantity), r.at_ms);
                true
            });
        if let Err(error) = scan {
            warn!(%error, "Cannot read the last readings; gaps after the restart are measured from the persisted minute.");
        }
        for ((sensor, quantity), at) in seen {
            self.engine.restore_seen(&sensor, quantity, at);
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
        self.writer.stage_set_aside(s.seq);
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
        if self.audit.is_empty() && self.writer.readings_checkpoint_due(self.clock.mono_ms()) {
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
        let both = [(LIFECYCLE, alive.as_slice())];
        let named: &[(&str, &[u8])] = if lifecycle { &both } else { &[] };
        self.writer.set_state_rows(std::mem::take(&mut delta.rows));
        let done = self.writer.commit_with_audit(
            &self.readings,
            &self.events,
            &self.acked,
            named,
            Some(trim),
            &self.audit,
        )?;
        self.snapshot.committed(self.engine.state(), &delta);
        self.lifecycle_due = false;
        self.totals.readings += done.readings as u64;
        self.totals.events += done.events as u64;
        self.totals.audit += done.audit as u64;
        self.totals.commits += 1;
        if let Some(live) = &self.live {
            live.committed(done.readings as u64, done.events as u64);
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
        self.readings.clear();
        self.events.clear();
        self.acked.clear();
        self.audit.clear();
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

impl Ingest {
    /// Reports an outbox pressure episode once: a `gateway` event when the
    /// cap is first reached (telemetry dropped, or events alone at the cap),
    /// and one when the outbox is back under 90 % of it, with the count of
    /// telemetry dropped in between. The events are committed with the next
    /// commit.
    fn watch_pressure(&mut self, done: &crate::store::Committed) {
        let Some(cap) = self.outbox_cap else { return };
        let now = self.newest_ms.max(now_ms());
        match self.pressure.as_mut() {
            None if done.telemetry_dropped > 0 || done.outbox_total >= cap => {
                warn!(
                    waiting = done.outbox_total,
                    cap,
                    dropped = done.telemetry_dropped,
                    "The outbox is full: telemetry is dropped, oldest first; events are kept."
                );
                self.pressure = Some(done.telemetry_dropped);
                let event = pressure_event(
                    now,
                    payload::PressurePhase::Started,
                    done.outbox_total,
                    cap,
                    done.telemetry_dropped,
                );
                self.push_events(vec![event]);
            }
            Some(dropped) => {
                *dropped += done.telemetry_dropped;
                if done.outbox_total < cap / 10 * 9 {
                    let dropped = *dropped;
                    info!(
                        waiting = done.outbox_total,
                        cap, dropped, "The outbox is no longer full."
                    );
                    self.pressure = None;
                    let event = pressure_event(
                        now,
                        payload::PressurePhase::Ended,
                        done.outbox_total,
                        cap,
                        dropped,
                    );
                    self.push_events(vec![event]);
                }
            }
            None => {}
        }
    }
}

/// `events/gateway` with `kind: outbox_pressure`.
fn pressure_event(
    at_ms: i64,
    phase: payload::PressurePhase,
    waiting: u64,
    cap: u64,
    dropped: u64,
) -> Event {
    Event::new(
        at_ms,
        payload::Gateway::OutboxPressure {
            phase,
            outbox_waiting: waiting,
            outbox_cap: cap,
            telemetry_dropped: dropped,
        },
    )
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coldgate_sensor_drivers::Quantity;

    use super::*;
    use crate::event::now_ms;
    use crate::excursion::EngineState;
    use crate::store::Store;

    const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "p"
silence = "1m"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "s"
zone = "rear"
kind = "sim"
[sim]
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2026-01-01T00:00:00Z"
items = [{ gtin = "09520123456788", lot = "L", serials = ["1"] }]
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2026-01-02T00:00:00Z"
items = [{ gtin = "09520123456788", lot = "L", serials = ["1"] }]
"#;

    #[tokio::test]
    async fn tick_events_and_load_warnings_are_committed_with_the_engine_state() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse(CONFIG, "t").unwrap();
        let (store, writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        let engine = Engine::new(&config, EngineState::default());
        let ingest = Ingest::new(
            writer,
            engine,
            IngestOptions {
                gateway_id: "g".into(),
                batch_interval: Duration::from_millis(20),
                batch_size: 100,
                retention: Duration::from_secs(86400 * 3650),
                max_bytes: 1 << 30,
            },
        );
        let (tx, readings) = mpsc::channel(8);
        let (acked_tx, acked) = mpsc::unbounded_channel();
        let (committed, _rx) = watch::channel(0);
        let task = tokio::spawn(ingest.run(IngestChannels {
            readings,
            acked,
            committed,
        }));
        // A reading ten minutes old: the sensor is silent at the next tick.
        let old = now_ms() - 600_000;
        tx.send(Reading::new(
            Arc::from("s"),
            Quantity::Temperature,
            5.0,
            old,
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(tx);
        drop(acked_tx);
        task.await.unwrap().unwrap();

        let events = store.events_between(i64::MIN, i64::MAX).unwrap();
        let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
        assert!(topics.contains(&"events/lot"), "{topics:?}");
        assert!(topics.contains(&"events/sensor"), "{topics:?}");
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        let state = crate::snapshot::load_engine_state(&store).unwrap();
        assert_eq!(state.manifest.stays.len(), 2);
        assert!(state.presence["s/temperature"].silent_at_ms.is_some());
    }
}

#[cfg(test)]
mod audit_tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::audit::AuditEntry;
    use crate::event::now_ms;
    use crate::excursion::EngineState;
    use crate::store::Store;

    const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "p"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "s"
zone = "rear"
kind = "sim"
[sim]
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2026-01-01T00:00:00Z"
items = [{ gtin = "09520123456788", lot = "L", serials = ["1"] }]
"#;

    #[tokio::test]
    async fn manifest_commands_are_audited_and_published_as_audit_events_in_the_same_commit() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse(CONFIG, "t").unwrap();
        let (store, writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let ingest = Ingest::new(
            writer,
            Engine::new(&config, EngineState::default()),
            IngestOptions {
                gateway_id: "g".into(),
                batch_interval: Duration::from_secs(3600),
                batch_size: 100,
                retention: Duration::from_secs(86400 * 3650),
                max_bytes: 1 << 30,
            },
        )
        .with_commands(cmd_rx);
        let (_tx, readings) = mpsc::channel(8);
        let (_acked_tx, acked) = mpsc::unbounded_channel();
        let (committed, _rx) = watch::channel(0);
        let task = tokio::spawn(ingest.run(IngestChannels {
            readings,
            acked,
            committed,
        }));
        let send = |command| {
            let cmd_tx = cmd_tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let request_id = ulid::Ulid::new().to_string();
                cmd_tx
                    .send(ManifestRequest {
                        request_id,
                        actor: "mqtt:cmd/manifest".into(),
                        command,
                        reply,
                    })
                    .await
                    .unwrap();
                answer.await.unwrap()
            }
        };
        let ok = send(ManifestCommand::Unload {
            sscc: "106141412345678908".into(),
            at_ms: now_ms(),
        })
        .await;
        assert!(ok.ok, "refused: {}", String::from_utf8_lossy(&ok.payload));
        // The answer comes after the commit: the entry and its event are stored.
        assert_eq!(store.audit_rows().unwrap().len(), 1);
        let refused = send(ManifestCommand::Unload {
            sscc: "106141412345678915".into(),
            at_ms: now_ms(),
        })
        .await;
        assert!(!refused.ok);
        task.abort();

        let entries: Vec<AuditEntry> = store
            .audit_rows()
            .unwrap()
            .iter()
            .map(|(_, b)| AuditEntry::decode(b).unwrap())
            .collect();
        assert_eq!(entries.len(), 2, "refused commands are audited too");
        assert!(entries.iter().all(|e| e.kind == "manifest_command"));
        let details: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| serde_json::from_str(&e.details).unwrap())
            .collect();
        assert_eq!(details[0]["accepted"], true);
        assert_eq!(details[1]["accepted"], false);
        assert_eq!(details[1]["sscc"], "106141412345678915");
        assert!(store.verify_audit().unwrap().is_ok());

        let events: Vec<serde_json::Value> = store
            .events_between(i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .filter(|e| e.topic == "events/audit")
            .map(|e| serde_json::from_slice(&e.payload).unwrap())
            .collect();
        assert_eq!(events.len(), 2);
        for (i, ev) in events.iter().enumerate() {
            assert_eq!(ev["schema"], "coldgate.audit/1");
            assert_eq!(ev["phase"], "manifest_command");
            assert_eq!(ev["audit_seq"], i as u64 + 1);
            assert_eq!(ev["actor"], "mqtt:cmd/manifest");
            assert_eq!(ev["details"], details[i]);
        }
    }
}

#[cfg(test)]
mod load_answer_tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::event::now_ms;
    use crate::excursion::EngineState;
    use crate::manifest::{Item, LoadCommand, LoadTimeLimits};
    use crate::store::Store;

    const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "p"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "s"
zone = "rear"
kind = "sim"
[sim]
"#;

    fn load(sscc: &str, loaded_at_ms: i64, serials: &[&str]) -> ManifestCommand {
        ManifestCommand::Load(LoadCommand {
            sscc: sscc.into(),
            zone: "rear".into(),
            profile: None,
            loaded_at_ms,
            unloaded_at_ms: None,
            items: vec![Item {
                gtin: "09520123456788".into(),
                lot: "L".into(),
                expiry: None,
                serials: serials.iter().map(|s| s.to_string()).collect(),
            }],
        })
    }

    #[tokio::test]
    async fn a_load_answer_carries_every_warning_the_load_raised_and_each_is_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse(CONFIG, "t").unwrap();
        let (store, writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let ingest = Ingest::new(
            writer,
            Engine::new(&config, EngineState::default()),
            IngestOptions {
                gateway_id: "g".into(),
                batch_interval: Duration::from_secs(3600),
                batch_size: 100,
                retention: Duration::from_secs(86400 * 3650),
                max_bytes: 1 << 30,
            },
        )
        .with_commands(cmd_rx)
        .with_load_time_limits(LoadTimeLimits {
            future_skew: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        });
        let (_tx, readings) = mpsc::channel(8);
        let (_acked_tx, acked) = mpsc::unbounded_channel();
        let (committed, _rx) = watch::channel(0);
        let task = tokio::spawn(ingest.run(IngestChannels {
            readings,
            acked,
            committed,
        }));
        let send = |command| {
            let cmd_tx = cmd_tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                cmd_tx
                    .send(ManifestRequest {
                        request_id: ulid::Ulid::new().to_string(),
                        actor: "mqtt:cmd/manifest".into(),
                        command,
                        reply,
                    })
                    .await
                    .unwrap();
                let a = answer.await.unwrap();
                serde_json::from_slice::<payload::CommandResult>(&a.payload).unwrap()
            }
        };
        let reasons = |a: &payload::CommandResult| -> Vec<&'static str> {
            a.warnings.iter().map(|w| w.reason.as_str()).collect()
        };
        let now = now_ms();
        let clean = send(load("106141412345678908", now, &["1", "2"])).await;
        assert!(clean.ok && clean.warnings.is_empty(), "{clean:?}");
        // Two minutes ahead (skew 1 min), serial 3 twice, serial 1 on board.
        let warned = send(load("106141412345678915", now + 120_000, &["3", "1", "3"])).await;
        assert!(warned.ok, "{warned:?}");
        assert_eq!(
            reasons(&warned),
            ["serial_on_board", "serial_duplicate", "loaded_at_future"],
            "{warned:?}"
        );
        // Two hours old (max age 1 h).
        let old = send(load("106141412345678922", now - 7_200_000, &[])).await;
        assert_eq!(reasons(&old), ["loaded_at_past"], "{old:?}");
        task.abort();

        let stored: Vec<String> = store
            .events_between(i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .filter(|e| e.topic == "events/lot")
            .map(|e| serde_json::from_slice::<serde_json::Value>(&e.payload).unwrap())
            .map(|v| v["reason"].as_str().unwrap().to_string())
            .collect();
        for r in [
            "serial_on_board",
            "serial_duplicate",
            "loaded_at_future",
            "loaded_at_past",
        ] {
            assert!(stored.iter().any(|s| s == r), "{r}: {stored:?}");
        }
    }
}
