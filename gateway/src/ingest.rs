//! The single writer. Readings arrive from every source through one bounded
//! channel; ingest runs them through the excursion engine and commits the
//! batch — readings, engine state, events and outbox entries — in one
//! durable transaction, every `batch_interval`, every `batch_size` readings,
//! or at once when an event was raised.
//!
//! The publisher never writes: it sends the seqs the broker acknowledged
//! here, and they leave the outbox in the next commit. Audit records (see
//! [`crate::audit`]) arrive the same way and are committed at once, chained
//! in the same transaction as the batch they join.

use std::time::Duration;

use coldgate_sensor_drivers::Reading;
use tokio::sync::{mpsc, watch};
use tokio::time::{interval, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::audit::AuditRecord;
use crate::event::now_ms;
use crate::excursion::Engine;
use crate::publish::{ManifestCommand, ManifestRequest};
use crate::store::{StoreError, StoredEvent, Trim, Writer};

/// The engine's state blob in the store.
pub const ENGINE_STATE: &str = "engine";

/// Check the size cap once every this many commits: it costs a walk of the
/// allocator, and data grows slowly relative to it.
const SIZE_CHECK_EVERY: u64 = 64;

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
    /// The engine state as last committed: unchanged state is not written
    /// again, sparing the SD card a page per commit in steady state.
    last_state: Vec<u8>,
    /// Operator commands (MQTT `cmd/manifest`), applied here because ingest
    /// alone writes the engine state.
    commands: Option<mpsc::Receiver<ManifestRequest>>,
    /// Last values and counters for the HTTP API (kept in memory, so a
    /// status page never scans the database).
    live: Option<crate::diag::Live>,
}

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
            last_state: Vec::new(),
            commands: None,
            live: None,
        }
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
    }

    /// Reports last values and counters to `live` (see `diag::live`).
    pub fn with_live(mut self, live: crate::diag::Live) -> Ingest {
        self.live = Some(live);
        self
    }

    /// Takes manifest commands from `commands` (see `publish::commands`).
    pub fn with_commands(mut self, commands: mpsc::Receiver<ManifestRequest>) -> Ingest {
        self.commands = Some(commands);
        self
    }

    /// Applies one command and answers after the commit that stores it, so
    /// an `ok` survives a power cut.
    fn apply(&mut self, req: ManifestRequest, committed: &watch::Sender<u64>) {
        let outcome = match req.command {
            ManifestCommand::Load(cmd) => self
                .engine
                .load_pallet(cmd)
                .map_err(|errors| errors.iter().map(|e| e.to_string()).collect()),
            ManifestCommand::Unload { sscc, at_ms } => self
                .engine
                .unload_pallet(&sscc, at_ms)
                .map_err(|e| vec![e.to_string()]),
        };
        let answer = match outcome {
            Ok(events) => {
                self.push_events(events);
                self.try_commit(committed).map_err(|error| {
                    warn!(%error, "A manifest command was applied but its commit failed; it is retried with the next batch.");
                    vec![format!("applied but not yet stored ({error}); it will be stored with the next commit")]
                })
            }
            Err(errors) => Err(errors),
        };
        let _ = req.reply.send(answer);
    }

    /// Runs until the readings channel closes (every source has stopped),
    /// then commits what it holds and returns.
    pub async fn run(mut self, mut ch: IngestChannels) -> Result<IngestTotals, StoreError> {
        let mut commands = self.commands.take();
        let mut tick = interval(self.opts.batch_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut acks_open = true;
        let mut audit_rx = self.audit_rx.take();
        let mut audit_open = audit_rx.is_some();
        loop {
            tokio::select! {
                biased;
                r = ch.readings.recv(), if self.readings.len() < self.opts.batch_size * 4 => {
                    let Some(r) = r else { break };
                    self.accept(r);
                    // Take what is already queued without going round the select.
                    while self.readings.len() < self.opts.batch_size {
                        match ch.readings.try_recv() {
                            Ok(r) => self.accept(r),
                            Err(_) => break,
                        }
                    }
                    if !self.events.is_empty() || self.readings.len() >= self.opts.batch_size {
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
                record = next_audit(&mut audit_rx), if audit_open => match record {
                    // Who changed what must not wait for the batch timer: a
                    // power cut right after a reload would lose it.
                    Some(record) => {
                        self.audit.push(record);
                        // Records sent together (start: config, then
                        // gateway) share one commit.
                        if let Some(rx) = audit_rx.as_mut() {
                            while let Ok(record) = rx.try_recv() {
                                self.audit.push(record);
                            }
                        }
                        self.commit(&ch.committed);
                    }
                    None => audit_open = false,
                },
                _ = tick.tick() => {
                    self.heartbeat.send_replace(std::time::Instant::now());
                    // The engine's clock for silence and delays that run
                    // out between readings: the newest of the wall clock and
                    // the readings (a simulator may run ahead of the wall).
                    let events = self.engine.tick(self.newest_ms.max(now_ms()));
                    self.push_events(events);
                    if !self.idle() {
                        self.commit(&ch.committed);
                    }
                }
            }
        }
        while let Ok(seq) = ch.acked.try_recv() {
            self.acked.push(seq);
        }
        if let Some(rx) = audit_rx.as_mut() {
            while let Ok(record) = rx.try_recv() {
                self.audit.push(record);
            }
        }
        // Shutting down: a failed commit is retried a few times, then reported.
        for attempt in 0..5 {
            if self.idle() {
                break;
            }
            if let Err(error) = self.try_commit(&ch.committed) {
                if attempt == 4 {
                    return Err(error);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
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
        self.newest_ms = self.newest_ms.max(r.at_ms);
        if let Some(live) = &self.live {
            live.observe(&r);
        }
        let events = self.engine.on_reading(&r);
        self.push_events(events);
        self.readings.push(r);
    }

    /// Numbers the engine's events after those already held; they are
    /// committed with the engine state that produced them.
    fn push_events(&mut self, events: Vec<crate::event::Event>) {
        let seq0 = self.writer.next_event_seq() + self.events.len() as u64;
        for (i, ev) in events.into_iter().enumerate() {
            let seq = seq0 + i as u64;
            self.events.push(StoredEvent {
                seq,
                at_ms: ev.at_ms,
                topic: ev.kind.topic(),
                payload: ev.payload(seq, &self.opts.gateway_id),
            });
        }
    }

    fn commit(&mut self, committed: &watch::Sender<u64>) {
        // A commit blocks on fsync; on the multi-threaded runtime let the
        // worker's other tasks (sources, the publisher) move elsewhere.
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.try_commit(committed))
            }
            _ => self.try_commit(committed),
        };
        if let Err(error) = result {
            if let Some(live) = &self.live {
                live.commit_failed();
            }
            warn!(%error, pending = self.readings.len(), "Commit failed; the batch is kept and retried.");
        }
    }

    fn try_commit(&mut self, committed: &watch::Sender<u64>) -> Result<(), StoreError> {
        let state = serde_json::to_vec(self.engine.state()).unwrap_or_default();
        let newest = self.newest_ms.max(now_ms());
        let retention = i64::try_from(self.opts.retention.as_millis()).unwrap_or(i64::MAX);
        let trim = Trim {
            before_ms: newest.saturating_sub(retention),
            max_bytes: (self.totals.commits % SIZE_CHECK_EVERY == 0).then_some(self.opts.max_bytes),
        };
        let changed = state != self.last_state;
        let named: &[(&str, &[u8])] = if changed {
            &[(ENGINE_STATE, &state)]
        } else {
            &[]
        };
        let done = self.writer.commit_with_audit(
            &self.readings,
            &self.events,
            &self.acked,
            named,
            Some(trim),
            &self.audit,
        )?;
        if changed {
            self.last_state = state;
        }
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
        committed.send_replace(self.writer.next_event_seq() - 1);
        Ok(())
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
        let state: EngineState =
            serde_json::from_slice(&store.state(ENGINE_STATE).unwrap().unwrap()).unwrap();
        assert_eq!(state.manifest.stays.len(), 2);
        assert!(state.presence["s"].silent_at_ms.is_some());
    }
}
