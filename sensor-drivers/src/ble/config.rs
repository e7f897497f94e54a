//! The `[ble]` configuration section and its validation.
//!
//! ```toml
//! [ble]
//! adapter = "hci0"            # optional; default: the first adapter found
//!
//! [[ble.sensors]]
//! sensor = "rear-ble-1"       # the id readings carry
//! mac = "A4:C1:38:12:34:56"
//! format = "pvvx-encrypted"   # optional; default: detected from the bytes
//! key = "231d39c1d7cc1ab1aee224cd096db932"  # optional; encrypted formats
//! ```
//!
//! Fields are kept as strings so that [`BleConfig::validate`] can report every
//! problem at once with its path, instead of serde stopping at the first.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::decode::{parse_key, Format};
use super::mac::MacAddr;

/// `[ble]`: one adapter and the sensors it listens to.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleConfig {
    /// Adapter name as BlueZ reports it (`hci0`). Default: the first adapter.
    #[serde(default)]
    pub adapter: Option<String>,
    /// Sensors to listen to. Advertisements from any other address are
    /// ignored (counted, never turned into readings). Default: none.
    #[serde(default)]
    pub sensors: Vec<BleSensorConfig>,
}

/// `[[ble.sensors]]`: one sensor.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleSensorConfig {
    /// The gateway's sensor id, carried by every reading (`rear-ble-1`).
    pub sensor: String,
    /// Bluetooth address, `AA:BB:CC:DD:EE:FF`.
    pub mac: String,
    /// Advertisement format (see docs/sensors.md). Default: detected from
    /// the bytes where they are unambiguous; Govee H5100 family and Inkbird
    /// are detected only by their advertised name.
    #[serde(default)]
    pub format: Option<String>,
    /// AES key, 32 hex digits, for encrypted formats. With a key, plaintext
    /// advertisements from this sensor are refused. Default: none.
    #[serde(default)]
    pub key: Option<String>,
}

// Keys are secrets: Debug output (logs, panics) never shows them.
impl fmt::Debug for BleSensorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BleSensorConfig")
            .field("sensor", &self.sensor)
            .field("mac", &self.mac)
            .field("format", &self.format)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for BleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BleConfig")
            .field("adapter", &self.adapter)
            .field("sensors", &self.sensors)
            .finish()
    }
}

/// One thing wrong with the configuration, at a key path such as
/// `ble.sensors[1].mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A validated sensor, ready for the source.
#[derive(Clone, PartialEq)]
pub struct SensorSpec {
    pub sensor: Arc<str>,
    pub mac: MacAddr,
    pub format: Option<Format>,
    pub key: Option<[u8; 16]>,
}

impl fmt::Debug for SensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SensorSpec")
            .field("sensor", &self.sensor)
            .field("mac", &self.mac)
            .field("format", &self.format)
            .field("key", &self.key.map(|_| "<redacted>"))
            .finish()
    }
}

