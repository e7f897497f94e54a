//! The `[modbus]` section of the gateway configuration.
//!
//! The gateway embeds [`ModbusConfig`] as `[modbus]`, with `[[modbus.rtu]]`
//! buses, `[[modbus.tcp]]` endpoints and user `[[modbus.profiles]]`. Every
//! struct refuses unknown keys so that a typo (`poll_intervall`) is an error at
//! start-up rather than a silently ignored setting. [`ModbusConfig::validate`]
//! then reports every remaining problem at once, each with its key path.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::profiles;
pub use super::register::{
    Function, Parity, RegisterConfig, RegisterType, Sentinel, UnknownName, WordOrder,
};

/// One problem in the configuration, with the key path that holds it, e.g.
/// `modbus.rtu[0].devices[2].unit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl ConfigProblem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// `[modbus]`: every RS-485 bus, every Modbus TCP endpoint, user profiles.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// `[[modbus.rtu]]`: RS-485 buses. Default: none.
    #[serde(default)]
    pub rtu: Vec<RtuBusConfig>,
    /// `[[modbus.tcp]]`: Modbus TCP endpoints. Default: none.
    #[serde(default)]
    pub tcp: Vec<TcpEndpointConfig>,
    /// `[[modbus.profiles]]`: register maps defined by the user, referred to
    /// by `profile = "name"`. Their names must not repeat a built-in profile.
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

/// `[[modbus.rtu]]`: one RS-485 bus behind one serial port. One task polls it,
/// one request at a time (the bus is half duplex).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtuBusConfig {
    /// Serial device, e.g. `/dev/ttyUSB0`; prefer `/dev/serial/by-id/...`,
    /// which survives re-plugging. Required.
    pub device: String,
    /// Baud rate. Default 9600.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Parity. Default `none`.
    #[serde(default = "default_parity")]
    pub parity: Parity,
    /// Data bits, 5 to 8. Default 8 (Modbus RTU requires 8).
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Stop bits, 1 or 2. Default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// How long to wait for a reply to one request. Default 500 ms.
    #[serde(default = "default_rtu_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Silence kept between frames. Default: 3.5 character times at this
    /// baud rate, and at least 5 ms (USB adapters add jitter).
    #[serde(default, with = "humantime_serde")]
    pub gap: Option<Duration>,
    /// After a timeout or a garbled frame, the line must stay quiet this long
    /// before the next request, so that a late reply is discarded instead of
    /// being taken for the next answer. Default 100 ms. `0s` disables it (not
    /// recommended).
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub drain: Duration,
    /// Extra attempts for a request that failed while the unit was healthy.
    /// A unit that is already failing gets one attempt per backoff step.
    /// Default 1.
    #[serde(default = "default_retries")]
    pub retries: u8,
    /// Longest wait between attempts to a silent unit (the wait doubles from
    /// its poll interval). Default 60 s.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// `[[modbus.rtu.devices]]`: the units on this bus.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// `[[modbus.tcp]]`: one Modbus TCP server (a device or a TCP-to-RTU gateway).
/// One task polls it over one connection, reconnecting by itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpEndpointConfig {
    /// Host name or IP address. Required.
    pub host: String,
    /// TCP port. Default 502.
    #[serde(default = "default_port")]
    pub port: u16,
    /// How long to wait for a connection or a reply. Default 1 s.
    #[serde(default = "default_tcp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra attempts for a request that failed while the unit was healthy. Default 1.
    #[serde(default = "default_retries")]
    pub retries: u8,
    /// Longest wait between attempts to a silent unit. Default 60 s.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// `[[modbus.tcp.devices]]`: the units behind this endpoint.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// One Modbus unit, read as one sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The gateway's sensor id; every reading from this unit carries it. Required.
    pub sensor: String,
    /// Modbus unit (slave) id, 1 to 247. Required.
    pub unit: u8,
    /// How often to read the unit. Default 10 s.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A built-in or user profile name. Exactly one of `profile` and `registers`.
    #[serde(default)]
    pub profile: Option<String>,
    /// An explicit register map. Exactly one of `profile` and `registers`.
    #[serde(default)]
    pub registers: Option<Vec<RegisterConfig>>,
}

