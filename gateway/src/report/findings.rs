//! From the report's facts to what the verdict is decided on: the record
//! (gaps, no data, completeness) and the [`Findings`] for [`super::judge`].
//!
//! Why here and not in `build`: the facts (stays, excursions, the ledger's
//! lots) are the report's; turning them into explicit findings is the one
//! place that changes when the excursion engine's types do (a freeze rule,
//! per-direction allowances, MKT over short stays).

use coldgate_sensor_drivers::Quantity;

use super::record::{coverage, stored_gaps, Gap, GapCause};
use super::verdict::{ExcursionFinding, Findings, LotFindings, MktFinding, RecordHole, RuleSpend};
use super::{format_duration, html, ms, profile, Excursion, LotSummary, Stay, DEFAULT_HOLD_MS};
use crate::config::{Config, ProfileConfig};
use crate::event::payload;
use crate::store::{Store, StoreError, StoredEvent};

/// What the stays' record holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Gaps and downtime that overlap the stays, in time order.
    pub gaps: Vec<Gap>,
    /// Judged quantities without a reading in a stay.
    pub no_data: Vec<RecordHole>,
    /// See [`super::TripReport::completeness`].
    pub completeness: Option<f64>,
    pub as_of_ms: i64,
}

/// The gaps the gateway recorded (events) that overlap the stays, and what
/// the readings cover of each stay for each quantity its profile judges; a
/// stretch of readings longer than the silence limit that no event explains
/// is a gap too.
pub fn record(
    store: &Store,
    config: &Config,
    stays: &[Stay],
    events: &[StoredEvent],
    as_of_ms: i64,
) -> Result<Record, StoreError> {
    let recorded = stored_gaps(events);
    // An unloaded stay ends before a gap that starts at its unload; an open
    // one is "as of" its last reading, where a gap still open begins.
    let watched_to = |s: &Stay| match s.unloaded_at_ms {
        Some(_) => s.end_ms - 1,
        None => s.end_ms,
    };
    let mut gaps: Vec<Gap> = recorded
        .iter()
        .filter(|g| {
            stays
                .iter()
                .any(|s| g.overlaps(&s.zone, s.loaded_at_ms, watched_to(s)))
        })
        .cloned()
        .collect();
    let mut no_data = Vec::new();
    let (mut covered, mut total) = (0i64, 0i64);
    for s in stays {
        let p = profile(config, &s.profile);
        let hold = p.and_then(|p| p.silence).map_or(DEFAULT_HOLD_MS, ms);
        for q in p.map(judged_quantities).unwrap_or_default() {
            let mut times = Vec::new();
            for sensor in config
                .sensors
                .iter()
                .filter(|x| x.zone == s.zone && x.quantities.contains(&q))
            {
                store.for_each_reading(Some(&sensor.id), s.loaded_at_ms, s.end_ms + 1, |r| {
                    if r.quantity == q && r.value.is_finite() {
                        times.push(r.at_ms);
                    }
                    true
                })?;
            }
            times.sort_unstable();
            let c = coverage(&times, s.loaded_at_ms, s.end_ms, hold);
            covered += c.covered_ms;
            total += c.total_ms;
            if c.readings == 0 {
                no_data.push(RecordHole {
                    sentence: format!(
                        "No {} reading in zone {} during the stay of pallet {} ({} to {}).",
                        q.as_str(),
                        s.zone,
                        s.sscc,
                        html::time(s.loaded_at_ms),
                        html::time(s.end_ms)
                    ),
                });
            }
            for (from, to) in c.holes {
                let explained = recorded.iter().any(|g| g.overlaps(&s.zone, from, to));
                if !explained {
                    gaps.push(Gap {
                        cause: GapCause::NoReadings,
                        zone: Some(s.zone.clone()),
                        sensor: None,
                        quantity: Some(q.as_str().to_string()),
                        start_ms: from,
                        end_ms: Some(to),
                    });
                }
            }
        }
    }
    gaps.sort_by_key(|g| g.start_ms);
    gaps.dedup();
    let completeness = (total > 0).then(|| covered as f64 / total as f64);
    Ok(Record {
        gaps,
        no_data,
        completeness,
        as_of_ms,
    })
}

