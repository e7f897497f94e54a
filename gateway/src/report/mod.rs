//! The trip report of one pallet (SSCC) or one lot: identity, route of stays,
//! temperature chart, excursions, MKT, time out of range against the
//! allowance, the monitoring gaps and data completeness, and a plain
//! verdict, as one printable HTML document.
//!
//! Design: a pure function of the database contents, the configuration, the
//! subject and the time it is asked (`now_ms`), so the CLI (offline, reading
//! a database file) and the HTTP API produce the same document. [`build`]
//! gathers the facts into a [`TripReport`]; [`html::render`] only lays them
//! out. Nothing here writes to the store. See `docs/report.md`.
//!
//! Over 500 lines because `build` gathers every fact in one pass over the
//! store; what is decided from the facts lives beside it in `report/`
//! (`findings`, `record`, `verdict`) and the layout in `html`.
//!
//! One room: `build` gathers what every section of the report reads (stays, excursions, MKT,
//! gaps) in one pass over the store; the verdict, findings, record and HTML each have files of
//! their own.

pub mod chart;
mod findings;
mod html;
mod record;
mod verdict;

pub use findings::is_freeze;
pub use record::{coverage, Coverage, Gap, GapCause};
pub use verdict::{
    judge, ExcursionFinding, Findings, LotFindings, MktFinding, RecordHole, RuleSpend, Verdict,
};

use std::collections::{BTreeMap, BTreeSet};

use coldgate_sensor_drivers::Quantity;

use self::chart::{ChartError, ChartSpec, Limits, Mark, MarkKind, Series};
use crate::config::{Config, LimitConfig, ProfileConfig};
use crate::event::parse_rfc3339;
use crate::event::payload::{self, Direction, Envelope};
use crate::excursion::mkt::{MktAccumulator, DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL};
use crate::excursion::EngineState;
use crate::manifest::{Item, Pallet};
use crate::store::{Store, StoreError};

/// Points per sensor line on the report's chart (min/max kept per bucket).
pub const CHART_POINTS: usize = 1200;
/// The chart is drawn twice, each shown about 1:1 where it is used so its
/// text keeps its size: wide on a screen and on A4 (the page's text column
/// is about 760 px), narrow on a phone.
const CHART_WIDTH: u32 = 760;
const CHART_HEIGHT: u32 = 320;
const NARROW_CHART_WIDTH: u32 = 360;
const NARROW_CHART_HEIGHT: u32 = 300;

/// What the report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportSubject {
    /// One pallet, by its SSCC (all its stays on this gateway).
    Sscc(String),
    /// One lot; `gtin` is needed only when two GTINs share the lot number.
    Lot { gtin: Option<String>, lot: String },
}

