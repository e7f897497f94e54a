//! The one TOML file that configures a gateway.
//!
//! Loading is two steps: serde turns text into structs (syntax errors, each
//! with its line:column and as many as the file holds, or the first unknown
//! key or wrong type, with its key path, stop it), then
//! [`Config::validate`] checks the meaning and reports *every* problem at once,
//! so an installer fixes a file in one round instead of ten.
//!
//! One room: the configuration is one serde tree (`deny_unknown_fields` at every level) whose
//! defaults are documented beside their fields; splitting the structs would scatter the one file
//! an operator reads.

mod bytes;
mod load;
mod validate;

#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;
use std::time::Duration;

use coldgate_sensor_drivers::Quantity;
use serde::Deserialize;

pub use bytes::ByteSize;
pub use load::{
    load, load_checked, parse, parse_checked, read_bounded, truncate_echo, ConfigError, Problem,
    MAX_FILE_SIZE,
};

/// Whether `ip` is this machine: `127.0.0.0/8`, `::1`, and their
/// IPv4-mapped forms (`::ffff:127.0.0.1`).
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether an MQTT `host` names this machine: `localhost` or a loopback
/// address literal.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(is_loopback)
}
#[cfg(test)]
pub(crate) use validate::validate_profile;

/// The example file shipped in `config/`, embedded so `coldgate demo` runs
/// with nothing on disk and so a test proves the documented file loads.
pub const EXAMPLE: &str = include_str!("../../../config/coldgate.example.toml");

/// The demo's configuration: the example's shape with a simulator and a
/// compressor failure early enough to be seen within a minute.
pub const DEMO: &str = include_str!("../../../config/demo.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This gateway's id: MQTT client id, topic segment, and the
    /// `gateway_id` of every payload. Letters, digits, `-` and `_`.
    pub gateway_id: String,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Product profiles: the limits a zone's readings are judged against.
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
    /// Places in the container, each watched with a default profile.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Every sensor the gateway accepts readings from.
    #[serde(default)]
    pub sensors: Vec<SensorConfig>,
    /// Modbus RTU buses and TCP endpoints (`[[modbus.rtu]]`, `[[modbus.tcp]]`,
    /// `[[modbus.profiles]]`); see docs/modbus.md.
    #[serde(default)]
    pub modbus: coldgate_sensor_drivers::modbus::ModbusConfig,
    /// BLE advertisers (`[ble]`, `[[ble.sensors]]`); see docs/sensors.md.
    #[serde(default)]
    pub ble: coldgate_sensor_drivers::ble::BleConfig,
    /// The simulated container; required when any sensor has `kind = "sim"`.
    #[serde(default)]
    pub sim: Option<SimConfig>,
    /// The local HTTP API and dashboard (`[http]`); see docs/http.md.
    #[serde(default)]
    pub http: HttpConfig,
    /// Checks on load commands (`[manifest]`); see docs/loading.md.
    #[serde(default)]
    pub manifest: ManifestConfig,
    /// Pallets on board, until load/unload commands arrive over MQTT/HTTP.
    /// Loaded into the manifest once (a stay is keyed by SSCC and load time).
    #[serde(default)]
    pub pallets: Vec<PalletConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The redb database file. Default `/var/lib/coldgate/coldgate.redb`
    /// (systemd's `StateDirectory=`).
    pub path: PathBuf,
    /// Readings older than this are trimmed, oldest first. Default `90d`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// The database file never grows past this: readings are trimmed, oldest
    /// first, to stay inside it (redb doubles its file, so the readings kept
    /// use between half and all of it). Un-sent events are never trimmed.
    /// Default `1GiB`.
    pub max_size: ByteSize,
    /// redb's page cache. Small on a Pi: appends touch only the newest
    /// pages, and the cache is resident memory once full. Default `1MiB`.
    pub cache_size: ByteSize,
    /// Routine batches go to a reading journal beside the database
    /// (`<path>.journal/`, docs/journal.md), one page per sync instead of
    /// a redb commit's ~32 KB, and are folded into the database every
    /// `fold_interval` or when an event, a command or a stop needs it.
    /// Readers (export, the HTTP API, the dashboard, reports) see a reading
    /// once its journal sync returned, folded or not. Default `false` until
    /// the wear figures are met end to end (issue 20 item 5).
    pub journal: bool,
    /// With `journal`: the longest a reading stays in the journal alone,
    /// which also bounds what a start replays. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub fold_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("/var/lib/coldgate/coldgate.redb"),
            retention: Duration::from_secs(90 * 24 * 3600),
            max_size: ByteSize(1 << 30),
            cache_size: ByteSize(1 << 20),
            journal: false,
            fold_interval: Duration::from_secs(300),
        }
    }
}

