//! Modbus RTU and TCP sensors.
//!
//! - [`config`]: the `[modbus]` configuration and its validation.
//! - [`profiles`]: built-in register maps of common cold-chain sensors.
//! - [`decode`], [`plan`]: registers to values, registers to requests (pure).
//! - [`rtu`]: our own RTU master (framing, CRC, resynchronisation).
//! - [`tcp`]: tokio-modbus's TCP client with timeouts and reconnection.
//! - [`poller`]: one task per bus or endpoint, as a [`crate::Source`].
//! - [`health`]: per-device counters for diagnostics.
//! - [`probe`]: one request on demand for the CLI.
//!
//! See `docs/modbus.md` for the configuration and the operator's view.

pub mod config;
pub mod decode;
pub mod error;
pub mod health;
pub mod plan;
pub mod poller;
pub mod probe;
pub mod profiles;
pub mod register;
pub mod rtu;
pub mod tcp;

#[cfg(test)]
mod tests;

pub use config::{
    ConfigProblem, DeviceConfig, Function, ModbusConfig, Parity, ProfileConfig, RegisterConfig,
    RegisterType, RtuBusConfig, Sentinel, TcpEndpointConfig, UnknownName, WordOrder,
};
pub use decode::{decode_register, decode_words, Decoded};
pub use error::{Exception, ProbeError, RequestError};
pub use health::{DeviceHealth, HealthMap};
pub use poller::{RtuSource, TcpSource};
pub use probe::{probe, ProbeTarget};

use crate::Source;

impl ModbusConfig {
    /// One [`Source`] per RTU bus and per TCP endpoint, all reporting into
    /// `health`. Refuses the whole section if [`ModbusConfig::validate`]
    /// finds any problem (paths start at `modbus`).
    pub fn sources(&self, health: &HealthMap) -> Result<Vec<Box<dyn Source>>, Vec<ConfigProblem>> {
        let problems = self.validate("modbus");
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for bus in &self.rtu {
            sources.push(Box::new(RtuSource::new(
                bus.clone(),
                &self.profiles,
                health.clone(),
            )?));
        }
        for endpoint in &self.tcp {
            sources.push(Box::new(TcpSource::new(
                endpoint.clone(),
                &self.profiles,
                health.clone(),
            )?));
        }
        Ok(sources)
    }
}
