//! Mean Kinetic Temperature (MKT): the single constant temperature that would degrade a
//! product as much as the temperatures it actually saw (USP <1079.2>, ICH Q1A; formula of
//! Haynes, 1971).
//!
//! ```text
//!                 ΔH/R
//! T_K = ─────────────────────────────      x_i = -ΔH / (R · T_i),  T in kelvin
//!        -ln( Σ w_i·e^(x_i) / Σ w_i )
//! ```
//!
//! Design: time-weighted, sample-and-hold. Each sample's temperature holds from its
//! timestamp until the next sample's; the interval's weight is its duration. The last
//! sample only closes the previous interval (we do not know how long it will hold), except
//! that a series of a single sample has that sample's temperature as its MKT. Sums are kept
//! as a log-sum-exp (largest exponent plus a scaled sum), so no term underflows at freezer
//! temperatures and the state can be persisted and resumed. Pure: no clock, no IO.
//! See `docs/mkt.md`.

use std::collections::VecDeque;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// Universal gas constant, kJ/(mol·K) (CODATA 2018, exact).
pub const R_KJ_PER_MOL_K: f64 = 8.314462618e-3;
/// The default ΔH is the config's default (`[profiles.mkt] activation_energy`).
pub use crate::config::DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL;
/// 0 °C in kelvin.
const ZERO_CELSIUS_K: f64 = 273.15;

/// Why a sample cannot be added.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MktError {
    #[error("activation energy {0} kJ/mol is not a positive finite number")]
    ActivationEnergy(f64),
    #[error("temperature {0} °C is not a finite value above absolute zero")]
    Temperature(f64),
    #[error("sample at {at_ms} ms does not come after the previous one at {previous_ms} ms")]
    NotIncreasing { at_ms: i64, previous_ms: i64 },
}

/// MKT in °C of `samples` (`(unix ms, °C)`, strictly increasing times), time-weighted
/// sample-and-hold as described in the module documentation.
///
/// `None` if there is no sample, a time does not increase, a temperature is not finite or
/// not above absolute zero, or the activation energy is not positive and finite.
pub fn mkt(samples: &[(i64, f64)], activation_energy_kj_per_mol: f64) -> Option<f64> {
    let mut acc = MktAccumulator::new(activation_energy_kj_per_mol).ok()?;
    for &(at_ms, celsius) in samples {
        acc.push(at_ms, celsius).ok()?;
    }
    acc.value()
}

/// `ln Σ w·e^x` kept as `max_x + ln(scaled)`, `scaled = Σ w·e^(x - max_x)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct LogSumExp {
    /// Σ w, in milliseconds.
    weight: f64,
    /// −∞ while empty, which JSON cannot hold: stored as `null` then.
    #[serde(with = "neg_infinity_as_null")]
    max_x: f64,
    scaled: f64,
}

impl LogSumExp {
    const EMPTY: LogSumExp = LogSumExp {
        weight: 0.0,
        max_x: f64::NEG_INFINITY,
        scaled: 0.0,
    };

    fn add(&mut self, x: f64, weight: f64) {
        if weight <= 0.0 {
            return;
        }
        if x > self.max_x {
            self.scaled *= (self.max_x - x).exp();
            self.max_x = x;
        }
        self.scaled += weight * (x - self.max_x).exp();
        self.weight += weight;
    }

    fn merge(&mut self, other: &LogSumExp) {
        if other.weight <= 0.0 {
            return;
        }
        if other.max_x > self.max_x {
            self.scaled *= (self.max_x - other.max_x).exp();
            self.max_x = other.max_x;
        }
        self.scaled += other.scaled * (other.max_x - self.max_x).exp();
        self.weight += other.weight;
    }

