//! The one value every source produces and every later stage consumes.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a reading measures. The unit is fixed per quantity so that a value is
/// never ambiguous: °C, % relative humidity, lux, % battery, millivolts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Degrees Celsius.
    Temperature,
    /// Relative humidity, percent.
    Humidity,
    /// Illuminance, lux. Light inside a closed container means the door is open.
    Illuminance,
    /// Battery charge, percent.
    Battery,
    /// Battery voltage, millivolts.
    BatteryVoltage,
}

impl Quantity {
    /// Every quantity, in the order of their stored codes.
    pub const ALL: [Quantity; 5] = [
        Quantity::Temperature,
        Quantity::Humidity,
        Quantity::Illuminance,
        Quantity::Battery,
        Quantity::BatteryVoltage,
    ];

    /// The name used in configuration, payloads and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
            Quantity::Illuminance => "illuminance",
            Quantity::Battery => "battery",
            Quantity::BatteryVoltage => "battery_voltage",
        }
    }

    /// UN/CEFACT common code of the unit, as used in the MQTT payloads
    /// (`CEL`, `P1`, `LUX`, `MVO`), so subscribers need not guess.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Temperature => "CEL",
            Quantity::Humidity | Quantity::Battery => "P1",
            Quantity::Illuminance => "LUX",
            Quantity::BatteryVoltage => "MVO",
        }
    }

    /// The unit as people write it (`°C`, `%`, `lx`, `mV`): on a display,
    /// a chart or a report, where the payloads' codes would puzzle.
    pub fn symbol(self) -> &'static str {
        match self {
            Quantity::Temperature => "°C",
            Quantity::Humidity | Quantity::Battery => "%",
            Quantity::Illuminance => "lx",
            Quantity::BatteryVoltage => "mV",
        }
    }

    /// A stable one-byte code for storage. Never renumber: databases hold it.
    pub fn code(self) -> u8 {
        match self {
            Quantity::Temperature => 0,
            Quantity::Humidity => 1,
            Quantity::Illuminance => 2,
            Quantity::Battery => 3,
            Quantity::BatteryVoltage => 4,
        }
    }

    /// The inverse of [`Quantity::code`]; `None` for a code this build does not know.
    pub fn from_code(code: u8) -> Option<Quantity> {
        Quantity::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quantity name that is not one of [`Quantity::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantity `{0}` (expected temperature, humidity, illuminance, battery or battery_voltage)")]
pub struct UnknownQuantity(pub String);

impl FromStr for Quantity {
    type Err = UnknownQuantity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| UnknownQuantity(s.to_string()))
    }
}

/// One value of one quantity from one sensor at one instant.
///
/// The sensor id is the id given in configuration, shared (`Arc`) because a
/// source emits many readings for the same sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Configured sensor id, e.g. `rear-ble-1`.
    pub sensor: Arc<str>,
    pub quantity: Quantity,
    pub value: f64,
    /// UTC, milliseconds since the Unix epoch, as observed by the gateway
    /// (or, for the simulator, simulated time).
    pub at_ms: i64,
}

impl Reading {
    pub fn new(sensor: Arc<str>, quantity: Quantity, value: f64, at_ms: i64) -> Self {
        Reading {
            sensor,
            quantity,
            value,
            at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_stable() {
        for q in Quantity::ALL {
            assert_eq!(Quantity::from_code(q.code()), Some(q));
            assert_eq!(q.as_str().parse::<Quantity>(), Ok(q));
        }
        assert_eq!(Quantity::Temperature.code(), 0);
        assert_eq!(Quantity::BatteryVoltage.code(), 4);
        assert_eq!(Quantity::from_code(5), None);
    }

    #[test]
    fn unknown_names_are_refused_with_the_name() {
        let err = "temprature".parse::<Quantity>().unwrap_err();
        assert!(err.to_string().contains("temprature"));
    }
}
