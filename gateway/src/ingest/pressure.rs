//! Outbox pressure: one `gateway` event when the outbox reaches its cap and
//! one when it is back under 90 %, with the telemetry dropped between.

use crate::event::{payload, Event};
use tracing::{info, warn};

use super::Ingest;

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