/// The findings the verdict is decided on, and per lot its MKT finding (the
/// report prints those too).
pub fn findings(
    main_profile: Option<&ProfileConfig>,
    lots: &[LotSummary],
    excursions: &[Excursion],
    record: &Record,
) -> (Findings, Vec<(String, MktFinding)>) {
    let mkt_findings: Vec<(String, MktFinding)> = lots
        .iter()
        .map(|l| {
            (
                format!("{} ({})", l.lot, l.gtin),
                mkt_finding(main_profile, l),
            )
        })
        .collect();
    let findings = Findings {
        lots: lots
            .iter()
            .zip(&mkt_findings)
            .map(|(l, (name, mkt))| LotFindings {
                name: name.clone(),
                rules: l
                    .rules
                    .iter()
                    .map(|r| RuleSpend {
                        rule: r.name.clone(),
                        spent_ms: r.total_ms,
                        allowance_ms: r.budget_ms,
                        exhausted: l.exhausted.contains(&format!("budget:{}", r.rule)),
                    })
                    .collect(),
                mkt: mkt.clone(),
            })
            .collect(),
        excursions: excursions
            .iter()
            .map(|e| ExcursionFinding {
                id: e.id.clone(),
                what: format!("{} {}", e.quantity, e.rule),
                allowance_ms: e.budget_ms,
                freeze: e.freeze,
                ongoing_as_of: e.ongoing_as_of_ms.map(html::time),
            })
            .collect(),
        gaps: record
            .gaps
            .iter()
            .map(|g| RecordHole {
                sentence: gap_sentence(g, record.as_of_ms),
            })
            .collect(),
        no_data: record.no_data.clone(),
    };
    (findings, mkt_findings)
}

/// The quantities a profile judges: those with a limit, and temperature
/// when it has an MKT limit. Light only tells doors apart.
fn judged_quantities(p: &ProfileConfig) -> Vec<Quantity> {
    let mut q: Vec<Quantity> = p.limits.iter().map(|l| l.quantity).collect();
    if p.mkt.is_some() {
        q.push(Quantity::Temperature);
    }
    q.sort_by_key(|q| q.as_str());
    q.dedup();
    q
}

/// A freeze: an excursion of a freeze rule (`freeze = true`, as in the
/// `refrigerated` preset), or, under a profile without one, a temperature
/// excursion on the low side that reached 0 °C or below (water in the
/// product freezes), so a custom profile's cold excursion is not taken for
/// a mild low.
pub fn is_freeze(e: &payload::Excursion) -> bool {
    e.freeze
        || (e.quantity == Quantity::Temperature
            && e.direction == payload::Direction::Low
            && e.min <= 0.0)
}

/// What the report may say about a lot's MKT limit: "holds" only when it
/// was judged.
pub(super) fn mkt_finding(p: Option<&ProfileConfig>, l: &LotSummary) -> MktFinding {
    for (flag, over) in [("mkt_stay", "the stay"), ("mkt_window", "its window")] {
        if l.exhausted.iter().any(|f| f == flag) {
            return MktFinding::Exceeded {
                what: format!("its MKT limit over {over}"),
            };
        }
    }
    let Some(m) = p.and_then(|p| p.mkt.as_ref()) else {
        return MktFinding::NoLimit;
    };
    if let Some(w) = m.window.map(ms).filter(|w| l.mkt_watched_ms < *w) {
        return MktFinding::NotEvaluated {
            limit: m.limit,
            why: format!(
                "it was watched {}, shorter than the {} window the limit is judged over",
                format_duration(l.mkt_watched_ms),
                format_duration(w)
            ),
        };
    }
    match l.mkt {
        Some(v) if v > m.limit => MktFinding::Exceeded {
            what: format!("its MKT limit ({v:.2} °C against {:.1} °C)", m.limit),
        },
        Some(v) => MktFinding::Holds {
            value: v,
            limit: m.limit,
        },
        None => MktFinding::NotEvaluated {
            limit: m.limit,
            why: "no temperature reading reached the ledger".to_string(),
        },
    }
}

/// A gap as one sentence of the verdict's reasons.
fn gap_sentence(g: &Gap, as_of_ms: i64) -> String {
    let what = match (&g.cause, &g.sensor, &g.quantity, &g.zone) {
        (GapCause::GatewayDown, ..) => "The gateway was down".to_string(),
        (GapCause::GatewayStopped, Some(s), Some(q), _) => {
            format!("The gateway was stopped: no {q} from sensor {s}")
        }
        (_, Some(s), Some(q), _) => format!("Sensor {s} sent no {q}"),
        (_, Some(s), None, _) => format!("Sensor {s} was silent"),
        (_, None, Some(q), Some(z)) => format!("No {q} reading is stored for zone {z}"),
        _ => "Nothing was recorded".to_string(),
    };
    let until = match g.end_ms {
        Some(e) => format!("to {}", html::time(e)),
        None => "and is still open".to_string(),
    };
    format!(
        "Monitoring gap: {what} from {} {until} ({}).",
        html::time(g.start_ms),
        format_duration(g.length_ms(as_of_ms))
    )
}
