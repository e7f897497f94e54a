//! Reconnection pacing, apart from the connection loop so it can be tested
//! without a broker or a clock.
//!
//! Design: pure. The first wait is `min`, each failure doubles it up to
//! `max`, and every wait is multiplied by a factor in [0.5, 1) drawn by the
//! caller, so a fleet that lost its broker together does not come back
//! together. A connection that lasted longer than `max` was a working one:
//! the next failure starts from `min` again.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait after a connection that ended after `lasted`; `jitter` is
    /// clamped to [0.5, 1].
    pub fn after_failure(&mut self, lasted: Duration, jitter: f64) -> Duration {
        if lasted > self.max {
            self.next = self.min;
        }
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.5, 1.0)
        } else {
            1.0
        };
        let wait = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_from_min_up_to_max() {
        let mut b = Backoff::new(500 * MS, 4000 * MS);
        let waits: Vec<_> = (0..6).map(|_| b.after_failure(MS, 1.0)).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 4000, 4000].map(|m| m * MS).to_vec()
        );
    }

    #[test]
    fn jitter_shortens_a_wait_by_at_most_half() {
        let mut b = Backoff::new(1000 * MS, 60_000 * MS);
        assert_eq!(b.after_failure(MS, 0.5), 500 * MS);
        assert_eq!(b.after_failure(MS, 0.0), 1000 * MS, "clamped to 0.5");
        assert_eq!(b.after_failure(MS, f64::NAN), 4000 * MS, "NaN is no jitter");
    }

    #[test]
    fn a_connection_that_lasted_longer_than_max_starts_again_from_min() {
        let mut b = Backoff::new(500 * MS, 4000 * MS);
        for _ in 0..5 {
            b.after_failure(MS, 1.0);
        }
        assert_eq!(b.after_failure(5000 * MS, 1.0), 500 * MS);
        assert_eq!(b.after_failure(MS, 1.0), 1000 * MS);
    }
}