/// `[http]`: the technician's API, `/metrics` and the dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the API at all. Default `true`.
    pub enabled: bool,
    /// Address and port to listen on. Default `127.0.0.1:8080` (this machine
    /// only). Any other address requires `token_file`.
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token (one line, at least 16 characters;
    /// trailing newline ignored). When set, every request but `GET /` and
    /// `/healthz` must carry `Authorization: Bearer <token>`. None if absent.
    pub token_file: Option<PathBuf>,
    /// Host names (without port) the API answers to besides IP literals and
    /// `localhost`: any other `Host` header is refused, so a web page whose
    /// name is re-pointed at this machine (DNS rebinding) cannot read it.
    /// Default none.
    pub allowed_hosts: Vec<String>,
    /// Connections held open at once; past it the oldest idle one is closed
    /// (or, when none is idle, the new one). Sized with the unit's
    /// `LimitNOFILE` (docs/http.md). Default `256`.
    pub max_connections: usize,
    /// A connection must send a request's whole header within this time,
    /// and an idle keep-alive connection is closed after it. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_file: None,
            allowed_hosts: Vec::new(),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManifestConfig {
    /// A load command whose `loaded_at` is later than the gateway's clock
    /// by more than this raises a `loaded_at_future` warning. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub loaded_at_skew: Duration,
    /// A load command whose `loaded_at` is earlier than the gateway's clock
    /// by more than this raises a `loaded_at_past` warning. Default `7d`.
    #[serde(with = "humantime_serde")]
    pub loaded_at_max_age: Duration,
    /// How long the serial registry remembers a pack after its last stay
    /// ended: a pack loaded again within it raises `serial_seen_before`
    /// (and `serial_lot_mismatch` under another lot); later it does not.
    /// Packs on board are always remembered. Default `90d`, as long as
    /// readings are kept (docs/loading.md, "The serial registry").
    #[serde(with = "humantime_serde")]
    pub serial_retention: Duration,
}

impl Default for ManifestConfig {
    fn default() -> Self {
        ManifestConfig {
            loaded_at_skew: crate::manifest::DEFAULT_LOADED_AT_SKEW,
            loaded_at_max_age: crate::manifest::DEFAULT_LOADED_AT_MAX_AGE,
            serial_retention: crate::manifest::DEFAULT_SERIAL_RETENTION,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Readings are committed together at least this often. Each commit is
    /// one fsync and, with redb, about 32 KB written whatever it holds, so
    /// longer spares the SD card; shorter risks fewer readings on power
    /// loss. Events are committed at once regardless. Default `2s`
    /// (docs/performance.md: 1 s costs ~360 B per reading at 100
    /// readings/s, 2 s ~200 B).
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// A batch is committed early when it holds this many readings.
    /// Default `100000`.
    pub batch_size: usize,
    /// Readings that may wait between the sources and ingest before the
    /// sources are made to wait. Default `8192`.
    pub channel_capacity: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_interval: Duration::from_secs(2),
            batch_size: 100_000,
            channel_capacity: 8192,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Publish at all. Default `true`; `false` keeps events in the outbox.
    pub enabled: bool,
    /// Broker host name or address. Default `127.0.0.1`.
    pub host: String,
    /// Broker port. Default `1883`.
    pub port: u16,
    /// Topic prefix. Default `coldgate/v1/{gateway_id}`.
    pub prefix: Option<String>,
    /// MQTT keep-alive. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Events published and not yet acknowledged at most. Default `32`.
    pub inflight: u16,
    /// First wait after a failed connection; doubles up to `reconnect_max`,
    /// with jitter. Default `500ms`.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest wait between connection attempts. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// While waiting to reconnect, how often (on average, jittered) a bare
    /// TCP connect checks whether a broker that was away is back, so the
    /// wait can end early instead of sitting out a long backoff; `0s`: no
    /// probes. Cheap for the broker (no TLS; a refused one is its kernel's
    /// reset). Default `1s`.
    #[serde(with = "humantime_serde")]
    pub reconnect_probe: Duration,
    /// When a probe finds the broker back, the attempt still waits a random
    /// time below this, so a fleet that saw it return together spreads its
    /// TLS handshakes over this long (docs/mqtt.md). Default `3s`.
    #[serde(with = "humantime_serde")]
    pub reconnect_spread: Duration,
    /// How often the retained status is refreshed. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub status_interval: Duration,
    /// MQTT user name. None if absent (with mutual TLS, brokers such as
    /// mosquitto take the certificate's CN instead).
    pub username: Option<String>,
    /// A file holding the MQTT password (trailing newline ignored), so the
    /// secret stays out of this file. Only allowed with `[mqtt.tls]`: a
    /// password is never sent in clear.
    pub password_file: Option<PathBuf>,
    /// TLS to the broker; plain TCP if absent. See docs/mqtt.md.
    pub tls: Option<MqttTlsConfig>,
    /// Plain MQTT (no `[mqtt.tls]`) to a broker that is not on this machine:
    /// refused unless this is `true`, since events and commands would cross
    /// the network in clear and unauthenticated. Default `false`.
    pub allow_plaintext: bool,
    /// After connecting, subscribe to this gateway's own `status` topic and
    /// publish events only once the broker has delivered our status back.
    /// mosquitto PUBACKs (and drops) a publish its ACL denies, so a PUBACK
    /// alone does not prove the broker took an event; with this, a wrong
    /// prefix or ACL keeps events in the outbox and says so. Needs read
    /// access to `{prefix}/status`. Default `false`.
    pub verify_own_status: bool,
    /// Events plus telemetry waiting in the outbox, at most. When a commit
    /// would exceed it the oldest telemetry is dropped (counted in
    /// `status.telemetry_dropped`); events are never dropped, and a
    /// `gateway` event (`kind: outbox_pressure`) reports each episode.
    /// Default `100000` (at the default telemetry, 10 sensors fill it in
    /// about a week offline; events are ~1 KB each on disk).
    pub outbox_cap: u64,
    /// The largest payload the gateway publishes, in bytes or with a unit
    /// (`"128KiB"`). An event whose `affected` pallets (or a manifest whose
    /// pallets) would not fit is split into parts that share its
    /// `event_id` (docs/mqtt.md, "Large events"); an entry that still does
    /// not fit is set aside instead of blocking every event behind it.
    /// Default `128KiB`, which AWS IoT Core and the other common cloud
    /// brokers accept; at least `4KiB`, at most `256MiB` (MQTT's limit).
    pub max_payload: ByteSize,
    /// Periodic per-sensor aggregates (`[mqtt.telemetry]`).
    pub telemetry: TelemetryConfig,
}

/// `[mqtt.telemetry]`: min, max, mean and count per sensor and quantity,
/// every `interval`, on `{prefix}/telemetry/{sensor_id}`. Telemetry waits
/// in its own outbox table, never takes an event `seq`, and is the first
/// thing dropped when the outbox is full.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Publish telemetry at all. Default `true`.
    pub enabled: bool,
    /// The aggregation window, aligned to the readings' time (a multiple of
    /// it since the epoch). Default `60s`; at least `1s`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// MQTT QoS, `0` (sent once, gone when written to the socket) or `1`
    /// (kept until the broker's PUBACK, like events). Default `0`.
    pub qos: u8,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: true,
            interval: Duration::from_secs(60),
            qos: 0,
        }
    }
}

