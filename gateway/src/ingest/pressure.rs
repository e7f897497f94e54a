//! Outbox pressure: one `gateway` event when the outbox reaches its cap and
//! one when it is back under 90 %, with the telemetry dropped between.
//!
//! An episode outlives a restart: its start is a `state` row committed with
//! the `started` event, so a gateway restarted inside it still reports the
//! end (and does not report a second start).

use crate::event::{payload, Event};
use crate::store::StoreError;
use tracing::{info, warn};

use super::Ingest;

/// The `state` key of an open pressure episode.
pub const PRESSURE: &str = "outbox_pressure";

/// Written only when an episode starts or ends (twice an episode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PressureEpisode {
    /// False once the episode's end is committed.
    pub open: bool,
    /// The database's count of dropped telemetry before the episode: the
    /// episode's own count is the difference, whatever restarts between.
    pub dropped_before: u64,
}

impl PressureEpisode {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        StoreError::encode("outbox pressure episode", self)
    }

    pub fn decode(bytes: &[u8]) -> Option<PressureEpisode> {
        serde_json::from_slice(bytes).ok()
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

impl Ingest {
    /// At start: an episode the last run left open goes on, with the
    /// telemetry dropped in it so far.
    pub(super) fn resume_pressure(&mut self) {
        let store = self.writer.store();
        let open = match store.state(PRESSURE) {
            Ok(bytes) => bytes.as_deref().and_then(PressureEpisode::decode),
            Err(error) => {
                warn!(%error, "Cannot read the last run's outbox pressure episode; a new one is reported if the outbox is full.");
                None
            }
        };
        let Some(episode) = open.filter(|e| e.open) else {
            return;
        };
        let total = store.telemetry_dropped().unwrap_or(episode.dropped_before);
        self.pressure = Some(total.saturating_sub(episode.dropped_before));
        self.pressure_base = episode.dropped_before;
    }

    /// Reports an outbox pressure episode once: a `gateway` event when the
    /// cap is first reached (telemetry dropped, or events alone at the cap),
    /// and one when the outbox is back under 90 % of it, with the count of
    /// telemetry dropped in between. The events are committed with the next
    /// commit.
    pub(super) fn watch_pressure(&mut self, done: &crate::store::Committed) {
        let Some(cap) = self.outbox_cap else { return };
        let now = self.newest_ms.max(self.clock.wall_ms());
        match self.pressure.as_mut() {
            None if done.telemetry_dropped > 0 || done.outbox_total >= cap => {
                warn!(
                    waiting = done.outbox_total,
                    cap,
                    dropped = done.telemetry_dropped,
                    "The outbox is full: telemetry is dropped, oldest first; events are kept."
                );
                self.pressure = Some(done.telemetry_dropped);
                let total = self.writer.store().telemetry_dropped().unwrap_or(0);
                self.pressure_base = total.saturating_sub(done.telemetry_dropped);
                self.pressure_due = true;
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
                if done.outbox_total < cap.saturating_mul(9) / 10 {
                    let dropped = *dropped;
                    info!(
                        waiting = done.outbox_total,
                        cap, dropped, "The outbox is no longer full."
                    );
                    self.pressure = None;
                    self.pressure_due = true;
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

impl Ingest {
    /// The episode's `state` row, when it changed since the last commit.
    pub(super) fn pressure_row(&self) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.pressure_due {
            return Ok(None);
        }
        PressureEpisode {
            open: self.pressure.is_some(),
            dropped_before: self.pressure_base,
        }
        .encode()
        .map(Some)
    }
}
