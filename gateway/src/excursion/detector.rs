//! The per-rule state machine of one sensor's quantity: in range → beyond a
//! limit (pending while the delay runs) → raised → back in range → cleared.
//!
//! Design: readings are samples that hold until the next one (the same
//! convention as `mkt`), so the time a value was beyond a limit is the time
//! until the next reading, but never more than the sensor's silence limit:
//! beyond it the value is unknown, neither in nor out of range, and that
//! time is kept apart as unknown. A gap does not end an excursion or restart
//! its delay (unknown is not "back in range").
//!
//! Exposure is time BEYOND the limit only. Hysteresis delays the end of a
//! raised alarm (noise at the limit does not flap it), but a value inside the
//! hysteresis band is in range: its time is not exposure, its value is not in
//! the statistics, and it does not hold a pending condition (the delay counts
//! consecutive time beyond the limit). The ended event says both when the
//! value came back (`back_ms`) and when the alarm cleared.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::mkt::MktAccumulator;

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
    /// The first reading beyond the limit: the excursion's `started_at`.
    pub since_ms: i64,
    /// Set once raised (the delay has elapsed); kept across restarts so the
    /// ended event carries the same id as the started one.
    pub excursion_id: Option<Ulid>,
    /// Of the readings beyond the limit only.
    pub stats: Stats,
    /// ∫ distance beyond the limit dt, in unit·ms.
    pub beyond_ms: f64,
    /// Time beyond the limit so far (readings' hold time, within the
    /// silence limit).
    #[serde(default)]
    pub exposure_ms: i64,
    /// Time the value was unknown (a monitoring gap) while the condition
    /// was open: neither exposure nor in range.
    #[serde(default)]
    pub unknown_ms: i64,
    /// The first reading back within the limit after the last one beyond
    /// it, while hysteresis keeps the alarm raised.
    #[serde(default)]
    pub back_ms: Option<i64>,
    /// MKT of the time beyond the limit (temperature rules only).
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
        /// Time beyond the limit up to `at_ms`.
        exposure_ms: i64,
        unknown_ms: i64,
    },
    Ended {
        excursion_id: Ulid,
        direction: Direction,
        since_ms: i64,
        /// When the alarm cleared: back inside by more than the hysteresis.
        ended_ms: i64,
        /// When the value came back within the limit (≤ `ended_ms`).
        back_ms: i64,
        stats: Stats,
        /// Time beyond the limit: the excursion's duration as exposure.
        exposure_ms: i64,
        /// Unmonitored time while it was open.
        unknown_ms: i64,
        /// ∫ distance beyond the limit dt, in unit·minutes.
        degree_minutes: f64,
        /// Time-weighted MKT of the time beyond the limit, temperature only.
        mkt: Option<f64>,
    },
}

/// `(direction, from, to)`: a span of time charged to one side of a rule.
pub type Span = (Direction, i64, i64);

