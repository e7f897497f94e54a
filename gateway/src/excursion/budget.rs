//! Cumulative time out of range, counted once however many sensors or
//! pallets report the same minute.
//!
//! Design: intervals arrive roughly in time order (each sensor in order,
//! sensors interleaved by ingest), so a high-water mark gives their union:
//! time before `covered_until_ms` is never counted again. A late interval can
//! only be under-counted by what it shares with later ones, never counted
//! twice. Budgets never reset: the total only grows.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accrued {
    /// Total out-of-range time, ms.
    pub total_ms: i64,
    /// Everything before this instant is already counted.
    pub covered_until_ms: i64,
}

impl Accrued {
    /// Adds `[from, to)` minus what is already covered; returns what was added.
    pub fn add(&mut self, from_ms: i64, to_ms: i64) -> i64 {
        let start = from_ms.max(self.covered_until_ms);
        if to_ms <= start {
            return 0;
        }
        let added = to_ms - start;
        self.total_ms = self.total_ms.saturating_add(added);
        self.covered_until_ms = to_ms;
        added
    }

    /// A budget is exhausted once the total reaches it: none of it is left.
    pub fn exhausts(&self, budget_ms: i64) -> bool {
        self.total_ms >= budget_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_intervals_are_counted_once() {
        let mut a = Accrued::default();
        assert_eq!(a.add(0, 30), 30);
        assert_eq!(a.add(10, 40), 10);
        assert_eq!(a.add(30, 60), 20);
        assert_eq!(a.add(0, 60), 0);
        assert_eq!(a.total_ms, 60);
    }

    #[test]
    fn separate_intervals_add_up_and_the_budget_is_exhausted_when_reached() {
        let mut a = Accrued::default();
        a.add(0, 40);
        a.add(100, 159);
        assert!(!a.exhausts(100));
        a.add(200, 201);
        assert!(a.exhausts(100));
    }
}
