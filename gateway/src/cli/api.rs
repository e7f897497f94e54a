//! Technician commands over the running daemon's HTTP API (docs/http.md):
//! `status`, `sensors`, `events`, `manifest`, `scan`, `lot`. Human tables
//! by default, `--json` for scripts. A daemon that does not answer is one
//! line saying so, and exit code 69 (EX_UNAVAILABLE).
//!
//! One room: each command is a request to the daemon and a table of its answer; the shared
//! client, errors and table helpers are most of the file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Exit code when the daemon cannot be reached (sysexits EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

use super::DEFAULT_CONFIG;

/// Where the daemon's API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The API's base URL. Default: from the configuration's `[http]`
    /// (`listen`), else http://127.0.0.1:8080.
    #[arg(long, global = true)]
    url: Option<String>,
    /// A file holding the bearer token. Default: the configuration's
    /// `http.token_file`, if it is readable.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// The configuration the URL and token are taken from.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(super) json: bool,
}

#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    conn: Conn,
    /// From this time: RFC 3339, or a duration ago (`2h`, `90m`, `3d`).
    #[arg(long, default_value = "24h", value_parser = super::args::when)]
    since: i64,
    /// Until this time (RFC 3339, or a duration ago). Default: now.
    #[arg(long, value_parser = super::args::when)]
    until: Option<i64>,
    /// Only events of this kind.
    #[arg(long, value_enum)]
    kind: Option<super::args::Kind>,
    /// Only this phase or state: started, ended, opened, closed, silent, back, …
    #[arg(long, value_parser = super::args::phase)]
    phase: Option<String>,
    /// Only events naming this pallet (18-digit SSCC).
    #[arg(long, value_parser = super::args::sscc)]
    sscc: Option<String>,
    /// Only events naming this lot.
    #[arg(long)]
    lot: Option<String>,
    /// At most this many, the newest. Default 200.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: ManifestAction,
}

#[derive(Subcommand)]
pub enum ManifestAction {
    /// The pallets on board (every stay with `--all`).
    Show {
        /// Every stay, unloaded pallets too.
        #[arg(long)]
        all: bool,
    },
    /// Load a pallet described by a JSON file (`-`: standard input), the
    /// same object as the MQTT load command: sscc, zone, optional profile
    /// and loaded_at, items.
    Load {
        /// The JSON file; `-` for standard input.
        file: PathBuf,
    },
    /// Unload a pallet.
    Unload {
        /// The pallet's 18-digit SSCC.
        #[arg(value_parser = super::args::sscc)]
        sscc: String,
        /// When: RFC 3339, or a duration ago (`10m`). Default: now.
        #[arg(long, value_parser = super::args::when)]
        at: Option<i64>,
    },
}

#[derive(Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
}

#[derive(Args)]
pub struct LotArgs {
    #[command(flatten)]
    conn: Conn,
    /// The lot (AI 10).
    lot: String,
    /// Only the lot of this GTIN-14.
    #[arg(long, value_parser = super::args::gtin)]
    gtin: Option<String>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No daemon answered: the one-line explanation.
    #[error("coldgate is not running at {url} ({why}); start it with systemctl start coldgate")]
    Unreachable { url: String, why: String },
    #[error("{url} refused the request: {message} (give the token with --token-file)")]
    Unauthorized { url: String, message: String },
    /// The API answered with an error; `body` is its JSON, if any.
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
        body: Value,
    },
    #[error("{url}: {message}")]
    Other { url: String, message: String },
}

