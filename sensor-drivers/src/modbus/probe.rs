//! One request on demand, for `coldgate modbus probe`: lets a technician
//! check wiring, serial settings, unit id and register addresses before
//! writing configuration.

use std::time::Duration;

use super::config::{Function, RtuBusConfig};
use super::error::{ProbeError, RequestError};
use super::rtu::{open_serial, RtuMaster};
use super::tcp::TcpMaster;

/// Where to send the probe.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeTarget {
    /// A Modbus TCP endpoint.
    Tcp { host: String, port: u16 },
    /// A serial port with its settings (`devices` is ignored; `timeout` is
    /// replaced by the probe's).
    Serial(RtuBusConfig),
}

/// Reads `count` registers starting at the 0-based `address` from `unit`,
/// once, without retries.
pub async fn probe(
    target: &ProbeTarget,
    unit: u8,
    function: Function,
    address: u16,
    count: u16,
    timeout: Duration,
) -> Result<Vec<u16>, ProbeError> {
    if unit == 0 {
        return Err(ProbeError::Invalid(
            "unit 0 is broadcast and never answers: use 1..=247".into(),
        ));
    }
    if !(1..=125).contains(&count) {
        return Err(ProbeError::Invalid(format!(
            "count {count}: read 1..=125 registers"
        )));
    }
    if u32::from(address) + u32::from(count) > 0x1_0000 {
        return Err(ProbeError::Invalid(format!(
            "address {address} + count {count} runs past register 65535"
        )));
    }
    if timeout.is_zero() {
        return Err(ProbeError::Invalid("timeout must be above 0".into()));
    }
    let result: Result<Vec<u16>, RequestError> = match target {
        ProbeTarget::Tcp { host, port } => {
            TcpMaster::new(host.clone(), *port, timeout)
                .read(unit, function, address, count)
                .await
        }
        ProbeTarget::Serial(bus) => {
            let mut bus = bus.clone();
            bus.timeout = timeout;
            let port = open_serial(&bus).map_err(|e| ProbeError::Open {
                device: bus.device.clone(),
                reason: e.to_string(),
            })?;
            RtuMaster::new(port, &bus)
                .read(unit, function, address, count)
                .await
        }
    };
    result.map_err(|source| ProbeError::Request { unit, source })
}
