//! The per-rule state machine of one sensor's quantity: in range → out of
//! range (pending while the delay runs) → raised → back in range.
//!
//! Design: readings are samples that hold until the next one (the same
//! convention as `mkt`), so the time a value was out of range is the time
//! until the next reading, but never more than the sensor's silence limit:
//! beyond it the value is unknown, neither in nor out of range. A gap does not
//! end an excursion or restart its delay (unknown is not "back in range").

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::mkt::{MktAccumulator, DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL};

/// Which limit was crossed: the payload's own type, so the engine and the
/// wire cannot disagree on its names.
pub use crate::event::payload::Direction;

/// One rule's limits. Inclusive by default: a value equal to a limit is
/// out of range; `exclusive` makes only values beyond it out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The condition must hold for longer than this before it is raised.
    pub delay_ms: i64,
    pub exclusive: bool,
    /// Once out, the value must be back inside by more than this.
    pub hysteresis: f64,
}

impl Limits {
    /// Whether `value` leaves the range, and on which side.
    pub fn classify(&self, value: f64) -> Option<Direction> {
        let beyond = |v: f64, limit: f64, high: bool| match (high, self.exclusive) {
            (true, false) => v >= limit,
            (true, true) => v > limit,
            (false, false) => v <= limit,
            (false, true) => v < limit,
        };
        if self.high.is_some_and(|h| beyond(value, h, true)) {
            Some(Direction::High)
        } else if self.low.is_some_and(|l| beyond(value, l, false)) {
            Some(Direction::Low)
        } else {
            None
        }
    }

    /// Whether a value already out on side `dir` is still out: it has not
    /// come back inside the limit by more than the hysteresis.
    pub fn still_out(&self, value: f64, dir: Direction) -> bool {
        let h = self.hysteresis;
        match (dir, self.exclusive) {
            (Direction::High, false) => self.high.is_some_and(|l| value >= l - h),
            (Direction::High, true) => self.high.is_some_and(|l| value > l - h),
            (Direction::Low, false) => self.low.is_some_and(|l| value <= l + h),
            (Direction::Low, true) => self.low.is_some_and(|l| value < l + h),
        }
    }

    pub fn limit(&self, dir: Direction) -> Option<f64> {
        match dir {
            Direction::Low => self.low,
            Direction::High => self.high,
        }
    }

    /// How far `value` is beyond the limit of `dir` (0 when it is not).
    pub fn beyond(&self, value: f64, dir: Direction) -> f64 {
        match (dir, self.limit(dir)) {
            (Direction::High, Some(l)) => (value - l).max(0.0),
            (Direction::Low, Some(l)) => (l - value).max(0.0),
            (_, None) => 0.0,
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
    pub(crate) fn of(value: f64) -> Stats {
        Stats {
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    pub(crate) fn push(&mut self, value: f64) {
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

/// An out-of-range condition, pending or raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Out {
    pub direction: Direction,
    /// The first out-of-range reading: the excursion's `started_at`.
    pub since_ms: i64,
    /// Set once raised (the delay has elapsed); kept across restarts so the
    /// ended event carries the same id as the started one.
    pub excursion_id: Option<Ulid>,
    pub stats: Stats,
    /// ∫ distance beyond the limit dt, in unit·ms.
    pub beyond_ms: f64,
    /// MKT during the condition (temperature rules only).
    pub mkt: Option<MktAccumulator>,
}

/// State of one rule for one sensor's quantity.
///
/// Design: in range, a reading changes nothing that is persisted, so ingest
/// (which skips writing an unchanged state) spares the SD card a page per
/// commit in steady state. `last` is persisted only while a condition is
/// open, where the next interval out of range starts from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    /// The latest reading judged, `(at_ms, value)`, while a condition is open.
    #[serde(default)]
    pub last: Option<(i64, f64)>,
    #[serde(default)]
    pub out: Option<Out>,
    /// The newest reading's time, in memory only: readings out of time order
    /// are not judged.
    #[serde(skip)]
    pub newest_ms: Option<i64>,
}

/// What a reading or tick changed, for the engine to turn into events.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Started {
        excursion_id: Ulid,
        direction: Direction,
        since_ms: i64,
        /// When it was raised: the reading or tick that found the delay over.
        at_ms: i64,
        stats: Stats,
    },
    Ended {
        excursion_id: Ulid,
        direction: Direction,
        since_ms: i64,
        ended_ms: i64,
        stats: Stats,
        /// ∫ distance beyond the limit dt, in unit·minutes.
        degree_minutes: f64,
        /// Time-weighted MKT during the excursion, temperature only.
        mkt: Option<f64>,
    },
}

/// The result of one reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub transitions: Vec<Transition>,
    /// `[from, to)`: time the previous value held out of range, for budgets.
    pub out_interval: Option<(i64, i64)>,
}

impl Tracker {
    /// Moves every remembered time by `delta_ms`: the wall clock jumped and
    /// the engine keeps durations on monotonic time (see `crate::clock`).
    pub fn shift_times(&mut self, delta_ms: i64) {
        if let Some((t, _)) = &mut self.last {
            *t = t.saturating_add(delta_ms);
        }
        if let Some(n) = &mut self.newest_ms {
            *n = n.saturating_add(delta_ms);
        }
        if let Some(o) = &mut self.out {
            o.since_ms = o.since_ms.saturating_add(delta_ms);
            if let Some(m) = &mut o.mkt {
                m.shift_times(delta_ms);
            }
        }
    }