/// `[[modbus.profiles]]`: a named register map for a model of device.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// The name devices use in `profile = "..."`. Required.
    pub name: String,
    /// The registers to read. Required, at least one.
    pub registers: Vec<RegisterConfig>,
}

fn default_baud() -> u32 {
    9600
}
fn default_parity() -> Parity {
    Parity::None
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_rtu_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_tcp_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_drain() -> Duration {
    Duration::from_millis(100)
}
fn default_retries() -> u8 {
    1
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
fn default_port() -> u16 {
    502
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(10)
}

impl RtuBusConfig {
    /// A bus on `device` with every default, for tests and the probe.
    pub fn new(device: impl Into<String>) -> Self {
        RtuBusConfig {
            device: device.into(),
            baud: default_baud(),
            parity: default_parity(),
            data_bits: default_data_bits(),
            stop_bits: default_stop_bits(),
            timeout: default_rtu_timeout(),
            gap: None,
            drain: default_drain(),
            retries: default_retries(),
            max_backoff: default_max_backoff(),
            devices: Vec::new(),
        }
    }

    /// Time on the wire of one character: start bit, data, parity, stop bits.
    pub fn char_time(&self) -> Duration {
        let bits = 1
            + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits);
        Duration::from_secs_f64(f64::from(bits) / f64::from(self.baud.max(1)))
    }

    /// The configured gap, or 3.5 character times but at least 5 ms.
    pub fn effective_gap(&self) -> Duration {
        self.gap
            .unwrap_or_else(|| self.char_time().mul_f64(3.5).max(Duration::from_millis(5)))
    }

    /// Every problem of this bus; `path` is e.g. `modbus.rtu[0]`.
    pub fn validate(&self, path: &str, profiles: &[ProfileConfig]) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.device.trim().is_empty() {
            problems.push(ConfigProblem::new(
                format!("{path}.device"),
                "must not be empty",
            ));
        }
        if self.baud == 0 {
            problems.push(ConfigProblem::new(
                format!("{path}.baud"),
                "must be above 0",
            ));
        }
        if !(5..=8).contains(&self.data_bits) {
            problems.push(ConfigProblem::new(
                format!("{path}.data_bits"),
                "must be 5, 6, 7 or 8",
            ));
        }
        if !(1..=2).contains(&self.stop_bits) {
            problems.push(ConfigProblem::new(
                format!("{path}.stop_bits"),
                "must be 1 or 2",
            ));
        }
        check_nonzero(&mut problems, path, "timeout", self.timeout);
        check_nonzero(&mut problems, path, "max_backoff", self.max_backoff);
        if self.gap == Some(Duration::ZERO) {
            problems.push(ConfigProblem::new(
                format!("{path}.gap"),
                "must be above 0 (RTU frames are delimited by silence)",
            ));
        }
        validate_devices(&mut problems, path, &self.devices, profiles);
        problems
    }
}

impl TcpEndpointConfig {
    /// An endpoint with every default, for tests.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        TcpEndpointConfig {
            host: host.into(),
            port,
            timeout: default_tcp_timeout(),
            retries: default_retries(),
            max_backoff: default_max_backoff(),
            devices: Vec::new(),
        }
    }

    /// Every problem of this endpoint; `path` is e.g. `modbus.tcp[0]`.
    pub fn validate(&self, path: &str, profiles: &[ProfileConfig]) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() {
            problems.push(ConfigProblem::new(
                format!("{path}.host"),
                "must not be empty",
            ));
        }
        if self.port == 0 {
            problems.push(ConfigProblem::new(
                format!("{path}.port"),
                "must be above 0",
            ));
        }
        check_nonzero(&mut problems, path, "timeout", self.timeout);
        check_nonzero(&mut problems, path, "max_backoff", self.max_backoff);
        validate_devices(&mut problems, path, &self.devices, profiles);
        problems
    }
}

