//! Meaning checks: everything serde cannot see. Each check adds a problem
//! and carries on, so one run lists them all. Nothing here reads a file:
//! the checks that do (TLS, password, token) are `daemon::preflight`, run
//! by check-config and at start, so a report read on a laptop does not need
//! the gateway's keys.
//!
//! One room: `validate` must report every problem at once, so each section's checks push into one
//! list and share the id and reference tables built at its start.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use coldgate_sensor_drivers::Quantity;

use super::{truncate_echo, Config, Problem, ProfileConfig, SensorKind};

/// `mqtt.max_payload` bounds: below 4 KiB not even a status fits; MQTT's
/// remaining-length field ends at 256 MiB.
const MIN_PAYLOAD: u64 = 4 * 1024;
const MAX_PAYLOAD: u64 = 256 * 1024 * 1024 - 1;
/// The shortest `mqtt.reconnect_probe`: below it the probes of a fleet would
/// be a load of their own on the broker's host.
const MIN_PROBE: Duration = Duration::from_millis(100);

impl Config {
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !is_identifier(&self.gateway_id) {
            p.push(Problem::new(
                "gateway_id",
                format!(
                    "`{}` must be 1 to 64 letters, digits, `-` or `_` (it is an MQTT topic segment)",
                    truncate_echo(&self.gateway_id)
                ),
            ));
        }
        self.validate_storage(&mut p);
        self.validate_mqtt(&mut p);
        self.validate_http(&mut p);
        let mut profiles = unique_ids(
            self.profiles.iter().map(|x| x.id.as_str()),
            "profiles",
            &mut p,
        );
        for (i, profile) in self.profiles.iter().enumerate() {
            validate_profile(profile, &format!("profiles[{i}]"), &mut p);
        }
        profiles.extend(super::presets().iter().map(|x| x.id.as_str()));
        let zones = unique_ids(self.zones.iter().map(|x| x.id.as_str()), "zones", &mut p);
        for (i, zone) in self.zones.iter().enumerate() {
            if !profiles.contains(zone.profile.as_str()) {
                p.push(Problem::new(
                    format!("zones[{i}].profile"),
                    format!("unknown profile `{}`{}", zone.profile, known(&profiles)),
                ));
            }
        }
        if self.sensors.is_empty() {
            // The shipped file is a template: a gateway that watches nothing
            // must not look commissioned.
            p.push(Problem::new(
                "sensors",
                "no sensors configured: list at least one [[sensors]] entry \
                 (the shipped file is a template; see its commented examples)",
            ));
        }
        unique_ids(
            self.sensors.iter().map(|x| x.id.as_str()),
            "sensors",
            &mut p,
        );
        for (i, sensor) in self.sensors.iter().enumerate() {
            if !zones.contains(sensor.zone.as_str()) {
                p.push(Problem::new(
                    format!("sensors[{i}].zone"),
                    format!("unknown zone `{}`{}", sensor.zone, known(&zones)),
                ));
            }
            if sensor.quantities.is_empty() {
                p.push(Problem::new(
                    format!("sensors[{i}].quantities"),
                    "a sensor must measure at least one quantity",
                ));
            }
            if sensor.kind == SensorKind::Sim && self.sim.is_none() {
                p.push(Problem::new(
                    format!("sensors[{i}].kind"),
                    "a `sim` sensor needs a [sim] section",
                ));
            }
        }
        self.validate_sim(&zones, &mut p);
        self.validate_sources(&mut p);
        self.validate_pallets(&zones, &profiles, &mut p);
        p
    }

    /// The drivers check their own sections; here, that every sensor they
    /// feed is declared with the matching kind, and every declared BLE or
    /// Modbus sensor is fed by something.
    fn validate_sources(&self, p: &mut Vec<Problem>) {
        for q in self.modbus.validate("modbus") {
            p.push(Problem::new(q.path, q.message));
        }
        for q in self.ble.validate("ble") {
            p.push(Problem::new(q.path, q.message));
        }
        let kind_of: HashMap<&str, SensorKind> = self
            .sensors
            .iter()
            .map(|s| (s.id.as_str(), s.kind))
            .collect();
        let mut fed: HashSet<&str> = HashSet::new();
        let check = |path: String,
                     sensor: &str,
                     want: SensorKind,
                     name: &str,
                     p: &mut Vec<Problem>| {
            match kind_of.get(sensor) {
                None => p.push(Problem::new(path, format!("unknown sensor `{sensor}`: declare it in [[sensors]] with kind = \"{name}\""))),
                Some(k) if *k != want => p.push(Problem::new(path, format!("sensor `{sensor}` is not of kind \"{name}\""))),
                Some(_) => {}
            }
        };
        for (i, bus) in self.modbus.rtu.iter().enumerate() {
            for (j, d) in bus.devices.iter().enumerate() {
                check(
                    format!("modbus.rtu[{i}].devices[{j}].sensor"),
                    &d.sensor,
                    SensorKind::Modbus,
                    "modbus",
                    p,
                );
                fed.insert(d.sensor.as_str());
            }
        }
        for (i, ep) in self.modbus.tcp.iter().enumerate() {
            for (j, d) in ep.devices.iter().enumerate() {
                check(
                    format!("modbus.tcp[{i}].devices[{j}].sensor"),
                    &d.sensor,
                    SensorKind::Modbus,
                    "modbus",
                    p,
                );
                fed.insert(d.sensor.as_str());
            }
        }
        for (i, s) in self.ble.sensors.iter().enumerate() {
            check(
                format!("ble.sensors[{i}].sensor"),
                &s.sensor,
                SensorKind::Ble,
                "ble",
                p,
            );
            fed.insert(s.sensor.as_str());
        }
        for (i, s) in self.sensors.iter().enumerate() {
            let section = match s.kind {
                SensorKind::Modbus => "[[modbus.rtu.devices]] or [[modbus.tcp.devices]] entry",
                SensorKind::Ble => "[[ble.sensors]] entry",
                SensorKind::Sim => continue,
            };
            if !fed.contains(s.id.as_str()) {
                p.push(Problem::new(
                    format!("sensors[{i}].kind"),
                    format!("no {section} names sensor `{}`", s.id),
                ));
            }
        }
    }

    fn validate_pallets(
        &self,
        zones: &HashSet<&str>,
        profiles: &HashSet<&str>,
        p: &mut Vec<Problem>,
    ) {
        for (i, pallet) in self.pallets.iter().enumerate() {
            let at = format!("pallets[{i}]");
            if let Some(m) = crate::manifest::sscc_problem(&pallet.sscc) {
                p.push(Problem::new(format!("{at}.sscc"), m));
            }
            if !zones.contains(pallet.zone.as_str()) {
                p.push(Problem::new(
                    format!("{at}.zone"),
                    format!("unknown zone `{}`{}", pallet.zone, known(zones)),
                ));
            }
            if let Some(profile) = &pallet.profile {
                if !profiles.contains(profile.as_str()) {
                    p.push(Problem::new(
                        format!("{at}.profile"),
                        format!("unknown profile `{profile}`{}", known(profiles)),
                    ));
                }
            }
            let loaded = parse_rfc3339(&pallet.loaded_at);
            if loaded.is_none() {
                p.push(Problem::new(
                    format!("{at}.loaded_at"),
                    format!("`{}` is not an RFC 3339 time", pallet.loaded_at),
                ));
            }
            if let Some(u) = &pallet.unloaded_at {
                match (loaded, parse_rfc3339(u)) {
                    (_, None) => p.push(Problem::new(
                        format!("{at}.unloaded_at"),
                        format!("`{u}` is not an RFC 3339 time"),
                    )),
                    (Some(l), Some(u)) if u <= l => p.push(Problem::new(
                        format!("{at}.unloaded_at"),
                        "must be after loaded_at",
                    )),
                    _ => {}
                }
            }
            if pallet.items.is_empty() {
                p.push(Problem::new(
                    format!("{at}.items"),
                    "a pallet needs at least one item",
                ));
            }
            for (j, item) in pallet.items.iter().enumerate() {
                for (field, message) in item.problems() {
                    p.push(Problem::new(format!("{at}.items[{j}].{field}"), message));
                }
            }
        }
    }

    fn validate_storage(&self, p: &mut Vec<Problem>) {
        if self.storage.path.as_os_str().is_empty() {
            p.push(Problem::new("storage.path", "must not be empty"));
        } else if self.storage.path.is_dir() {
            p.push(Problem::new(
                "storage.path",
                format!(
                    "{} is a directory: name the database file inside it (e.g. {}/coldgate.redb)",
                    self.storage.path.display(),
                    self.storage.path.display()
                ),
            ));
        }
        nonzero(self.storage.retention, "storage.retention", p);
        nonzero(self.storage.fold_interval, "storage.fold_interval", p);
        if self.storage.max_size.0 < 1 << 20 {
            p.push(Problem::new("storage.max_size", "must be at least 1MiB"));
        }
        nonzero(self.ingest.batch_interval, "ingest.batch_interval", p);
        if self.ingest.batch_size == 0 {
            p.push(Problem::new("ingest.batch_size", "must be at least 1"));
        }
        if self.ingest.channel_capacity == 0 {
            p.push(Problem::new(
                "ingest.channel_capacity",
                "must be at least 1",
            ));
        }
    }

    fn validate_mqtt(&self, p: &mut Vec<Problem>) {
        let m = &self.mqtt;
        if m.host.trim().is_empty() {
            p.push(Problem::new("mqtt.host", "must not be empty"));
        }
        if m.port == 0 {
            p.push(Problem::new("mqtt.port", "must be between 1 and 65535"));
        }
        if m.inflight == 0 {
            p.push(Problem::new("mqtt.inflight", "must be at least 1"));
        }
        nonzero(m.keep_alive, "mqtt.keep_alive", p);
        nonzero(m.reconnect_min, "mqtt.reconnect_min", p);
        nonzero(m.status_interval, "mqtt.status_interval", p);
        if m.outbox_cap < 100 {
            p.push(Problem::new("mqtt.outbox_cap", "must be at least 100"));
        }
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&m.max_payload.0) {
            p.push(Problem::new(
                "mqtt.max_payload",
                format!(
                    "must be between 4KiB and 256MiB (is {}): smaller cannot hold one event, larger is not MQTT",
                    m.max_payload
                ),
            ));
        }
        if m.telemetry.interval < Duration::from_secs(1) {
            p.push(Problem::new(
                "mqtt.telemetry.interval",
                "must be at least 1s",
            ));
        }
        if m.telemetry.qos > 1 {
            p.push(Problem::new("mqtt.telemetry.qos", "must be 0 or 1"));
        }
        if m.reconnect_max < m.reconnect_min {
            p.push(Problem::new(
                "mqtt.reconnect_max",
                "must not be shorter than mqtt.reconnect_min",
            ));
        }
        if !m.reconnect_probe.is_zero() && m.reconnect_probe < MIN_PROBE {
            p.push(Problem::new(
                "mqtt.reconnect_probe",
                "must be 0s (no probes) or at least 100ms: shorter is a busy loop against the broker",
            ));
        }
        if m.password_file.is_some() && m.tls.is_none() {
            p.push(Problem::new(
                "mqtt.password_file",
                "a password is only sent over TLS: add [mqtt.tls]",
            ));
        }
        if m.enabled && m.tls.is_none() && !m.allow_plaintext && !super::is_loopback_host(&m.host) {
            p.push(Problem::new(
                "mqtt.tls",
                format!(
                    "mqtt.host = \"{}\" is not this machine and [mqtt.tls] is not set: events would travel in clear; add [mqtt.tls], or set mqtt.allow_plaintext = true to accept that",
                    truncate_echo(&m.host)
                ),
            ));
        }
        if let Some(prefix) = &m.prefix {
            if prefix.is_empty() || prefix.contains(['#', '+']) || prefix.ends_with('/') {
                p.push(Problem::new(
                    "mqtt.prefix",
                    "must be non-empty, without `#` or `+`, and not end with `/`",
                ));
            }
        }
    }

    /// A non-loopback address without a token would open the manifest to
    /// anyone on the network: refused, with the keys to change.
    fn validate_http(&self, p: &mut Vec<Problem>) {
        let h = &self.http;
        if !h.enabled {
            return;
        }
        if h.max_connections < 4 || h.max_connections > 4096 {
            p.push(Problem::new(
                "http.max_connections",
                "must be between 4 and 4096 (the unit's LimitNOFILE is sized for the default 256)",
            ));
        }
        if h.header_timeout < Duration::from_millis(100) {
            p.push(Problem::new(
                "http.header_timeout",
                "must be at least 100ms",
            ));
        }
        for (i, name) in h.allowed_hosts.iter().enumerate() {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                p.push(Problem::new(
                    format!("http.allowed_hosts[{i}]"),
                    format!(
                        "`{}` is not a host name (letters, digits, `-` and `.`, no port)",
                        truncate_echo(name)
                    ),
                ));
            }
        }
        match &h.token_file {
            None if !super::is_loopback(h.listen.ip()) => p.push(Problem::new(
                "http.token_file",
                format!(
                    "http.listen = \"{}\" is not a loopback address: set a bearer token file, or listen on 127.0.0.1",
                    h.listen
                ),
            )),
            None => {}
            // Readable and strong enough: daemon::preflight, which reads it.
            Some(_) => {}
        }
    }

    fn validate_sim(&self, zones: &HashSet<&str>, p: &mut Vec<Problem>) {
        let Some(sim) = &self.sim else { return };
        if !(sim.speed.is_finite() && sim.speed > 0.0) {
            p.push(Problem::new("sim.speed", "must be a positive number"));
        }
        nonzero(sim.reading_interval, "sim.reading_interval", p);
        if sim.door_every.is_some_and(|d| d.is_zero()) {
            p.push(Problem::new("sim.door_every", "must be longer than zero"));
        }
        for (i, f) in sim.failures.iter().enumerate() {
            if !zones.contains(f.zone.as_str()) {
                p.push(Problem::new(
                    format!("sim.failures[{i}].zone"),
                    format!("unknown zone `{}`", f.zone),
                ));
            }
            if f.every.is_some_and(|e| e <= f.lasts) {
                p.push(Problem::new(
                    format!("sim.failures[{i}].every"),
                    "must be longer than `lasts`",
                ));
            }
        }
    }
}