    /// Whether nothing is pending or open.
    pub fn is_idle(&self) -> bool {
        self.out.is_none()
    }

    /// Feeds one value observed at `at_ms`. `hold_ms` bounds how long a
    /// value stands for (the silence limit); `with_mkt` keeps the
    /// excursion's MKT (temperature). A reading not after the previous one
    /// is ignored: the engine judges each sensor in time order.
    pub fn on_value(
        &mut self,
        at_ms: i64,
        value: f64,
        limits: &Limits,
        hold_ms: Option<i64>,
        with_mkt: bool,
    ) -> Step {
        let mut step = Step::default();
        let newest = self.newest_ms.or(self.last.map(|(t, _)| t));
        if newest.is_some_and(|n| at_ms <= n) {
            return step;
        }
        if let (Some(o), Some((last_at, last_v))) = (&mut self.out, self.last) {
            let end = hold_ms.map_or(at_ms, |h| at_ms.min(last_at.saturating_add(h)));
            if end > last_at {
                step.out_interval = Some((last_at, end));
                o.beyond_ms +=
                    limits.beyond(last_v, o.direction) * end.saturating_sub(last_at) as f64;
            }
            if let Some(m) = &mut o.mkt {
                let _ = m.push_held(at_ms, value, hold_ms);
            }
        }
        let dir = limits.classify(value);
        let new_out = |d| Out {
            direction: d,
            since_ms: at_ms,
            excursion_id: None,
            stats: Stats::of(value),
            beyond_ms: 0.0,
            mkt: with_mkt.then(|| start_mkt(at_ms, value)).flatten(),
        };
        self.out = match self.out.take() {
            Some(mut o)
                if limits.still_out(value, o.direction) && dir.is_none_or(|d| d == o.direction) =>
            {
                o.stats.push(value);
                Some(o)
            }
            Some(o) => {
                if let Some(excursion_id) = o.excursion_id {
                    step.transitions.push(Transition::Ended {
                        excursion_id,
                        direction: o.direction,
                        since_ms: o.since_ms,
                        ended_ms: at_ms,
                        stats: o.stats,
                        degree_minutes: o.beyond_ms / 60_000.0,
                        mkt: o.mkt.as_ref().and_then(MktAccumulator::value),
                    });
                }
                dir.map(new_out)
            }
            None => dir.map(new_out),
        };
        self.newest_ms = Some(at_ms);
        self.last = self.out.as_ref().map(|_| (at_ms, value));
        step.transitions.extend(self.raise_if_due(at_ms, limits));
        step
    }

    /// Raises a pending condition whose delay is over at `now_ms` although
    /// no reading arrived, as long as the last value still stands (is
    /// younger than `hold_ms`).
    pub fn tick(
        &mut self,
        now_ms: i64,
        limits: &Limits,
        hold_ms: Option<i64>,
    ) -> Option<Transition> {
        let (last_at, _) = self.last?;
        if now_ms <= last_at || hold_ms.is_some_and(|h| now_ms.saturating_sub(last_at) > h) {
            return None;
        }
        self.raise_if_due(now_ms, limits)
    }

