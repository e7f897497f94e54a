//! The engine against a deliberately simple reference model, on random
//! series with boundary values, gaps longer than the silence limit, ticks,
//! and restarts (state serialised and the engine rebuilt mid-series).
//!
//! The model works on the whole series at once, straight from the rules in
//! docs/excursions.md: find each out-of-range condition (first reading
//! beyond a limit, until a reading back inside by more than the hysteresis),
//! raise it at the first observation that finds it held longer than the
//! delay, and charge each reading's hold time (at most the silence limit)
//! while a condition is open. Two sensors share the zone, so the lot's
//! out-of-range total is the union of their intervals, within the pallet's
//! stay; an excursion names the pallet when the stay meets it.

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

/// `(at, sensor, phase, direction, started_at, pallets affected)` of each
/// excursion event.
type Seen = Vec<(i64, usize, &'static str, Direction, i64, usize)>;

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

/// The model: events and total out-of-range time (the union over sensors).
fn model(r: Rules, obs: &[Obs]) -> (Seen, i64) {
    let mut seen = Seen::new();
    let mut intervals = Vec::new();
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
        // 1. Conditions: (direction, first reading, ending reading).
        let mut conditions = Vec::new();
        let mut i = 0;
        while i < readings.len() {
            let Some(d) = classify(r, readings[i].1) else {
                i += 1;
                continue;
            };
            let end = (i + 1..readings.len()).find(|&k| back_inside(r, readings[k].1, d));
            conditions.push((d, i, end));
            // The ending reading may itself start the next condition.
            i = end.unwrap_or(readings.len());
        }
        for (d, first, end) in conditions {
            let since = readings[first].0;
            let until = end.map_or(i64::MAX, |e| readings[e].0);
            // 2. Raised at the first observation inside that finds the delay over.
            let raised = mine.iter().find(|&&(t, is_reading)| {
                if t < since || t >= until {
                    return false;
                }
                let held_long_enough = r.delay_ms == 0 || t - since > r.delay_ms;
                let standing = is_reading
                    || readings
                        .iter()
                        .rev()
                        .find(|(rt, _)| *rt <= t)
                        .is_some_and(|(rt, _)| t - rt <= SILENCE_MS && t > *rt);
                held_long_enough && standing
            });
            // The pallet is affected when its stay meets [since, at].
            let affected =
                |at: i64| usize::from(r.loaded_ms <= at && r.unloaded_ms.is_none_or(|u| u > since));
            if let Some(&(at, _)) = raised {
                seen.push((at, sensor, "started", d, since, affected(at)));
                if end.is_some() {
                    seen.push((until, sensor, "ended", d, since, affected(until)));
                }
            }
            // 3. Hold time of every reading in the condition, up to the silence
            // limit; a condition still open at the end is charged up to the
            // last tick after its last reading.
            let last = end.unwrap_or(readings.len() - 1);
            for k in first..last {
                let (t0, t1) = (readings[k].0, readings[k + 1].0);
                intervals.push((t0, t1.min(t0 + SILENCE_MS)));
            }
            if end.is_none() {
                let t0 = readings[last].0;
                let ticked = obs
                    .iter()
                    .filter(|(t, o)| o.is_none() && *t > t0)
                    .map(|(t, _)| *t)
                    .max();
                if let Some(t1) = ticked {
                    intervals.push((t0, t1.min(t0 + SILENCE_MS)));
                }
            }
        }
    }
    // 4. The union's length within the stay, by sorting and sweeping.
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
    seen.sort_by_key(|&(at, sensor, phase, ..)| (at, sensor, phase == "started"));
    (seen, total)
}

fn run_engine(r: Rules, steps: &[Step]) -> (Seen, i64, Vec<Obs>) {
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
    let mut seen: Seen = events
        .iter()
        .filter_map(|ev| match &ev.body {
            crate::event::payload::EventBody::Excursion(x) => Some((ev.at_ms, x)),
            _ => None,
        })
        .map(|(at_ms, x)| {
            let sensor = SENSORS.iter().position(|s| x.sensor_id == *s).unwrap_or(99);
            let phase = match x.phase {
                crate::event::payload::ExcursionPhase::Started => "started",
                crate::event::payload::ExcursionPhase::Ended => "ended",
            };
            let since = parse_rfc3339(&x.started_at).unwrap_or(-1);
            (at_ms, sensor, phase, x.direction, since, x.affected.len())
        })
        .collect();
    seen.sort_by_key(|&(at, sensor, phase, ..)| (at, sensor, phase == "started"));
    let total = e
        .lot_exposure("09520123456788", "L")
        .map_or(0, |l| l.out_of_range_ms("p/temperature/0"));
    (seen, total, obs)
}

fn step() -> impl Strategy<Value = Step> {
    let dt = prop::sample::select(vec![30_000i64, 60_000, 90_000, 120_000, 300_000, 660_000]);
    let value = prop::sample::select(vec![1.5, 2.0, 2.2, 2.5, 5.0, 7.5, 7.8, 8.0, 8.5]);
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
        prop::sample::select(vec![0i64, 600_000, 3_600_000]),
        prop::sample::select(vec![None, Some(1_800_000i64), Some(7_200_000)]),
    )
        .prop_map(|(delay_ms, hysteresis, exclusive, loaded_ms, stay)| Rules {
            delay_ms,
            hysteresis,
            exclusive,
            loaded_ms,
            unloaded_ms: stay.map(|s| loaded_ms + s),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_engine_agrees_with_the_reference_model(r in rules(), steps in prop::collection::vec(step(), 1..80)) {
        let (seen, total, obs) = run_engine(r, &steps);
        let (expected, expected_total) = model(r, &obs);
        prop_assert_eq!(seen, expected);
        prop_assert_eq!(total, expected_total);
    }
}