impl BleConfig {
    /// Every problem in this section; `path` is where the section sits
    /// (normally `ble`). Empty means [`BleConfig::resolve`] will succeed.
    pub fn validate(&self, path: &str) -> Vec<ConfigProblem> {
        match self.resolve(path) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// The sensors, parsed; or every problem found.
    pub fn resolve(&self, path: &str) -> Result<Vec<SensorSpec>, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem =
            |path: String, message: String| problems.push(ConfigProblem { path, message });

        if let Some(a) = &self.adapter {
            if a.trim().is_empty() {
                problem(
                    format!("{path}.adapter"),
                    "must not be empty; leave it out to use the first adapter".into(),
                );
            }
        }

        let mut specs = Vec::new();
        let mut seen_mac: HashMap<MacAddr, usize> = HashMap::new();
        let mut seen_id: HashMap<&str, usize> = HashMap::new();
        for (i, s) in self.sensors.iter().enumerate() {
            let at = format!("{path}.sensors[{i}]");
            if s.sensor.trim().is_empty() {
                problem(format!("{at}.sensor"), "must not be empty".into());
            } else if let Some(first) = seen_id.insert(s.sensor.as_str(), i) {
                problem(
                    format!("{at}.sensor"),
                    format!(
                        "duplicate sensor id `{}` (also {path}.sensors[{first}])",
                        s.sensor
                    ),
                );
            }
            let mac = match s.mac.parse::<MacAddr>() {
                Ok(m) => {
                    if let Some(first) = seen_mac.insert(m, i) {
                        problem(
                            format!("{at}.mac"),
                            format!("duplicate MAC {m} (also {path}.sensors[{first}])"),
                        );
                    }
                    Some(m)
                }
                Err(e) => {
                    problem(format!("{at}.mac"), e.to_string());
                    None
                }
            };
            let format = match s.format.as_deref().map(str::parse::<Format>) {
                None => Ok(None),
                Some(Ok(f)) => Ok(Some(f)),
                Some(Err(e)) => {
                    problem(format!("{at}.format"), e.to_string());
                    Err(())
                }
            };
            let key = match s.key.as_deref().map(parse_key) {
                None => Ok(None),
                Some(Ok(k)) => Ok(Some(k)),
                Some(Err(e)) => {
                    problem(format!("{at}.key"), e.to_string());
                    Err(())
                }
            };
            if let Ok(Some(f)) = format {
                if f.requires_key() && s.key.is_none() {
                    problem(
                        format!("{at}.key"),
                        format!("format `{f}` is encrypted and needs a key"),
                    );
                }
                if !f.accepts_key() && s.key.is_some() {
                    problem(
                        format!("{at}.key"),
                        format!("format `{f}` is never encrypted; remove the key"),
                    );
                }
            }
            if let (Some(mac), Ok(format), Ok(key)) = (mac, format, key) {
                specs.push(SensorSpec {
                    sensor: Arc::from(s.sensor.as_str()),
                    mac,
                    format,
                    key,
                });
            }
        }
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(id: &str, mac: &str, format: Option<&str>, key: Option<&str>) -> BleSensorConfig {
        BleSensorConfig {
            sensor: id.into(),
            mac: mac.into(),
            format: format.map(Into::into),
            key: key.map(Into::into),
        }
    }

    #[test]
    fn the_documented_shape_loads_and_validates() {
        // The TOML of the module docs, in JSON form: this crate does not
        // depend on a TOML parser; the gateway loads the file.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            ble: BleConfig,
        }
        let text = r#"{"ble": {
            "adapter": "hci0",
            "sensors": [
                {"sensor": "rear-ble-1", "mac": "A4:C1:38:12:34:56",
                 "format": "pvvx-encrypted", "key": "231d39c1d7cc1ab1aee224cd096db932"},
                {"sensor": "front-ruuvi", "mac": "CB:B8:33:4C:88:4F"}
            ]}}"#;
        let file: File = serde_json::from_str(text).unwrap();
        assert_eq!(file.ble.validate("ble"), vec![]);
        let specs = file.ble.resolve("ble").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].format, Some(Format::PvvxEncrypted));
        assert_eq!(specs[1].format, None);
        assert!(
            !format!("{:?}", specs[0]).contains("231d"),
            "keys never appear in Debug output"
        );
        assert!(!format!("{:?}", file.ble).contains("231d"));
        let empty: BleConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, BleConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<BleConfig, _> = serde_json::from_str(r#"{"adaptor": "hci0"}"#);
        assert!(r.is_err());
        let r: Result<BleSensorConfig, _> =
            serde_json::from_str(r#"{"sensor": "a", "mac": "A4:C1:38:12:34:56", "keys": "x"}"#);
        assert!(r.is_err());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let cfg = BleConfig {
            adapter: Some(" ".into()),
            sensors: vec![
                sensor(
                    "a",
                    "A4:C1:38:12:34:56",
                    Some("bthome"),
                    Some("231d39c1d7cc1ab1aee224cd096db932"),
                ),
                sensor("b", "not-a-mac", Some("bthome3"), Some("abcd")),
                sensor("a", "a4:c1:38:12:34:56", Some("pvvx-encrypted"), None),
                sensor(
                    "",
                    "A4:C1:38:00:00:01",
                    Some("ruuvi-v5"),
                    Some("231d39c1d7cc1ab1aee224cd096db932"),
                ),
            ],
        };
        let problems = cfg.validate("ble");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "ble.adapter",
                "ble.sensors[1].mac",
                "ble.sensors[1].format",
                "ble.sensors[1].key",
                "ble.sensors[2].sensor",
                "ble.sensors[2].mac",
                "ble.sensors[2].key",
                "ble.sensors[3].sensor",
                "ble.sensors[3].key",
            ],
            "{problems:#?}"
        );
        let text = |path: &str| {
            problems
                .iter()
                .find(|p| p.path == path)
                .unwrap()
                .message
                .clone()
        };
        assert!(text("ble.sensors[1].mac").contains("not a MAC"));
        assert!(text("ble.sensors[1].format").contains("unknown format"));
        assert!(text("ble.sensors[1].key").contains("16 bytes"));
        assert!(text("ble.sensors[2].mac").contains("duplicate MAC"));
        assert!(text("ble.sensors[2].sensor").contains("duplicate sensor id"));
        assert!(text("ble.sensors[2].key").contains("needs a key"));
        assert!(text("ble.sensors[3].key").contains("never encrypted"));
        assert!(problems[1].to_string().starts_with("ble.sensors[1].mac: "));
    }
}
