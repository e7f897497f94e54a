//! What the API shows without touching the database: the last value of each
//! sensor and the data path's counters. Ingest writes (one short lock per
//! reading, atomics per commit); the HTTP handlers take copies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use coldgate_sensor_drivers::{Quantity, Reading};

use crate::event::now_ms;

/// The last value of one quantity of one sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastValue {
    pub value: f64,
    /// The reading's own time (a simulator's may run ahead of the wall).
    pub at_ms: i64,
}

/// One sensor's latest readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorLast {
    pub values: BTreeMap<Quantity, LastValue>,
    /// Wall-clock time ingest last accepted a reading of it: ages are
    /// measured from this, so a simulator's clock does not confuse them.
    pub received_ms: i64,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    last: Mutex<BTreeMap<Arc<str>, SensorLast>>,
    readings_received: AtomicU64,
    readings_committed: AtomicU64,
    events_committed: AtomicU64,
    commits: AtomicU64,
    commit_failures: AtomicU64,
    newest_reading_ms: AtomicI64,
}

/// A cheap, clonable handle; see the module documentation.
#[derive(Debug, Clone)]
pub struct Live(Arc<Inner>);

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub readings_received: u64,
    pub readings_committed: u64,
    pub events_committed: u64,
    pub commits: u64,
    pub commit_failures: u64,
}

impl Live {
    pub fn new() -> Live {
        Live(Arc::new(Inner {
            started: Instant::now(),
            last: Mutex::new(BTreeMap::new()),
            readings_received: AtomicU64::new(0),
            readings_committed: AtomicU64::new(0),
            events_committed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            newest_reading_ms: AtomicI64::new(i64::MIN),
        }))
    }

    /// Ingest accepted a reading.
    pub fn observe(&self, r: &Reading) {
        self.observe_at(r, now_ms());
    }

    fn observe_at(&self, r: &Reading, received_ms: i64) {
        self.0.readings_received.fetch_add(1, Ordering::Relaxed);
        self.0
            .newest_reading_ms
            .fetch_max(r.at_ms, Ordering::Relaxed);
        let mut last = self.0.last.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = match last.get_mut(&*r.sensor) {
            Some(e) => e,
            None => last.entry(r.sensor.clone()).or_default(),
        };
        let newer = entry
            .values
            .get(&r.quantity)
            .is_none_or(|v| v.at_ms <= r.at_ms);
        if newer {
            entry.values.insert(
                r.quantity,
                LastValue {
                    value: r.value,
                    at_ms: r.at_ms,
                },
            );
        }
        entry.received_ms = received_ms;
    }

    /// Ingest committed a batch.
    pub fn committed(&self, readings: u64, events: u64) {
        self.0
            .readings_committed
            .fetch_add(readings, Ordering::Relaxed);
        self.0.events_committed.fetch_add(events, Ordering::Relaxed);
        self.0.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// A commit failed (it is retried).
    pub fn commit_failed(&self) {
        self.0.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> Counters {
        let c = &self.0;
        Counters {
            readings_received: c.readings_received.load(Ordering::Relaxed),
            readings_committed: c.readings_committed.load(Ordering::Relaxed),
            events_committed: c.events_committed.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            commit_failures: c.commit_failures.load(Ordering::Relaxed),
        }
    }

    /// Since this handle was made (the data path's start).
    pub fn uptime(&self) -> std::time::Duration {
        self.0.started.elapsed()
    }

    /// The newest reading time seen, if any: "the last 24 h" of a simulator
    /// that runs ahead of the wall clock ends here, not at now.
    pub fn newest_reading_ms(&self) -> Option<i64> {
        let v = self.0.newest_reading_ms.load(Ordering::Relaxed);
        (v != i64::MIN).then_some(v)
    }

    /// A copy of every sensor's last values.
    pub fn last(&self) -> BTreeMap<Arc<str>, SensorLast> {
        self.0
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(sensor: &str, q: Quantity, value: f64, at_ms: i64) -> Reading {
        Reading::new(Arc::from(sensor), q, value, at_ms)
    }

    #[test]
    fn the_newest_value_per_quantity_wins_and_a_late_old_one_does_not_replace_it() {
        let live = Live::new();
        live.observe_at(&reading("s", Quantity::Temperature, 5.0, 2_000), 10);
        live.observe_at(&reading("s", Quantity::Temperature, 9.0, 1_000), 20);
        live.observe_at(&reading("s", Quantity::Battery, 80.0, 1_500), 30);
        let last = live.last();
        let s = &last["s"];
        assert_eq!(s.values[&Quantity::Temperature].value, 5.0);
        assert_eq!(s.values[&Quantity::Battery].value, 80.0);
        assert_eq!(s.received_ms, 30);
        assert_eq!(live.counters().readings_received, 3);
        assert_eq!(live.newest_reading_ms(), Some(2_000));
    }

    #[test]
    fn commits_add_up() {
        let live = Live::new();
        assert_eq!(live.newest_reading_ms(), None);
        live.committed(10, 1);
        live.committed(5, 0);
        live.commit_failed();
        let c = live.counters();
        assert_eq!(
            (
                c.readings_committed,
                c.events_committed,
                c.commits,
                c.commit_failures
            ),
            (15, 1, 2, 1)
        );
    }
}
