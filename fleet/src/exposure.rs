//! Exposure across legs: a lot's stability allowance is spent over its
//! whole journey, not per container (docs/fleet.md, "Exposure across legs").
//!
//! Each gateway's excursion events name the lots on board (`affected`) and
//! the time beyond the limit so far. The fleet keeps, per lot and per
//! excursion, the largest duration reported (a resend or a late `started`
//! after its `ended` changes nothing), and sums over excursions: the total
//! is the same whatever order the events arrive in. Monitoring gaps are
//! kept per gateway and zone so a lot's unmonitored time travels with it.
//! The MKT over all legs is in `mkt`.

use std::collections::BTreeMap;

use coldgate::event::payload::{Excursion, ExcursionPhase, Gateway, SensorGap, SensorPhase};
use coldgate::report::Verdict;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::{Client, Transaction};

use crate::ingest::Item;

/// Where the fleet's exposure alerts are published.
pub const ALERT_SUBJECT: &str = "fleet.alerts.exposure";

/// One lot's share of one excursion on one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct LotExcursion {
    pub gtin: String,
    pub lot: String,
    pub gateway_id: String,
    pub excursion_id: String,
    pub rule: String,
    pub direction: String,
    pub allowance_s: Option<i64>,
    pub freeze: bool,
    pub duration_s: i64,
    pub unknown_s: i64,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub mean: f64,
}

/// Unmonitored time on a gateway: one zone (`*`: the whole gateway, which
/// was down).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoringGap {
    pub gateway_id: String,
    pub zone: String,
    pub source: String,
    pub from: OffsetDateTime,
    pub to: Option<OffsetDateTime>,
}

