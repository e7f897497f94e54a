//! A sensor that stops reporting leaves a monitoring gap: nothing is known
//! about its zone, which is not the same as "in range". Silent once no
//! reading arrived for longer than the silence limit; back at its next one.

use serde::{Deserialize, Serialize};

/// Persisted times are whole minutes, so a steady stream of readings changes
/// the committed state once a minute rather than with every reading (ingest
/// skips writing an unchanged state). After a restart a gap is measured from
/// the start of the minute of the last reading: at most a minute too long.
const PERSIST_STEP_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The newest reading's minute (or when the engine first looked for it).
    pub last_seen_ms: i64,
    /// Set while a gap is open: when it was declared.
    #[serde(default)]
    pub silent_at_ms: Option<i64>,
    /// The newest reading's exact time, in memory only.
    #[serde(skip)]
    pub exact_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// No reading since `last_seen_ms` for longer than the limit.
    Silent { last_seen_ms: i64, at_ms: i64 },
    /// A reading at `at_ms` closes the gap that began at `last_seen_ms`.
    Back { last_seen_ms: i64, at_ms: i64 },
}

impl Presence {
    pub fn new(now_ms: i64) -> Presence {
        Presence {
            last_seen_ms: now_ms,
            silent_at_ms: None,
            exact_ms: Some(now_ms),
        }
    }

    /// Moves every time by `delta_ms` (the wall clock jumped), so a gap is
    /// measured in monotonic time.
    pub fn shift_times(&mut self, delta_ms: i64) {
        self.last_seen_ms = self.last_seen_ms.saturating_add(delta_ms);
        if let Some(t) = &mut self.silent_at_ms {
            *t = t.saturating_add(delta_ms);
        }
        if let Some(t) = &mut self.exact_ms {
            *t = t.saturating_add(delta_ms);
        }
    }

    /// The newest reading's time as well as it is known.
    pub fn seen_ms(&self) -> i64 {
        self.exact_ms
            .unwrap_or(self.last_seen_ms)
            .max(self.last_seen_ms)
    }

    pub fn on_reading(&mut self, at_ms: i64) -> Option<Gap> {
        let before = self.seen_ms();
        self.exact_ms = Some(before.max(at_ms));
        let minute = at_ms.saturating_sub(at_ms.rem_euclid(PERSIST_STEP_MS));
        self.last_seen_ms = self.last_seen_ms.max(minute);
        self.silent_at_ms.take().map(|_| Gap::Back {
            last_seen_ms: before,
            at_ms,
        })
    }

    /// Silent when strictly longer than `limit_ms` has passed.
    pub fn tick(&mut self, now_ms: i64, limit_ms: i64) -> Option<Gap> {
        let seen = self.seen_ms();
        if self.silent_at_ms.is_none() && now_ms.saturating_sub(seen) > limit_ms {
            self.silent_at_ms = Some(now_ms);
            return Some(Gap::Silent {
                last_seen_ms: seen,
                at_ms: now_ms,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_after_strictly_more_than_the_limit_then_back_once() {
        let mut p = Presence::new(0);
        assert_eq!(p.tick(100, 100), None);
        assert_eq!(
            p.tick(101, 100),
            Some(Gap::Silent {
                last_seen_ms: 0,
                at_ms: 101
            })
        );
        assert_eq!(p.tick(500, 100), None, "reported once");
        assert_eq!(
            p.on_reading(600),
            Some(Gap::Back {
                last_seen_ms: 0,
                at_ms: 600
            })
        );
        assert_eq!(p.on_reading(700), None);
    }

    #[test]
    fn the_persisted_time_moves_once_a_minute() {
        let mut p = Presence::new(0);
        p.on_reading(1_000);
        let before = serde_json::to_string(&p).unwrap();
        p.on_reading(59_000);
        assert_eq!(serde_json::to_string(&p).unwrap(), before);
        p.on_reading(61_000);
        assert_ne!(serde_json::to_string(&p).unwrap(), before);
        let back: Presence = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.seen_ms(), 60_000, "after a restart: the minute");
    }
}
