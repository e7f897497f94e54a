//! Binding, routing, authentication and the limits every request passes.
//!
//! One room: binding, the accept loop, authentication, host checks and the request limits are the
//! one path every request takes; apart, the limits could be skipped by a route.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

use super::ctx::{error, Ctx};
use super::{api, metrics, read_token, zone_chart, HttpError};
use crate::config::HttpConfig;

/// Requests served at once; more get 503 at once instead of queueing work
/// on a small machine.
const CONCURRENT_REQUESTS: usize = 8;

/// `/metrics` scrapes served at once, apart from the API's requests: a
/// flood of API requests never turns the scraper away.
const CONCURRENT_SCRAPES: usize = 2;

/// A request (body included) must be answered within this; a client that
/// trickles its body holds a connection no longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// File descriptors kept for everything but HTTP connections (redb, MQTT,
/// Modbus, D-Bus, tokio): the connection limit is lowered to fit the
/// process's descriptor limit minus this.
const FD_RESERVE: usize = 128;

/// How long a stopping server lets open requests finish.
const STOP_GRACE: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct Guard {
    /// SHA-256 of the token: comparing digests takes the same time
    /// whatever the token's (or the guess's) length.
    token: Option<Arc<[u8; 32]>>,
    permits: Arc<Semaphore>,
    scrapes: Arc<Semaphore>,
}

/// What a request's `Host` may name (DNS rebinding): the listen address,
/// loopback names when listening on loopback, and `http.allowed_hosts`.
#[derive(Clone)]
struct Hosts {
    listen: IpAddr,
    names: Arc<[String]>,
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
    http: HttpConfig,
}

impl HttpServer {
    /// Reads the token and binds `http.listen`. `None` when `http.enabled`
    /// is false.
    pub fn bind(http: &HttpConfig) -> Result<Option<Bound>, HttpError> {
        if !http.enabled {
            info!("The HTTP API is disabled (http.enabled = false).");
            return Ok(None);
        }
        let token = match &http.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        if token.is_none() && !crate::config::is_loopback(http.listen.ip()) {
            return Err(HttpError::TokenRequired { addr: http.listen });
        }
        let bind = |source| HttpError::Bind {
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
            http: http.clone(),
        }))
    }
}

impl Bound {
    /// Serves on the current tokio runtime.
    pub fn serve(self, ctx: Ctx) -> Result<HttpServer, HttpError> {
        let Bound {
            listener,
            addr,
            token,
            http,
        } = self;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| HttpError::Bind { addr, source })?;
        let authenticated = token.is_some();
        let app = router(
            ctx,
            Guard {
                token: token.map(|t| Arc::new(Sha256::digest(t.as_bytes()).into())),
                permits: Arc::new(Semaphore::new(CONCURRENT_REQUESTS)),
                scrapes: Arc::new(Semaphore::new(CONCURRENT_SCRAPES)),
            },
            Hosts {
                listen: addr.ip(),
                names: http
                    .allowed_hosts
                    .iter()
                    .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                    .collect(),
            },
        );
        let limits = Limits {
            max_connections: fit_fd_limit(http.max_connections, open_files_limit()),
            header_timeout: http.header_timeout,
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, limits, stopped));
        info!(
            listen = %addr,
            bearer_token = authenticated,
            max_connections = limits.max_connections,
            header_timeout = ?limits.header_timeout,
            "HTTP API and dashboard listening."
        );
        Ok(HttpServer { addr, stop, task })
    }
}