/// The result of one reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub transitions: Vec<Transition>,
    /// `[from, to)`: time the previous value held beyond the limit of
    /// `direction`, for budgets.
    pub out_interval: Option<Span>,
    /// `[from, to)`: unmonitored time while a condition was open.
    pub unknown_interval: Option<Span>,
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
            if let Some(b) = &mut o.back_ms {
                *b = b.saturating_add(delta_ms);
            }
            if let Some(m) = &mut o.mkt {
                m.shift_times(delta_ms);
            }
        }
    }

    /// Whether nothing is pending or open.
    pub fn is_idle(&self) -> bool {
        self.out.is_none()
    }

    /// The standing value's intervals up to `now_ms`, without changing
    /// anything: `(beyond, unknown)`, for a tick to charge to budgets.
    pub fn standing(
        &self,
        now_ms: i64,
        limits: &Limits,
        hold_ms: Option<i64>,
    ) -> (Option<Span>, Option<Span>) {
        let (Some(o), Some((last_at, last_v))) = (&self.out, self.last) else {
            return (None, None);
        };
        let end = hold_ms.map_or(now_ms, |h| now_ms.min(last_at.saturating_add(h)));
        let beyond = (end > last_at && limits.classify(last_v) == Some(o.direction)).then_some((
            o.direction,
            last_at,
            end,
        ));
        let unknown = (now_ms > end && end >= last_at).then_some((o.direction, end, now_ms));
        (beyond, unknown)
    }

    /// Feeds one value observed at `at_ms`. `hold_ms` bounds how long a
    /// value stands for (the silence limit); `mkt_ea` (ΔH, kJ/mol) keeps
    /// the excursion's MKT (temperature). A reading not after the previous
    /// one is ignored: the engine judges each sensor in time order.
    pub fn on_value(
        &mut self,
        at_ms: i64,
        value: f64,
        limits: &Limits,
        hold_ms: Option<i64>,
        mkt_ea: Option<f64>,
    ) -> Step {
        let mut step = Step::default();
        let newest = self.newest_ms.or(self.last.map(|(t, _)| t));
        if newest.is_some_and(|n| at_ms <= n) {
            return step;
        }
        if let (Some(o), Some((last_at, last_v))) = (&mut self.out, self.last) {
            let end = hold_ms.map_or(at_ms, |h| at_ms.min(last_at.saturating_add(h)));
            let was_beyond = limits.classify(last_v) == Some(o.direction);
            if end > last_at && was_beyond {
                step.out_interval = Some((o.direction, last_at, end));
                o.exposure_ms = o.exposure_ms.saturating_add(end.saturating_sub(last_at));
                o.beyond_ms +=
                    limits.beyond(last_v, o.direction) * end.saturating_sub(last_at) as f64;
            }
            if at_ms > end {
                step.unknown_interval = Some((o.direction, end, at_ms));
                o.unknown_ms = o.unknown_ms.saturating_add(at_ms.saturating_sub(end));
            }
            if let Some(m) = &mut o.mkt {
                // A value inside the hysteresis band carries no weight.
                let _ = m.push_held(at_ms, value, if was_beyond { hold_ms } else { Some(0) });
            }
        }
        let dir = limits.classify(value);
        let new_out = |d| Out {
            direction: d,
            since_ms: at_ms,
            excursion_id: None,
            stats: Stats::of(value),
            beyond_ms: 0.0,
            exposure_ms: 0,
            unknown_ms: 0,
            back_ms: None,
            mkt: mkt_ea.and_then(|ea| start_mkt(ea, at_ms, value)),
        };
        self.out = match self.out.take() {
            // Raised: hysteresis holds the alarm until back inside by more
            // than it; only values beyond the limit are exposure.
            Some(mut o)
                if o.excursion_id.is_some()
                    && limits.still_out(value, o.direction)
                    && dir.is_none_or(|d| d == o.direction) =>
            {
                if dir.is_some() {
                    o.stats.push(value);
                    o.back_ms = None;
                } else if o.back_ms.is_none() {
                    o.back_ms = Some(at_ms);
                }
                Some(o)
            }
            // Pending: the delay counts consecutive time beyond the limit.
            Some(mut o) if o.excursion_id.is_none() && dir == Some(o.direction) => {
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
                        back_ms: o.back_ms.unwrap_or(at_ms),
                        stats: o.stats,
                        exposure_ms: o.exposure_ms,
                        unknown_ms: o.unknown_ms,
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
        step.transitions.extend(self.raise_if_due(at_ms, limits, 0));
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
        // A pending condition's last value is beyond the limit: it stands.
        self.raise_if_due(now_ms, limits, now_ms.saturating_sub(last_at))
    }

    /// Raises a pending condition that has held strictly longer than the
    /// delay (at once when there is no delay). `standing_ms`: exposure since
    /// the last reading not yet in `exposure_ms` (a tick's).
    fn raise_if_due(
        &mut self,
        now_ms: i64,
        limits: &Limits,
        standing_ms: i64,
    ) -> Option<Transition> {
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
                exposure_ms: o.exposure_ms.saturating_add(standing_ms),
                unknown_ms: o.unknown_ms,
            });
        }
        None
    }
}

