//! The engine against a deliberately simple reference model, on random
//! series with boundary values, gaps longer than the silence limit, ticks,
//! and restarts (state serialised and the engine rebuilt mid-series).
//!
//! The model works on the whole series at once, straight from the rules in
//! docs/excursions.md: find each condition (first reading beyond a limit;
//! while pending it lasts as long as the readings stay beyond, once raised
//! until a reading back inside by more than the hysteresis), raise it at the
//! first observation that finds it held longer than the delay, and charge
//! the hold time (at most the silence limit) of each reading BEYOND the
//! limit while a condition is open, to its own direction; the rest of a
//! reading's interval past the silence limit is unknown. Two sensors share
//! the zone, so the lot's totals are the union of their intervals, within
//! the pallet's stay; an excursion names the pallet when the stay meets it.
//! The ended event's exposure, unknown time, back-in-range time and MKT (of
//! the time beyond, with the profile's ΔH) come from the same intervals;
//! `min`/`max` are of the readings beyond the limit only.

use proptest::prelude::*;

use super::*;
use crate::excursion::Direction;

const SILENCE_MS: i64 = 600_000;

const SENSORS: [&str; 2] = ["s", "t"];

#[derive(Debug, Clone, Copy)]
enum Step {
    Reading {
        sensor: usize,
        dt_ms: i64,
        value: f64,
    },
    Tick {
        dt_ms: i64,
    },
    Restart,
}

#[derive(Debug, Clone, Copy)]
struct Rules {
    delay_ms: i64,
    hysteresis: f64,
    exclusive: bool,
    /// The profile's ΔH, kJ/mol.
    activation_energy: f64,
    /// The pallet's stay: loaded, and unloaded if it was.
    loaded_ms: i64,
    unloaded_ms: Option<i64>,
}

fn config(rules: Rules) -> Config {
    crate::config::parse(
        &format!(
            r#"
gateway_id = "g"
[[profiles]]
id = "p"
silence = "10m"
mkt = {{ limit = 30.0, activation_energy = {:.3} }}
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "{}ms", hysteresis = {:.1}, exclusive = {} }}]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "s"
zone = "rear"
kind = "sim"
[[sensors]]
id = "t"
zone = "rear"
kind = "sim"
[sim]
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "{}"
{}
items = [{{ gtin = "09520123456788", lot = "L" }}]
"#,
            rules.activation_energy,
            rules.delay_ms,
            rules.hysteresis,
            rules.exclusive,
            rfc3339(rules.loaded_ms),
            rules
                .unloaded_ms
                .map(|u| format!("unloaded_at = \"{}\"", rfc3339(u)))
                .unwrap_or_default(),
        ),
        "reference",
    )
    .unwrap()
}

/// `(at, sensor, phase, direction, started_at, pallets affected, duration_s,
/// unknown_s, back_in_range_at, (min, max))` of each excursion event.
type Seen = Vec<(
    i64,
    usize,
    &'static str,
    Direction,
    i64,
    usize,
    i64,
    i64,
    Option<i64>,
    (f64, f64),
)>;

/// Ended excursions' MKT, `(at, sensor, mkt)`: compared with a tolerance.
type Mkts = Vec<(i64, usize, f64)>;

/// Lot totals: beyond high, beyond low, unknown (ms).
type Totals = (i64, i64, i64);

/// An observation: a tick (`None`) or a reading of one sensor.
type Obs = (i64, Option<(usize, f64)>);

fn classify(r: Rules, v: f64) -> Option<Direction> {
    let (hi, lo) = if r.exclusive {
        (v > 8.0, v < 2.0)
    } else {
        (v >= 8.0, v <= 2.0)
    };
    if hi {
        Some(Direction::High)
    } else if lo {
        Some(Direction::Low)
    } else {
        None
    }
}

fn back_inside(r: Rules, v: f64, d: Direction) -> bool {
    let h = r.hysteresis;
    let inside = match (d, r.exclusive) {
        (Direction::High, false) => v < 8.0 - h,
        (Direction::High, true) => v <= 8.0 - h,
        (Direction::Low, false) => v > 2.0 + h,
        (Direction::Low, true) => v >= 2.0 + h,
    };
    inside || classify(r, v).is_some_and(|o| o != d)
}