impl DeviceConfig {
    /// A device on `unit` read with `profile`, polled every 10 s.
    pub fn with_profile(sensor: impl Into<String>, unit: u8, profile: impl Into<String>) -> Self {
        DeviceConfig {
            sensor: sensor.into(),
            unit,
            poll_interval: default_poll_interval(),
            profile: Some(profile.into()),
            registers: None,
        }
    }

    /// Every problem of this device; `path` is e.g. `modbus.rtu[0].devices[2]`.
    pub fn validate(&self, path: &str, profiles: &[ProfileConfig]) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.sensor.trim().is_empty() {
            problems.push(ConfigProblem::new(
                format!("{path}.sensor"),
                "must not be empty",
            ));
        }
        if !(1..=247).contains(&self.unit) {
            problems.push(ConfigProblem::new(
                format!("{path}.unit"),
                format!(
                    "unit {} is outside 1..=247 (0 is broadcast, 248-255 are reserved)",
                    self.unit
                ),
            ));
        }
        check_nonzero(&mut problems, path, "poll_interval", self.poll_interval);
        match (&self.profile, &self.registers) {
            (Some(_), Some(_)) => problems.push(ConfigProblem::new(
                path,
                "set either `profile` or `registers`, not both",
            )),
            (None, None) => problems.push(ConfigProblem::new(
                path,
                "set `profile` (a built-in or [[modbus.profiles]] name) or `registers`",
            )),
            (Some(name), None) => {
                if resolve_profile(name, profiles).is_none() {
                    problems.push(ConfigProblem::new(
                        format!("{path}.profile"),
                        format!(
                            "unknown profile `{name}` (built-in: {}; or define it in [[modbus.profiles]])",
                            profiles::BUILT_IN_NAMES.join(", ")
                        ),
                    ));
                }
            }
            (None, Some(registers)) => {
                problems.extend(validate_registers(&format!("{path}.registers"), registers));
            }
        }
        problems
    }

    /// The register map this device reads, from its profile or its own list.
    /// `None` when the profile is unknown (which [`Self::validate`] reports).
    pub fn resolved_registers(&self, profiles: &[ProfileConfig]) -> Option<Vec<RegisterConfig>> {
        match (&self.profile, &self.registers) {
            (_, Some(registers)) => Some(registers.clone()),
            (Some(name), None) => resolve_profile(name, profiles),
            (None, None) => None,
        }
    }
}

/// A user profile first (names may not clash with built-ins), else a built-in.
pub fn resolve_profile(name: &str, profiles: &[ProfileConfig]) -> Option<Vec<RegisterConfig>> {
    profiles
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.registers.clone())
        .or_else(|| profiles::built_in(name).map(|p| p.registers))
}

impl ModbusConfig {
    /// Every problem in `[modbus]`; `path` is the section's key, normally `modbus`.
    pub fn validate(&self, path: &str) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for (i, profile) in self.profiles.iter().enumerate() {
            let p = format!("{path}.profiles[{i}]");
            if profile.name.trim().is_empty() {
                problems.push(ConfigProblem::new(format!("{p}.name"), "must not be empty"));
            } else if profiles::built_in(&profile.name).is_some() {
                problems.push(ConfigProblem::new(
                    format!("{p}.name"),
                    format!(
                        "`{}` is a built-in profile; choose another name",
                        profile.name
                    ),
                ));
            } else if !names.insert(profile.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("{p}.name"),
                    format!("profile `{}` is defined twice", profile.name),
                ));
            }
            problems.extend(validate_registers(
                &format!("{p}.registers"),
                &profile.registers,
            ));
        }
        for (i, bus) in self.rtu.iter().enumerate() {
            problems.extend(bus.validate(&format!("{path}.rtu[{i}]"), &self.profiles));
        }
        for (i, endpoint) in self.tcp.iter().enumerate() {
            problems.extend(endpoint.validate(&format!("{path}.tcp[{i}]"), &self.profiles));
        }
        // A sensor id names one physical device: two units with one id would
        // interleave their readings into one series.
        let mut seen: HashMap<&str, String> = HashMap::new();
        let all = self
            .rtu
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                b.devices
                    .iter()
                    .enumerate()
                    .map(move |(j, d)| (format!("{path}.rtu[{i}].devices[{j}]"), d))
            })
            .chain(self.tcp.iter().enumerate().flat_map(|(i, t)| {
                t.devices
                    .iter()
                    .enumerate()
                    .map(move |(j, d)| (format!("{path}.tcp[{i}].devices[{j}]"), d))
            }));
        for (p, device) in all {
            if let Some(first) = seen.get(device.sensor.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("{p}.sensor"),
                    format!("sensor id `{}` is already used by {first}", device.sensor),
                ));
            } else {
                seen.insert(device.sensor.as_str(), p);
            }
        }
        problems
    }
}