impl std::fmt::Display for ReportSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportSubject::Sscc(s) => write!(f, "pallet SSCC {s}"),
            ReportSubject::Lot { gtin: Some(g), lot } => write!(f, "lot {lot} of GTIN {g}"),
            ReportSubject::Lot { gtin: None, lot } => write!(f, "lot {lot}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is not in the manifest of this database (never loaded on this gateway)")]
    NotFound(ReportSubject),
    #[error("lot {lot} exists under several GTINs ({}); name one with --gtin", gtins.join(", "))]
    AmbiguousLot { lot: String, gtins: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine state in {path} cannot be decoded: {source}")]
    State {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Chart(#[from] ChartError),
}

/// How long a reading vouches for the time after it when its profile sets
/// no `silence`: the data-completeness figure needs some expected interval.
pub const DEFAULT_HOLD_MS: i64 = 10 * 60_000;

/// One pallet stay on the route.
#[derive(Debug, Clone, PartialEq)]
pub struct Stay {
    pub sscc: String,
    pub zone: String,
    /// The profile judging it (the pallet's, or the zone's).
    pub profile: String,
    pub loaded_at_ms: i64,
    pub unloaded_at_ms: Option<i64>,
    /// Where the report ends the stay: its unload, or for a pallet still on
    /// board the last reading of its zone (the time the report is "as of").
    pub end_ms: i64,
}

/// One excursion that affected the subject, as its latest stored event says.
#[derive(Debug, Clone, PartialEq)]
pub struct Excursion {
    pub id: String,
    pub sensor: String,
    pub zone: String,
    pub quantity: String,
    pub unit: String,
    pub direction: String,
    pub limit: f64,
    /// The rule as people say it and the side it broke: `2–8 °C, high`.
    pub rule: String,
    pub profile: String,
    pub started_ms: i64,
    /// None while it is still open.
    pub ended_ms: Option<i64>,
    /// While open: its sensor's last reading of the quantity, the time the
    /// excursion is known to have lasted to.
    pub ongoing_as_of_ms: Option<i64>,
    /// Time beyond the limit (`duration_s` of the ended event); while open,
    /// to its last reading (never to the time the report is made).
    pub duration_ms: i64,
    pub min: f64,
    pub max: f64,
    /// The cumulative budget (allowance) of its rule; None when the rule
    /// has none.
    pub budget_ms: Option<i64>,
    /// A temperature excursion low enough to freeze the goods (see
    /// [`is_freeze`]).
    pub freeze: bool,
}

/// A door opening in a zone and time the subject was in.
#[derive(Debug, Clone, PartialEq)]
pub struct DoorOpening {
    pub zone: String,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
}

/// Time out of range of one lot under one rule, against its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleExposure {
    /// `profile/quantity/index`, the ledger's name of the rule.
    pub rule: String,
    /// The rule as people say it (`2–8 °C`); the ledger's name when the
    /// configuration no longer has the rule.
    pub name: String,
    pub total_ms: i64,
    pub budget_ms: Option<i64>,
}

/// One lot's exposure as the engine's ledger recorded it (over all pallets
/// and stays of the lot on this gateway).
#[derive(Debug, Clone, PartialEq)]
pub struct LotSummary {
    pub gtin: String,
    pub lot: String,
    pub expiry: Option<String>,
    pub pallets: Vec<String>,
    pub rules: Vec<RuleExposure>,
    /// MKT over everything the lot saw on board (°C), per the ledger.
    pub mkt: Option<f64>,
    /// Time the ledger's MKT has watched the lot, ms.
    pub mkt_watched_ms: i64,
    /// Limits reported exhausted (`budget:<rule>`, `mkt_stay`, `mkt_window`).
    pub exhausted: Vec<String>,
}

/// Everything the report shows, gathered from the store and the config.
#[derive(Debug, Clone)]
pub struct TripReport {
    pub subject: ReportSubject,
    pub gateway_id: String,
    pub generated_ms: i64,
    /// Identity lines: (SSCC, item) for every item of the subject.
    pub items: Vec<(String, Item)>,
    pub stays: Vec<Stay>,
    pub excursions: Vec<Excursion>,
    pub doors: Vec<DoorOpening>,
    pub lots: Vec<LotSummary>,
    /// MKT over the readings of the subject's zones during its stays, °C.
    pub mkt: Option<f64>,
    /// The profile's MKT limit, °C.
    pub mkt_limit: Option<f64>,
    /// Per lot, whether its MKT limit was evaluated and what it said.
    pub mkt_findings: Vec<(String, MktFinding)>,
    /// Monitoring gaps and downtime that overlap the stays.
    pub gaps: Vec<Gap>,
    /// Share of the stays (times each judged quantity) with readings at the
    /// expected interval, 0..=1; None when no quantity is judged.
    pub completeness: Option<f64>,
    /// Where the report ends an open gap or stay: the last reading.
    pub as_of_ms: i64,
    pub verdict: Verdict,
    /// Why the verdict is what it is, one sentence each.
    pub reasons: Vec<String>,
    /// Temperature readings on the chart (after downsampling), drawn for
    /// a screen or A4 and for a phone.
    pub chart_svg: String,
    pub narrow_chart_svg: String,
}

/// The report as one self-contained, printable HTML document.
pub fn render_html(
    store: &Store,
    config: &Config,
    subject: &ReportSubject,
    now_ms: i64,
) -> Result<String, ReportError> {
    Ok(html::render(&build(store, config, subject, now_ms)?))
}

/// A profile by id: the file's own, or a preset of that id.
fn profile<'a>(config: &'a Config, id: &str) -> Option<&'a ProfileConfig> {
    config.profile(id)
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Gathers the report's facts.
pub fn build(
    store: &Store,
    config: &Config,
    subject: &ReportSubject,
    now_ms: i64,
) -> Result<TripReport, ReportError> {
    let state = crate::snapshot::load_engine_state(store).map_err(|e| match e {
        crate::snapshot::SnapshotError::Store(e) => ReportError::Store(e),
        crate::snapshot::SnapshotError::Decode { path, source, .. } => {
            ReportError::State { path, source }
        }
    })?;
    let zone_profile: BTreeMap<&str, &str> = config
        .zones
        .iter()
        .map(|z| (z.id.as_str(), z.profile.as_str()))
        .collect();

    // Which stays, items and lots the subject covers.
    let (pallets, lot_keys): (Vec<&Pallet>, BTreeSet<(String, String)>) = match subject {
        ReportSubject::Sscc(sscc) => {
            let stays: Vec<&Pallet> = state
                .manifest
                .stays
                .iter()
                .filter(|p| &p.sscc == sscc)
                .collect();
            let lots = stays
                .iter()
                .flat_map(|p| &p.items)
                .map(|i| (i.gtin.clone(), i.lot.clone()))
                .collect();
            (stays, lots)
        }
        ReportSubject::Lot { gtin, lot } => {
            let mut gtins: BTreeSet<String> = state
                .manifest
                .stays
                .iter()
                .flat_map(|p| &p.items)
                .filter(|i| &i.lot == lot && gtin.as_ref().is_none_or(|g| *g == i.gtin))
                .map(|i| i.gtin.clone())
                .collect();
            gtins.extend(
                state
                    .ledger
                    .lots
                    .values()
                    .filter(|l| &l.lot == lot && gtin.as_ref().is_none_or(|g| *g == l.gtin))
                    .map(|l| l.gtin.clone()),
            );
            if gtins.len() > 1 {
                return Err(ReportError::AmbiguousLot {
                    lot: lot.clone(),
                    gtins: gtins.into_iter().collect(),
                });
            }
            let Some(g) = gtins.into_iter().next() else {
                return Err(ReportError::NotFound(subject.clone()));
            };
            let stays = state
                .manifest
                .stays
                .iter()
                .filter(|p| p.items.iter().any(|i| i.gtin == g && &i.lot == lot))
                .collect();
            (stays, BTreeSet::from([(g, lot.clone())]))
        }
    };
    if pallets.is_empty() {
        return Err(ReportError::NotFound(subject.clone()));
    }
    let items: Vec<(String, Item)> = pallets
        .iter()
        .flat_map(|p| p.items.iter().map(|i| (p.sscc.clone(), i.clone())))
        .filter(|(_, i)| lot_keys.contains(&(i.gtin.clone(), i.lot.clone())))
        .collect();

    // Temperature sensors per zone, and the readings of each during the
    // subject's stays in its zone.
    let temp_sensors = |zone: &str| -> Vec<String> {
        config
            .sensors
            .iter()
            .filter(|s| s.zone == zone && s.quantities.contains(&Quantity::Temperature))
            .map(|s| s.id.clone())
            .collect()
    };
    let mut stays = Vec::new();
    let mut series_points: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for p in &pallets {
        let profile_id = p
            .profile
            .clone()
            .or_else(|| zone_profile.get(p.zone.as_str()).map(|s| s.to_string()))
            .unwrap_or_default();
        let until = p.unloaded_at_ms.unwrap_or(i64::MAX);
        let mut last_seen = None;
        for sensor in temp_sensors(&p.zone) {
            let points = series_points.entry(sensor.clone()).or_default();
            store.for_each_reading(Some(&sensor), p.loaded_at_ms, until, |r| {
                if r.quantity == Quantity::Temperature && r.value.is_finite() {
                    points.push((r.at_ms, r.value));
                    last_seen = Some(last_seen.map_or(r.at_ms, |l: i64| l.max(r.at_ms)));
                }
                true
            })?;
        }
        let end_ms = match p.unloaded_at_ms {
            Some(u) => u,
            None => last_seen.unwrap_or(now_ms).max(p.loaded_at_ms),
        };
        stays.push(Stay {
            sscc: p.sscc.clone(),
            zone: p.zone.clone(),
            profile: profile_id,
            loaded_at_ms: p.loaded_at_ms,
            unloaded_at_ms: p.unloaded_at_ms,
            end_ms,
        });
    }
    for points in series_points.values_mut() {
        // Two stays of one lot in one zone at once read the same readings.
        points.sort_by_key(|(t, _)| *t);
        points.dedup_by_key(|(t, _)| *t);
    }
    let from_ms = stays.iter().map(|s| s.loaded_at_ms).min().unwrap_or(now_ms);
    let to_ms = stays
        .iter()
        .map(|s| s.end_ms)
        .max()
        .unwrap_or(now_ms)
        .max(from_ms + 60_000);
    let as_of_ms = to_ms;

    // The main profile: the first stay's (a lot on pallets of different
    // profiles is charted against the first; each excursion names its own).
    let main_profile = stays.first().and_then(|s| profile(config, &s.profile));

    // Events: excursions naming the subject, doors in its zones and times.
    let mut excursions: BTreeMap<String, Excursion> = BTreeMap::new();
    let mut doors: BTreeMap<String, DoorOpening> = BTreeMap::new();
    // A lot's ledger also lists the excursions of its other pallets; a
    // pallet's report keeps to the excursions that named the pallet.
    let ledger_ids: BTreeSet<&String> = match subject {
        ReportSubject::Sscc(_) => BTreeSet::new(),
        ReportSubject::Lot { .. } => lot_keys
            .iter()
            .filter_map(|(g, l)| state.ledger.lot(g, l))
            .flat_map(|l| &l.excursions)
            .collect(),
    };
    let events = store.events_between(i64::MIN, i64::MAX)?;
    for ev in &events {
        match ev.topic.as_str() {
            "events/excursion" => {
                let Ok(Envelope { body: e, .. }) =
                    serde_json::from_slice::<Envelope<payload::Excursion>>(&ev.payload)
                else {
                    continue;
                };
                let names_subject = ledger_ids.contains(&e.excursion_id)
                    || e.affected.iter().any(|a| match subject {
                        ReportSubject::Sscc(s) => &a.sscc == s,
                        ReportSubject::Lot { .. } => a
                            .items
                            .iter()
                            .any(|i| lot_keys.contains(&(i.gtin.clone(), i.lot.clone()))),
                    });
                let Some(started_ms) = parse_rfc3339(&e.started_at) else {
                    continue;
                };
                if !names_subject {
                    continue;
                }
                let ended_ms = e.ended_at.as_deref().and_then(parse_rfc3339);
                // Time beyond the limit, as the event counts it (not the
                // alarm's span: hysteresis only delays the alarm's end). An
                // open one is completed below, from its last reading.
                let duration_ms = e.duration_s.saturating_mul(1000);
                let rule = excursion_rule(config, &e);
                let budget_ms = rule.and_then(|r| r.allowance(e.direction)).map(ms);
                let rule = match rule {
                    Some(r) => format!("{}, {}", rule_name(r), e.direction.as_str()),
                    None => event_rule_name(&e),
                };
                let freeze = is_freeze(&e);
                let row = Excursion {
                    id: e.excursion_id.clone(),
                    sensor: e.sensor_id,
                    zone: e.zone,
                    quantity: e.quantity.as_str().to_string(),
                    unit: e.unit,
                    direction: e.direction.as_str().to_string(),
                    limit: e.limit,
                    rule,
                    profile: e.profile,
                    started_ms,
                    ended_ms,
                    ongoing_as_of_ms: None,
                    duration_ms,
                    min: e.min,
                    max: e.max,
                    budget_ms,
                    freeze,
                };
                // The latest event of an excursion (its `ended`) wins.
                excursions.insert(e.excursion_id, row);
            }
            "events/door" => {
                let Ok(Envelope { body: d, .. }) =
                    serde_json::from_slice::<Envelope<payload::Door>>(&ev.payload)
                else {
                    continue;
                };
                let Some(opened_ms) = parse_rfc3339(&d.opened_at) else {
                    continue;
                };
                let closed_ms = d.closed_at.as_deref().and_then(parse_rfc3339);
                let during_a_stay = stays.iter().any(|s| {
                    s.zone == d.zone
                        && opened_ms <= s.end_ms
                        && closed_ms.is_none_or(|c| c >= s.loaded_at_ms)
                });
                if during_a_stay {
                    doors.insert(
                        d.door_id,
                        DoorOpening {
                            zone: d.zone,
                            opened_ms,
                            closed_ms,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    let mut excursions: Vec<Excursion> = excursions.into_values().collect();
    for e in excursions.iter_mut().filter(|e| e.ended_ms.is_none()) {
        // Known to last until its sensor's last reading of the quantity;
        // after that nothing was seen, so it is "ongoing as of" that.
        let mut last = None;
        store.for_each_reading(Some(&e.sensor), e.started_ms, i64::MAX, |r| {
            if r.quantity.as_str() == e.quantity {
                last = Some(r.at_ms);
            }
            true
        })?;
        let as_of = last.unwrap_or(e.started_ms + e.duration_ms);
        e.ongoing_as_of_ms = Some(as_of);
        e.duration_ms = as_of - e.started_ms;
    }
    excursions.sort_by(|a, b| (a.started_ms, &a.id).cmp(&(b.started_ms, &b.id)));
    let mut doors: Vec<DoorOpening> = doors.into_values().collect();
    doors.sort_by_key(|d| d.opened_ms);

    // The lots' ledger entries.
    let lots: Vec<LotSummary> = lot_keys
        .iter()
        .map(|(g, l)| lot_summary(config, &state, g, l))
        .collect();

    // MKT over the trip: every temperature reading of the subject's zones
    // during its stays, in time order, sample-and-hold up to the profile's
    // silence limit (the ledger's method, over this subject only).
    let (ea, mkt_limit, hold) = match main_profile {
        Some(p) => (
            p.mkt
                .as_ref()
                .map_or(DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, |m| {
                    m.activation_energy
                }),
            p.mkt.as_ref().map(|m| m.limit),
            p.silence.map(ms),
        ),
        None => (DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, None, None),
    };
    let mut all: Vec<(i64, f64)> = series_points.values().flatten().copied().collect();
    all.sort_by_key(|(t, _)| *t);
    let mkt = MktAccumulator::new(ea).ok().and_then(|mut acc| {
        for (t, v) in all {
            // Two sensors at the same instant: the first counts.
            let _ = acc.push_held(t, v, hold);
        }
        acc.value()
    });

    // The record (gaps, completeness) and what the verdict is decided on.
    let record = findings::record(store, config, &stays, &events, as_of_ms)?;
    let (findings, mkt_findings) = findings::findings(main_profile, &lots, &excursions, &record);
    let (verdict, reasons) = judge(&findings);

    // The chart spans the readings (a pallet loaded long before its zone
    // reported would leave the line a sliver at the right edge), or the
    // stays when there are none.
    let first = series_points
        .values()
        .filter_map(|p| p.first())
        .map(|p| p.0)
        .min();
    let last = series_points
        .values()
        .filter_map(|p| p.last())
        .map(|p| p.0)
        .max();
    let (chart_from, chart_to) = match (first, last) {
        (Some(a), Some(b)) => (a, b.max(a + 60_000) + 1),
        _ => (from_ms, to_ms + 1),
    };
    let spec = ChartSpec {
        title: "During the stays".to_string(),
        unit: "°C".to_string(),
        from_ms: chart_from,
        to_ms: chart_to,
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        series: series_points
            .iter()
            .map(|(sensor, pts)| Series {
                label: sensor.clone(),
                points: chart::downsample(pts, chart_from, chart_to, CHART_POINTS),
            })
            .collect(),
        limits: main_profile.and_then(temperature_band),
        marks: excursions
            .iter()
            .filter(|e| e.quantity == "temperature")
            .map(|e| Mark {
                kind: MarkKind::Excursion,
                from_ms: e.started_ms,
                to_ms: e.ended_ms,
                label: e.rule.clone(),
            })
            .chain(doors.iter().map(|d| Mark {
                kind: MarkKind::Door,
                from_ms: d.opened_ms,
                to_ms: d.closed_ms,
                label: "door".to_string(),
            }))
            .collect(),
    };
    let chart_svg = chart::render_svg(&spec)?;
    let narrow_chart_svg = chart::render_svg(&ChartSpec {
        width: NARROW_CHART_WIDTH,
        height: NARROW_CHART_HEIGHT,
        ..spec
    })?;

    Ok(TripReport {
        subject: subject.clone(),
        gateway_id: config.gateway_id.clone(),
        generated_ms: now_ms,
        items,
        stays,
        excursions,
        doors,
        lots,
        mkt,
        mkt_limit,
        mkt_findings,
        gaps: record.gaps,
        completeness: record.completeness,
        as_of_ms,
        verdict,
        reasons,
        chart_svg,
        narrow_chart_svg,
    })
}

/// The shaded band: the tightest temperature limits of the profile.
fn temperature_band(p: &ProfileConfig) -> Option<Limits> {
    let rules = p
        .limits
        .iter()
        .filter(|l| l.quantity == Quantity::Temperature);
    let low = rules.clone().filter_map(|l| l.low).reduce(f64::max);
    let high = rules.filter_map(|l| l.high).reduce(f64::min);
    (low.is_some() || high.is_some()).then_some(Limits { low, high })
}

fn excursion_rule<'a>(config: &'a Config, e: &payload::Excursion) -> Option<&'a LimitConfig> {
    find_rule(
        config,
        &e.profile,
        e.quantity.as_str(),
        e.direction.as_str(),
        e.limit,
    )
}

/// The rule an excursion was raised under: the one of its profile and
/// quantity whose limit on the broken side (`high`/`low`) is the one the
/// event names.
pub fn find_rule<'a>(
    config: &'a Config,
    profile_id: &str,
    quantity: &str,
    direction: &str,
    limit: f64,
) -> Option<&'a LimitConfig> {
    let p = profile(config, profile_id)?;
    p.limits.iter().find(|l| {
        l.quantity.as_str() == quantity
            && match direction {
                "high" => l.high == Some(limit),
                _ => l.low == Some(limit),
            }
    })
}

/// A rule as people say it: `2–8 °C` for a band; for one side, `below 8
/// °C` when the limit itself is out of range and `max 8 °C` when only a
/// value beyond it is (the same for `above` and `min`).
pub fn rule_name(rule: &LimitConfig) -> String {
    let unit = unit_label(rule.quantity.unit());
    let n = |v: f64| {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match (rule.low, rule.high) {
        (Some(l), Some(h)) => format!("{}–{} {unit}", n(l), n(h)),
        (None, Some(h)) if rule.exclusive => format!("max {} {unit}", n(h)),
        (None, Some(h)) => format!("below {} {unit}", n(h)),
        (Some(l), None) if rule.exclusive => format!("min {} {unit}", n(l)),
        (Some(l), None) => format!("above {} {unit}", n(l)),
        (None, None) => format!("any {}", rule.quantity.as_str()),
    }
}

/// An excursion's rule named from its event alone (`high 8 °C`), for a
/// reader without the gateway's configuration: a profile since removed, or
/// the fleet, which never has it.
pub fn event_rule_name(e: &payload::Excursion) -> String {
    format!(
        "{} {} {}",
        e.direction.as_str(),
        e.limit,
        unit_label(&e.unit)
    )
}

/// The UN/CEFACT unit codes of the payloads, as people write them.
pub fn unit_label(code: &str) -> &str {
    Quantity::ALL
        .iter()
        .find(|q| q.unit() == code)
        .map_or(code, |q| q.symbol())
}

fn lot_summary(config: &Config, state: &EngineState, gtin: &str, lot: &str) -> LotSummary {
    let Some(l) = state.ledger.lot(gtin, lot) else {
        return LotSummary {
            gtin: gtin.to_string(),
            lot: lot.to_string(),
            expiry: None,
            pallets: Vec::new(),
            rules: Vec::new(),
            mkt: None,
            mkt_watched_ms: 0,
            exhausted: Vec::new(),
        };
    };
    let rules = l
        .out_of_range
        .iter()
        .map(|(label, accrued)| {
            // `profile/quantity/index/direction`
            let mut parts = label.rsplitn(4, '/');
            let direction = match parts.next() {
                Some("low") => Some(Direction::Low),
                Some("high") => Some(Direction::High),
                _ => None,
            };
            let index = parts.next().and_then(|i| i.parse::<usize>().ok());
            let _quantity = parts.next();
            let rule = parts
                .next()
                .and_then(|p| profile(config, p))
                .zip(index)
                .and_then(|(p, i)| p.limits.get(i));
            RuleExposure {
                rule: label.clone(),
                name: rule.map_or_else(|| label.clone(), rule_name),
                budget_ms: rule
                    .zip(direction)
                    .and_then(|(r, d)| r.allowance(d))
                    .map(ms),
                total_ms: accrued.total_ms,
            }
        })
        .collect();
    LotSummary {
        gtin: l.gtin.clone(),
        lot: l.lot.clone(),
        expiry: l.expiry.clone(),
        pallets: l.pallets.iter().cloned().collect(),
        rules,
        mkt: l.mkt_stay(),
        mkt_watched_ms: l.mkt.as_ref().map_or(0, |m| m.stay.duration_ms() as i64),
        exhausted: l.exhausted.iter().cloned().collect(),
    }
}

/// `2 h 05 min 30 s`, `4 min 10 s`, `12 s`.
pub fn format_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d} d {h:02} h {m:02} min")
    } else if h > 0 {
        format!("{h} h {m:02} min {s:02} s")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests;