/// A blocking client for one daemon.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(conn: &Conn) -> anyhow::Result<Client> {
        let (listen, token_file) =
            from_config(&conn.config, conn.config != Path::new(DEFAULT_CONFIG))?;
        let base = match &conn.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => base_url(listen),
        };
        let token = match conn.token_file.as_ref().or(token_file.as_ref()) {
            Some(path) => match crate::http::read_token(path) {
                Ok(t) => Some(t),
                // The configuration's file may be readable by the service
                // only; an explicit --token-file must work.
                Err(e) if conn.token_file.is_some() => return Err(e.into()),
                Err(_) => None,
            },
            None => None,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` (with its query) as JSON.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.answer(&url, req.call())
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.post(&url).content_type("application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.answer(&url, req.send(body.to_string()))
    }

    fn answer(
        &self,
        url: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ApiError> {
        let mut resp = sent.map_err(|e| unreachable(&self.base, url, e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::Other {
                url: url.to_string(),
                message: format!("cannot read the answer: {e}"),
            })?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                body.get("errors").and_then(Value::as_array).map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        match status {
            200..=299 => {
                if body.is_null() {
                    return Err(ApiError::Other {
                        url: url.to_string(),
                        message: "the answer is not JSON: is this a coldgate API?".to_string(),
                    });
                }
                Ok(body)
            }
            401 => Err(ApiError::Unauthorized {
                url: self.base.clone(),
                message,
            }),
            _ => Err(ApiError::Status {
                url: url.to_string(),
                status,
                message,
                body,
            }),
        }
    }
}

fn unreachable(base: &str, url: &str, e: ureq::Error) -> ApiError {
    let why = match &e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::TimedOut => "timed out".to_string(),
            _ => io.to_string(),
        },
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::Timeout(_) => "timed out".to_string(),
        other => {
            return ApiError::Other {
                url: url.to_string(),
                message: other.to_string(),
            }
        }
    };
    ApiError::Unreachable {
        url: base.to_string(),
        why,
    }
}

/// `listen` and `token_file` of the configuration's `[http]`, read without
/// validating the rest (a technician's account may not read the TLS keys).
/// A missing default file gives the defaults; a named one must be readable.
fn from_config(
    path: &Path,
    named: bool,
) -> anyhow::Result<(std::net::SocketAddr, Option<PathBuf>)> {
    let defaults = crate::config::HttpConfig::default();
    let read = crate::config::read_bounded(path, crate::config::MAX_FILE_SIZE)
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other));
    let text = match read {
        Ok(t) => t,
        Err(_) if !named => return Ok((defaults.listen, None)),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let v: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let http = v.get("http");
    let listen = match http.and_then(|h| h.get("listen")).and_then(|l| l.as_str()) {
        Some(l) => l.parse().with_context(|| {
            format!(
                "{}: http.listen `{l}` is not an address:port",
                path.display()
            )
        })?,
        None => defaults.listen,
    };
    let token = http
        .and_then(|h| h.get("token_file"))
        .and_then(|t| t.as_str())
        .map(PathBuf::from);
    Ok((listen, token))
}

/// The URL to reach `listen` from this machine: an unspecified address
/// (`0.0.0.0`, `::`) is reached over loopback.
fn base_url(listen: std::net::SocketAddr) -> String {
    let ip = listen.ip();
    match ip {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            format!("http://127.0.0.1:{}", listen.port())
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            format!("http://[::1]:{}", listen.port())
        }
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}", listen.port()),
        std::net::IpAddr::V4(v4) => format!("http://{v4}:{}", listen.port()),
    }
}

/// Runs an API command: an unreachable daemon is one line and exit 69.
pub fn run(f: impl FnOnce() -> anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match f() {
        Ok(code) => Ok(code),
        Err(e) => match e.downcast_ref::<ApiError>() {
            Some(api @ ApiError::Unreachable { .. }) => {
                eprintln!("{api}");
                Ok(ExitCode::from(EXIT_UNAVAILABLE))
            }
            _ => Err(e),
        },
    }
}

fn print_json(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

/// Columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

fn age(secs: Option<i64>) -> String {
    match secs {
        None => "never".into(),
        Some(s) if s < 90 => format!("{s} s"),
        Some(s) if s < 5400 => format!("{} min", s / 60),
        Some(s) if s < 172_800 => format!("{} h", s / 3600),
        Some(s) => format!("{} d", s / 86_400),
    }
}

pub fn status(conn: &Conn) -> anyhow::Result<ExitCode> {
    let c = Client::new(conn)?;
    let v = c.get("/api/status")?;
    if conn.json {
        return print_json(&v);
    }
    let u = &v["uplink"];
    let uplink = if u["enabled"] == false {
        "disabled (mqtt.enabled = false)".to_string()
    } else if u["connected"] == true && u["verified"] == true {
        format!("connected to {}, verified", s(u, "broker"))
    } else if u["connected"] == true {
        // A PUBACK is not delivery: until the broker hands our own status
        // back, nothing says a subscriber can see what we send.
        format!(
            "connected to {}, NOT VERIFIED: {}",
            s(u, "broker"),
            u["last_error"].as_str().unwrap_or(
                "the broker has not yet delivered this gateway's own status back (within 10 s of connecting it should; if not: ACL or mqtt.prefix)"
            )
        )
    } else {
        format!(
            "DOWN ({}), {} errors since start, next retry {}",
            s(u, "last_error"),
            u["publish_errors"],
            s(u, "next_retry_at")
        )
    };
    let o = &v["outbox"];
    let outbox = if o["depth"] == 0 {
        "empty".to_string()
    } else {
        format!(
            "{} events queued, oldest {} ({} old)",
            o["depth"],
            s(o, "oldest_at"),
            age(o["oldest_age_s"].as_i64())
        )
    };
    let st = &v["storage"];
    let mib = |x: &Value| {
        x.as_f64()
            .map_or("?".into(), |b| format!("{:.1} MiB", b / 1048576.0))
    };
    let cert = match v["certificate"]["client_cert_expires_at"].as_str() {
        Some(at) => format!("expires {at} ({} days)", v["certificate"]["days_left"]),
        None => "none (no mutual TLS)".to_string(),
    };
    let sn = &v["sensors"];
    let rows = [
        (
            "gateway",
            format!(
                "{} (coldgate {}), up {}",
                s(&v, "gateway_id"),
                s(&v, "version"),
                age(v["uptime_s"].as_i64())
            ),
        ),
        (
            "clock",
            if v["clock_synchronised"] == true {
                "synchronised".into()
            } else {
                "NOT known to be synchronised".into()
            },
        ),
        ("uplink", uplink),
        ("outbox", outbox),
        (
            "storage",
            format!(
                "{} of {}, {} readings ({})",
                mib(&st["file_bytes"]),
                mib(&st["max_bytes"]),
                st["readings"],
                s(st, "path")
            ),
        ),
        ("client cert", cert),
        (
            "sensors",
            format!(
                "{} ok, {} stale, {} silent",
                sn["ok"], sn["stale"], sn["silent"]
            ),
        ),
    ];
    for (k, val) in rows {
        println!("{k:<12} {val}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn sensors(conn: &Conn) -> anyhow::Result<ExitCode> {
    let c = Client::new(conn)?;
    let v = c.get("/api/sensors")?;
    if conn.json {
        return print_json(&v);
    }
    println!("{}", sensors_table(&v));
    Ok(ExitCode::SUCCESS)
}

/// The `/api/sensors` answer as the technician's table: one column per
/// quantity a sensor can report (light too: it is what tells a door open).
fn sensors_table(v: &Value) -> String {
    let value = |row: &Value, q: &str, digits: usize| {
        row["values"][q]["value"]
            .as_f64()
            .map_or("-".to_string(), |x| format!("{x:.digits$}"))
    };
    let rows: Vec<Vec<String>> = v["sensors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let modbus_errors = r["modbus"].as_object().map(|m| {
                [
                    "timeouts",
                    "crc_errors",
                    "framing_errors",
                    "exceptions",
                    "link_errors",
                ]
                .iter()
                .filter_map(|k| m.get(*k).and_then(Value::as_u64))
                .sum::<u64>()
                .to_string()
            });
            vec![
                s(r, "id"),
                s(r, "zone"),
                s(r, "kind"),
                s(r, "state"),
                value(r, "temperature", 1),
                value(r, "humidity", 0),
                value(r, "illuminance", 0),
                r["battery"]
                    .as_f64()
                    .map_or("-".into(), |b| format!("{b:.0} %")),
                r["rssi"]
                    .as_i64()
                    .map_or("-".into(), |x| format!("{x} dBm")),
                modbus_errors.unwrap_or_else(|| "-".into()),
                age(r["age_s"].as_i64()),
            ]
        })
        .collect();
    table(
        &[
            "SENSOR", "ZONE", "KIND", "STATE", "TEMP °C", "RH %", "LUX", "BATTERY", "SIGNAL",
            "ERRORS", "AGE",
        ],
        &rows,
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?key=value&…` of the given pairs, percent-encoding the values.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn events(a: &EventsArgs) -> anyhow::Result<ExitCode> {
    if let (Some(kind), Some(phase)) = (a.kind, &a.phase) {
        super::args::check_phase_of(kind, phase)?;
    }
    let c = Client::new(&a.conn)?;
    let q = query(&[
        ("from", Some(a.since.to_string())),
        ("to", a.until.map(|t| t.to_string())),
        ("kind", a.kind.map(|k| k.as_str().to_string())),
        ("phase", a.phase.clone()),
        ("sscc", a.sscc.clone()),
        ("lot", a.lot.clone()),
        ("limit", a.limit.map(|l| l.to_string())),
    ]);
    let v = c.get(&format!("/api/events{q}"))?;
    if a.conn.json {
        return print_json(&v);
    }
    let rows: Vec<Vec<String>> = v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let kind = e["topic"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("events/")
                .to_string();
            let mut row = vec![e["seq"].to_string()];
            row.extend(event_row(&kind, &e["payload"]));
            row
        })
        .collect();
    if rows.is_empty() {
        println!(
            "no matching events (since {})",
            crate::event::rfc3339(a.since)
        );
    } else {
        println!(
            "{}",
            table(
                &["SEQ", "AT", "KIND", "PHASE", "ZONE", "SENSOR", "DETAIL"],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// AT, KIND, PHASE, ZONE, SENSOR and DETAIL of a stored event, read as its
/// payload type; one that does not read is shown as its raw JSON.
fn event_row(kind: &str, payload: &Value) -> Vec<String> {
    use crate::event::payload::{word, EventBody};
    let Ok(e) = EventBody::parse_value(kind, payload) else {
        let raw = payload.to_string();
        return vec![
            String::new(),
            kind.to_string(),
            String::new(),
            String::new(),
            String::new(),
            raw,
        ];
    };
    let (phase, zone, sensor, detail) = match &e.body {
        EventBody::Excursion(x) => (
            word(&x.phase),
            x.zone.clone(),
            x.sensor_id.clone(),
            format!(
                "{} {} limit {} max {} ({} s)",
                x.quantity.as_str(),
                x.direction.as_str(),
                x.limit,
                x.max,
                x.duration_s
            ),
        ),
        EventBody::Door(x) => (
            word(&x.phase),
            x.zone.clone(),
            x.sensor_id.clone(),
            format!("{} lux, {} s", x.lux, x.duration_s),
        ),
        EventBody::Lot(x) => (
            word(&x.phase),
            x.zone.clone().unwrap_or_default(),
            String::new(),
            format!(
                "{} {} gtin {}",
                x.reason.as_str(),
                x.lot.as_deref().unwrap_or(""),
                x.gtin.as_deref().unwrap_or("")
            ),
        ),
        EventBody::Sensor(x) => (
            word(&x.phase),
            x.zone.clone(),
            x.sensor_id.clone(),
            format!("gap {} s", x.gap_s),
        ),
        EventBody::Gateway(_) | EventBody::Audit(_) => (
            payload["phase"].as_str().unwrap_or_default().to_string(),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    vec![e.at, kind.to_string(), phase, zone, sensor, detail]
}

pub fn manifest(a: &ManifestArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.conn)?;
    match &a.action {
        ManifestAction::Show { all } => {
            let v = c.get(if *all {
                "/api/manifest?all=true"
            } else {
                "/api/manifest"
            })?;
            if a.conn.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["pallets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let items: Vec<String> = p["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|i| format!("{}/{}", s(i, "gtin"), s(i, "lot")))
                        .collect();
                    vec![
                        s(p, "sscc"),
                        s(p, "zone"),
                        s(p, "profile"),
                        s(p, "loaded_at"),
                        s(p, "unloaded_at"),
                        items.join(", "),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no pallet on board");
            } else {
                println!(
                    "{}",
                    table(
                        &["SSCC", "ZONE", "PROFILE", "LOADED", "UNLOADED", "GTIN/LOT"],
                        &rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ManifestAction::Load { file } => {
            let text = if file == Path::new("-") {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            command(&c, "/api/manifest/load", &body, a.conn.json, "loaded")
        }
        ManifestAction::Unload { sscc, at } => {
            let mut body = json!({ "sscc": sscc });
            if let Some(at) = at {
                body["at"] = json!(crate::event::rfc3339(*at));
            }
            command(&c, "/api/manifest/unload", &body, a.conn.json, "unloaded")
        }
    }
}

/// The warnings an accepted load raised, one line each: accepted, but the
/// operator who loaded it should see them there and then.
pub(super) fn load_warnings(answer: &Value) -> Vec<String> {
    answer["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| format!("warning ({}): {}", s(w, "reason"), s(w, "message")))
        .collect()
}

/// Sends a manifest command; a refusal lists every reason, exit code 1.
fn command(
    c: &Client,
    path: &str,
    body: &Value,
    json: bool,
    done: &str,
) -> anyhow::Result<ExitCode> {
    match c.post(path, body) {
        Ok(v) => {
            if json {
                return print_json(&v);
            }
            println!(
                "{done} pallet {} (command {})",
                s(body, "sscc"),
                s(&v, "command_id")
            );
            for w in load_warnings(&v) {
                eprintln!("  {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ApiError::Status {
            status: 400 | 422,
            body: answer,
            ..
        }) => {
            if json {
                println!("{answer}");
            } else {
                eprintln!("refused: pallet {}", s(body, "sscc"));
                for e in answer["errors"].as_array().into_iter().flatten() {
                    eprintln!("  {}", e.as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn lot(a: &LotArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.conn)?;
    let path = format!(
        "/api/lots/{}{}",
        enc(&a.lot),
        query(&[("gtin", a.gtin.clone())])
    );
    let v = match c.get(&path) {
        Ok(v) => v,
        Err(ApiError::Status {
            status: 404,
            message,
            ..
        }) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if a.conn.json {
        return print_json(&v);
    }
    #[derive(serde::Deserialize)]
    struct Lots {
        lots: Vec<crate::http::lot_view::LotView>,
    }
    let Lots { lots } = serde_json::from_value(v).context("the daemon's lot answer")?;
    for l in lots {
        println!(
            "lot {} of GTIN {} (expiry {})",
            l.lot,
            l.gtin,
            l.expiry.as_deref().unwrap_or("unknown")
        );
        println!("  pallets:     {}", l.pallets.join(", "));
        println!("  excursions:  {}", l.excursions.len());
        if let Some(m) = l.mkt.as_ref().and_then(|m| m.stay_celsius) {
            println!("  MKT:         {m:.2} °C over its stays");
        }
        for o in &l.out_of_range {
            println!(
                "  out of range ({}): {}",
                o.rule,
                humantime::format_duration(std::time::Duration::from_secs(o.seconds as u64))
            );
        }
        if !l.exhausted.is_empty() {
            println!("  EXHAUSTED:   {}", l.exhausted.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_over_loopback() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(base_url("[::]:9000".parse().unwrap()), "http://[::1]:9000");
        assert_eq!(
            base_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80"
        );
    }

    #[test]
    fn the_http_section_is_read_without_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "gateway_id = 1\n[http]\nlisten = \"0.0.0.0:9090\"\ntoken_file = \"/t\"\n",
        )
        .unwrap();
        let (listen, token) = from_config(&p, true).unwrap();
        assert_eq!(listen.port(), 9090);
        assert_eq!(token.as_deref(), Some(Path::new("/t")));
        let missing = dir.path().join("none.toml");
        assert_eq!(from_config(&missing, false).unwrap().0.port(), 8080);
        assert!(from_config(&missing, true).is_err());
    }

    #[test]
    fn the_sensors_table_shows_light_beside_temperature_and_humidity() {
        let v = json!({ "sensors": [{
            "id": "rear-1", "zone": "rear", "kind": "ble", "state": "ok", "age_s": 3,
            "values": {
                "temperature": { "value": 4.87, "unit": "°C" },
                "humidity": { "value": 61.2, "unit": "%" },
                "illuminance": { "value": 312.4, "unit": "lx" },
            },
        }]});
        let t = sensors_table(&v);
        let mut lines = t.lines();
        let header = lines.next().unwrap();
        let row = lines.next().unwrap();
        // Columns are padded by characters (°C is two bytes).
        let col = |name: &str| header[..header.find(name).unwrap()].chars().count();
        assert!(
            col("RH %") < col("LUX") && col("LUX") < col("BATTERY"),
            "{t}"
        );
        let lux: String = row.chars().skip(col("LUX")).take(3).collect();
        assert_eq!(lux, "312", "{t}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[
                ("from", Some("2026-11-25T18:00:00+01:00".into())),
                ("kind", None)
            ]),
            "?from=2026-11-25T18%3A00%3A00%2B01%3A00"
        );
        assert_eq!(query(&[("a", None)]), "");
    }

    #[test]
    fn tables_pad_columns() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1");
    }
}
