//! Start-up: the proof of life written twice a run ([`Lifecycle`]), and
//! resuming the engine from the store — what an unclean or clean stop left
//! unobserved becomes a gap, never time in range.

use crate::event::{payload, rfc3339, Event};
use crate::store::StoreError;
use coldgate_sensor_drivers::Quantity;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::warn;

use super::Ingest;

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

impl Ingest {
    /// At start: the time since the last run is a monitoring gap nobody
    /// saw. A proof of life without its clean-stop mark means the gateway
    /// died (a `gateway` event `unclean_stop` says so); either way every
    /// judged quantity not seen for longer than its silence limit gets a
    /// gap whose cause is the downtime (`Engine::resume`).
    pub(super) fn resume(&mut self) {
        self.resume_pressure();
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
        // Readings replayed from the journal are newer than any folded.
        let replayed = (self.newest_ms != i64::MIN).then_some(self.newest_ms);
        let activity = activity.into_iter().chain(replayed).max();
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
    pub(super) fn restore_last_seen(&mut self, now: i64) {
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
}