fn start_mkt(activation_energy: f64, at_ms: i64, value: f64) -> Option<MktAccumulator> {
    let mut m = MktAccumulator::new(activation_energy).ok()?;
    m.push(at_ms, value).ok()?;
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const EA: Option<f64> = Some(83.144);

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
            .flat_map(|&(at, v)| t.on_value(at, v, l, None, EA).transitions)
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
        let out = t.on_value(5 * MIN + 1, 9.6, &l, None, EA).transitions;
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
        let out = t.on_value(10 * MIN + 1, 9.0, &l, None, EA).transitions;
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
        let out = t.on_value(3 * MIN, 7.499, &l, None, EA).transitions;
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
    fn out_of_range_time_is_held_at_most_the_silence_limit_and_the_rest_is_unknown() {
        let l = limits(0);
        let mut t = Tracker::default();
        t.on_value(0, 9.0, &l, Some(2 * MIN), None);
        let s = t.on_value(10 * MIN, 9.0, &l, Some(2 * MIN), None);
        assert_eq!(s.out_interval, Some((Direction::High, 0, 2 * MIN)));
        assert_eq!(
            s.unknown_interval,
            Some((Direction::High, 2 * MIN, 10 * MIN))
        );
        assert!(s.transitions.is_empty(), "a gap does not end the excursion");
        let out = t
            .on_value(11 * MIN, 5.0, &l, Some(2 * MIN), None)
            .transitions;
        let [Transition::Ended {
            exposure_ms,
            unknown_ms,
            ..
        }] = out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!((exposure_ms, unknown_ms), (3 * MIN, 8 * MIN));
    }

    #[test]
    fn time_inside_the_hysteresis_band_is_not_exposure_and_the_end_says_when_it_came_back() {
        // The case: 9.5 °C, then 7.6 °C (in spec, inside the band
        // of 8 − 0.5), then 7.0 °C (back by more than the hysteresis).
        let l = Limits {
            hysteresis: 0.5,
            ..limits(0)
        };
        let mut t = Tracker::default();
        let out = feed(
            &mut t,
            &l,
            &[(0, 9.5), (2 * MIN, 7.6), (10 * MIN, 7.6), (12 * MIN, 7.0)],
        );
        let Transition::Ended {
            back_ms,
            ended_ms,
            exposure_ms,
            stats,
            degree_minutes,
            mkt,
            ..
        } = out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!(back_ms, 2 * MIN, "back in range at the first 7.6");
        assert_eq!(ended_ms, 12 * MIN, "the alarm cleared at 7.0");
        assert_eq!(exposure_ms, 2 * MIN, "only the 9.5 °C time");
        assert_eq!((stats.min, stats.max, stats.count), (9.5, 9.5, 1));
        assert!((degree_minutes - 3.0).abs() < 1e-9, "{degree_minutes}");
        assert!((mkt.unwrap() - 9.5).abs() < 1e-9, "{mkt:?}");
    }

    #[test]
    fn a_value_beyond_the_limit_again_inside_the_band_resets_back_in_range() {
        let l = Limits {
            hysteresis: 0.5,
            ..limits(0)
        };
        let mut t = Tracker::default();
        let out = feed(
            &mut t,
            &l,
            &[
                (0, 9.0),
                (MIN, 7.8),
                (2 * MIN, 8.2),
                (3 * MIN, 7.8),
                (5 * MIN, 5.0),
            ],
        );
        let Transition::Ended {
            back_ms,
            exposure_ms,
            ..
        } = out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!((back_ms, exposure_ms), (3 * MIN, 2 * MIN));
    }

    #[test]
    fn a_pending_condition_ends_at_a_reading_within_the_limit_even_inside_the_band() {
        // Hysteresis only delays a raised alarm's end: the delay counts
        // consecutive time beyond the limit.
        let l = Limits {
            hysteresis: 0.5,
            ..limits(5 * MIN)
        };
        let mut t = Tracker::default();
        let out = feed(
            &mut t,
            &l,
            &[(0, 9.0), (3 * MIN, 7.8), (4 * MIN, 9.0), (9 * MIN, 9.0)],
        );
        assert!(out.is_empty(), "{out:?}");
        let out = t.on_value(9 * MIN + 1, 9.0, &l, None, EA).transitions;
        assert!(
            matches!(out[..], [Transition::Started { since_ms, exposure_ms, .. }]
                if since_ms == 4 * MIN && exposure_ms == 5 * MIN + 1),
            "{out:?}"
        );
    }

    #[test]
    fn the_excursion_mkt_uses_the_activation_energy_it_is_given() {
        let l = limits(0);
        let series = [(0, 9.0), (MIN, 20.0), (2 * MIN, 5.0)];
        let mkt = |ea| {
            let mut t = Tracker::default();
            let out: Vec<Transition> = series
                .iter()
                .flat_map(|&(at, v)| t.on_value(at, v, &l, None, Some(ea)).transitions)
                .collect();
            match out[..] {
                [_, Transition::Ended { mkt: Some(m), .. }] => m,
                _ => panic!("{out:?}"),
            }
        };
        let expected =
            |ea| crate::excursion::mkt::mkt(&[(0, 9.0), (MIN, 20.0), (2 * MIN, 20.0)], ea).unwrap();
        assert!((mkt(60.0) - expected(60.0)).abs() < 1e-9);
        assert!((mkt(83.144) - expected(83.144)).abs() < 1e-9);
        assert!((mkt(60.0) - mkt(83.144)).abs() > 0.01);
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
        t.on_value(0, 5.0, &l, None, EA);
        let before = serde_json::to_string(&t).unwrap();
        t.on_value(MIN, 5.5, &l, None, EA);
        assert_eq!(serde_json::to_string(&t).unwrap(), before);
        assert!(t.on_value(MIN, 9.0, &l, None, EA).transitions.is_empty());
    }

    #[test]
    fn readings_out_of_time_order_are_ignored() {
        let l = limits(0);
        let mut t = Tracker::default();
        feed(&mut t, &l, &[(MIN, 9.0)]);
        let s = t.on_value(MIN, 5.0, &l, None, EA);
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
        let out = back.on_value(7 * MIN, 5.0, &l, None, EA).transitions;
        assert!(matches!(out[..], [Transition::Ended { .. }]));
    }
}
