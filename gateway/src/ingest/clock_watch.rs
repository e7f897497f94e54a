//! The wall clock watched with every reading and timer turn: a jump moves
//! the engine's state with it and is recorded (docs/time.md).

use crate::clock::{Jump, SyncState};
use crate::event::{payload, rfc3339, Event};
use serde_json::json;
use tracing::{info, warn};

use super::Ingest;

impl Ingest {
    /// Looks at the clocks; on a jump moves the engine with it and marks
    /// the readings taken before it. `sync` is asked of the clock on timer
    /// turns only (a system call), and reused for readings.
    pub(super) fn watch_clock(&mut self, ask_sync: bool) {
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
            self.batch
                .clock
                .push(serde_json::to_vec(&record).unwrap_or_default());
            self.recorded_sync = Some(sync);
        }
    }

    pub(super) fn on_jump(&mut self, jump: Jump) {
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
        self.batch
            .clock
            .push(serde_json::to_vec(&record).unwrap_or_default());
        self.push_events(vec![Event::new(jump.at_ms, body)]);
    }
}
