//! What the record covers: monitoring gaps as the gateway recorded them
//! (`events/sensor` silent/back, the `gateway` event `unclean_stop`) and
//! the data-completeness figure measured on the stored readings.
//!
//! Why both: the events say what the gateway noticed while it ran; the
//! readings are what a reviewer can check. A stretch without readings that
//! no event explains (a database from before gaps were recorded, a silence
//! the gateway missed) is still a hole in the record and is listed as one.

use serde::Deserialize;

use crate::event::parse_rfc3339;
use crate::event::payload::{self, Envelope, SensorPhase};
use crate::store::StoredEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// A sensor (or one of its quantities) fell silent: `events/sensor`.
    SensorSilent,
    /// The gateway was not running: `gateway` `unclean_stop`.
    GatewayDown,
    /// The gateway was stopped cleanly and started later: `events/sensor`
    /// with cause `gateway_stopped` (a clean stop raises no gateway event).
    GatewayStopped,
    /// The stored readings have a stretch longer than the silence limit
    /// that no event explains.
    NoReadings,
}

impl GapCause {
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::SensorSilent => "sensor silent",
            GapCause::GatewayDown => "gateway down",
            GapCause::GatewayStopped => "gateway stopped",
            GapCause::NoReadings => "no readings stored",
        }
    }
}

/// One stretch the gateway did not watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub cause: GapCause,
    /// None: every zone (the gateway itself was down).
    pub zone: Option<String>,
    pub sensor: Option<String>,
    pub quantity: Option<String>,
    /// The last reading (or proof of life) before it.
    pub start_ms: i64,
    /// The first reading after it (or the restart); None while still open.
    pub end_ms: Option<i64>,
}

impl Gap {
    /// To its end, or to `as_of_ms` while open.
    pub fn length_ms(&self, as_of_ms: i64) -> i64 {
        self.end_ms.unwrap_or(as_of_ms).max(self.start_ms) - self.start_ms
    }

    /// Whether it touches the stretch `from..=to` of `zone`.
    pub fn overlaps(&self, zone: &str, from_ms: i64, to_ms: i64) -> bool {
        self.zone.as_deref().is_none_or(|z| z == zone)
            && self.start_ms <= to_ms
            && self.end_ms.is_none_or(|e| e > from_ms)
    }
}

/// `events/sensor` as stored. Read here with only the fields the report
/// needs, so a `quantity` (per-quantity presence) is taken when present.
#[derive(Deserialize)]
struct GapEvent {
    phase: SensorPhase,
    sensor_id: String,
    zone: String,
    last_seen_at: String,
    #[serde(default)]
    quantity: Option<String>,
    #[serde(default)]
    cause: Option<payload::GapCause>,
}

/// The gaps recorded as events, in the order they opened. A `back` without
/// its `silent` (pruned, or from another build) is still a closed gap; a
/// `silent` without its `back` is open.
pub fn stored_gaps(events: &[StoredEvent]) -> Vec<Gap> {
    let mut gaps: Vec<Gap> = Vec::new();
    for ev in events {
        match ev.topic.as_str() {
            "events/sensor" => {
                let Ok(env) = serde_json::from_slice::<Envelope<GapEvent>>(&ev.payload) else {
                    continue;
                };
                let g = env.body;
                let cause = match g.cause {
                    None | Some(payload::GapCause::SensorSilent) => GapCause::SensorSilent,
                    Some(payload::GapCause::GatewayStopped) => GapCause::GatewayStopped,
                    // The `unclean_stop` event below covers every zone.
                    Some(payload::GapCause::GatewayDown) => continue,
                };
                if g.phase == SensorPhase::Fault {
                    // A fault is no gap by itself; its silence is.
                    continue;
                }
                let (Some(start), Some(at)) =
                    (parse_rfc3339(&g.last_seen_at), parse_rfc3339(&env.at))
                else {
                    continue;
                };
                let open = gaps.iter_mut().find(|x| {
                    x.cause == cause
                        && x.end_ms.is_none()
                        && x.sensor.as_deref() == Some(g.sensor_id.as_str())
                        && x.quantity == g.quantity
                        && x.start_ms == start
                });
                match (g.phase, open) {
                    (SensorPhase::Silent | SensorPhase::Fault, Some(_)) => {}
                    (SensorPhase::Back, Some(x)) => x.end_ms = Some(at),
                    (phase, None) => gaps.push(Gap {
                        cause,
                        zone: Some(g.zone),
                        sensor: Some(g.sensor_id),
                        quantity: g.quantity,
                        start_ms: start,
                        end_ms: (phase == SensorPhase::Back).then_some(at),
                    }),
                }
            }
            "events/gateway" => {
                let Ok(env) = serde_json::from_slice::<Envelope<payload::Gateway>>(&ev.payload)
                else {
                    continue;
                };
                if let payload::Gateway::UncleanStop {
                    last_alive_at,
                    started_at,
                    ..
                } = env.body
                {
                    let (Some(start), Some(end)) =
                        (parse_rfc3339(&last_alive_at), parse_rfc3339(&started_at))
                    else {
                        continue;
                    };
                    gaps.push(Gap {
                        cause: GapCause::GatewayDown,
                        zone: None,
                        sensor: None,
                        quantity: None,
                        start_ms: start,
                        end_ms: Some(end),
                    });
                }
            }
            _ => {}
        }
    }
    gaps
}

