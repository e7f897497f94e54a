//! `GET /api/zones/{zone}/chart.svg`: one zone's readings of one quantity
//! over a range, with the zone profile's limits shaded and the excursions
//! and door openings of the zone marked, drawn by [`super::chart`].

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use coldgate_sensor_drivers::Quantity;
use serde::Deserialize;

use super::api::MAX_RAW_READINGS;
use super::ctx::{blocking, error, range_end, Ctx};
use super::query;
use crate::config::Config;
use crate::event::payload::{self, Envelope, EventBody};
use crate::event::{now_ms, parse_rfc3339};
use crate::report;
use crate::report::chart::{self, ChartSpec, Limits, Mark, MarkKind, Series};
use crate::store::StoredEvent;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartQuery {
    from: Option<String>,
    to: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    quantity: Option<Quantity>,
}

pub async fn chart(
    State(ctx): State<Ctx>,
    Path(zone): Path<String>,
    q: Result<Query<ChartQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if !ctx.config.zones.iter().any(|z| z.id == zone) {
        return error(StatusCode::NOT_FOUND, format!("unknown zone `{zone}`"));
    }
    let (from, to) = match query::range(
        q.from.as_deref(),
        q.to.as_deref(),
        now_ms(),
        range_end(&ctx),
    ) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let width = q.width.unwrap_or(900);
    let height = q.height.unwrap_or(320);
    if !(200..=4000).contains(&width) || !(120..=3000).contains(&height) {
        return error(
            StatusCode::BAD_REQUEST,
            "width: 200 to 4000 and height: 120 to 3000 pixels",
        );
    }
    let quantity = q.quantity.unwrap_or(Quantity::Temperature);
    let fit = q.from.is_none() && q.to.is_none();
    let c = ctx.clone();
    let drawn = blocking(move || {
        let (from, to) = if fit {
            fitted_range(&c, &zone, quantity, to)?
        } else {
            (from, to)
        };
        let spec = spec(&c, &zone, quantity, from, to, width, height)?;
        chart::render_svg(&spec).map_err(|e| format!("cannot draw the chart: {e}"))
    })
    .await;
    match drawn {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(r) => r,
    }
}

/// Longest range a chart without `from` and `to` is fitted to.
const FIT_MAX_MS: i64 = 7 * 24 * 3_600_000;
/// Shortest: a record of a few readings still spreads over the chart but
/// is not stretched into a few pixels per minute.
const FIT_MIN_MS: i64 = 10 * 60_000;

