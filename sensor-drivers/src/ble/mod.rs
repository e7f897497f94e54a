//! Bluetooth Low Energy sensors: a scanner behind a trait, pure decoders, and
//! the [`BleSource`] that joins them.
//!
//! ```text
//! Scanner (btleplug | script) ─► Advertisement ─► BleSource:
//!     configured MAC? ─► decode (format, key) ─► dedup / replay ─► Reading
//!                                    └──────────────► Diagnostics
//! ```
//!
//! The gateway builds a [`BleSource`] from [`BleConfig`] with a
//! [`BtleplugScanner`] and runs it like any other [`crate::Source`].

mod advertisement;
mod btleplug_scanner;
mod config;
pub mod decode;
mod dedup;
mod diagnostics;
mod mac;
mod scanner;
mod source;

pub use advertisement::Advertisement;
pub use btleplug_scanner::{scan, scan_with, BtleplugScanner, SeenAdvertiser};
pub use config::{BleConfig, BleSensorConfig, ConfigProblem, SensorSpec};
pub use decode::{decode, decode_hex, detect, DecodeError, Decoded, Format, UnknownFormat};
pub use dedup::{DedupState, Verdict};
pub use diagnostics::{Diagnostics, DiagnosticsSnapshot, SensorDiagnostics};
pub use mac::{BadMac, MacAddr};
pub use scanner::{AdvertisementStream, ScanError, Scanner, ScriptedScanner, Session};
pub use source::BleSource;

#[cfg(test)]
mod tests;