fn at(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Reads the excursion, sensor-gap and unclean-stop events among `items`.
pub fn observe(items: &[Item]) -> (Vec<LotExcursion>, Vec<MonitoringGap>) {
    let mut lots = Vec::new();
    let mut gaps = Vec::new();
    for item in items {
        let Item::Event(e) = item else { continue };
        match e.kind.as_str() {
            "excursion" => {
                let Ok(x) = serde_json::from_value::<Excursion>(e.payload.clone()) else {
                    continue;
                };
                let Some(started_at) = at(&x.started_at) else {
                    continue;
                };
                let ended_at = match x.phase {
                    ExcursionPhase::Ended => x.ended_at.as_deref().and_then(at).or(Some(e.at)),
                    ExcursionPhase::Started => None,
                };
                let rule = if x.rule.is_empty() {
                    format!("{}/{}", x.profile, x.unit)
                } else {
                    x.rule.clone()
                };
                let mut seen = std::collections::BTreeSet::new();
                for p in &x.affected {
                    for i in &p.items {
                        if seen.insert((i.gtin.clone(), i.lot.clone())) {
                            lots.push(LotExcursion {
                                gtin: i.gtin.clone(),
                                lot: i.lot.clone(),
                                gateway_id: e.gateway.clone(),
                                excursion_id: x.excursion_id.clone(),
                                rule: rule.clone(),
                                direction: x.direction.as_str().to_string(),
                                allowance_s: x.allowance_s,
                                freeze: x.freeze,
                                duration_s: x.duration_s,
                                unknown_s: x.unknown_s,
                                started_at,
                                ended_at,
                                mean: x.mean,
                            });
                        }
                    }
                }
            }
            "sensor" => {
                let Ok(g) = serde_json::from_value::<SensorGap>(e.payload.clone()) else {
                    continue;
                };
                let Some(from) = at(&g.last_seen_at) else {
                    continue;
                };
                let to = match g.phase {
                    SensorPhase::Silent => None,
                    SensorPhase::Back => Some(e.at),
                    SensorPhase::Fault => continue,
                };
                gaps.push(MonitoringGap {
                    gateway_id: e.gateway.clone(),
                    zone: g.zone.clone(),
                    source: format!("sensor {}", g.sensor_id),
                    from,
                    to,
                });
            }
            "gateway" => {
                if let Ok(Gateway::UncleanStop {
                    last_alive_at,
                    started_at,
                    ..
                }) = serde_json::from_value::<Gateway>(e.payload.clone())
                {
                    if let (Some(from), Some(to)) = (at(&last_alive_at), at(&started_at)) {
                        gaps.push(MonitoringGap {
                            gateway_id: e.gateway.clone(),
                            zone: "*".into(),
                            source: "gateway down".into(),
                            from,
                            to: Some(to),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    (lots, gaps)
}

/// A lot's time beyond one rule's limit in one direction, over the journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub gtin: String,
    pub lot: String,
    pub rule: String,
    pub direction: String,
    pub allowance_s: Option<i64>,
    pub total_s: i64,
    /// Per gateway: what each leg's own ledger saw.
    pub per_gateway: BTreeMap<String, i64>,
}

impl Budget {
    /// Used up over the journey though no gateway saw it used up alone:
    /// what only the fleet can tell (a gateway raises its own `exhausted`).
    /// Used up means reached, as the gateway's ledger counts it
    /// (docs/excursions.md, "Cumulative budgets").
    pub fn exhausted_across_legs(&self) -> bool {
        self.allowance_s
            .is_some_and(|a| self.total_s >= a && self.per_gateway.values().all(|leg| *leg < a))
    }

    pub fn exhausted(&self) -> bool {
        self.allowance_s.is_some_and(|a| self.total_s >= a)
    }
}

/// Sums per lot, rule and direction; each excursion counts once with the
/// largest duration reported for it, and time that several excursions of one
/// gateway share counts once (the union per gateway).
///
/// Why the union: every sensor of a zone has its own excursion, so a zone
/// with four sensors reports the same warm hour four times; the gateway's
/// own ledger counts it once (`coldgate::excursion::Accrued`) and so must
/// the fleet, or one leg would look like four. Each excursion's time beyond
/// the limit is taken as `[started_at, started_at + duration_s)`: exact for
/// sensors that saw the same excursion, never less than the longest of
/// them nor more than their sum when they only partly overlap.
pub fn budgets(rows: &[LotExcursion]) -> Vec<Budget> {
    let mut per_excursion: BTreeMap<(&str, &str, &str, &str, &str, &str), &LotExcursion> =
        BTreeMap::new();
    for r in rows {
        let k = (
            r.gtin.as_str(),
            r.lot.as_str(),
            r.rule.as_str(),
            r.direction.as_str(),
            r.gateway_id.as_str(),
            r.excursion_id.as_str(),
        );
        let slot = per_excursion.entry(k).or_insert(r);
        if r.duration_s > slot.duration_s {
            *slot = r;
        }
    }
    // (gtin, lot, rule, direction, gateway) → (allowance, spans).
    type Leg<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
    type Spans = (Option<i64>, Vec<(i64, i64)>);
    let mut per_leg: BTreeMap<Leg, Spans> = BTreeMap::new();
    for ((gtin, lot, rule, direction, gw, _), r) in per_excursion {
        let (allowance, spans) = per_leg
            .entry((gtin, lot, rule, direction, gw))
            .or_insert((r.allowance_s, Vec::new()));
        // Gateways configured differently: the strictest allowance judges.
        *allowance = match (*allowance, r.allowance_s) {
            (Some(a), Some(c)) => Some(a.min(c)),
            _ => None,
        };
        let from = r.started_at.unix_timestamp();
        spans.push((from, from.saturating_add(r.duration_s.max(0))));
    }
    let mut out: BTreeMap<(&str, &str, &str, &str), Budget> = BTreeMap::new();
    for ((gtin, lot, rule, direction, gw), (allowance_s, spans)) in per_leg {
        let b = out
            .entry((gtin, lot, rule, direction))
            .or_insert_with(|| Budget {
                gtin: gtin.into(),
                lot: lot.into(),
                rule: rule.into(),
                direction: direction.into(),
                allowance_s,
                total_s: 0,
                per_gateway: BTreeMap::new(),
            });
        b.allowance_s = match (b.allowance_s, allowance_s) {
            (Some(a), Some(c)) => Some(a.min(c)),
            _ => None,
        };
        let leg = union_s(spans);
        b.total_s += leg;
        *b.per_gateway.entry(gw.into()).or_default() += leg;
    }
    out.into_values().collect()
}

/// Seconds covered by `[from, to)` spans, each instant once.
fn union_s(mut spans: Vec<(i64, i64)>) -> i64 {
    spans.sort_unstable();
    let mut total = 0;
    let mut reached = i64::MIN;
    for (from, to) in spans {
        let from = from.max(reached);
        if to > from {
            total += to - from;
            reached = to;
        }
    }
    total
}

pub(crate) const EXCURSION_COLUMNS: &str =
    "gtin, lot, gateway_id, excursion_id, rule, direction, allowance_s, is_freeze,
    duration_s, unknown_s, started_at, ended_at, mean";

pub(crate) fn excursion_of(r: &tokio_postgres::Row) -> LotExcursion {
    LotExcursion {
        gtin: r.get(0),
        lot: r.get(1),
        gateway_id: r.get(2),
        excursion_id: r.get(3),
        rule: r.get(4),
        direction: r.get(5),
        allowance_s: r.get(6),
        freeze: r.get(7),
        duration_s: r.get(8),
        unknown_s: r.get(9),
        started_at: r.get(10),
        ended_at: r.get(11),
        mean: r.get(12),
    }
}

/// Applies a batch's excursions and gaps; raises `budget_exhausted` for a
/// lot whose legs together pass an allowance no leg passed alone. Returns
/// the alerts raised.
pub async fn apply(tx: &Transaction<'_>, items: &[Item]) -> Result<u64, tokio_postgres::Error> {
    mkt::apply(tx, &mkt::observe(items)).await?;
    let (lots, gaps) = observe(items);
    for g in &gaps {
        tx.execute(
            "INSERT INTO monitoring_gaps (gateway_id, zone, source, from_at, to_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (gateway_id, zone, source, from_at)
             DO UPDATE SET to_at = coalesce(greatest(monitoring_gaps.to_at, excluded.to_at),
                                            monitoring_gaps.to_at, excluded.to_at)",
            &[&g.gateway_id, &g.zone, &g.source, &g.from, &g.to],
        )
        .await?;
    }
    if lots.is_empty() {
        return Ok(0);
    }
    let mut touched = std::collections::BTreeSet::new();
    for l in &lots {
        tx.execute(
            "INSERT INTO lot_excursions (gtin, lot, gateway_id, excursion_id, rule, direction,
                 allowance_s, is_freeze, duration_s, unknown_s, started_at, ended_at, mean)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (gtin, lot, gateway_id, excursion_id) DO UPDATE SET
                 duration_s = greatest(lot_excursions.duration_s, excluded.duration_s),
                 unknown_s = greatest(lot_excursions.unknown_s, excluded.unknown_s),
                 ended_at = coalesce(lot_excursions.ended_at, excluded.ended_at),
                 mean = CASE WHEN excluded.duration_s > lot_excursions.duration_s
                             THEN excluded.mean ELSE lot_excursions.mean END",
            &[
                &l.gtin,
                &l.lot,
                &l.gateway_id,
                &l.excursion_id,
                &l.rule,
                &l.direction,
                &l.allowance_s,
                &l.freeze,
                &l.duration_s,
                &l.unknown_s,
                &l.started_at,
                &l.ended_at,
                &l.mean,
            ],
        )
        .await?;
        touched.insert((l.gtin.clone(), l.lot.clone()));
    }
    let mut raised = 0;
    for (gtin, lot) in touched {
        let rows = tx
            .query(
                &format!(
                    "SELECT {EXCURSION_COLUMNS} FROM lot_excursions WHERE gtin = $1 AND lot = $2"
                ),
                &[&gtin, &lot],
            )
            .await?;
        let all: Vec<LotExcursion> = rows.iter().map(excursion_of).collect();
        for b in budgets(&all).iter().filter(|b| b.exhausted_across_legs()) {
            let (key, detail) = alert_of(b);
            let gateway = b
                .per_gateway
                .keys()
                .next_back()
                .cloned()
                .unwrap_or_default();
            raised += tx
                .execute(
                    "INSERT INTO alerts (kind, gateway_id, detail, key)
                     VALUES ('budget_exhausted', $1, $2, $3)
                     ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING",
                    &[&gateway, &detail, &key],
                )
                .await?;
        }
    }
    Ok(raised)
}

/// The key and stored detail of a `budget_exhausted` alert.
fn alert_of(b: &Budget) -> (String, serde_json::Value) {
    let key = format!(
        "budget_exhausted|{}|{}|{}|{}",
        b.gtin, b.lot, b.rule, b.direction
    );
    let detail = serde_json::json!({
        "schema": "coldgate.fleet_alert/1",
        "kind": "budget_exhausted",
        "gtin": b.gtin,
        "lot": b.lot,
        "rule": b.rule,
        "direction": b.direction,
        "allowance_s": b.allowance_s,
        "out_of_range_s": b.total_s,
        "per_gateway": b.per_gateway,
    });
    (key, detail)
}

/// One leg: a pallet stay carrying the lot.
#[derive(Debug, Clone, Serialize)]
pub struct Leg {
    pub gateway_id: String,
    pub zone: String,
    pub sscc: String,
    pub gtin: String,
    #[serde(with = "time::serde::rfc3339")]
    pub loaded: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub unloaded: Option<OffsetDateTime>,
    /// Monitoring gaps of its gateway and zone within the stay.
    pub unmonitored_s: i64,
}

/// `coldgate-fleet lot LOT`: the journey and what it adds up to.
#[derive(Debug, Clone, Serialize)]
pub struct LotView {
    pub lot: String,
    pub legs: Vec<Leg>,
    pub excursions: usize,
    pub budgets: Vec<Budget>,
    /// Unmonitored time over all legs, plus time unknown inside excursions.
    pub unmonitored_s: i64,
    /// The MKT over all legs, or why it is unknown.
    pub mkt: mkt::JourneyMkt,
    pub verdict: &'static str,
}

/// The gateway's verdict vocabulary, for a journey: a used-up allowance
/// first, then what needs a person, then an incomplete record (a lot with
/// gaps is never shown as clean), then excursions within allowance.
pub fn verdict(budgets: &[Budget], rows: &[LotExcursion], unmonitored_s: i64) -> Verdict {
    if budgets.iter().any(Budget::exhausted) {
        Verdict::AllowanceExceeded
    } else if rows
        .iter()
        .any(|r| r.allowance_s.is_none() || r.freeze || r.ended_at.is_none())
    {
        Verdict::AssessmentRequired
    } else if unmonitored_s > 0 {
        Verdict::RecordIncomplete
    } else if !rows.is_empty() {
        Verdict::ExcursionWithinAllowance
    } else {
        Verdict::WithinProfile
    }
}

pub async fn lot_view(client: &Client, lot: &str) -> Result<LotView, tokio_postgres::Error> {
    let legs: Vec<Leg> = client
        .query(
            "SELECT pl.gateway_id, pl.zone, pl.sscc, pl.gtin, pl.loaded, s.unloaded,
                    coalesce((SELECT sum(extract(epoch FROM
                        least(coalesce(g.to_at, now()), coalesce(s.unloaded, now()))
                        - greatest(g.from_at, pl.loaded)))::int8
                      FROM monitoring_gaps g
                      WHERE g.gateway_id = pl.gateway_id AND g.zone IN (pl.zone, '*')
                        AND g.from_at < coalesce(s.unloaded, now())
                        AND coalesce(g.to_at, now()) > pl.loaded), 0)
             FROM pallet_lots pl
             LEFT JOIN LATERAL (SELECT unloaded FROM stays WHERE kind = 'sscc'
                   AND gateway_id = pl.gateway_id AND code = pl.sscc AND loaded = pl.loaded
                   ORDER BY conflict LIMIT 1) s ON true
             WHERE pl.lot = $1 ORDER BY pl.loaded, pl.gateway_id",
            &[&lot],
        )
        .await?
        .iter()
        .map(|r| Leg {
            gateway_id: r.get(0),
            zone: r.get(1),
            sscc: r.get(2),
            gtin: r.get(3),
            loaded: r.get(4),
            unloaded: r.get(5),
            unmonitored_s: r.get(6),
        })
        .collect();
    let rows: Vec<LotExcursion> = client
        .query(
            &format!("SELECT {EXCURSION_COLUMNS} FROM lot_excursions WHERE lot = $1"),
            &[&lot],
        )
        .await?
        .iter()
        .map(excursion_of)
        .collect();
    let budgets = budgets(&rows);
    let mkt = mkt::journey(&legs, &mkt::of_lot(client, lot).await?);
    let unmonitored_s = legs.iter().map(|l| l.unmonitored_s).sum::<i64>()
        + rows.iter().map(|r| r.unknown_s).sum::<i64>();
    Ok(LotView {
        lot: lot.into(),
        verdict: verdict(&budgets, &rows, unmonitored_s).as_str(),
        excursions: rows.len(),
        legs,
        budgets,
        unmonitored_s,
        mkt,
    })
}

pub mod mkt;
#[cfg(test)]
mod tests;
