//! One gateway's database as a [`Journey`]: the trip report decides which
//! stays, excursions and gaps concern the subject (so the HTML report and
//! the EPCIS document never disagree on that), and the stored excursion
//! events add what the report does not keep (mean, rule id, the pallets
//! named).

use std::collections::BTreeMap;

use coldgate_sensor_drivers::Quantity;

use super::map::{ExcursionRecord, GapKind, GapRecord, Journey, StayRecord};
use crate::config::Config;
use crate::event::payload::{self, Direction, Envelope, Item};
use crate::report::{self, GapCause, ReportError, ReportSubject, TripReport};
use crate::store::{Store, StoreError};

/// The journey of `subject` in the database, as of `now_ms`.
pub fn journey(
    store: &Store,
    config: &Config,
    subject: &ReportSubject,
    now_ms: i64,
) -> Result<Journey, ReportError> {
    let report = report::build(store, config, subject, now_ms)?;
    let stored = stored_excursions(store)?;
    Ok(from_trip_report(&report, &stored))
}

/// The latest stored event of every excursion, by id.
fn stored_excursions(store: &Store) -> Result<BTreeMap<String, payload::Excursion>, StoreError> {
    let mut out = BTreeMap::new();
    for ev in store.events_between(i64::MIN, i64::MAX)? {
        if ev.topic != "events/excursion" {
            continue;
        }
        if let Ok(Envelope { body, .. }) =
            serde_json::from_slice::<Envelope<payload::Excursion>>(&ev.payload)
        {
            out.insert(body.excursion_id.clone(), body);
        }
    }
    Ok(out)
}

/// The mapping proper, from the report's facts and the stored events.
pub fn from_trip_report(r: &TripReport, stored: &BTreeMap<String, payload::Excursion>) -> Journey {
    let gw = &r.gateway_id;
    let items_of = |sscc: &str| -> Vec<Item> {
        let mut items: Vec<Item> = Vec::new();
        for (_, i) in r.items.iter().filter(|(s, _)| s == sscc) {
            if !items.contains(i) {
                items.push(i.clone());
            }
        }
        items
    };
    let stays = r
        .stays
        .iter()
        .map(|s| StayRecord {
            gateway_id: gw.clone(),
            zone: s.zone.clone(),
            sscc: s.sscc.clone(),
            items: items_of(&s.sscc),
            loaded_at_ms: s.loaded_at_ms,
            unloaded_at_ms: s.unloaded_at_ms,
        })
        .collect();
    let excursions = r
        .excursions
        .iter()
        .map(|x| {
            let ev = stored.get(&x.id);
            let quantity = ev.map(|e| e.quantity).unwrap_or_else(|| {
                Quantity::ALL
                    .into_iter()
                    .find(|q| q.as_str() == x.quantity)
                    .unwrap_or(Quantity::Temperature)
            });
            ExcursionRecord {
                gateway_id: gw.clone(),
                excursion_id: x.id.clone(),
                zone: x.zone.clone(),
                sensor: x.sensor.clone(),
                quantity,
                direction: ev.map_or(
                    if x.direction == "low" {
                        Direction::Low
                    } else {
                        Direction::High
                    },
                    |e| e.direction,
                ),
                limit: x.limit,
                rule_id: ev.map(|e| e.rule.clone()).unwrap_or_default(),
                rule_name: x.rule.clone(),
                started_ms: x.started_ms,
                ended_ms: x.ended_ms,
                until_ms: x
                    .ended_ms
                    .or(x.ongoing_as_of_ms)
                    .unwrap_or(x.started_ms + x.duration_ms),
                duration_ms: x.duration_ms,
                min: x.min,
                max: x.max,
                mean: ev.map(|e| e.mean),
                allowance_ms: x
                    .budget_ms
                    .or_else(|| ev.and_then(|e| e.allowance_s).map(|s| s * 1000)),
                freeze: x.freeze,
                ssccs: match ev {
                    Some(e) => e.affected.iter().map(|a| a.sscc.clone()).collect(),
                    // The report listed it, so it concerns the subject's stays.
                    None => r.stays.iter().map(|s| s.sscc.clone()).collect(),
                },
            }
        })
        .collect();
    let gaps = r
        .gaps
        .iter()
        .map(|g| GapRecord {
            gateway_id: gw.clone(),
            kind: match g.cause {
                GapCause::SensorSilent => GapKind::SensorSilent,
                GapCause::GatewayDown => GapKind::GatewayDown,
                GapCause::GatewayStopped => GapKind::GatewayStopped,
                GapCause::NoReadings => GapKind::NoReadings,
            },
            zone: g.zone.clone(),
            sensor: g.sensor.clone(),
            quantity: g
                .quantity
                .as_deref()
                .and_then(|q| Quantity::ALL.into_iter().find(|x| x.as_str() == q)),
            start_ms: g.start_ms,
            end_ms: g.end_ms,
            until_ms: g.end_ms.unwrap_or(r.as_of_ms).max(g.start_ms),
        })
        .collect();
    Journey {
        subject: r.subject.to_string(),
        sender: gw.clone(),
        stays,
        excursions,
        gaps,
        verdict: Some(r.verdict.as_str().to_string()),
        reasons: r.reasons.clone(),
    }
}
