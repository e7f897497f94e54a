//! The JSON endpoints. Each answers from memory ([`super::Live`], the
//! drivers' diagnostics, the link state) or from one read transaction on the
//! blocking pool; manifest commands go to ingest and wait for its commit.
//!
//! One room: the JSON endpoints share their extractors, limits and store reads; the larger ones
//! (charts, metrics) have files of their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use coldgate_sensor_drivers::Quantity;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::ctx::{blocking, error, range_end, Ctx};
use super::query::{self, EventFilter};
use crate::command::{self as commands, ManifestRequest};
use crate::event::{now_ms, rfc3339};
use crate::excursion::EngineState;

/// Default and largest number of points per series in `readings`.
const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 10_000;
/// Raw readings one request may walk before it is refused.
pub(super) const MAX_RAW_READINGS: usize = 2_000_000;
/// Default and largest number of events in `events`.
const DEFAULT_EVENTS: usize = 200;
const MAX_EVENTS: usize = 5000;
/// How long a manifest command may wait for ingest's commit.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// A sensor with no silence limit in its profile counts as silent after this.
const DEFAULT_SILENCE_MS: i64 = 10 * 60 * 1000;

pub(super) fn engine_state(ctx: &Ctx) -> Result<EngineState, String> {
    crate::snapshot::load_engine_state(&ctx.store).map_err(|e| e.to_string())
}

pub async fn status(State(ctx): State<Ctx>) -> Response {
    let store = ctx.store.clone();
    let outbox = match blocking(move || {
        let depth = store.outbox_depth().map_err(|e| e.to_string())?;
        let readings = store.reading_count().map_err(|e| e.to_string())?;
        let set_aside = store.set_aside_count().map_err(|e| e.to_string())?;
        Ok((depth, readings, set_aside))
    })
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ((depth, oldest), readings, set_aside) = outbox;
    let now = now_ms();
    let link = ctx.link.borrow().clone();
    let c = &ctx.config;
    let file_bytes = std::fs::metadata(ctx.store.path()).map(|m| m.len()).ok();
    let rows = sensor_rows(&ctx, now);
    let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
    let counters = ctx.live.counters();
    Json(json!({
        "gateway_id": c.gateway_id,
        "version": env!("CARGO_PKG_VERSION"),
        "now": rfc3339(now),
        "uptime_s": ctx.live.uptime().as_secs(),
        "clock_synchronised": crate::clock::is_synchronised(),
        "clock_state": crate::clock::sync_state().as_str(),
        "clock_last_jump": ctx.store.last_clock_jump().ok().flatten(),
        "uplink": {
            "enabled": c.mqtt.enabled,
            "broker": format!("{}:{}", c.mqtt.host, c.mqtt.port),
            "tls": c.mqtt.tls.is_some(),
            "connected": link.connected,
            "verified": link.verified,
            "last_error": link.last_error,
            "next_retry_at": link.next_retry_ms.map(rfc3339),
            "publish_errors": link.publish_errors,
        },
        "outbox": {
            "depth": depth,
            "oldest_at": oldest.map(rfc3339),
            "oldest_age_s": oldest.map(|o| now.saturating_sub(o).max(0) / 1000),
            // Entries over mqtt.max_payload, kept but never published.
            "set_aside": set_aside,
        },
        "storage": {
            "path": ctx.store.path().display().to_string(),
            "file_bytes": file_bytes,
            "max_bytes": c.storage.max_size.0,
            "readings": readings,
        },
        "certificate": {
            "client_cert_expires_at": link.client_cert_expires_ms.map(rfc3339),
            "days_left": link.client_cert_expires_ms.map(|e| (e - now) / 86_400_000),
        },
        "sensors": { "ok": count("ok"), "stale": count("stale"), "silent": count("silent") },
        // Since this process started: what a supervisor (or a test) compares
        // with what the store holds.
        "ingest": {
            "readings_received": counters.readings_received,
            "readings_committed": counters.readings_committed,
            "events_committed": counters.events_committed,
            "commits": counters.commits,
            "commit_failures": counters.commit_failures,
        },
    }))
    .into_response()
}

#[derive(Debug, Serialize)]
pub(super) struct SensorRow {
    pub id: String,
    pub zone: String,
    pub kind: String,
    /// Quantity → its last value.
    pub values: BTreeMap<&'static str, Value>,
    pub received_at: Option<String>,
    pub age_s: Option<i64>,
    /// `ok`, `stale` (older than half the silence limit) or `silent`.
    pub state: &'static str,
    pub silence_limit_s: i64,
    pub battery: Option<f64>,
    pub rssi: Option<i16>,
    pub ble: Option<Value>,
    pub modbus: Option<Value>,
}

