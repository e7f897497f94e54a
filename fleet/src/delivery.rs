//! One gateway's delivery state as pure data: which seqs arrived, which are
//! missing. Messages of one gateway normally arrive in order (one partition,
//! one active consumer), but a redelivery after a worker died, a replay or a
//! gateway's resend can bring any seq at any time, so every order is
//! handled: the state is exactly "seqs 1..=highest minus the open gaps".

use time::OffsetDateTime;

/// Seqs `from..=to` not yet received, missing since `first_seen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from: u64,
    pub to: u64,
    pub first_seen: OffsetDateTime,
    /// When an alert was raised for it (a split gap keeps its parent's).
    pub alerted_at: Option<OffsetDateTime>,
    /// When the gateway was last asked to publish it again.
    pub replay_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub highest: u64,
    /// Open gaps, sorted by `from`, disjoint, all below `highest`.
    pub gaps: Vec<Gap>,
}

/// What one newly stored event did to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The next seq after the highest.
    Next,
    /// Beyond the next: the seqs between are now an open gap.
    Ahead,
    /// Filled (part of) an open gap.
    Filled,
    /// A new event with a seq already taken by another event: the gateway
    /// lost its database or two gateways share an id. Counted, not fatal.
    Conflict,
}

impl Delivery {
    /// The highest seq up to which nothing is missing.
    pub fn contiguous(&self) -> u64 {
        self.gaps.first().map_or(self.highest, |g| g.from - 1)
    }

    /// Records a newly stored event's `seq` (seqs start at 1; a caller
    /// rejects 0 before).
    pub fn record(&mut self, seq: u64, now: OffsetDateTime) -> Seen {
        if seq > self.highest {
            let seen = if seq == self.highest + 1 {
                Seen::Next
            } else {
                self.gaps.push(Gap {
                    from: self.highest + 1,
                    to: seq - 1,
                    first_seen: now,
                    alerted_at: None,
                    replay_at: None,
                });
                Seen::Ahead
            };
            self.highest = seq;
            return seen;
        }
        let Some(i) = self.gaps.iter().position(|g| g.from <= seq && seq <= g.to) else {
            return Seen::Conflict;
        };
        let g = self.gaps[i].clone();
        match (seq == g.from, seq == g.to) {
            (true, true) => {
                self.gaps.remove(i);
            }
            (true, false) => self.gaps[i].from = seq + 1,
            (false, true) => self.gaps[i].to = seq - 1,
            (false, false) => {
                self.gaps[i].to = seq - 1;
                self.gaps.insert(i + 1, Gap { from: seq + 1, ..g });
            }
        }
        Seen::Filled
    }

    /// Seqs missing in all.
    pub fn missing(&self) -> u64 {
        self.gaps.iter().map(|g| g.to - g.from + 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn ranges(d: &Delivery) -> Vec<(u64, u64)> {
        d.gaps.iter().map(|g| (g.from, g.to)).collect()
    }

    #[test]
    fn seqs_in_order_leave_no_gap() {
        let mut d = Delivery::default();
        for s in 1..=5 {
            assert_eq!(d.record(s, t0()), Seen::Next);
        }
        assert_eq!((d.contiguous(), d.highest, d.missing()), (5, 5, 0));
    }

    #[test]
    fn a_jump_opens_a_gap_that_the_missing_seqs_close_in_any_order() {
        let mut d = Delivery::default();
        d.record(1, t0());
        assert_eq!(d.record(7, t0()), Seen::Ahead);
        assert_eq!(ranges(&d), [(2, 6)]);
        assert_eq!(d.contiguous(), 1);
        assert_eq!(d.record(4, t0()), Seen::Filled);
        assert_eq!(ranges(&d), [(2, 3), (5, 6)]);
        d.record(2, t0());
        d.record(6, t0());
        assert_eq!(ranges(&d), [(3, 3), (5, 5)]);
        assert_eq!(d.contiguous(), 2);
        d.record(5, t0());
        d.record(3, t0());
        assert!(d.gaps.is_empty());
        assert_eq!(d.contiguous(), 7);
    }

    #[test]
    fn a_split_gap_keeps_when_it_was_first_seen_and_alerted() {
        let mut d = Delivery::default();
        let later = t0() + time::Duration::seconds(60);
        d.record(10, t0());
        d.gaps[0].alerted_at = Some(later);
        d.record(5, later);
        assert_eq!(d.gaps.len(), 2);
        assert!(d
            .gaps
            .iter()
            .all(|g| g.first_seen == t0() && g.alerted_at == Some(later)));
    }

    #[test]
    fn a_new_event_on_a_seq_already_held_is_a_conflict_and_changes_nothing() {
        let mut d = Delivery::default();
        d.record(1, t0());
        d.record(3, t0());
        let before = d.clone();
        assert_eq!(d.record(1, t0()), Seen::Conflict);
        assert_eq!(d.record(3, t0()), Seen::Conflict);
        assert_eq!(d, before);
    }

    #[test]
    fn every_order_of_the_same_seqs_ends_in_the_same_state() {
        // A small exhaustive model: all permutations of 1..=6 with 4 left
        // out end with highest 6 and exactly seq 4 missing.
        fn permute(v: &mut Vec<u64>, k: usize, out: &mut Vec<Vec<u64>>) {
            if k == v.len() {
                out.push(v.clone());
                return;
            }
            for i in k..v.len() {
                v.swap(k, i);
                permute(v, k + 1, out);
                v.swap(k, i);
            }
        }
        let mut all = Vec::new();
        permute(&mut vec![1, 2, 3, 5, 6], 0, &mut all);
        for order in all {
            let mut d = Delivery::default();
            for s in &order {
                assert_ne!(d.record(*s, t0()), Seen::Conflict, "{order:?}");
            }
            assert_eq!(ranges(&d), [(4, 4)], "{order:?}");
            assert_eq!((d.highest, d.contiguous()), (6, 3), "{order:?}");
        }
    }
}
