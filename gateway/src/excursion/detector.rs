//! The per-rule state machine: in range → pending (out of range, delay not
//! yet over) → raised → back in range.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Low,
    High,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Low => "low",
            Direction::High => "high",
        }
    }
}

/// Inclusive limits: a value equal to a limit is out of range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The condition must hold for longer than this before it is raised.
    pub delay_ms: i64,
}

impl Limits {
    pub fn classify(&self, value: f64) -> Option<Direction> {
        if self.high.is_some_and(|h| value >= h) {
            Some(Direction::High)
        } else if self.low.is_some_and(|l| value <= l) {
            Some(Direction::Low)
        } else {
            None
        }
    }

    pub fn limit(&self, dir: Direction) -> Option<f64> {
        match dir {
            Direction::Low => self.low,
            Direction::High => self.high,
        }
    }
}

/// Running statistics of an excursion's values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
}

impl Stats {
    fn of(value: f64) -> Stats {
        Stats {
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    fn push(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count += 1;
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Tracker {
    #[default]
    InRange,
    Pending {
        direction: Direction,
        since_ms: i64,
        stats: Stats,
    },
    Raised {
        excursion_id: Ulid,
        direction: Direction,
        since_ms: i64,
        stats: Stats,
    },
}

/// What a reading changed, for the engine to turn into events.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Started {
        excursion_id: Ulid,
        direction: Direction,
        since_ms: i64,
        stats: Stats,
    },
    Ended {
        excursion_id: Ulid,
        direction: Direction,
        since_ms: i64,
        ended_ms: i64,
        stats: Stats,
    },
}

impl Tracker {
    /// Feeds one value observed at `at_ms`. May end one excursion and start
    /// another (a jump from above the high limit to below the low one).
    pub fn on_value(&mut self, at_ms: i64, value: f64, limits: &Limits) -> Vec<Transition> {
        let mut out = Vec::new();
        let dir = limits.classify(value);
        let state = std::mem::take(self);
        *self = match (state, dir) {
            (Tracker::InRange, None) => Tracker::InRange,
            (Tracker::InRange, Some(d)) => Tracker::Pending {
                direction: d,
                since_ms: at_ms,
                stats: Stats::of(value),
            },
            (Tracker::Pending { .. }, None) => Tracker::InRange,
            (
                Tracker::Pending {
                    direction,
                    since_ms,
                    mut stats,
                },
                Some(d),
            ) if d == direction => {
                stats.push(value);
                Tracker::Pending {
                    direction,
                    since_ms,
                    stats,
                }
            }
            (Tracker::Pending { .. }, Some(d)) => Tracker::Pending {
                direction: d,
                since_ms: at_ms,
                stats: Stats::of(value),
            },
            (
                Tracker::Raised {
                    excursion_id,
                    direction,
                    since_ms,
                    mut stats,
                },
                Some(d),
            ) if d == direction => {
                stats.push(value);
                Tracker::Raised {
                    excursion_id,
                    direction,
                    since_ms,
                    stats,
                }
            }
            (
                Tracker::Raised {
                    excursion_id,
                    direction,
                    since_ms,
                    stats,
                },
                other,
            ) => {
                out.push(Transition::Ended {
                    excursion_id,
                    direction,
                    since_ms,
                    ended_ms: at_ms,
                    stats,
                });
                match other {
                    None => Tracker::InRange,
                    Some(d) => Tracker::Pending {
                        direction: d,
                        since_ms: at_ms,
                        stats: Stats::of(value),
                    },
                }
            }
        };
        if let Some(t) = self.raise_if_due(at_ms, limits) {
            out.push(t);
        }
        out
    }

    /// Raises a pending excursion whose delay is over: strictly longer than
    /// the delay, or at once when there is no delay.
    fn raise_if_due(&mut self, now_ms: i64, limits: &Limits) -> Option<Transition> {
        if let Tracker::Pending {
            direction,
            since_ms,
            stats,
        } = *self
        {
            let held = now_ms - since_ms;
            if limits.delay_ms == 0 || held > limits.delay_ms {
                let excursion_id =
                    Ulid::from_parts(u64::try_from(since_ms.max(0)).unwrap_or(0), rand::random());
                *self = Tracker::Raised {
                    excursion_id,
                    direction,
                    since_ms,
                    stats,
                };
                return Some(Transition::Started {
                    excursion_id,
                    direction,
                    since_ms,
                    stats,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn limits(delay_ms: i64) -> Limits {
        Limits {
            low: Some(2.0),
            high: Some(8.0),
            delay_ms,
        }
    }

    fn feed(t: &mut Tracker, l: &Limits, series: &[(i64, f64)]) -> Vec<Transition> {
        series
            .iter()
            .flat_map(|&(at, v)| t.on_value(at, v, l))
            .collect()
    }

    #[test]
    fn limits_are_inclusive() {
        let l = limits(0);
        assert_eq!(l.classify(8.0), Some(Direction::High));
        assert_eq!(l.classify(7.999), None);
        assert_eq!(l.classify(2.0), Some(Direction::Low));
        assert_eq!(l.classify(2.001), None);
    }

    #[test]
    fn a_delay_exactly_reached_does_not_raise_but_exceeded_does() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        let out = feed(&mut t, &l, &[(0, 9.0), (5 * MIN, 9.5)]);
        assert!(out.is_empty(), "{out:?}");
        let out = t.on_value(5 * MIN + 1, 9.6, &l);
        assert!(
            matches!(
                out[..],
                [Transition::Started {
                    since_ms: 0,
                    direction: Direction::High,
                    ..
                }]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn an_interrupted_condition_restarts_the_delay() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        let out = feed(
            &mut t,
            &l,
            &[(0, 9.0), (4 * MIN, 7.0), (5 * MIN, 9.0), (9 * MIN, 9.0)],
        );
        assert!(out.is_empty());
        let out = t.on_value(10 * MIN + 1, 9.0, &l);
        assert!(matches!(out[..], [Transition::Started { since_ms, .. }] if since_ms == 5 * MIN));
    }

    #[test]
    fn an_excursion_ends_with_its_statistics() {
        let l = limits(0);
        let mut t = Tracker::default();
        let out = feed(
            &mut t,
            &l,
            &[
                (0, 5.0),
                (MIN, 9.0),
                (2 * MIN, 11.0),
                (3 * MIN, 10.0),
                (4 * MIN, 6.0),
            ],
        );
        assert_eq!(out.len(), 2);
        let Transition::Ended {
            since_ms,
            ended_ms,
            stats,
            ..
        } = out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!((since_ms, ended_ms), (MIN, 4 * MIN));
        assert_eq!((stats.min, stats.max, stats.count), (9.0, 11.0, 3));
        assert!((stats.mean() - 10.0).abs() < 1e-12);
        assert_eq!(t, Tracker::InRange);
    }

    #[test]
    fn a_jump_across_the_range_ends_one_excursion_and_starts_another() {
        let l = limits(0);
        let mut t = Tracker::default();
        let out = feed(&mut t, &l, &[(0, 9.0), (MIN, 1.0)]);
        assert!(
            matches!(
                out[..],
                [
                    Transition::Started { .. },
                    Transition::Ended {
                        direction: Direction::High,
                        ..
                    },
                    Transition::Started {
                        direction: Direction::Low,
                        ..
                    }
                ]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn state_survives_serialisation() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        feed(&mut t, &l, &[(0, 9.0), (6 * MIN, 9.0)]);
        let json = serde_json::to_string(&t).unwrap();
        let mut back: Tracker = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        let out = back.on_value(7 * MIN, 5.0, &l);
        assert!(matches!(out[..], [Transition::Ended { .. }]));
    }
}