    /// MKT in °C for ΔH/R = `h_over_r`, `None` without weight.
    fn mkt_celsius(&self, h_over_r: f64) -> Option<f64> {
        if self.weight <= 0.0 || self.scaled <= 0.0 {
            return None;
        }
        let ln_mean = self.max_x + self.scaled.ln() - self.weight.ln();
        Some(-h_over_r / ln_mean - ZERO_CELSIUS_K)
    }
}

/// JSON has no infinities; an empty sum's `max_x` of −∞ round-trips as `null`
/// so a state with a single sample can be persisted and resumed.
mod neg_infinity_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_some(x)
        } else {
            s.serialize_none()
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
    }
}

/// ΔH/R in kelvin, or why the activation energy is unusable.
fn h_over_r(activation_energy_kj_per_mol: f64) -> Result<f64, MktError> {
    let h_over_r = activation_energy_kj_per_mol / R_KJ_PER_MOL_K;
    if h_over_r.is_finite() && h_over_r > 0.0 {
        Ok(h_over_r)
    } else {
        Err(MktError::ActivationEnergy(activation_energy_kj_per_mol))
    }
}

/// The Arrhenius exponent `-ΔH/(R·T)` of a temperature in °C.
fn exponent(h_over_r: f64, celsius: f64) -> Result<f64, MktError> {
    let kelvin = celsius + ZERO_CELSIUS_K;
    let x = -h_over_r / kelvin;
    if celsius.is_finite() && kelvin > 0.0 && x.is_finite() {
        Ok(x)
    } else {
        Err(MktError::Temperature(celsius))
    }
}

/// Running MKT of a whole series, in constant memory; persist it with serde to resume
/// after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MktAccumulator {
    h_over_r: f64,
    sums: LogSumExp,
    /// The latest sample: it holds until the next push.
    last: Option<(i64, f64)>,
}

impl MktAccumulator {
    /// An empty accumulator; fails for a non-positive or non-finite activation energy.
    pub fn new(activation_energy_kj_per_mol: f64) -> Result<Self, MktError> {
        Ok(MktAccumulator {
            h_over_r: h_over_r(activation_energy_kj_per_mol)?,
            sums: LogSumExp::EMPTY,
            last: None,
        })
    }

    /// Adds a sample; the previous one is weighted by the time until this one. A rejected
    /// sample leaves the accumulator unchanged.
    pub fn push(&mut self, at_ms: i64, celsius: f64) -> Result<(), MktError> {
        self.push_held(at_ms, celsius, None)
    }

    /// Moves the latest sample's time by `delta_ms` (the wall clock jumped):
    /// the next sample is then weighted by the monotonic time between them.
    pub fn shift_times(&mut self, delta_ms: i64) {
        if let Some((t, _)) = &mut self.last {
            *t = t.saturating_add(delta_ms);
        }
    }

    /// Like [`push`](Self::push), but the previous sample holds at most `hold_ms`: time
    /// beyond it (a sensor's monitoring gap, a lot off board) is unknown and carries no
    /// weight, as in the excursion engine's out-of-range time.
    pub fn push_held(
        &mut self,
        at_ms: i64,
        celsius: f64,
        hold_ms: Option<i64>,
    ) -> Result<(), MktError> {
        exponent(self.h_over_r, celsius)?;
        if let Some((previous_ms, previous_c)) = self.last {
            if at_ms <= previous_ms {
                return Err(MktError::NotIncreasing { at_ms, previous_ms });
            }
            let x = exponent(self.h_over_r, previous_c)?;
            let held = hold_ms.map_or(at_ms, |h| at_ms.min(previous_ms.saturating_add(h.max(0))));
            self.sums.add(x, held.abs_diff(previous_ms) as f64);
        }
        self.last = Some((at_ms, celsius));
        Ok(())
    }

    /// MKT in °C of the intervals closed so far; with a single sample, that sample's
    /// temperature; `None` before the first sample.
    pub fn value(&self) -> Option<f64> {
        self.sums
            .mkt_celsius(self.h_over_r)
            .or(self.last.map(|(_, c)| c))
    }