/// How much of `from..to` readings cover when each reading vouches for the
/// `hold_ms` after it (the load vouches for the first `hold_ms`, as the
/// engine's silence clock starts at the load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub covered_ms: i64,
    pub total_ms: i64,
    pub readings: usize,
    /// Stretches longer than `hold_ms` without a reading: (last, next).
    pub holes: Vec<(i64, i64)>,
}

/// `times` sorted ascending; those outside `from..=to` are ignored.
pub fn coverage(times: &[i64], from_ms: i64, to_ms: i64, hold_ms: i64) -> Coverage {
    let total_ms = (to_ms - from_ms).max(0);
    let inside: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| (from_ms..=to_ms).contains(t))
        .collect();
    if inside.is_empty() {
        return Coverage {
            covered_ms: 0,
            total_ms,
            readings: 0,
            holes: Vec::new(),
        };
    }
    let (mut covered_ms, mut holes, mut last) = (0, Vec::new(), from_ms);
    for t in inside.iter().copied().chain([to_ms]) {
        let d = t - last;
        covered_ms += d.min(hold_ms);
        if d > hold_ms {
            holes.push((last, t));
        }
        last = last.max(t);
    }
    Coverage {
        covered_ms,
        total_ms,
        readings: inside.len(),
        holes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn readings_at_the_expected_interval_cover_the_whole_stay() {
        let times: Vec<i64> = (0..=10).map(|i| i * 10 * S).collect();
        let c = coverage(&times, 0, 100 * S, 15 * S);
        assert_eq!((c.covered_ms, c.total_ms), (100 * S, 100 * S));
        assert!(c.holes.is_empty());
    }

    #[test]
    fn a_silence_longer_than_the_hold_is_a_hole_and_counts_only_its_held_part() {
        // Readings every 10 s except 30..90 s: 60 s silent, 15 s vouched for.
        let times: Vec<i64> = [0, 10, 20, 30, 90, 100].iter().map(|t| t * S).collect();
        let c = coverage(&times, 0, 100 * S, 15 * S);
        assert_eq!(c.holes, vec![(30 * S, 90 * S)]);
        assert_eq!(c.covered_ms, 100 * S - 45 * S);
    }

    #[test]
    fn a_silence_exactly_as_long_as_the_hold_is_not_a_hole() {
        let c = coverage(&[0, 15 * S, 30 * S], 0, 30 * S, 15 * S);
        assert!(c.holes.is_empty());
        assert_eq!(c.covered_ms, c.total_ms);
    }

    #[test]
    fn no_reading_at_all_covers_nothing() {
        let c = coverage(&[200 * S], 0, 100 * S, 15 * S);
        assert_eq!((c.covered_ms, c.readings), (0, 0));
    }

    #[test]
    fn a_late_first_reading_and_an_early_last_one_leave_holes_at_both_ends() {
        let c = coverage(&[40 * S, 50 * S], 0, 100 * S, 15 * S);
        assert_eq!(c.holes, vec![(0, 40 * S), (50 * S, 100 * S)]);
        assert_eq!(c.covered_ms, 15 * S + 10 * S + 15 * S);
    }
}
