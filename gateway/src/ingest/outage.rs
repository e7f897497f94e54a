//! A failing disk: the batch is kept in memory (up to
//! [`OUTAGE_BUFFER_READINGS`]), a `gateway` event says so, and commits are
//! retried with a backoff until one succeeds and `recovered` is raised.

use crate::event::{payload, rfc3339, Event};
use crate::store::StoreError;
use coldgate_sensor_drivers::Backoff;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::{blocking, Ingest};

/// While commits fail, at most this many readings are held in memory
/// (about 4 MB); later ones are still judged by the engine but not stored,
/// and counted in the `recovered` event.
pub const OUTAGE_BUFFER_READINGS: usize = 100_000;

/// A run of failed commits.
#[derive(Debug, Clone)]
pub(super) struct Outage {
    pub(super) since_ms: i64,
    pub(super) disk_full: bool,
    pub(super) failures: u64,
    pub(super) dropped: u64,
    /// Monotonic ms before which no retry is made: reopening a database
    /// after an I/O error makes redb check it, which costs, so retries back
    /// off from one batch interval to [`OUTAGE_RETRY_MAX`].
    pub(super) retry_at_ms: i64,
    pub(super) retry: Backoff,
}

/// The longest wait between two retries of a failing disk.
pub(super) const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(30);

impl Ingest {
    /// Whether commits are failing (the disk is full or broken).
    pub fn in_outage(&self) -> bool {
        self.outage.is_some()
    }

    /// During an outage, on each timer turn: reopen the file (redb needs it
    /// after an I/O error) and try the held batch again.
    pub(super) fn retry(&mut self, committed: &watch::Sender<u64>) {
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
                    readings = self.batch.readings.len(),
                    "A commit reported as failed was found stored after reopening; its batch is not committed again."
                );
                self.batch.readings.clear();
                self.batch.events.clear();
                self.batch.acked.clear();
                self.batch.audit.clear();
                self.tail_stored();
            }
            Err(error) => {
                debug!(%error, "Database not reopened yet; retrying at the next turn.");
                return;
            }
        }
        self.commit(committed);
    }

    /// After the first successful commit of an outage: the `recovered` event.
    pub(super) fn end_outage(&mut self, committed: &watch::Sender<u64>) {
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
    pub(super) fn on_commit_failed(&mut self, error: &StoreError) {
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
            pending = self.batch.readings.len(),
            "Commit failed; readings are held in memory and the commit is retried every batch interval."
        );
        let failure = payload::StorageFailure {
            error: error.to_string(),
            held_readings: self.batch.readings.len() as u64,
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
}
