//! Sensor sources for coldgate.
//!
//! This crate turns outside bytes (BLE advertisements, Modbus registers) into
//! [`Reading`]s and pushes them into a bounded channel. It knows nothing of
//! pallets, lots or MQTT: those belong to the gateway.

pub mod backoff;
pub mod ble;
pub mod modbus;
pub mod reading;
pub mod source;

pub use backoff::Backoff;
pub use reading::{Quantity, Reading, UnknownQuantity};
pub use source::{ReadingSender, Source, SourceError};