    /// Raises a pending condition that has held strictly longer than the
    /// delay (at once when there is no delay).
    fn raise_if_due(&mut self, now_ms: i64, limits: &Limits) -> Option<Transition> {
        let o = self.out.as_mut()?;
        if o.excursion_id.is_some() {
            return None;
        }
        let held = now_ms.saturating_sub(o.since_ms);
        if limits.delay_ms == 0 || held > limits.delay_ms {
            let id = Ulid::from_parts(
                u64::try_from(o.since_ms.max(0)).unwrap_or(0),
                rand::random(),
            );
            o.excursion_id = Some(id);
            return Some(Transition::Started {
                excursion_id: id,
                direction: o.direction,
                since_ms: o.since_ms,
                at_ms: now_ms,
                stats: o.stats,
            });
        }
        None
    }
}

fn start_mkt(at_ms: i64, value: f64) -> Option<MktAccumulator> {
    let mut m = MktAccumulator::new(DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL).ok()?;
    m.push(at_ms, value).ok()?;
    Some(m)
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
            ..Limits::default()
        }
    }

    fn feed(t: &mut Tracker, l: &Limits, series: &[(i64, f64)]) -> Vec<Transition> {
        series
            .iter()
            .flat_map(|&(at, v)| t.on_value(at, v, l, None, true).transitions)
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
    fn exclusive_limits_leave_the_limit_itself_in_range() {
        let l = Limits {
            exclusive: true,
            ..limits(0)
        };
        assert_eq!(l.classify(8.0), None);
        assert_eq!(l.classify(8.001), Some(Direction::High));
        assert_eq!(l.classify(2.0), None);
        assert_eq!(l.classify(1.999), Some(Direction::Low));
    }

    #[test]
    fn a_delay_exactly_reached_does_not_raise_but_exceeded_does() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        let out = feed(&mut t, &l, &[(0, 9.0), (5 * MIN, 9.5)]);
        assert!(out.is_empty(), "{out:?}");
        let out = t.on_value(5 * MIN + 1, 9.6, &l, None, true).transitions;
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
    fn a_tick_raises_once_the_delay_is_over_while_the_value_stands() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        feed(&mut t, &l, &[(0, 9.0)]);
        assert_eq!(t.tick(5 * MIN, &l, Some(10 * MIN)), None);
        assert!(matches!(
            t.tick(5 * MIN + 1, &l, Some(10 * MIN)),
            Some(Transition::Started { at_ms, .. }) if at_ms == 5 * MIN + 1
        ));
        assert_eq!(t.tick(6 * MIN, &l, None), None, "raised once");
    }

    #[test]
    fn a_tick_does_not_raise_on_a_value_older_than_the_silence_limit() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        feed(&mut t, &l, &[(0, 9.0)]);
        assert_eq!(t.tick(6 * MIN, &l, Some(2 * MIN)), None);
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
        let out = t.on_value(10 * MIN + 1, 9.0, &l, None, true).transitions;
        assert!(matches!(out[..], [Transition::Started { since_ms, .. }] if since_ms == 5 * MIN));
    }

    #[test]
    fn hysteresis_holds_the_excursion_until_the_value_is_back_by_more_than_it() {
        let l = Limits {
            hysteresis: 0.5,
            ..limits(0)
        };
        let mut t = Tracker::default();
        let out = feed(&mut t, &l, &[(0, 9.0), (MIN, 7.9), (2 * MIN, 7.5)]);
        assert_eq!(out.len(), 1, "7.9 and 7.5 are within 0.5 of 8: {out:?}");
        let out = t.on_value(3 * MIN, 7.499, &l, None, true).transitions;
        assert!(
            matches!(out[..], [Transition::Ended { ended_ms, .. }] if ended_ms == 3 * MIN),
            "{out:?}"
        );
    }

    #[test]
    fn an_excursion_ends_with_its_statistics_degree_minutes_and_mkt() {
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
            degree_minutes,
            mkt,
            ..
        } = out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!((since_ms, ended_ms), (MIN, 4 * MIN));
        assert_eq!((stats.min, stats.max, stats.count), (9.0, 11.0, 3));
        assert!((stats.mean() - 10.0).abs() < 1e-12);
        // 1 + 3 + 2 °C, one minute each.
        assert!((degree_minutes - 6.0).abs() < 1e-9, "{degree_minutes}");
        let mkt = mkt.unwrap();
        assert!(mkt > 10.0 && mkt < 11.0, "{mkt}");
        assert_eq!(t.out, None);
    }

    #[test]
    fn out_of_range_time_is_held_at_most_the_silence_limit() {
        let l = limits(0);
        let mut t = Tracker::default();
        t.on_value(0, 9.0, &l, Some(2 * MIN), false);
        let s = t.on_value(10 * MIN, 9.0, &l, Some(2 * MIN), false);
        assert_eq!(s.out_interval, Some((0, 2 * MIN)));
        assert!(s.transitions.is_empty(), "a gap does not end the excursion");
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
    fn in_range_readings_leave_the_persisted_state_unchanged() {
        let l = limits(0);
        let mut t = Tracker::default();
        t.on_value(0, 5.0, &l, None, true);
        let before = serde_json::to_string(&t).unwrap();
        t.on_value(MIN, 5.5, &l, None, true);
        assert_eq!(serde_json::to_string(&t).unwrap(), before);
        assert!(t.on_value(MIN, 9.0, &l, None, true).transitions.is_empty());
    }

    #[test]
    fn readings_out_of_time_order_are_ignored() {
        let l = limits(0);
        let mut t = Tracker::default();
        feed(&mut t, &l, &[(MIN, 9.0)]);
        let s = t.on_value(MIN, 5.0, &l, None, true);
        assert_eq!(s, Step::default());
        assert!(t.out.is_some());
    }

    #[test]
    fn state_survives_serialisation() {
        let l = limits(5 * MIN);
        let mut t = Tracker::default();
        feed(&mut t, &l, &[(0, 9.0), (6 * MIN, 9.0)]);
        let json = serde_json::to_string(&t).unwrap();
        let mut back: Tracker = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let out = back.on_value(7 * MIN, 5.0, &l, None, true).transitions;
        assert!(matches!(out[..], [Transition::Ended { .. }]));
    }
}