/// Every configured sensor with its last values from memory.
pub(super) fn sensor_rows(ctx: &Ctx, now: i64) -> Vec<SensorRow> {
    let last = ctx.live.last();
    let ble = ctx.ble.snapshot();
    ctx.config
        .sensors
        .iter()
        .map(|s| {
            let l = last.get(s.id.as_str());
            let silence = ctx
                .config
                .zone_profile(&s.zone)
                .and_then(|p| p.silence)
                .map_or(DEFAULT_SILENCE_MS, |d| {
                    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
                });
            let age = l.map(|l| now.saturating_sub(l.received_ms).max(0));
            let state = match age {
                Some(a) if a < silence / 2 => "ok",
                Some(a) if a < silence => "stale",
                _ => "silent",
            };
            let values = l
                .map(|l| {
                    l.values
                        .iter()
                        .map(|(q, v)| {
                            (
                                q.as_str(),
                                json!({ "value": v.value, "unit": q.unit(), "at": rfc3339(v.at_ms) }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let radio = ble.sensors.get(&s.id);
            SensorRow {
                id: s.id.clone(),
                zone: s.zone.clone(),
                kind: format!("{:?}", s.kind).to_lowercase(),
                values,
                received_at: l.map(|l| rfc3339(l.received_ms)),
                age_s: age.map(|a| a / 1000),
                state,
                silence_limit_s: silence / 1000,
                battery: l
                    .and_then(|l| l.values.get(&Quantity::Battery))
                    .map(|v| v.value),
                rssi: radio.and_then(|r| r.rssi),
                ble: radio.and_then(|r| serde_json::to_value(r).ok()),
                modbus: ctx
                    .modbus
                    .get(&s.id)
                    .and_then(|h| serde_json::to_value(h).ok()),
            }
        })
        .collect()
}

pub async fn sensors(State(ctx): State<Ctx>) -> Response {
    Json(json!({ "sensors": sensor_rows(&ctx, now_ms()) })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingsQuery {
    from: Option<String>,
    to: Option<String>,
    points: Option<usize>,
    quantity: Option<Quantity>,
}

pub async fn readings(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    q: Result<Query<ReadingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if !ctx.config.sensors.iter().any(|s| s.id == id) {
        return error(StatusCode::NOT_FOUND, format!("unknown sensor `{id}`"));
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
    let points = q.points.unwrap_or(DEFAULT_POINTS);
    if points == 0 || points > MAX_POINTS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("points: must be between 1 and {MAX_POINTS}"),
        );
    }
    let store = ctx.store.clone();
    let sensor = id.clone();
    let wanted = q.quantity;
    let raw = blocking(move || {
        let mut by_q: BTreeMap<Quantity, Vec<(i64, f64)>> = BTreeMap::new();
        let mut n = 0usize;
        store
            .for_each_reading(Some(&sensor), from, to, |r| {
                if wanted.is_none_or(|w| w == r.quantity) {
                    by_q.entry(r.quantity).or_default().push((r.at_ms, r.value));
                    n += 1;
                }
                n < MAX_RAW_READINGS
            })
            .map_err(|e| e.to_string())?;
        Ok((by_q, n))
    })
    .await;
    let (by_q, n) = match raw {
        Ok(v) => v,
        Err(r) => return r,
    };
    if n >= MAX_RAW_READINGS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the range holds more than {MAX_RAW_READINGS} readings: narrow from/to"),
        );
    }
    let series: Vec<Value> = by_q
        .iter()
        .map(|(q, pts)| {
            let down = crate::report::chart::downsample(pts, from, to, points);
            json!({
                "quantity": q.as_str(),
                "unit": q.unit(),
                "raw_count": pts.len(),
                "points": down.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "sensor": id,
        "from": rfc3339(from),
        "to": rfc3339(to),
        "series": series,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    #[serde(flatten)]
    filter: EventFilter,
}

pub async fn events(
    State(ctx): State<Ctx>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let now = now_ms();
    let from = match q.from.as_deref().map(|t| query::parse_time(t, now)) {
        None => i64::MIN,
        Some(Ok(t)) => t,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    let to = match q.to.as_deref().map(|t| query::parse_time(t, now)) {
        None => i64::MAX,
        Some(Ok(t)) => t,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let limit = q.limit.unwrap_or(DEFAULT_EVENTS);
    if limit == 0 || limit > MAX_EVENTS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit: must be between 1 and {MAX_EVENTS}"),
        );
    }
    let store = ctx.store.clone();
    let filter = q.filter;
    let found = blocking(move || {
        let all = store.events_between(from, to).map_err(|e| e.to_string())?;
        let mut out: Vec<Value> = Vec::new();
        // Newest first while filtering, so `limit` keeps the latest.
        for e in all.iter().rev() {
            let Ok(payload) = serde_json::from_slice::<Value>(&e.payload) else {
                continue;
            };
            if filter.matches(&e.topic, &payload) {
                out.push(json!({ "seq": e.seq, "topic": e.topic, "payload": payload }));
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    })
    .await;
    match found {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestQuery {
    /// Every stay ever recorded, not only the pallets on board now.
    #[serde(default)]
    all: bool,
}

pub async fn manifest(
    State(ctx): State<Ctx>,
    q: Result<Query<ManifestQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let c = ctx.clone();
    let state = match blocking(move || engine_state(&c)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = now_ms();
    let pallets: Vec<Value> = state
        .manifest
        .stays
        .iter()
        .filter(|p| q.all || p.unloaded_at_ms.is_none_or(|u| u > now))
        .map(|p| {
            json!({
                "sscc": p.sscc,
                "zone": p.zone,
                "profile": p.profile.clone().or_else(|| ctx.config.zones.iter().find(|z| z.id == p.zone).map(|z| z.profile.clone())),
                "loaded_at": rfc3339(p.loaded_at_ms),
                "unloaded_at": p.unloaded_at_ms.map(rfc3339),
                "items": p.items,
            })
        })
        .collect();
    Json(json!({ "pallets": pallets })).into_response()
}

pub async fn load(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    command(ctx, peer, "load", &body).await
}

pub async fn unload(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    command(ctx, peer, "unload", &body).await
}

/// A load or unload, parsed by the MQTT command parser and applied by
/// ingest, so both ways in refuse exactly the same input. The command id
/// is the caller's `command_id` or a new `http-<ULID>`.
async fn command(ctx: Ctx, peer: SocketAddr, action: &str, body: &[u8]) -> Response {
    let refused = |status: StatusCode, errors: Vec<String>| {
        (status, Json(json!({ "ok": false, "errors": errors }))).into_response()
    };
    let mut v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                vec![format!("the body is not JSON: {e}")],
            )
        }
    };
    let Some(obj) = v.as_object_mut() else {
        return refused(
            StatusCode::BAD_REQUEST,
            vec!["the body must be a JSON object".into()],
        );
    };
    obj.insert("action".into(), Value::from(action));
    if !obj.contains_key("command_id") && !obj.contains_key("request_id") {
        obj.insert(
            "request_id".into(),
            Value::from(format!("http-{}", ulid::Ulid::new())),
        );
    }
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    let parsed = match commands::parse(&bytes) {
        Ok(p) => p,
        Err((_, why)) => return refused(StatusCode::BAD_REQUEST, vec![why]),
    };
    let (reply, answer) = oneshot::channel();
    // Ingest records it in the audit trail, in the commit that applies it.
    let sent = ctx
        .commands
        .send(ManifestRequest {
            request_id: parsed.request_id.clone(),
            actor: format!("http:{}", peer.ip()),
            command: parsed.command,
            reply,
        })
        .await;
    if sent.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the data path is stopping; try again",
        );
    }
    let outcome = match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the data path stopped before answering; the command may not be applied",
            )
        }
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "no answer from the data path within 10 s; check the manifest before retrying",
            )
        }
    };
    // The answer ingest published: its errors or warnings, as the
    // operator's MQTT subscriber sees them.
    let published =
        serde_json::from_slice::<crate::event::payload::CommandResult>(&outcome.payload).ok();
    if !outcome.ok {
        let errors = published.map(|answer| answer.errors).unwrap_or_default();
        return refused(StatusCode::UNPROCESSABLE_ENTITY, errors);
    }
    Json(json!({
        "ok": true,
        "request_id": parsed.request_id,
        "command_id": parsed.request_id,
        "duplicate": outcome.duplicate,
        "warnings": published.map(|answer| answer.warnings).unwrap_or_default(),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotQuery {
    gtin: Option<String>,
}

pub async fn lot(
    State(ctx): State<Ctx>,
    Path(lot): Path<String>,
    q: Result<Query<LotQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let c = ctx.clone();
    let state = match blocking(move || engine_state(&c)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lots: Vec<super::lot_view::LotView> = state
        .ledger
        .lots
        .values()
        .filter(|l| l.lot == lot && q.gtin.as_ref().is_none_or(|g| *g == l.gtin))
        .map(Into::into)
        .collect();
    if lots.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("lot `{lot}` has never been on board"),
        );
    }
    Json(json!({ "lots": lots })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    sscc: Option<String>,
    lot: Option<String>,
    gtin: Option<String>,
}

/// `GET /report?sscc=…` or `?lot=…[&gtin=…]`: the printable trip report
/// (see `docs/report.md`), the same document `coldgate report` writes.
pub async fn report(
    State(ctx): State<Ctx>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    use crate::report::{render_html, ReportError, ReportSubject};
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let subject = match (q.sscc, q.lot) {
        (Some(sscc), None) if q.gtin.is_none() => ReportSubject::Sscc(sscc),
        (None, Some(lot)) => ReportSubject::Lot { gtin: q.gtin, lot },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either sscc, or lot (with gtin if needed)",
            )
        }
    };
    let c = ctx.clone();
    let made =
        tokio::task::spawn_blocking(move || render_html(&c.store, &c.config, &subject, now_ms()))
            .await;
    match made {
        Ok(Ok(html)) => (
            [
                (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response(),
        Ok(Err(e @ ReportError::NotFound(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ ReportError::AmbiguousLot { .. })) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the report failed: {e}"),
        ),
    }
}