    /// Like [`value`](Self::value), but with the latest sample held until `now_ms`: the
    /// MKT "so far" while a sensor keeps reporting the same value rarely.
    pub fn value_until(&self, now_ms: i64) -> Option<f64> {
        let mut sums = self.sums;
        if let Some((at_ms, celsius)) = self.last {
            if now_ms > at_ms {
                let x = exponent(self.h_over_r, celsius).ok()?;
                sums.add(x, now_ms.abs_diff(at_ms) as f64);
            }
        }
        sums.mkt_celsius(self.h_over_r)
            .or(self.last.map(|(_, c)| c))
    }

    /// Total weighted time in milliseconds (closed intervals only).
    pub fn duration_ms(&self) -> f64 {
        self.sums.weight
    }

    /// The ΔH it was made with, kJ/mol: MKTs made with different ΔH do not
    /// combine, so whoever combines them elsewhere must be told which.
    pub fn activation_energy(&self) -> f64 {
        self.h_over_r * R_KJ_PER_MOL_K
    }
}

/// One bucket of a [`WindowedMkt`]: the interval time that falls in
/// `[start_ms, start_ms + bucket_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bucket {
    start_ms: i64,
    sums: LogSumExp,
}

/// MKT over the last `window_ms` before the latest sample, in bounded memory.
///
/// Interval time is split at bucket boundaries (`bucket_ms`, e.g. one minute) and summed
/// per bucket; buckets that end before `latest - window_ms` are dropped. So at most
/// `window_ms / bucket_ms + 2` buckets (never more than `MAX_BUCKETS + 2`) are kept, and the window is exact when the latest
/// sample falls on a bucket boundary, otherwise up to one bucket (`bucket_ms`) wider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedMkt {
    h_over_r: f64,
    window_ms: i64,
    bucket_ms: i64,
    buckets: VecDeque<Bucket>,
    last: Option<(i64, f64)>,
}

impl WindowedMkt {
    /// Moves the latest sample's time by `delta_ms` (the wall clock jumped).
    pub fn shift_times(&mut self, delta_ms: i64) {
        if let Some((t, _)) = &mut self.last {
            *t = t.saturating_add(delta_ms);
        }
    }

    /// One-minute buckets, the granularity of the profiles' MKT limits.
    pub const DEFAULT_BUCKET_MS: i64 = 60_000;
    /// Upper bound on buckets per window: `bucket_ms` is raised if needed (a 7-day window
    /// keeps one-minute buckets).
    pub const MAX_BUCKETS: i64 = 10_080;

    /// A window of `window_ms` summed in buckets of `bucket_ms` (both at least 1 ms; a
    /// bucket longer than the window is shortened to it, one shorter than
    /// `window_ms / MAX_BUCKETS` is lengthened to that).
    pub fn new(
        activation_energy_kj_per_mol: f64,
        window_ms: i64,
        bucket_ms: i64,
    ) -> Result<Self, MktError> {
        let window_ms = window_ms.max(1);
        let min_bucket = (window_ms / Self::MAX_BUCKETS).max(1);
        Ok(WindowedMkt {
            h_over_r: h_over_r(activation_energy_kj_per_mol)?,
            window_ms,
            bucket_ms: bucket_ms.clamp(min_bucket, window_ms),
            buckets: VecDeque::new(),
            last: None,
        })
    }

    /// Adds a sample; the previous one is weighted by the time until this one, as far as
    /// that time lies within the window. A rejected sample changes nothing.
    pub fn push(&mut self, at_ms: i64, celsius: f64) -> Result<(), MktError> {
        self.push_held(at_ms, celsius, None)
    }

