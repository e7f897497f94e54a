//! Built-in register maps of cold-chain sensors commonly found on RS-485.
//!
//! Each entry also names the serial settings the device ships with, so that a
//! technician knows what to put in `[[modbus.rtu]]` (they are documented, not
//! applied: one bus can only have one setting, and it is the bus's).

use crate::Quantity;

use super::register::{Function, Parity, RegisterConfig, RegisterType, Sentinel, WordOrder};

/// Names accepted by `profile = "..."` without a `[[modbus.profiles]]` entry.
pub const BUILT_IN_NAMES: [&str; 3] = ["xy-md02", "vaisala-f32", "lux-u32"];

/// A built-in profile: register map plus the device's factory serial settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltInProfile {
    pub name: &'static str,
    pub description: &'static str,
    pub registers: Vec<RegisterConfig>,
    /// Factory baud rate.
    pub baud: u32,
    /// Factory parity.
    pub parity: Parity,
    /// Factory stop bits.
    pub stop_bits: u8,
    /// Factory unit id.
    pub unit: u8,
}

fn reg(
    function: Function,
    address: u16,
    kind: RegisterType,
    word_order: Option<WordOrder>,
    scale: f64,
    quantity: Quantity,
    sentinels: Vec<Sentinel>,
) -> RegisterConfig {
    RegisterConfig {
        function,
        address,
        kind,
        word_order,
        scale,
        offset: 0.0,
        quantity,
        sentinels,
    }
}

/// The built-in profile called `name`, if any.
pub fn built_in(name: &str) -> Option<BuiltInProfile> {
    match name {
        // SHT20-based XY-MD02 and its clones: input registers 1 (temperature)
        // and 2 (humidity), signed tenths. 9600 8N1, unit 1.
        "xy-md02" => Some(BuiltInProfile {
            name: "xy-md02",
            description: "SHT20-based XY-MD02 class: input registers 1 (temperature) and 2 (humidity), i16 x 0.1",
            registers: vec![
                reg(Function::Input, 1, RegisterType::I16, None, 0.1, Quantity::Temperature, vec![]),
                reg(Function::Input, 2, RegisterType::I16, None, 0.1, Quantity::Humidity, vec![]),
            ],
            baud: 9600,
            parity: Parity::None,
            stop_bits: 1,
            unit: 1,
        }),
        // Vaisala-style transmitters (HMP/HMT class) publish float32 values
        // with the low word first; NaN means "no measurement" (sensor
        // warming up or broken probe). Humidity at 0, temperature at 2.
        "vaisala-f32" => Some(BuiltInProfile {
            name: "vaisala-f32",
            description: "Vaisala-style float32 transmitter: holding registers 0 (humidity) and 2 (temperature), f32 low word first, NaN = no value",
            registers: vec![
                reg(Function::Holding, 0, RegisterType::F32, Some(WordOrder::Little), 1.0, Quantity::Humidity, vec![Sentinel::Float(f64::NAN)]),
                reg(Function::Holding, 2, RegisterType::F32, Some(WordOrder::Little), 1.0, Quantity::Temperature, vec![Sentinel::Float(f64::NAN)]),
            ],
            baud: 19200,
            parity: Parity::None,
            stop_bits: 2,
            unit: 240,
        }),
        // Generic RS-485 illuminance transmitters: lux as u32, high word first,
        // in holding registers 2-3. 4800 8N1, unit 1.
        "lux-u32" => Some(BuiltInProfile {
            name: "lux-u32",
            description: "RS-485 illuminance transmitter: holding registers 2-3, u32 lux, high word first",
            registers: vec![reg(
                Function::Holding,
                2,
                RegisterType::U32,
                Some(WordOrder::Big),
                1.0,
                Quantity::Illuminance,
                vec![Sentinel::Int(0xFFFF_FFFF)],
            )],
            baud: 4800,
            parity: Parity::None,
            stop_bits: 1,
            unit: 1,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::config::validate_registers;

    #[test]
    fn every_built_in_profile_exists_and_is_valid() {
        for name in BUILT_IN_NAMES {
            let profile = built_in(name).unwrap();
            assert_eq!(profile.name, name);
            assert_eq!(validate_registers(name, &profile.registers), vec![]);
        }
        assert!(built_in("nope").is_none());
    }
}