/// MKT of `(weight_ms, °C)` intervals, from the formula (USP <1079.2>).
fn mkt_of(r: Rules, weighted: &[(i64, f64)]) -> Option<f64> {
    let h_over_r = r.activation_energy / 8.314462618e-3;
    let total: f64 = weighted.iter().map(|(w, _)| *w as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let mean: f64 = weighted
        .iter()
        .map(|(w, c)| *w as f64 * (-h_over_r / (c + 273.15)).exp())
        .sum::<f64>()
        / total;
    Some(h_over_r / -mean.ln() - 273.15)
}

/// The length of the union of `intervals` within the stay.
fn union_in_stay(r: Rules, intervals: Vec<(i64, i64)>) -> i64 {
    let stay_end = r.unloaded_ms.unwrap_or(i64::MAX);
    let mut intervals: Vec<(i64, i64)> = intervals
        .into_iter()
        .map(|(a, b)| (a.max(r.loaded_ms), b.min(stay_end)))
        .filter(|(a, b)| a < b)
        .collect();
    intervals.sort_unstable();
    let (mut total, mut reach) = (0, i64::MIN);
    for (a, b) in intervals {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

/// The model: events, ended excursions' MKT, and the lot's totals.
fn model(r: Rules, obs: &[Obs]) -> (Seen, Mkts, Totals) {
    let mut seen = Seen::new();
    let mut mkts = Mkts::new();
    let (mut high, mut low) = (Vec::new(), Vec::new());
    // Unknown time per direction: the ledger keeps each direction's apart.
    let (mut unknown_high, mut unknown_low) = (Vec::new(), Vec::new());
    for sensor in 0..SENSORS.len() {
        // This sensor's readings and the observations it can be raised at.
        let readings: Vec<(i64, f64)> = obs
            .iter()
            .filter_map(|&(t, o)| o.filter(|(s, _)| *s == sensor).map(|(_, v)| (t, v)))
            .collect();
        let mine: Vec<(i64, bool)> = obs
            .iter()
            .filter(|(_, o)| o.is_none_or(|(s, _)| s == sensor))
            .map(|&(t, o)| (t, o.is_some()))
            .collect();
        // Whether an observation at `t` raises a condition since `since`.
        let raises = |since: i64, t: i64, is_reading: bool| {
            let held_long_enough = r.delay_ms == 0 || t - since > r.delay_ms;
            let standing = is_reading
                || readings
                    .iter()
                    .rev()
                    .find(|(rt, _)| *rt <= t)
                    .is_some_and(|(rt, _)| t - rt <= SILENCE_MS && t > *rt);
            t >= since && held_long_enough && standing
        };
        let mut i = 0;
        while i < readings.len() {
            let Some(d) = classify(r, readings[i].1) else {
                i += 1;
                continue;
            };
            let since = readings[i].0;
            // 1. Where it ends, and when (if) it was raised before that.
            let mut raised: Option<i64> = None;
            let mut end = None;
            for k in i + 1..=readings.len() {
                let until = readings.get(k).map_or(i64::MAX, |x| x.0);
                if raised.is_none() {
                    raised = mine
                        .iter()
                        .find(|&&(t, is_reading)| t < until && raises(since, t, is_reading))
                        .map(|&(t, _)| t);
                }
                let Some(&(_, v)) = readings.get(k) else {
                    break;
                };
                let ends = if raised.is_some() {
                    back_inside(r, v, d)
                } else {
                    classify(r, v) != Some(d)
                };
                if ends {
                    end = Some(k);
                    break;
                }
            }
            let last = end.unwrap_or(readings.len() - 1);
            // 2. Its intervals: each reading's hold time, beyond the limit
            // or unknown past the silence limit; a condition open at the end
            // is charged up to the last tick after its last reading.
            let mut beyond = Vec::new();
            let mut gaps = Vec::new();
            let mut hold = |t0: i64, v: f64, t1: i64| {
                let held = t1.min(t0 + SILENCE_MS);
                if classify(r, v) == Some(d) && held > t0 {
                    beyond.push((t0, held, v));
                }
                if t1 > held {
                    gaps.push((held, t1));
                }
            };
            for k in i..last {
                hold(readings[k].0, readings[k].1, readings[k + 1].0);
            }
            if end.is_none() {
                let t0 = readings[last].0;
                let ticked = obs
                    .iter()
                    .filter(|(t, o)| o.is_none() && *t > t0)
                    .map(|(t, _)| *t)
                    .max();
                if let Some(t1) = ticked {
                    hold(t0, readings[last].1, t1);
                }
            }
            let upto = |set: &[(i64, i64)], t: i64| -> i64 {
                set.iter().map(|&(a, b)| (b.min(t) - a).max(0)).sum()
            };
            let beyond_spans: Vec<(i64, i64)> = beyond.iter().map(|&(a, b, _)| (a, b)).collect();
            // The pallet is affected when its stay meets [since, at].
            let affected =
                |at: i64| usize::from(r.loaded_ms <= at && r.unloaded_ms.is_none_or(|u| u > since));
            // Statistics of the readings beyond the limit up to `t`.
            let stats = |t: i64| {
                readings[i..=last]
                    .iter()
                    .filter(|(rt, v)| *rt <= t && classify(r, *v) == Some(d))
                    .fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| {
                        (lo.min(*v), hi.max(*v))
                    })
            };
            if let Some(at) = raised {
                let exposure = upto(&beyond_spans, at) / 1000;
                let unk = upto(&gaps, at) / 1000;
                seen.push((
                    at,
                    sensor,
                    "started",
                    d,
                    since,
                    affected(at),
                    exposure,
                    unk,
                    None,
                    stats(at),
                ));
                if let Some(e) = end {
                    let until = readings[e].0;
                    // Back within the limit: the first reading after the
                    // last one beyond it.
                    let last_beyond = (i..e)
                        .filter(|&k| classify(r, readings[k].1) == Some(d))
                        .max()
                        .unwrap_or(i);
                    let back = readings[last_beyond + 1].0;
                    let exposure = upto(&beyond_spans, until) / 1000;
                    let unk = upto(&gaps, until) / 1000;
                    seen.push((
                        until,
                        sensor,
                        "ended",
                        d,
                        since,
                        affected(until),
                        exposure,
                        unk,
                        Some(back),
                        stats(until),
                    ));
                    let weighted: Vec<(i64, f64)> =
                        beyond.iter().map(|&(a, b, v)| (b - a, v)).collect();
                    let mkt = mkt_of(r, &weighted).unwrap_or(readings[last_beyond].1);
                    mkts.push((until, sensor, mkt));
                }
            }
            match d {
                Direction::High => {
                    high.extend(beyond_spans);
                    unknown_high.extend(gaps);
                }
                Direction::Low => {
                    low.extend(beyond_spans);
                    unknown_low.extend(gaps);
                }
            }
            // The ending reading may itself start the next condition.
            i = end.unwrap_or(readings.len());
        }
    }
    let totals = (
        union_in_stay(r, high),
        union_in_stay(r, low),
        union_in_stay(r, unknown_high) + union_in_stay(r, unknown_low),
    );
    seen.sort_by_key(|&(at, sensor, phase, ..)| (at, sensor, phase == "started"));
    mkts.sort_by_key(|&(at, sensor, _)| (at, sensor));
    (seen, mkts, totals)
}

fn run_engine(r: Rules, steps: &[Step]) -> (Seen, Mkts, Totals, Vec<Obs>) {
    let c = config(r);
    let mut e = Engine::new(&c, EngineState::default());
    let mut t = 0;
    let mut obs = Vec::new();
    let mut events = Vec::new();
    for step in steps {
        match *step {
            Step::Reading {
                sensor,
                dt_ms,
                value,
            } => {
                t += dt_ms;
                obs.push((t, Some((sensor, value))));
                let reading =
                    Reading::new(Arc::from(SENSORS[sensor]), Quantity::Temperature, value, t);
                events.extend(e.on_reading(&reading));
            }
            Step::Tick { dt_ms } => {
                t += dt_ms;
                obs.push((t, None));
                events.extend(e.tick(t));
            }
            Step::Restart => {
                let bytes = serde_json::to_vec(e.state()).unwrap();
                e = Engine::new(&c, serde_json::from_slice(&bytes).unwrap());
            }
        }
    }
    let excursions: Vec<(i64, &crate::event::payload::Excursion)> = events
        .iter()
        .filter_map(|ev| match &ev.body {
            crate::event::payload::EventBody::Excursion(x) => Some((ev.at_ms, x)),
            _ => None,
        })
        .collect();
    let sensor_of = |x: &crate::event::payload::Excursion| {
        SENSORS.iter().position(|s| x.sensor_id == *s).unwrap_or(99)
    };
    let mut seen: Seen = excursions
        .iter()
        .map(|&(at_ms, x)| {
            let phase = match x.phase {
                crate::event::payload::ExcursionPhase::Started => "started",
                crate::event::payload::ExcursionPhase::Ended => "ended",
            };
            let since = parse_rfc3339(&x.started_at).unwrap_or(-1);
            let back = x
                .end
                .as_ref()
                .map(|e| parse_rfc3339(&e.back_in_range_at).unwrap_or(-1));
            (
                at_ms,
                sensor_of(x),
                phase,
                x.direction,
                since,
                x.affected.len(),
                x.duration_s,
                x.unknown_s,
                back,
                (x.min, x.max),
            )
        })
        .collect();
    seen.sort_by_key(|&(at, sensor, phase, ..)| (at, sensor, phase == "started"));
    let mut mkts: Mkts = excursions
        .iter()
        .filter_map(|&(at_ms, x)| Some((at_ms, sensor_of(x), x.end.as_ref()?.mkt?)))
        .collect();
    mkts.sort_by_key(|&(at, sensor, _)| (at, sensor));
    let lot = e.lot_exposure("09520123456788", "L");
    let total = |f: &dyn Fn(&LotExposure) -> i64| lot.map_or(0, f);
    let totals = (
        total(&|l| l.out_of_range_ms("p/temperature/0/high")),
        total(&|l| l.out_of_range_ms("p/temperature/0/low")),
        total(&|l| l.unknown_ms("p/temperature/0/high") + l.unknown_ms("p/temperature/0/low")),
    );
    (seen, mkts, totals, obs)
}

fn step() -> impl Strategy<Value = Step> {
    let dt = prop::sample::select(vec![30_000i64, 60_000, 90_000, 120_000, 300_000, 660_000]);
    // On, around and inside the bands of the limits, and far beyond them
    // (a spread of temperatures is what tells two ΔH apart in an MKT).
    let value = prop::sample::select(vec![
        -4.0, 1.5, 2.0, 2.2, 2.5, 5.0, 7.5, 7.8, 8.0, 8.5, 14.0,
    ]);
    prop_oneof![
        8 => (0..SENSORS.len(), dt.clone(), value)
            .prop_map(|(sensor, dt_ms, value)| Step::Reading { sensor, dt_ms, value }),
        2 => dt.prop_map(|dt_ms| Step::Tick { dt_ms }),
        1 => Just(Step::Restart),
    ]
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        prop::sample::select(vec![0i64, 60_000, 120_000, 300_000]),
        prop::sample::select(vec![0.0, 0.5]),
        any::<bool>(),
        prop::sample::select(vec![83.144, 60.0]),
        prop::sample::select(vec![0i64, 600_000, 3_600_000]),
        prop::sample::select(vec![None, Some(1_800_000i64), Some(7_200_000)]),
    )
        .prop_map(
            |(delay_ms, hysteresis, exclusive, activation_energy, loaded_ms, stay)| Rules {
                delay_ms,
                hysteresis,
                exclusive,
                activation_energy,
                loaded_ms,
                unloaded_ms: stay.map(|s| loaded_ms + s),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_engine_agrees_with_the_reference_model(r in rules(), steps in prop::collection::vec(step(), 1..80)) {
        let (seen, mkts, totals, obs) = run_engine(r, &steps);
        let (expected, expected_mkts, expected_totals) = model(r, &obs);
        prop_assert_eq!(seen, expected);
        prop_assert_eq!(mkts.len(), expected_mkts.len());
        for (got, want) in mkts.iter().zip(&expected_mkts) {
            prop_assert_eq!((got.0, got.1), (want.0, want.1));
            prop_assert!((got.2 - want.2).abs() < 0.002, "MKT {} vs model {}", got.2, want.2);
        }
        prop_assert_eq!(totals, expected_totals);
    }
}