/// `[mqtt.tls]`: the broker is verified against `ca_file` and, for mutual
/// TLS, the gateway presents `cert_file`. TLS 1.2 and 1.3 only. The files
/// are read and checked when the configuration is validated (so
/// `check-config` finds an expired or mismatched certificate) and again at
/// every connection (so a renewed certificate is picked up without a
/// restart).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsConfig {
    /// PEM file of the CA certificate(s) the broker's certificate must chain
    /// to. Default (absent): the operating system's root certificates
    /// (Debian: the ca-certificates bundle), for a broker with a public
    /// certificate. Set it for a broker on a private PKI: then only that CA
    /// is trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the gateway's certificate (then its intermediates), for
    /// mutual TLS. Requires `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM file of the private key of `cert_file` (PKCS#8, PKCS#1 RSA or
    /// SEC1 EC).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name the broker's certificate must be valid for. Default: `host`
    /// (set this when connecting by an address the certificate does not
    /// name).
    #[serde(default)]
    pub server_name: Option<String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            host: "127.0.0.1".to_string(),
            port: 1883,
            prefix: None,
            keep_alive: Duration::from_secs(30),
            inflight: 32,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(60),
            reconnect_probe: Duration::from_secs(1),
            reconnect_spread: Duration::from_secs(3),
            status_interval: Duration::from_secs(60),
            username: None,
            password_file: None,
            tls: None,
            allow_plaintext: false,
            verify_own_status: false,
            outbox_cap: 100_000,
            max_payload: ByteSize(128 * 1024),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Config {
    /// The MQTT topic prefix with `{gateway_id}` filled in.
    pub fn topic_prefix(&self) -> String {
        match &self.mqtt.prefix {
            Some(p) => p.replace("{gateway_id}", &self.gateway_id),
            None => format!("coldgate/v1/{}", self.gateway_id),
        }
    }

    /// The profile a zone uses, if the zone and profile exist.
    pub fn zone_profile(&self, zone: &str) -> Option<&ProfileConfig> {
        let z = self.zones.iter().find(|z| z.id == zone)?;
        self.profile(&z.profile)
    }

    /// A profile by id: this file's `[[profiles]]` first, then the built-in
    /// presets of `config/profiles.toml`.
    pub fn profile(&self, id: &str) -> Option<&ProfileConfig> {
        self.profiles
            .iter()
            .find(|p| p.id == id)
            .or_else(|| presets().iter().find(|p| p.id == id))
    }
}