/// The range of a chart asked for without `from` and `to`: from the zone's
/// first reading of `quantity` in the week before `end`, to `end` (the
/// newest reading), so a short record fills the chart instead of sitting
/// at the right edge of a fixed day. A zone without readings gets the day
/// before `end`.
fn fitted_range(ctx: &Ctx, zone: &str, quantity: Quantity, end: i64) -> Result<(i64, i64), String> {
    let mut first: Option<i64> = None;
    for sensor in ctx
        .config
        .sensors
        .iter()
        .filter(|s| s.zone == zone && s.quantities.contains(&quantity))
    {
        let until = first.unwrap_or(end);
        ctx.store
            .for_each_reading(
                Some(&sensor.id),
                end.saturating_sub(FIT_MAX_MS),
                until,
                |r| {
                    if r.quantity == quantity {
                        first = Some(r.at_ms);
                        return false;
                    }
                    true
                },
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(match first {
        Some(first) => (first.min(end - FIT_MIN_MS), end),
        None => (end.saturating_sub(query::DEFAULT_SPAN_MS), end),
    })
}

fn spec(
    ctx: &Ctx,
    zone: &str,
    quantity: Quantity,
    from: i64,
    to: i64,
    width: u32,
    height: u32,
) -> Result<ChartSpec, String> {
    let sensors: Vec<&str> = ctx
        .config
        .sensors
        .iter()
        .filter(|s| s.zone == zone && s.quantities.contains(&quantity))
        .map(|s| s.id.as_str())
        .collect();
    let mut series = Vec::new();
    let mut walked = 0usize;
    for sensor in sensors {
        let mut pts = Vec::new();
        ctx.store
            .for_each_reading(Some(sensor), from, to, |r| {
                if r.quantity == quantity {
                    pts.push((r.at_ms, r.value));
                }
                walked += 1;
                walked < MAX_RAW_READINGS
            })
            .map_err(|e| e.to_string())?;
        if walked >= MAX_RAW_READINGS {
            return Err(format!(
                "the range holds more than {MAX_RAW_READINGS} readings: narrow from/to"
            ));
        }
        if !pts.is_empty() {
            series.push(Series {
                label: sensor.to_string(),
                points: chart::downsample(&pts, from, to, width as usize),
            });
        }
    }
    let events = ctx
        .store
        .events_between(i64::MIN, to)
        .map_err(|e| e.to_string())?;
    Ok(ChartSpec {
        title: format!("Zone {zone}: {}", quantity.as_str()),
        unit: quantity.symbol().to_string(),
        from_ms: from,
        to_ms: to,
        width,
        height,
        series,
        limits: limits(&ctx.config, zone, quantity),
        marks: marks(&ctx.config, &events, zone, from, to),
    })
}

/// The acceptable band of the zone's profile: the highest low limit and the
/// lowest high limit over its rules for `quantity`.
pub(super) fn limits(config: &Config, zone: &str, quantity: Quantity) -> Option<Limits> {
    let profile = config.zone_profile(zone)?;
    let rules = profile.limits.iter().filter(|l| l.quantity == quantity);
    let (mut low, mut high): (Option<f64>, Option<f64>) = (None, None);
    for r in rules {
        if let Some(l) = r.low {
            low = Some(low.map_or(l, |x| x.max(l)));
        }
        if let Some(h) = r.high {
            high = Some(high.map_or(h, |x| x.min(h)));
        }
    }
    (low.is_some() || high.is_some()).then_some(Limits { low, high })
}

/// Excursions and door openings of `zone` overlapping `[from, to)`, from
/// their started/opened and ended/closed events (one open until its end).
/// An excursion is labelled with its sensor and its rule as people say it
/// (`rear-1: 2–8 °C, high`).
pub(super) fn marks(
    config: &Config,
    events: &[StoredEvent],
    zone: &str,
    from: i64,
    to: i64,
) -> Vec<Mark> {
    // id → (kind, start, end, label), in order of first appearance.
    let mut open: BTreeMap<String, (usize, MarkKind, i64, Option<i64>, String)> = BTreeMap::new();
    let time = |t: &str| parse_rfc3339(t);
    for (n, e) in events.iter().enumerate() {
        let kind = e.topic.strip_prefix("events/").unwrap_or_default();
        let Ok(Envelope { body, .. }) = EventBody::parse(kind, &e.payload) else {
            continue;
        };
        let (kind, id, start, end, label) = match body {
            EventBody::Excursion(x) if x.zone == zone => (
                MarkKind::Excursion,
                x.excursion_id.clone(),
                time(&x.started_at),
                x.ended_at.as_deref().and_then(time),
                excursion_label(config, &x),
            ),
            EventBody::Door(d) if d.zone == zone => (
                MarkKind::Door,
                d.door_id,
                time(&d.opened_at),
                d.closed_at.as_deref().and_then(time),
                "door".to_string(),
            ),
            _ => continue,
        };
        let Some(start) = start else { continue };
        let entry = open
            .entry(id)
            .or_insert((n, kind, start, None, label.clone()));
        if end.is_some() {
            entry.3 = end;
        }
    }
    let mut marks: Vec<(usize, Mark)> = open
        .into_values()
        .filter(|(_, _, start, end, _)| *start < to && end.is_none_or(|e| e >= from))
        .map(|(n, kind, from_ms, to_ms, label)| {
            (
                n,
                Mark {
                    kind,
                    from_ms,
                    to_ms,
                    label,
                },
            )
        })
        .collect();
    marks.sort_by_key(|(n, _)| *n);
    marks.into_iter().map(|(_, m)| m).collect()
}

fn excursion_label(config: &Config, x: &payload::Excursion) -> String {
    let (quantity, direction) = (x.quantity.as_str(), x.direction.as_str());
    match report::find_rule(config, &x.profile, quantity, direction, x.limit).map(report::rule_name)
    {
        Some(rule) => format!("{}: {rule}, {direction}", x.sensor_id),
        None => format!("{}: {quantity} {direction}", x.sensor_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::rfc3339;

    fn stored(body: impl Into<EventBody>) -> StoredEvent {
        let e = crate::event::Event::new(0, body);
        StoredEvent {
            seq: 0,
            at_ms: 0,
            topic: e.kind().topic(),
            payload: e.payload(1, "g"),
        }
    }

    fn excursion(
        zone: &str,
        id: &str,
        profile: &str,
        direction: payload::Direction,
        limit: f64,
        started_s: i64,
        ended_s: Option<i64>,
    ) -> StoredEvent {
        stored(payload::Excursion {
            phase: match ended_s {
                Some(_) => payload::ExcursionPhase::Ended,
                None => payload::ExcursionPhase::Started,
            },
            excursion_id: id.into(),
            sensor_id: "s".into(),
            zone: zone.into(),
            quantity: Quantity::Temperature,
            unit: "°C".into(),
            direction,
            limit,
            exclusive: false,
            profile: profile.into(),
            rule: String::new(),
            allowance_s: None,
            freeze: false,
            started_at: rfc3339(started_s * 1000),
            ended_at: ended_s.map(|s| rfc3339(s * 1000)),
            duration_s: 0,
            unknown_s: 0,
            min: 9.0,
            max: 9.0,
            mean: 9.0,
            end: None,
            affected: vec![],
        })
    }

    #[test]
    fn an_excursion_is_one_mark_from_its_start_to_its_end_and_other_zones_are_left_out() {
        let high = payload::Direction::High;
        let events = [
            excursion("rear", "X", "p", high, 8.0, 10, None),
            stored(payload::Door {
                phase: payload::DoorPhase::Opened,
                door_id: "D".into(),
                sensor_id: "s".into(),
                zone: "rear".into(),
                lux: 80.0,
                max_lux: None,
                threshold_lux: 50.0,
                opened_at: rfc3339(20_000),
                closed_at: None,
                duration_s: 0,
            }),
            excursion("rear", "X", "p", high, 8.0, 10, Some(50)),
            excursion("front", "Y", "p", high, 8.0, 10, None),
            stored(payload::SensorGap {
                phase: payload::SensorPhase::Silent,
                sensor_id: "s".into(),
                zone: "rear".into(),
                quantity: Some(Quantity::Temperature),
                cause: Some(payload::GapCause::SensorSilent),
                last_seen_at: rfc3339(0),
                gap_s: 1,
                silence_limit_s: None,
                value: None,
                physical_range: None,
            }),
        ];
        let config = config();
        let m = marks(&config, &events, "rear", 0, 100_000);
        assert_eq!(m.len(), 2);
        assert!(matches!(m[0].kind, MarkKind::Excursion));
        assert_eq!((m[0].from_ms, m[0].to_ms), (10_000, Some(50_000)));
        assert_eq!(
            m[0].label, "s: below 8 °C, high",
            "the rule as people say it"
        );
        assert!(matches!(m[1].kind, MarkKind::Door));
        assert_eq!((m[1].from_ms, m[1].to_ms), (20_000, None));
        assert!(
            marks(&config, &events, "rear", 60_000, 100_000).len() == 1,
            "only the open door"
        );
    }

    fn config() -> Config {
        crate::config::parse(
            r#"
gateway_id = "g"
[[profiles]]
id = "p"
limits = [{ quantity = "temperature", high = 8.0 }, { quantity = "temperature", low = 2.0, high = 9.0 }]
[[zones]]
id = "z"
profile = "p"
[[sensors]]
id = "s"
zone = "z"
kind = "sim"
[sim]
"#,
            "t",
        )
        .unwrap()
    }

    #[test]
    fn an_excursion_of_a_rule_no_longer_configured_is_named_by_its_event() {
        let low = payload::Direction::Low;
        let events = [excursion("rear", "X", "gone", low, 2.0, 10, None)];
        let m = marks(&config(), &events, "rear", 0, 100_000);
        assert_eq!(m[0].label, "s: temperature low");
    }

    #[test]
    fn the_band_is_the_narrowest_of_the_zone_profiles_rules() {
        let config = config();
        let l = limits(&config, "z", Quantity::Temperature).unwrap();
        assert_eq!((l.low, l.high), (Some(2.0), Some(8.0)));
        assert!(limits(&config, "z", Quantity::Humidity).is_none());
        assert!(limits(&config, "nowhere", Quantity::Temperature).is_none());
    }
}
