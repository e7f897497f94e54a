//! Bluetooth Low Energy sensors: a scanner behind a trait, pure decoders, and
//! the source that joins them.

mod advertisement;
mod config;
pub mod decode;
mod mac;

pub use advertisement::Advertisement;
pub use config::{BleConfig, BleSensorConfig, ConfigProblem, SensorSpec};
pub use decode::{decode, decode_hex, detect, DecodeError, Decoded, Format, UnknownFormat};
pub use mac::{BadMac, MacAddr};