/// The built-in profiles, documented in `config/profiles.toml` and embedded
/// so a zone can name `who-30dtr` without copying its rules.
pub const PROFILES: &str = include_str!("../../../config/profiles.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Presets {
    profiles: Vec<ProfileConfig>,
}

/// The presets, parsed once. A test proves the embedded file parses and
/// validates, so the empty fallback is never taken in a shipped build.
pub fn presets() -> &'static [ProfileConfig] {
    static PRESETS: std::sync::OnceLock<Vec<ProfileConfig>> = std::sync::OnceLock::new();
    PRESETS.get_or_init(|| {
        toml::from_str::<Presets>(PROFILES)
            .map(|p| p.profiles)
            .unwrap_or_default()
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Name used by zones and in payloads, e.g. `refrigerated`.
    pub id: String,
    /// Rules per watched quantity. A quantity may have several entries (the
    /// WHO preset has a heat and a cold alarm with different delays), but
    /// each of its directions (`low`, `high`) is set at most once.
    #[serde(default)]
    pub limits: Vec<LimitConfig>,
    /// Mean kinetic temperature limit per lot. None if absent.
    #[serde(default)]
    pub mkt: Option<MktConfig>,
    /// Light in a closed container means the door is open. None if absent.
    #[serde(default)]
    pub light: Option<LightConfig>,
    /// A sensor silent for longer than this opens a monitoring gap
    /// (`events/sensor` silent / back). None if absent.
    #[serde(with = "humantime_serde", default)]
    pub silence: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MktConfig {
    /// °C. A lot whose MKT over its whole stay, or over `window`, exceeds
    /// this raises one `lot` event per limit.
    pub limit: f64,
    /// The sliding window, e.g. `24h` (cold chain) or `30d` (CRT). The
    /// window limit is judged once a lot has been watched that long.
    #[serde(with = "humantime_serde", default)]
    pub window: Option<Duration>,
    /// ΔH, kJ/mol. Default 83.144 (USP <1079.2>).
    #[serde(default = "default_activation_energy")]
    pub activation_energy: f64,
}

/// USP <1079.2> default activation energy, kJ/mol: ΔH/R ≈ 10 000 K. Kept
/// here, with the field it is the default of, so config needs no engine.
pub const DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL: f64 = 83.144;

fn default_activation_energy() -> f64 {
    DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightConfig {
    /// Lux at or above which the door is taken to be open.
    pub threshold: f64,
    /// The door is closed again below `threshold - hysteresis`. Default 0.
    #[serde(default)]
    pub hysteresis: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PalletConfig {
    /// SSCC, 18 digits with its check digit.
    pub sscc: String,
    /// The zone it stands in.
    pub zone: String,
    /// Its product profile; the zone's if absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// RFC 3339, e.g. `2026-11-25T18:00:00Z`.
    pub loaded_at: String,
    /// RFC 3339; on board until then, or until unloaded by command.
    #[serde(default)]
    pub unloaded_at: Option<String>,
    /// At least one.
    pub items: Vec<crate::manifest::Item>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub quantity: Quantity,
    /// A reading at or below this is out of range (below, if `exclusive`).
    pub low: Option<f64>,
    /// A reading at or above this is out of range (above, if `exclusive`).
    pub high: Option<f64>,
    /// The reading must stay out of range for longer than this before an
    /// excursion is raised. Default `0s` (at once).
    #[serde(with = "humantime_serde", default)]
    pub delay: Duration,
    /// `true`: only a reading strictly beyond a limit is out of range: the
    /// limit belongs to the acceptable range, as the end points of a
    /// labelled range do ("store at 2–8 °C": 8.0 is fine). Every
    /// label-derived preset sets it. Default `false` (the limit itself is
    /// out, as WHO PQS alarm thresholds are).
    #[serde(default)]
    pub exclusive: bool,
    /// Once out, the value must come back inside the limit by more than this
    /// to be in range again, so noise at the limit does not flap. Default 0.
    #[serde(default)]
    pub hysteresis: f64,
    /// Total time beyond `low` a lot may accumulate over its stays on board
    /// before a `lot` event says it is exhausted. None: the rule allows no
    /// time below it (any excursion needs assessment).
    #[serde(with = "humantime_serde", default)]
    pub low_budget: Option<Duration>,
    /// The same for time beyond `high`. Kept apart from `low_budget`
    /// because a product's tolerance to heat says nothing about its
    /// tolerance to cold (a 2–8 °C vaccine may ride out hours at 12 °C and
    /// be ruined by minutes of freezing).
    #[serde(with = "humantime_serde", default)]
    pub high_budget: Option<Duration>,
    /// The single allowance of older configs: accepted only on a rule with
    /// one direction, where it cannot be misread; validation refuses it on
    /// a rule with both `low` and `high`.
    #[serde(with = "humantime_serde", default)]
    pub budget: Option<Duration>,
    /// Time below `low` is freezing: reports call it a freeze, which always
    /// needs assessment. Needs `low` and no `low_budget`.
    #[serde(default)]
    pub freeze: bool,
}

impl LimitConfig {
    /// The cumulative allowance of one direction (`budget` stands for the
    /// only direction a one-sided rule has).
    pub fn allowance(&self, direction: crate::event::payload::Direction) -> Option<Duration> {
        use crate::event::payload::Direction;
        let one_sided = self.low.is_none() != self.high.is_none();
        let legacy = self.budget.filter(|_| one_sided);
        match direction {
            Direction::Low => self.low.and(self.low_budget.or(legacy)),
            Direction::High => self.high.and(self.high_budget.or(legacy)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// e.g. `front`, `rear`, `whole`.
    pub id: String,
    /// The profile this zone's readings are judged against.
    pub profile: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// Produced by the simulated container (`[sim]`).
    Sim,
    /// A BLE advertiser (`[ble]`).
    Ble,
    /// A Modbus unit (`[modbus]`).
    Modbus,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Stable id carried by every reading, e.g. `rear-ble-1`.
    pub id: String,
    /// The zone this sensor watches.
    pub zone: String,
    pub kind: SensorKind,
    /// What it measures. Default `["temperature"]`.
    #[serde(default = "default_quantities")]
    pub quantities: Vec<Quantity>,
}

fn default_quantities() -> Vec<Quantity> {
    vec![Quantity::Temperature]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Simulated seconds per real second. Default `1`.
    pub speed: f64,
    /// Seed of the noise, so a run can be repeated. Default `1`.
    pub seed: u64,
    /// Simulated time between two readings of a sensor. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub reading_interval: Duration,
    /// The reefer unit's set point, °C. Default `5.0`.
    pub setpoint: f64,
    /// Outside air, °C. Default `25.0`.
    pub ambient: f64,
    /// Time between door openings (simulated); none if absent.
    #[serde(with = "humantime_serde", default)]
    pub door_every: Option<Duration>,
    /// How long the door stays open. Default `2m`.
    #[serde(with = "humantime_serde")]
    pub door_open_for: Duration,
    /// Compressor failures in one zone.
    pub failures: Vec<FailureConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            speed: 1.0,
            seed: 1,
            reading_interval: Duration::from_secs(30),
            setpoint: 5.0,
            ambient: 25.0,
            door_every: None,
            door_open_for: Duration::from_secs(120),
            failures: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureConfig {
    /// The zone whose cooling fails.
    pub zone: String,
    /// Simulated time after start when it fails.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// How long until it is repaired.
    #[serde(with = "humantime_serde")]
    pub lasts: Duration,
    /// Repeat this often (simulated); once if absent.
    #[serde(with = "humantime_serde", default)]
    pub every: Option<Duration>,
}
