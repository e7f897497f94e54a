//! The HTTP API the operator CLI (`gaps`, `gateway ID`, `status`) reads,
//! and the EPCIS export for trading partners (`/v1/epcis/lot/L`,
//! `/v1/epcis/sscc/S`).
//! Read only; answers come straight from PostgreSQL, so every worker
//! answers the same.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::config::Config;
use crate::worker::pg_connect;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GapRow {
    pub gateway_id: String,
    pub from_seq: i64,
    pub to_seq: i64,
    pub first_seen: String,
    pub age_s: i64,
    pub alerted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayView {
    pub gateway_id: String,
    pub contiguous_seq: i64,
    pub highest_seq: i64,
    pub events: i64,
    pub duplicates: i64,
    pub seq_conflicts: i64,
    pub last_event_at: Option<String>,
    pub last_status: Option<serde_json::Value>,
    pub last_manifest: Option<serde_json::Value>,
    pub gaps: Vec<GapRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetStatus {
    pub schema_version: i32,
    pub gateways: i64,
    pub events: i64,
    pub duplicates: i64,
    pub open_gaps: i64,
    pub missing_seqs: i64,
    pub quarantined: i64,
    pub open_alerts: i64,
    pub workers: Vec<WorkerRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRow {
    pub worker: String,
    pub partitions: i64,
}

struct Ctx {
    config: Arc<Config>,
    pg: Mutex<Option<Client>>,
}

struct ApiError(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": self.0 })),
        )
            .into_response()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError(format!("postgres: {e}"))
    }
}

impl Ctx {
    /// The shared connection, made again after PostgreSQL came back.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, ApiError> {
        let mut g = self.pg.lock().await;
        if g.as_ref().is_none_or(|c| c.is_closed()) {
            *g = Some(pg_connect(&self.config).await?);
        }
        Ok(g)
    }
}

const GAPS_SQL: &str = "SELECT gateway_id, from_seq, to_seq,
        to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
        extract(epoch FROM now() - first_seen)::int8, alerted_at IS NOT NULL
     FROM gaps WHERE ($1::text IS NULL OR gateway_id = $1) ORDER BY first_seen, gateway_id, from_seq";

fn gap_rows(rows: Vec<tokio_postgres::Row>) -> Vec<GapRow> {
    rows.into_iter()
        .map(|r| GapRow {
            gateway_id: r.get(0),
            from_seq: r.get(1),
            to_seq: r.get(2),
            first_seen: r.get(3),
            age_s: r.get(4),
            alerted: r.get(5),
        })
        .collect()
}

async fn gaps(State(ctx): State<Arc<Ctx>>) -> Result<Json<Vec<GapRow>>, ApiError> {
    let g = ctx.client().await?;
    let Some(c) = g.as_ref() else {
        return Err(ApiError("no connection".into()));
    };
    let none: Option<String> = None;
    Ok(Json(gap_rows(c.query(GAPS_SQL, &[&none]).await?)))
}

async fn gateway(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let g = ctx.client().await?;
    let Some(c) = g.as_ref() else {
        return Err(ApiError("no connection".into()));
    };
    let Some(r) = c
        .query_opt(
            "SELECT gateway_id, contiguous_seq, highest_seq, events, duplicates, seq_conflicts,
                    to_char(last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    last_status, last_manifest
             FROM delivery WHERE gateway_id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no gateway `{id}` seen") })),
        )
            .into_response());
    };
    let some: Option<String> = Some(id.clone());
    let gaps = gap_rows(c.query(GAPS_SQL, &[&some]).await?);
    Ok(Json(GatewayView {
        gateway_id: r.get(0),
        contiguous_seq: r.get(1),
        highest_seq: r.get(2),
        events: r.get(3),
        duplicates: r.get(4),
        seq_conflicts: r.get(5),
        last_event_at: r.get(6),
        last_status: r.get(7),
        last_manifest: r.get(8),
        gaps,
    })
    .into_response())
}

async fn status(State(ctx): State<Arc<Ctx>>) -> Result<Json<FleetStatus>, ApiError> {
    let g = ctx.client().await?;
    let Some(c) = g.as_ref() else {
        return Err(ApiError("no connection".into()));
    };
    let r = c
        .query_one(
            "SELECT (SELECT coalesce(max(version), 0) FROM fleet_migrations),
                    (SELECT count(*) FROM delivery),
                    (SELECT coalesce(sum(events), 0)::int8 FROM delivery),
                    (SELECT coalesce(sum(duplicates), 0)::int8 FROM delivery),
                    (SELECT count(*) FROM gaps),
                    (SELECT coalesce(sum(to_seq - from_seq + 1), 0)::int8 FROM gaps),
                    (SELECT count(*) FROM quarantine),
                    (SELECT count(*) FROM alerts WHERE cleared_at IS NULL)",
            &[],
        )
        .await?;
    let workers = c
        .query(
            "SELECT w.worker, count(l.partition) FROM workers w
             LEFT JOIN leases l ON l.worker = w.worker AND l.expires_at > now()
             GROUP BY w.worker ORDER BY w.worker",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| WorkerRow {
            worker: r.get(0),
            partitions: r.get(1),
        })
        .collect();
    Ok(Json(FleetStatus {
        schema_version: r.get(0),
        gateways: r.get(1),
        events: r.get(2),
        duplicates: r.get(3),
        open_gaps: r.get(4),
        missing_seqs: r.get(5),
        quarantined: r.get(6),
        open_alerts: r.get(7),
        workers,
    }))
}

/// The EPCIS document of a lot or a pallet (`coldgate-fleet epcis`'s):
/// 404 for a subject the fleet never saw, `application/ld+json` otherwise.
async fn epcis_of(ctx: &Ctx, subject: crate::epcis::Subject) -> Result<Response, ApiError> {
    use crate::epcis::{document, EpcisError};
    let g = ctx.client().await?;
    let Some(c) = g.as_ref() else {
        return Err(ApiError("no connection".into()));
    };
    match document(c, &subject, time::OffsetDateTime::now_utc()).await {
        Ok(doc) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/ld+json")],
            Json(doc),
        )
            .into_response()),
        Err(e @ EpcisError::Unknown(_)) => Ok((
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response()),
        Err(EpcisError::Postgres(e)) => Err(e.into()),
        Err(e @ EpcisError::Uri(_)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response()),
    }
}

async fn epcis_lot(
    State(ctx): State<Arc<Ctx>>,
    Path(lot): Path<String>,
) -> Result<Response, ApiError> {
    epcis_of(&ctx, crate::epcis::Subject::Lot(lot)).await
}

async fn epcis_sscc(
    State(ctx): State<Arc<Ctx>>,
    Path(sscc): Path<String>,
) -> Result<Response, ApiError> {
    epcis_of(&ctx, crate::epcis::Subject::Sscc(sscc)).await
}

pub fn router(config: Arc<Config>) -> Router {
    let ctx = Arc::new(Ctx {
        config,
        pg: Mutex::new(None),
    });
    Router::new()
        .route("/v1/gaps", get(gaps))
        .route("/v1/gateways/{id}", get(gateway))
        .route("/v1/status", get(status))
        .route("/v1/epcis/lot/{lot}", get(epcis_lot))
        .route("/v1/epcis/sscc/{sscc}", get(epcis_sscc))
        .with_state(ctx)
}