    /// Like [`push`](Self::push), with the previous sample holding at most `hold_ms`
    /// (see [`MktAccumulator::push_held`]).
    pub fn push_held(
        &mut self,
        at_ms: i64,
        celsius: f64,
        hold_ms: Option<i64>,
    ) -> Result<(), MktError> {
        exponent(self.h_over_r, celsius)?;
        if let Some((previous_ms, previous_c)) = self.last {
            if at_ms <= previous_ms {
                return Err(MktError::NotIncreasing { at_ms, previous_ms });
            }
            let x = exponent(self.h_over_r, previous_c)?;
            let held = hold_ms.map_or(at_ms, |h| at_ms.min(previous_ms.saturating_add(h.max(0))));
            let from = previous_ms.max(at_ms.saturating_sub(self.window_ms.max(1)));
            if held > from {
                self.add_interval(from, held, x);
            }
        }
        self.last = Some((at_ms, celsius));
        self.evict(at_ms);
        Ok(())
    }

    /// MKT in °C over the window; a single sample's temperature; `None` when empty.
    pub fn value(&self) -> Option<f64> {
        let mut total = LogSumExp::EMPTY;
        for bucket in &self.buckets {
            total.merge(&bucket.sums);
        }
        total
            .mkt_celsius(self.h_over_r)
            .or(self.last.map(|(_, c)| c))
    }

    /// How many buckets are held now (for the memory bound and its test).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket length with `new`'s bounds re-applied, so that a state deserialised from a
    /// damaged store cannot divide by zero or allocate without bound.
    fn bucket_ms(&self) -> i64 {
        let window_ms = self.window_ms.max(1);
        let min_bucket = (window_ms / Self::MAX_BUCKETS).max(1);
        self.bucket_ms.clamp(min_bucket, window_ms)
    }

    fn bucket_start(&self, at_ms: i64) -> i64 {
        let bucket_ms = self.bucket_ms();
        at_ms.div_euclid(bucket_ms).saturating_mul(bucket_ms)
    }

    /// Splits `[from, to)` at bucket boundaries and adds each piece to its bucket.
    fn add_interval(&mut self, from: i64, to: i64, x: f64) {
        let mut start = from;
        while start < to {
            let bucket_start = self.bucket_start(start);
            let end = bucket_start.saturating_add(self.bucket_ms()).min(to);
            let piece = end.abs_diff(start) as f64;
            match self.buckets.back_mut() {
                Some(b) if b.start_ms == bucket_start => b.sums.add(x, piece),
                _ => {
                    let mut sums = LogSumExp::EMPTY;
                    sums.add(x, piece);
                    self.buckets.push_back(Bucket {
                        start_ms: bucket_start,
                        sums,
                    });
                }
            }
            if end <= start {
                break;
            }
            start = end;
        }
    }

    fn evict(&mut self, latest_ms: i64) {
        let window_start = latest_ms.saturating_sub(self.window_ms.max(1));
        while let Some(front) = self.buckets.front() {
            if front.start_ms.saturating_add(self.bucket_ms()) > window_start {
                break;
            }
            self.buckets.pop_front();
        }
    }
}

/// Why a CSV series could not be read; every variant names the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum MktCsvError {
    #[error("line {line}: cannot read: {source}")]
    Io { line: usize, source: std::io::Error },
    #[error("line {line}: expected two fields `time,temperature_c`, found {found}")]
    Fields { line: usize, found: usize },
    #[error("line {line}: time {text:?} is not an RFC 3339 timestamp: {reason}")]
    Time {
        line: usize,
        text: String,
        reason: String,
    },
    #[error("line {line}: temperature {text:?} is not a number above absolute zero")]
    Temperature { line: usize, text: String },
    #[error("line {line}: time {text} is not after the previous sample's")]
    NotIncreasing { line: usize, text: String },
    #[error("no samples in the input")]
    NoSamples,
    #[error("{0}")]
    Mkt(MktError),
}

