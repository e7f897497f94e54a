//! Cumulative time out of range, counted once however many sensors or
//! pallets report the same minute.
//!
//! Design: an exact union of the intervals charged, kept as a short list of
//! disjoint spans. Sensors report at different rates, so an interval can
//! arrive after later ones (a sensor reporting every 15 minutes closes its
//! interval after a faster one closed several); a simple high-water mark would
//! under-count exposure then, the unsafe direction for a witness. Spans older
//! than [`KEEP_MS`] before the newest, or beyond [`MAX_SPANS`], are folded into
//! `floor_ms`: time before the floor is never counted again, so only an
//! interval reaching back further than that (a sensor silent for days with no
//! silence limit) can be under-counted. Budgets never reset: the total only
//! grows.

use serde::{Deserialize, Serialize};

/// How far back late intervals are still merged exactly.
pub const KEEP_MS: i64 = 24 * 3_600_000;
/// At most this many spans per lot and rule, to bound the committed state.
pub const MAX_SPANS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accrued {
    /// Total out-of-range time, ms.
    pub total_ms: i64,
    /// Time before this is counted (or forgotten) and never counted again.
    #[serde(default)]
    pub floor_ms: i64,
    /// Disjoint, sorted `[from, to)` spans already counted after the floor.
    #[serde(default)]
    pub spans: Vec<(i64, i64)>,
}

impl Accrued {
    /// Adds `[from, to)` minus what is already counted; returns what was added.
    pub fn add(&mut self, from_ms: i64, to_ms: i64) -> i64 {
        let from = from_ms.max(self.floor_ms);
        if to_ms <= from {
            return 0;
        }
        let overlap: i64 = self
            .spans
            .iter()
            .map(|&(s, e)| e.min(to_ms).saturating_sub(s.max(from)).max(0))
            .sum();
        let added = to_ms.saturating_sub(from).saturating_sub(overlap);
        // Merge [from, to) with every span it touches.
        let (mut s, mut e) = (from, to_ms);
        self.spans.retain(|&(a, b)| {
            let touches = a <= e && s <= b;
            if touches {
                s = s.min(a);
                e = e.max(b);
            }
            !touches
        });
        let at = self.spans.partition_point(|&(a, _)| a < s);
        self.spans.insert(at, (s, e));
        let newest = self.spans.last().map_or(e, |&(_, b)| b);
        while self.spans.len() > MAX_SPANS
            || self
                .spans
                .first()
                .is_some_and(|&(_, b)| b < newest.saturating_sub(KEEP_MS))
        {
            let (_, b) = self.spans.remove(0);
            self.floor_ms = self.floor_ms.max(b);
        }
        self.total_ms = self.total_ms.saturating_add(added);
        added
    }

    /// Moves the counted spans and the floor by `delta_ms` (the wall clock
    /// jumped), so time after the jump is neither counted twice nor lost.
    pub fn shift_times(&mut self, delta_ms: i64) {
        self.floor_ms = self.floor_ms.saturating_add(delta_ms);
        for (a, b) in &mut self.spans {
            *a = a.saturating_add(delta_ms);
            *b = b.saturating_add(delta_ms);
        }
    }

    /// A budget is exhausted once the total reaches it: none of it is left.
    pub fn exhausts(&self, budget_ms: i64) -> bool {
        self.total_ms >= budget_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn a_late_interval_fills_the_gaps_between_earlier_ones() {
        let mut a = Accrued::default();
        a.add(0, 10);
        a.add(20, 30);
        assert_eq!(a.add(5, 35), 15, "[10, 20) and [30, 35)");
        assert_eq!(a.spans, [(0, 35)]);
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

    #[test]
    fn old_spans_fold_into_the_floor() {
        let mut a = Accrued::default();
        for i in 0..(MAX_SPANS as i64 + 10) {
            a.add(i * 10, i * 10 + 5);
        }
        assert_eq!(a.spans.len(), MAX_SPANS);
        assert_eq!(a.add(0, 5), 0, "before the floor: never again");
        a.add(10 * KEEP_MS, 10 * KEEP_MS + 1);
        assert_eq!(a.spans.len(), 1);
    }

    proptest! {
        #[test]
        fn the_total_is_the_length_of_the_union(intervals in prop::collection::vec((0i64..1000, 1i64..100), 0..40)) {
            let mut a = Accrued::default();
            let mut covered = vec![false; 1100];
            for &(from, len) in &intervals {
                a.add(from, from + len);
                for t in from..from + len {
                    covered[t as usize] = true;
                }
            }
            prop_assert_eq!(a.total_ms, covered.iter().filter(|c| **c).count() as i64);
        }
    }
}