impl HttpServer {
    /// Stops accepting, lets open requests finish for a moment, and
    /// releases the port (a reload binds it again).
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(STOP_GRACE + Duration::from_secs(1), &mut self.task)
            .await
            .is_err()
        {
            // Awaited after the abort, so the listener is closed on return.
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_connections: usize,
    header_timeout: Duration,
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Requests being served on it; 0 is idle (also before its first
    /// request's header is complete).
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
    done: Arc<AtomicBool>,
}

/// Counts a request as in progress on its connection until dropped.
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections, at most `max_connections` at once: past it the
/// oldest idle connection is closed to make room (idle ones are what a
/// descriptor-exhaustion attack holds), or the new one when all are busy.
/// Each connection must send a whole request header within
/// `header_timeout`, also between keep-alive requests (hyper's header
/// timer runs whenever it waits for a header).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let mut conns: VecDeque<Conn> = VecDeque::new();
    let mut tasks = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    loop {
        let (stream, peer) = tokio::select! {
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
                continue;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // EMFILE and the like: wait instead of spinning.
                    warn!(%error, "The HTTP API could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        conns.retain(|c| !c.done.load(Ordering::SeqCst));
        if conns.len() >= limits.max_connections {
            match conns
                .iter()
                .position(|c| c.busy.load(Ordering::SeqCst) == 0)
            {
                Some(i) => {
                    if let Some(old) = conns.remove(i) {
                        old.close.notify_one();
                    }
                }
                None => {
                    warn!(%peer, max = limits.max_connections, "HTTP API: every connection is busy; a new one was closed.");
                    drop(stream);
                    continue;
                }
            }
        }
        let conn = Conn {
            busy: Arc::new(AtomicUsize::new(0)),
            close: Arc::new(Notify::new()),
            done: Arc::new(AtomicBool::new(false)),
        };
        let (busy, close, done) = (conn.busy.clone(), conn.close.clone(), conn.done.clone());
        conns.push_back(conn);
        let app = app.clone();
        let counter = busy.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let busy = Busy(counter.clone());
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                async move {
                    let answer = tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        tower_service::Service::call(&mut app, req),
                    )
                    .await;
                    drop(busy);
                    match answer {
                        Ok(r) => r,
                        Err(_) => Ok(error(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request took too long",
                        )),
                    }
                }
            });
        let serving = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tasks.spawn(async move {
            tokio::pin!(serving);
            tokio::select! {
                _ = serving.as_mut() => {}
                _ = close.notified() => {
                    if busy.load(Ordering::SeqCst) > 0 {
                        serving.as_mut().graceful_shutdown();
                        let _ = serving.await;
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        });
    }
    // Stopping: the port is released first, then open requests finish.
    drop(listener);
    for c in &conns {
        c.close.notify_one();
    }
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits`; `None` if unknown.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The connection limit, lowered (with a warning) when the descriptor
/// limit cannot hold it beside everything else the gateway opens.
fn fit_fd_limit(wanted: usize, nofile: Option<usize>) -> usize {
    let Some(nofile) = nofile else { return wanted };
    let room = nofile.saturating_sub(FD_RESERVE).max(4);
    if wanted > room {
        warn!(
            wanted,
            nofile,
            used = room,
            "http.max_connections does not fit the open-files limit (LimitNOFILE); using less."
        );
        room
    } else {
        wanted
    }
}

fn router(ctx: Ctx, guard: Guard, hosts: Hosts) -> Router {
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
        .layer(middleware::from_fn_with_state(hosts, same_site))
}

/// Refuses what a web browser can be made to send from another site: a
/// `Host` this API is not (DNS rebinding: a page whose name now points at
/// this machine), and a state-changing request that is not JSON (an HTML
/// form, `text/plain` without CORS) or whose `Origin` is another site.
async fn same_site(State(hosts): State<Hosts>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or(""));
    if let Some(host) = host {
        if !host_allowed(host, &hosts) {
            warn!(host = %crate::config::truncate_echo(host), "HTTP API: a request for another host was refused.");
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                "this API does not answer to that Host (see http.allowed_hosts in docs/http.md)",
            );
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let own = host.is_some_and(|h| {
                origin
                    .to_str()
                    .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{h}")))
            });
            if !own {
                warn!("HTTP API: a cross-origin request was refused.");
                return error(
                    StatusCode::FORBIDDEN,
                    "cross-origin request refused: the Origin is not this API",
                );
            }
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a request that changes state needs `Content-Type: application/json`",
            );
        }
    }
    next.run(req).await
}

/// Whether a `Host` header names this API: an IP literal that is the listen
/// address (any address when listening on all of them; any loopback one
/// when on loopback), `localhost` on loopback, or a configured name.
fn host_allowed(host: &str, hosts: &Hosts) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.starts_with(':') => ip,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let local = crate::config::is_loopback(hosts.listen);
    if let Ok(ip) = name.parse::<IpAddr>() {
        return hosts.listen.is_unspecified()
            || ip.to_canonical() == hosts.listen.to_canonical()
            || (local && crate::config::is_loopback(ip));
    }
    (name == "localhost" && (local || hosts.listen.is_unspecified())) || hosts.names.contains(&name)
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
            .and_then(bearer);
        if !given.is_some_and(|g| same(g.as_bytes(), token)) {
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
    let pool = if req.uri().path() == "/metrics" {
        &guard.scrapes
    } else {
        &guard.permits
    };
    let Ok(_permit) = pool.clone().try_acquire_owned() else {
        warn!("HTTP API busy; a request was turned away.");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many requests at once",
        );
    };
    next.run(req).await
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Compares a guess with the token through their SHA-256 digests, all 32
/// bytes without stopping at the first difference: the time depends on
/// neither where they differ nor the token's length.
fn same(given: &[u8], token_digest: &[u8; 32]) -> bool {
    let digest = Sha256::digest(given);
    digest
        .iter()
        .zip(token_digest)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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

    fn digest(t: &[u8]) -> [u8; 32] {
        Sha256::digest(t).into()
    }

    #[test]
    fn tokens_compare_whole_whatever_their_length() {
        let token = digest(b"0123456789abcdef");
        assert!(same(b"0123456789abcdef", &token));
        assert!(!same(b"0123456789abcdeF", &token));
        assert!(!same(b"0123456789abcde", &token));
        assert!(!same(b"0123456789abcdef0", &token));
        assert!(!same(b"", &token));
        // What is compared is always two 32-byte digests, so a guess's
        // length (or the token's) cannot shorten the comparison.
        assert_eq!(Sha256::digest(b"x").len(), 32);
        assert_eq!(Sha256::digest(vec![0u8; 10_000]).len(), 32);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER   abc  "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    fn hosts(listen: &str, names: &[&str]) -> Hosts {
        Hosts {
            listen: listen.parse().unwrap(),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn only_this_apis_own_hosts_are_served() {
        let lo = hosts("127.0.0.1", &["reefer-7.local"]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
            "reefer-7.local:8080",
            "Reefer-7.Local.",
        ] {
            assert!(host_allowed(ok, &lo), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "10.0.0.5:8080",
            "localhost.evil.example",
            "127.0.0.1:80x",
            "[::1",
            "",
        ] {
            assert!(!host_allowed(bad, &lo), "{bad}");
        }
        let lan = hosts("10.0.0.5", &[]);
        assert!(host_allowed("10.0.0.5:8080", &lan));
        assert!(!host_allowed("localhost:8080", &lan));
        assert!(!host_allowed("127.0.0.1:8080", &lan));
        let any = hosts("0.0.0.0", &[]);
        assert!(host_allowed("192.168.1.20:8080", &any));
        assert!(!host_allowed("rebound.example:8080", &any));
    }

    #[test]
    fn the_connection_limit_fits_the_descriptor_limit() {
        assert_eq!(fit_fd_limit(256, Some(1024)), 256);
        assert_eq!(fit_fd_limit(256, Some(256)), 128);
        assert_eq!(fit_fd_limit(256, Some(10)), 4);
        assert_eq!(fit_fd_limit(256, None), 256);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