fn check_nonzero(problems: &mut Vec<ConfigProblem>, path: &str, key: &str, value: Duration) {
    if value.is_zero() {
        problems.push(ConfigProblem::new(
            format!("{path}.{key}"),
            "must be above 0",
        ));
    }
}

fn validate_devices(
    problems: &mut Vec<ConfigProblem>,
    path: &str,
    devices: &[DeviceConfig],
    profiles: &[ProfileConfig],
) {
    if devices.is_empty() {
        problems.push(ConfigProblem::new(
            format!("{path}.devices"),
            "no devices: add at least one or remove the section",
        ));
    }
    let mut units: HashMap<u8, usize> = HashMap::new();
    for (j, device) in devices.iter().enumerate() {
        let p = format!("{path}.devices[{j}]");
        problems.extend(device.validate(&p, profiles));
        if let Some(first) = units.insert(device.unit, j) {
            problems.push(ConfigProblem::new(
                format!("{p}.unit"),
                format!(
                    "unit {} is already used by devices[{first}] on this link",
                    device.unit
                ),
            ));
        }
    }
}

/// Every problem of a register list; `path` is the list's key.
pub fn validate_registers(path: &str, registers: &[RegisterConfig]) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    if registers.is_empty() {
        problems.push(ConfigProblem::new(path, "must list at least one register"));
    }
    for (k, reg) in registers.iter().enumerate() {
        let p = format!("{path}[{k}]");
        let words = reg.kind.words();
        match (words, reg.word_order) {
            (2, None) => problems.push(ConfigProblem::new(
                format!("{p}.word_order"),
                format!("{:?} spans two registers: set word_order = \"big\" (high word first) or \"little\" (low word first)", reg.kind).to_lowercase(),
            )),
            (1, Some(_)) => problems.push(ConfigProblem::new(
                format!("{p}.word_order"),
                "only 32-bit types have a word order; remove it",
            )),
            _ => {}
        }
        if u32::from(reg.address) + u32::from(words) > 0x1_0000 {
            problems.push(ConfigProblem::new(
                format!("{p}.address"),
                "the value runs past register 65535",
            ));
        }
        if !reg.scale.is_finite() || reg.scale == 0.0 {
            problems.push(ConfigProblem::new(
                format!("{p}.scale"),
                "must be a finite number other than 0",
            ));
        }
        if !reg.offset.is_finite() {
            problems.push(ConfigProblem::new(
                format!("{p}.offset"),
                "must be a finite number",
            ));
        }
        for (other_k, other) in registers.iter().enumerate().take(k) {
            let (a0, a1) = (
                u32::from(reg.address),
                u32::from(reg.address) + u32::from(words),
            );
            let (b0, b1) = (
                u32::from(other.address),
                u32::from(other.address) + u32::from(other.kind.words()),
            );
            if other.function == reg.function && a0 < b1 && b0 < a1 {
                problems.push(ConfigProblem::new(
                    format!("{p}.address"),
                    format!(
                        "{} registers {}..={} overlap registers[{other_k}] ({}..={})",
                        reg.function,
                        a0,
                        a1 - 1,
                        b0,
                        b1 - 1
                    ),
                ));
            }
        }
    }
    problems
}