/// MKT in °C of a CSV series of `time,temperature_c` lines (RFC 3339 times, strictly
/// increasing). Blank lines are skipped; the first non-blank line is a header if its first
/// field starts with a letter.
pub fn mkt_from_csv(reader: impl BufRead, ea: f64) -> Result<f64, MktCsvError> {
    let mut acc = MktAccumulator::new(ea).map_err(MktCsvError::Mkt)?;
    let mut seen_content = false;
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|source| MktCsvError::Io {
            line: line_no,
            source,
        })?;
        // A spreadsheet export may start with a UTF-8 byte order mark.
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() {
            continue;
        }
        let first_content = !seen_content;
        seen_content = true;
        if first_content && line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let (at_ms, celsius) = parse_csv_line(line, line_no)?;
        acc.push(at_ms, celsius).map_err(|e| match e {
            MktError::NotIncreasing { .. } => MktCsvError::NotIncreasing {
                line: line_no,
                text: field(line, 0),
            },
            MktError::Temperature(_) => MktCsvError::Temperature {
                line: line_no,
                text: field(line, 1),
            },
            other => MktCsvError::Mkt(other),
        })?;
    }
    acc.value().ok_or(MktCsvError::NoSamples)
}

fn field(line: &str, index: usize) -> String {
    line.split(',').nth(index).unwrap_or("").trim().to_owned()
}