/// Checks one profile; `at` is its key path (`profiles[2]`). Public to the
/// crate so the presets' test applies the same rules.
pub(crate) fn validate_profile(profile: &ProfileConfig, at: &str, p: &mut Vec<Problem>) {
    // The same quantity may have several rules (the WHO preset's heat and
    // cold alarms, CRT's storage band inside its tolerated band), but two
    // rules on the same limit value would raise the same excursion twice.
    let mut seen: HashMap<(Quantity, &str, u64), usize> = HashMap::new();
    for (j, limit) in profile.limits.iter().enumerate() {
        let at = format!("{at}.limits[{j}]");
        for (side, value) in [("low", limit.low), ("high", limit.high)] {
            let Some(value) = value else { continue };
            if let Some(k) = seen.insert((limit.quantity, side, value.to_bits()), j) {
                p.push(Problem::new(
                    format!("{at}.{side}"),
                    format!(
                        "`{}` already has a {side} limit of {value} in this profile (limits[{k}])",
                        limit.quantity
                    ),
                ));
            }
        }
        match (limit.low, limit.high) {
            (None, None) => p.push(Problem::new(
                at.clone(),
                "a limit needs `low`, `high` or both",
            )),
            (Some(low), Some(high)) if low >= high => p.push(Problem::new(
                format!("{at}.low"),
                format!("low ({low}) must be below high ({high})"),
            )),
            _ => {}
        }
        for (name, v) in [("low", limit.low), ("high", limit.high)] {
            if v.is_some_and(|v| !v.is_finite()) {
                p.push(Problem::new(
                    format!("{at}.{name}"),
                    "must be a finite number",
                ));
            }
        }
        if !(limit.hysteresis.is_finite() && limit.hysteresis >= 0.0) {
            p.push(Problem::new(
                format!("{at}.hysteresis"),
                "must be a finite number, zero or more",
            ));
        } else if let (Some(low), Some(high)) = (limit.low, limit.high) {
            if low < high && 2.0 * limit.hysteresis >= high - low {
                p.push(Problem::new(
                    format!("{at}.hysteresis"),
                    format!("must be less than half the range ({})", (high - low) / 2.0),
                ));
            }
        }
        for (name, b) in [
            ("budget", limit.budget),
            ("low_budget", limit.low_budget),
            ("high_budget", limit.high_budget),
        ] {
            if let Some(b) = b {
                nonzero(b, &format!("{at}.{name}"), p);
            }
        }
        if limit.budget.is_some() && limit.low.is_some() && limit.high.is_some() {
            p.push(Problem::new(
                format!("{at}.budget"),
                "is ambiguous on a rule with both `low` and `high`: allowances are kept per \
                 direction, set `low_budget` and/or `high_budget`",
            ));
        }
        if limit.budget.is_some() && (limit.low_budget.is_some() || limit.high_budget.is_some()) {
            p.push(Problem::new(
                format!("{at}.budget"),
                "set either `budget` or `low_budget`/`high_budget`, not both",
            ));
        }
        for (name, side, b) in [
            ("low_budget", limit.low, limit.low_budget),
            ("high_budget", limit.high, limit.high_budget),
        ] {
            if b.is_some() && side.is_none() {
                p.push(Problem::new(
                    format!("{at}.{name}"),
                    format!("needs `{}`", &name[..name.len() - 7]),
                ));
            }
        }
        if limit.freeze
            && (limit.low.is_none() || limit.low_budget.is_some() || limit.budget.is_some())
        {
            p.push(Problem::new(
                format!("{at}.freeze"),
                "a freeze rule needs `low` and allows no time below it (no budget)",
            ));
        }
    }
    if let Some(m) = &profile.mkt {
        if !(m.limit.is_finite() && m.limit > -273.15) {
            p.push(Problem::new(
                format!("{at}.mkt.limit"),
                "must be a finite temperature above absolute zero",
            ));
        }
        if !(m.activation_energy.is_finite() && m.activation_energy > 0.0) {
            p.push(Problem::new(
                format!("{at}.mkt.activation_energy"),
                "must be a positive number (kJ/mol)",
            ));
        }
        if let Some(w) = m.window {
            nonzero(w, &format!("{at}.mkt.window"), p);
        }
    }
    if let Some(l) = &profile.light {
        if !(l.threshold.is_finite() && l.threshold > 0.0) {
            p.push(Problem::new(
                format!("{at}.light.threshold"),
                "must be a positive number of lux",
            ));
        }
        if !(l.hysteresis.is_finite() && l.hysteresis >= 0.0 && l.hysteresis < l.threshold) {
            p.push(Problem::new(
                format!("{at}.light.hysteresis"),
                "must be zero or more and below the threshold",
            ));
        }
    }
    if let Some(s) = profile.silence {
        nonzero(s, &format!("{at}.silence"), p);
    }
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    crate::event::parse_rfc3339(text)
}

fn nonzero(d: Duration, path: &str, p: &mut Vec<Problem>) {
    if d.is_zero() {
        p.push(Problem::new(path, "must be longer than zero"));
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Reports empty, malformed and duplicate ids; returns the set of ids.
fn unique_ids<'a>(
    ids: impl Iterator<Item = &'a str>,
    list: &str,
    p: &mut Vec<Problem>,
) -> HashSet<&'a str> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, id) in ids.enumerate() {
        if !is_identifier(id) {
            p.push(Problem::new(
                format!("{list}[{i}].id"),
                format!("`{id}` must be 1 to 64 letters, digits, `-` or `_`"),
            ));
        }
        if let Some(j) = first.get(id) {
            p.push(Problem::new(
                format!("{list}[{i}].id"),
                format!("duplicate id `{id}` (first used by {list}[{j}])"),
            ));
        } else {
            first.insert(id, i);
        }
    }
    first.into_keys().collect()
}

fn known(set: &HashSet<&str>) -> String {
    let mut names: Vec<&str> = set.iter().copied().collect();
    names.sort_unstable();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", names.join(", "))
    }
}
