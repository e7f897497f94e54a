//! A quantity that stops reporting leaves a monitoring gap: nothing is known
//! about its zone, which is not the same as "in range". Tracked per sensor
//! and quantity, because a sensor whose light channel keeps reporting says
//! nothing about its temperature. Silent once no reading arrived for longer
//! than the silence limit; back at its next one. A restart of the gateway is
//! such a gap too, with its own cause.

use serde::{Deserialize, Serialize};

use crate::event::payload::GapCause;

/// Persisted times are whole minutes, so a steady stream of readings changes
/// the committed state once a minute rather than with every reading (ingest
/// skips writing an unchanged state). At start the exact time is restored
/// from the stored readings (`restore_seen`); without them a gap is measured
/// from the start of the minute of the last reading: at most a minute long.
pub(super) const PERSIST_STEP_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The newest reading's minute (or when the engine first looked for it).
    pub last_seen_ms: i64,
    /// Set while a gap is open: when it was declared.
    #[serde(default)]
    pub silent_at_ms: Option<i64>,
    /// Why the open gap opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<GapCause>,
    /// The last value was physically impossible; the next good one clears it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub faulty: bool,
    /// The newest reading's exact time, in memory only.
    #[serde(skip)]
    pub exact_ms: Option<i64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// No reading since `last_seen_ms` for longer than the limit.
    Silent {
        last_seen_ms: i64,
        at_ms: i64,
        cause: GapCause,
    },
    /// A reading at `at_ms` closes the gap that began at `last_seen_ms`.
    Back {
        last_seen_ms: i64,
        at_ms: i64,
        cause: GapCause,
    },
}