fn parse_csv_line(line: &str, line_no: usize) -> Result<(i64, f64), MktCsvError> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [time_text, temp_text] = fields[..] else {
        return Err(MktCsvError::Fields {
            line: line_no,
            found: fields.len(),
        });
    };
    let time_error = |reason: String| MktCsvError::Time {
        line: line_no,
        text: time_text.to_owned(),
        reason,
    };
    let at = time::OffsetDateTime::parse(time_text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| time_error(e.to_string()))?;
    let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| time_error("out of range".to_owned()))?;
    let temperature_error = || MktCsvError::Temperature {
        line: line_no,
        text: temp_text.to_owned(),
    };
    let celsius: f64 = temp_text.parse().map_err(|_| temperature_error())?;
    if !celsius.is_finite() || celsius + ZERO_CELSIUS_K <= 0.0 {
        return Err(temperature_error());
    }
    Ok((at_ms, celsius))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EA: f64 = DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL;
    const HOUR: i64 = 3_600_000;

    fn close(a: Option<f64>, b: f64, tolerance: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= tolerance)
    }

    /// Time-weighted arithmetic mean under the same sample-and-hold rule.
    fn time_weighted_mean(samples: &[(i64, f64)]) -> f64 {
        let (sum, weight) = samples.windows(2).fold((0.0, 0.0), |(s, w), pair| {
            let dt = (pair[1].0 - pair[0].0) as f64;
            (s + pair[0].1 * dt, w + dt)
        });
        sum / weight
    }

    #[test]
    fn constant_series_gives_the_constant() {
        for t in [-80.0, -20.0, 2.0, 5.0, 25.0, 40.0] {
            let samples: Vec<_> = (0..100).map(|i| (i * 61_000, t)).collect();
            assert!(close(mkt(&samples, EA), t, 1e-9), "{t}");
        }
    }

    #[test]
    fn single_sample_gives_its_temperature_and_empty_gives_none() {
        assert_eq!(mkt(&[(5, 7.5)], EA), Some(7.5));
        assert_eq!(mkt(&[], EA), None);
    }

    #[test]
    fn half_the_time_at_20_and_half_at_30_gives_26_26() {
        let samples = [(0, 20.0), (HOUR, 30.0), (2 * HOUR, 30.0)];
        // (ΔH/R) / -ln((e^(-ΔH/R/293.15) + e^(-ΔH/R/303.15)) / 2) - 273.15 = 26.2599 °C
        assert!(close(mkt(&samples, EA), 26.2599, 1e-4));
    }

    #[test]
    fn usp_example_52_weeks_at_25_gives_25() {
        let week = 7 * 24 * HOUR;
        let samples: Vec<_> = (0..=52).map(|i| (i * week, 25.0)).collect();
        assert!(close(mkt(&samples, EA), 25.0, 1e-9));
    }

    #[test]
    fn unequal_intervals_equal_their_equal_interval_expansion() {
        let uneven = [(0, 4.0), (3 * HOUR, 12.0), (4 * HOUR, 2.0), (6 * HOUR, 8.0)];
        let even = [
            (0, 4.0),
            (HOUR, 4.0),
            (2 * HOUR, 4.0),
            (3 * HOUR, 12.0),
            (4 * HOUR, 2.0),
            (5 * HOUR, 2.0),
            (6 * HOUR, 8.0),
        ];
        let a = mkt(&uneven, EA).unwrap_or(f64::NAN);
        assert!(close(mkt(&even, EA), a, 1e-9));
    }

    #[test]
    fn varying_series_exceeds_its_arithmetic_mean() {
        let samples = [
            (0, 2.0),
            (HOUR, 8.0),
            (2 * HOUR, 15.0),
            (3 * HOUR, 5.0),
            (4 * HOUR, 5.0),
        ];
        let m = mkt(&samples, EA).unwrap_or(f64::NAN);
        assert!(m > time_weighted_mean(&samples), "{m}");
        assert!(m > 7.5);
    }

    #[test]
    fn invalid_input_gives_none() {
        assert_eq!(mkt(&[(0, 5.0), (0, 6.0)], EA), None);
        assert_eq!(mkt(&[(10, 5.0), (0, 6.0)], EA), None);
        assert_eq!(mkt(&[(0, f64::NAN)], EA), None);
        assert_eq!(mkt(&[(0, -273.15)], EA), None);
        assert_eq!(mkt(&[(0, 5.0)], 0.0), None);
        assert_eq!(mkt(&[(0, 5.0)], f64::INFINITY), None);
    }

    #[test]
    fn extreme_temperatures_do_not_underflow() {
        let samples = [
            (0, -270.0),
            (HOUR, -270.0),
            (2 * HOUR, 200.0),
            (3 * HOUR, 0.0),
        ];
        let m = mkt(&samples, 500.0).unwrap_or(f64::NAN);
        assert!(m.is_finite() && m < 200.0 && m > -270.0, "{m}");
    }

    #[test]
    fn accumulator_rejects_out_of_order_samples_and_stays_unchanged() {
        let mut acc = MktAccumulator::new(EA).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(acc.push(HOUR, 5.0), Ok(()));
        let before = acc.clone();
        assert_eq!(
            acc.push(HOUR, 6.0),
            Err(MktError::NotIncreasing {
                at_ms: HOUR,
                previous_ms: HOUR
            })
        );
        assert!(matches!(
            acc.push(2 * HOUR, f64::NAN),
            Err(MktError::Temperature(_))
        ));
        assert_eq!(acc, before);
    }

    #[test]
    fn accumulator_value_until_holds_the_latest_sample() {
        let mut acc = MktAccumulator::new(EA).unwrap_or_else(|e| panic!("{e}"));
        let _ = acc.push(0, 20.0);
        let _ = acc.push(HOUR, 30.0);
        assert!(close(acc.value(), 20.0, 1e-9));
        assert!(close(acc.value_until(2 * HOUR), 26.2599, 1e-4));
        assert_eq!(acc.duration_ms(), HOUR as f64);
    }

    #[test]
    fn a_held_sample_carries_no_weight_beyond_the_hold() {
        let mut held = MktAccumulator::new(EA).unwrap_or_else(|e| panic!("{e}"));
        let _ = held.push_held(0, 5.0, Some(HOUR));
        let _ = held.push_held(HOUR, 30.0, Some(HOUR));
        let _ = held.push_held(10 * HOUR, 5.0, Some(HOUR));
        let _ = held.push_held(11 * HOUR, 5.0, Some(HOUR));
        let expected = mkt(
            &[(0, 5.0), (HOUR, 30.0), (2 * HOUR, 5.0), (3 * HOUR, 5.0)],
            EA,
        );
        assert!(close(held.value(), expected.unwrap_or(f64::NAN), 1e-9));
        let mut w = WindowedMkt::new(EA, 100 * HOUR, WindowedMkt::DEFAULT_BUCKET_MS)
            .unwrap_or_else(|e| panic!("{e}"));
        for (t, c) in [(0, 5.0), (HOUR, 30.0), (10 * HOUR, 5.0), (11 * HOUR, 5.0)] {
            let _ = w.push_held(t, c, Some(HOUR));
        }
        assert!(close(w.value(), expected.unwrap_or(f64::NAN), 1e-9));
    }

    #[test]
    fn a_single_sample_accumulator_survives_json() {
        let mut acc = MktAccumulator::new(EA).unwrap_or_else(|e| panic!("{e}"));
        let _ = acc.push(0, 20.0);
        let json = serde_json::to_string(&acc).unwrap_or_default();
        let back: MktAccumulator =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, acc);
    }

    #[test]
    fn accumulator_resumes_after_a_serde_round_trip() {
        let mut acc = MktAccumulator::new(EA).unwrap_or_else(|e| panic!("{e}"));
        let _ = acc.push(0, 20.0);
        let _ = acc.push(HOUR, 30.0);
        let json = serde_json::to_string(&acc).unwrap_or_default();
        let mut resumed: MktAccumulator =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        let _ = resumed.push(2 * HOUR, 30.0);
        let _ = acc.push(2 * HOUR, 30.0);
        assert_eq!(resumed.value(), acc.value());
    }

    #[test]
    fn windowed_forgets_data_older_than_the_window() {
        let mut w = WindowedMkt::new(EA, HOUR, WindowedMkt::DEFAULT_BUCKET_MS)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut t = 0;
        while t <= 10 * HOUR {
            let _ = w.push(t, 30.0);
            t += 60_000;
        }
        assert!(close(w.value(), 30.0, 1e-9));
        while t <= 12 * HOUR {
            let _ = w.push(t, 5.0);
            t += 60_000;
        }
        assert!(close(w.value(), 5.0, 1e-9), "{:?}", w.value());
    }

    #[test]
    fn windowed_memory_stays_bounded_across_long_gaps() {
        let mut w = WindowedMkt::new(EA, HOUR, 60_000).unwrap_or_else(|e| panic!("{e}"));
        let _ = w.push(0, 5.0);
        let _ = w.push(1_000 * HOUR, 6.0);
        assert!(w.bucket_count() <= 62, "{}", w.bucket_count());
        assert!(close(w.value(), 5.0, 1e-9));
        for i in 0..5_000 {
            let _ = w.push(1_000 * HOUR + i * 7_000, 5.0);
            assert!(w.bucket_count() <= 62);
        }
    }

    #[test]
    fn windowed_state_with_damaged_bucket_length_does_not_panic() {
        let w = WindowedMkt::new(EA, HOUR, 60_000).unwrap_or_else(|e| panic!("{e}"));
        let mut json = serde_json::to_value(&w).unwrap_or_default();
        json["bucket_ms"] = serde_json::json!(0);
        json["window_ms"] = serde_json::json!(-5);
        let mut damaged: WindowedMkt =
            serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        let _ = damaged.push(0, 5.0);
        let _ = damaged.push(10 * HOUR, 6.0);
        assert!(damaged.bucket_count() <= 2);
    }

    #[test]
    fn windowed_matches_the_whole_series_while_shorter_than_the_window() {
        let samples = [(0, 4.0), (3 * HOUR, 12.0), (4 * HOUR, 2.0), (6 * HOUR, 8.0)];
        let mut w = WindowedMkt::new(EA, 24 * HOUR, 60_000).unwrap_or_else(|e| panic!("{e}"));
        for (t, c) in samples {
            let _ = w.push(t, c);
        }
        let whole = mkt(&samples, EA).unwrap_or(f64::NAN);
        assert!(close(w.value(), whole, 1e-9));
    }

    #[test]
    fn csv_with_header_and_blank_lines_parses() {
        let csv = "\u{feff}time,temperature_c\n\n2026-11-25T20:00:00Z,20\r\n\
                   2026-11-25T21:00:00+00:00,30\n2026-11-25T22:00:00.000Z,30\n\n";
        let m = mkt_from_csv(csv.as_bytes(), EA).unwrap_or(f64::NAN);
        assert!((m - 26.2599).abs() < 1e-4, "{m}");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let cases = [
            (
                "time,temperature_c\nyesterday,5\n",
                "line 2: time \"yesterday\" is not an RFC 3339",
            ),
            (
                "2026-11-25T20:00:00Z,warm\n",
                "line 1: temperature \"warm\"",
            ),
            (
                "2026-11-25T20:00:00Z,-300\n",
                "line 1: temperature \"-300\"",
            ),
            ("\n2026-11-25T20:00:00Z\n", "line 2: expected two fields"),
            ("2026-11-25T20:00:00Z,5,6\n", "line 1: expected two fields"),
            (
                "2026-11-25T20:00:00Z,5\n\n2026-11-25T19:00:00Z,5\n",
                "line 3: time 2026-11-25T19:00:00Z is not after",
            ),
            (
                "2026-11-25T20:00:00Z,5\n2026-11-25T20:00:00Z,5\n",
                "line 2: time",
            ),
            ("time,temperature_c\n\n", "no samples"),
        ];
        for (csv, expected) in cases {
            let message = match mkt_from_csv(csv.as_bytes(), EA) {
                Ok(v) => format!("unexpectedly Ok({v})"),
                Err(e) => e.to_string(),
            };
            assert!(message.starts_with(expected), "{csv:?}: {message}");
        }
    }

    fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
        proptest::collection::vec((1i64..10 * HOUR, -40.0f64..60.0), 1..60).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(dt, c)| {
                    t += dt;
                    (t, c)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn mkt_lies_between_min_and_max(samples in series()) {
            let m = mkt(&samples, EA).unwrap_or(f64::NAN);
            let min = samples.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
            let max = samples.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(m >= min - 1e-9 && m <= max + 1e-9, "{m} not in [{min}, {max}]");
        }

        #[test]
        fn mkt_is_at_least_the_time_weighted_mean(samples in series()) {
            prop_assume!(samples.len() >= 2);
            let m = mkt(&samples, EA).unwrap_or(f64::NAN);
            prop_assert!(m >= time_weighted_mean(&samples) - 1e-9);
        }

        #[test]
        fn windowed_with_a_long_window_equals_the_accumulator(samples in series()) {
            let mut w = WindowedMkt::new(EA, 1_000 * HOUR, 60_000).unwrap_or_else(|e| panic!("{e}"));
            for &(t, c) in &samples {
                prop_assert!(w.push(t, c).is_ok());
            }
            let whole = mkt(&samples, EA).unwrap_or(f64::NAN);
            prop_assert!(close(w.value(), whole, 1e-6), "{:?} vs {whole}", w.value());
        }

        #[test]
        fn any_input_never_panics(
            samples in proptest::collection::vec((any::<i64>(), any::<f64>()), 0..20),
            ea in any::<f64>(),
            window in any::<i64>(),
            bucket in any::<i64>(),
        ) {
            let _ = mkt(&samples, ea);
            if let Ok(mut w) = WindowedMkt::new(ea, window, bucket) {
                for &(t, c) in &samples {
                    let _ = w.push(t, c);
                }
                let _ = w.value();
            }
        }

        #[test]
        fn csv_garbage_never_panics(s in "\\PC{0,200}") {
            let _ = mkt_from_csv(s.as_bytes(), EA);
        }
    }
}
