//! Binding, routing, authentication and the limits every request passes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coldgate_sensor_drivers::ble::Diagnostics as BleDiagnostics;
use coldgate_sensor_drivers::modbus::HealthMap;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::{api, metrics, read_token, zone_chart, DiagError, Live};
use crate::config::{Config, HttpConfig};
use crate::publish::{LinkState, ManifestRequest};
use crate::store::Store;

/// Requests served at once; more get 503 at once instead of queueing work
/// on a small machine.
const CONCURRENT_REQUESTS: usize = 8;

/// How long a stopping server lets open requests finish.
const STOP_GRACE: Duration = Duration::from_secs(3);

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

#[derive(Clone)]
struct Guard {
    token: Option<Arc<str>>,
    permits: Arc<Semaphore>,
}

/// A running server; [`HttpServer::stop`] releases its port.
pub struct HttpServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A bound listener, not yet serving: bound first, so a taken port fails
/// the start before anything else runs.
pub struct Bound {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    token: Option<String>,
}

impl HttpServer {
    /// Reads the token and binds `http.listen`. `None` when `http.enabled`
    /// is false.
    pub fn bind(http: &HttpConfig) -> Result<Option<Bound>, DiagError> {
        if !http.enabled {
            info!("The HTTP API is disabled (http.enabled = false).");
            return Ok(None);
        }
        let token = match &http.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        if token.is_none() && !crate::config::is_loopback(http.listen.ip()) {
            return Err(DiagError::TokenRequired { addr: http.listen });
        }
        let bind = |source| DiagError::Bind {
            addr: http.listen,
            source,
        };
        let std_listener = std::net::TcpListener::bind(http.listen).map_err(bind)?;
        std_listener.set_nonblocking(true).map_err(bind)?;
        let addr = std_listener.local_addr().map_err(bind)?;
        Ok(Some(Bound {
            listener: std_listener,
            addr,
            token,
        }))
    }
}

impl Bound {
    /// Serves on the current tokio runtime.
    pub fn serve(self, ctx: Ctx) -> Result<HttpServer, DiagError> {
        let Bound {
            listener,
            addr,
            token,
        } = self;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| DiagError::Bind { addr, source })?;
        let authenticated = token.is_some();
        let app = router(
            ctx,
            Guard {
                token: token.map(Arc::from),
                permits: Arc::new(Semaphore::new(CONCURRENT_REQUESTS)),
            },
        );
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
            if let Err(error) = served {
                error!(%error, "The HTTP API stopped.");
            }
        });
        info!(listen = %addr, bearer_token = authenticated, "HTTP API and dashboard listening.");
        Ok(HttpServer { addr, stop, task })
    }
}

impl HttpServer {
    /// Stops accepting, lets open requests finish for a moment, and
    /// releases the port (a reload binds it again).
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            // Awaited after the abort, so the listener is closed on return.
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

fn router(ctx: Ctx, guard: Guard) -> Router {
    let api = Router::new()
        .route("/api/status", get(api::status))
        .route("/api/sensors", get(api::sensors))
        .route("/api/sensors/{id}/readings", get(api::readings))
        .route("/api/events", get(api::events))
        .route("/api/manifest", get(api::manifest))
        .route("/api/manifest/load", post(api::load))
        .route("/api/manifest/unload", post(api::unload))
        .route("/api/lots/{lot}", get(api::lot))
        .route("/api/zones/{zone}/chart.svg", get(zone_chart::chart))
        .route("/report", get(api::report))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(guard, guarded));
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .merge(api)
        .with_state(ctx)
        // Manifest bodies are small; nothing else takes one.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

/// The bearer token (when configured) and the concurrency limit. `/` and
/// `/healthz` stay open: the page holds no data, and a load balancer or
/// systemd check must not need the secret.
async fn guarded(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if let Some(token) = &guard.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "this gateway's API needs `Authorization: Bearer <token>` (http.token_file)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"coldgate\""),
            );
            return r;
        }
    }
    let Ok(_permit) = guard.permits.clone().try_acquire_owned() else {
        warn!("HTTP API busy; a request was turned away.");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many requests at once",
        );
    };
    next.run(req).await
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON error body: `{"error": "..."}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {} (see docs/http.md)", req.uri().path()),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

const DASHBOARD: &str = include_str!("dashboard.html");

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcde"));
    }
}