impl Presence {
    pub fn new(now_ms: i64) -> Presence {
        Presence {
            last_seen_ms: now_ms,
            silent_at_ms: None,
            cause: None,
            faulty: false,
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

    /// A stored reading found at start: the exact time the persisted minute
    /// rounded away. Never moves the time back, never closes a gap.
    pub fn restore_seen(&mut self, at_ms: i64) {
        if self.silent_at_ms.is_none() && at_ms >= self.last_seen_ms {
            self.exact_ms = Some(self.exact_ms.map_or(at_ms, |e| e.max(at_ms)));
        }
    }

    /// A reading arrived. A gap longer than `limit_ms` that no tick declared
    /// (the reading came first after a stall) is reported as opened and
    /// closed, so no unmonitored stretch goes unrecorded.
    pub fn on_reading(&mut self, at_ms: i64, limit_ms: Option<i64>) -> Vec<Gap> {
        let before = self.seen_ms();
        self.faulty = false;
        self.exact_ms = Some(before.max(at_ms));
        let minute = at_ms.saturating_sub(at_ms.rem_euclid(PERSIST_STEP_MS));
        self.last_seen_ms = self.last_seen_ms.max(minute);
        let mut out = Vec::new();
        let cause = match self.silent_at_ms.take() {
            Some(_) => self.cause.take().unwrap_or(GapCause::SensorSilent),
            None => {
                let Some(limit) = limit_ms.filter(|l| at_ms.saturating_sub(before) > *l) else {
                    return out;
                };
                out.push(Gap::Silent {
                    last_seen_ms: before,
                    at_ms: before.saturating_add(limit),
                    cause: GapCause::SensorSilent,
                });
                GapCause::SensorSilent
            }
        };
        out.push(Gap::Back {
            last_seen_ms: before,
            at_ms,
            cause,
        });
        out
    }

    /// A physically impossible value: not a reading (presence stays where
    /// it was). True when it starts a run of faults, so one event is raised
    /// per run rather than per value.
    pub fn on_fault(&mut self) -> bool {
        !std::mem::replace(&mut self.faulty, true)
    }

    /// Silent when strictly longer than `limit_ms` has passed.
    pub fn tick(&mut self, now_ms: i64, limit_ms: i64) -> Option<Gap> {
        self.open_if_silent(now_ms, limit_ms, GapCause::SensorSilent)
    }

    /// At start after the gateway was down: the same rule as `tick`, with
    /// the downtime as the cause.
    pub fn resume(&mut self, now_ms: i64, limit_ms: i64, cause: GapCause) -> Option<Gap> {
        self.open_if_silent(now_ms, limit_ms, cause)
    }

    fn open_if_silent(&mut self, now_ms: i64, limit_ms: i64, cause: GapCause) -> Option<Gap> {
        let seen = self.seen_ms();
        if self.silent_at_ms.is_none() && now_ms.saturating_sub(seen) > limit_ms {
            self.silent_at_ms = Some(now_ms);
            self.cause = Some(cause);
            return Some(Gap::Silent {
                last_seen_ms: seen,
                at_ms: now_ms,
                cause,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENT: GapCause = GapCause::SensorSilent;

    #[test]
    fn silent_after_strictly_more_than_the_limit_then_back_once() {
        let mut p = Presence::new(0);
        assert_eq!(p.tick(100, 100), None);
        assert_eq!(
            p.tick(101, 100),
            Some(Gap::Silent {
                last_seen_ms: 0,
                at_ms: 101,
                cause: SILENT
            })
        );
        assert_eq!(p.tick(500, 100), None, "reported once");
        assert_eq!(
            p.on_reading(600, Some(100)),
            vec![Gap::Back {
                last_seen_ms: 0,
                at_ms: 600,
                cause: SILENT
            }]
        );
        assert_eq!(p.on_reading(700, Some(100)), vec![]);
    }

    #[test]
    fn a_reading_after_an_undeclared_gap_reports_it_opened_and_closed() {
        let mut p = Presence::new(0);
        assert_eq!(p.on_reading(100, Some(100)), vec![], "exactly the limit");
        assert_eq!(
            p.on_reading(201, Some(100)),
            vec![
                Gap::Silent {
                    last_seen_ms: 100,
                    at_ms: 200,
                    cause: SILENT
                },
                Gap::Back {
                    last_seen_ms: 100,
                    at_ms: 201,
                    cause: SILENT
                }
            ]
        );
        assert_eq!(p.on_reading(5_000, None), vec![], "no limit, no gap");
    }

    #[test]
    fn a_downtime_gap_carries_its_cause_to_the_end() {
        let mut p = Presence::new(0);
        assert_eq!(p.resume(10, 100, GapCause::GatewayDown), None, "too short");
        let opened = p.resume(25_000, 15_000, GapCause::GatewayDown);
        assert_eq!(
            opened,
            Some(Gap::Silent {
                last_seen_ms: 0,
                at_ms: 25_000,
                cause: GapCause::GatewayDown
            })
        );
        let back = p.on_reading(26_000, Some(15_000));
        assert_eq!(
            back,
            vec![Gap::Back {
                last_seen_ms: 0,
                at_ms: 26_000,
                cause: GapCause::GatewayDown
            }]
        );
    }

    #[test]
    fn the_exact_time_restored_at_start_shortens_a_gap_to_the_truth() {
        let mut p = Presence::new(0);
        p.on_reading(59_000, None);
        let mut restarted: Presence =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(restarted.seen_ms(), 0, "the persisted minute");
        restarted.restore_seen(59_000);
        restarted.restore_seen(10_000);
        assert_eq!(restarted.seen_ms(), 59_000);
        assert_eq!(
            restarted.resume(70_000, 15_000, GapCause::GatewayDown),
            None
        );
    }

    #[test]
    fn faults_raise_once_per_run_and_do_not_count_as_presence() {
        let mut p = Presence::new(0);
        assert!(p.on_fault());
        assert!(!p.on_fault());
        assert_eq!(p.seen_ms(), 0);
        p.on_reading(10, None);
        assert!(p.on_fault(), "a good reading ends the run");
    }

    #[test]
    fn the_persisted_time_moves_once_a_minute() {
        let mut p = Presence::new(0);
        p.on_reading(1_000, None);
        let before = serde_json::to_string(&p).unwrap();
        p.on_reading(59_000, None);
        assert_eq!(serde_json::to_string(&p).unwrap(), before);
        p.on_reading(61_000, None);
        assert_ne!(serde_json::to_string(&p).unwrap(), before);
        let back: Presence = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.seen_ms(), 60_000, "after a restart: the minute");
    }
}
