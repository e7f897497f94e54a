//! What every handler shares: the gateway's parts it may see ([`Ctx`]), the
//! JSON error body, and how a store read runs. Kept apart from the router
//! (server.rs) and the handlers (api.rs and the rest) so that neither has
//! to import the other.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use coldgate_sensor_drivers::ble::Diagnostics as BleDiagnostics;
use coldgate_sensor_drivers::modbus::HealthMap;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::command::ManifestRequest;
use crate::config::Config;
use crate::event::now_ms;
use crate::live::Live;
use crate::publish::LinkState;
use crate::store::Store;

/// What the handlers may see of the running gateway.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Store,
    pub live: Live,
    pub link: watch::Receiver<LinkState>,
    pub modbus: HealthMap,
    pub ble: BleDiagnostics,
    /// Manifest commands to ingest, as the MQTT commands travel.
    pub commands: mpsc::Sender<ManifestRequest>,
}

/// A JSON error body: `{"error": "..."}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Runs a store read on the blocking pool; a failure is a 500 naming it.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request failed: {e}"),
        )),
    }
}

/// The end of "the last 24 h": now, or the newest reading when a simulator
/// runs ahead of the wall clock.
pub(super) fn range_end(ctx: &Ctx) -> i64 {
    let now = now_ms();
    ctx.live.newest_reading_ms().map_or(now, |n| n.max(now)) + 1
}
